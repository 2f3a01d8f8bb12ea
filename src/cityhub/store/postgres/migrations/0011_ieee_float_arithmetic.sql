-- Arithmetic on doubles as IEEE 754 does it, where PostgreSQL raises: sums (roll-ups) and $filter arithmetic.
-- Sums of double results as IEEE 754 adds them, as DuckDB, Arrow and NumPy do: a sum past the largest double is
-- +/-Infinity (Infinity - Infinity is NaN), where PostgreSQL's own float8 "+" and sum() raise "value out of range:
-- overflow" and so failed the roll-up's transaction. Results themselves are any finite double (1.7e308 is one), so
-- an hour of them can overflow.
--
-- ch_float_add: inlined by the planner (one SQL expression), so the usual case costs two comparisons. Below 2^1023
-- in magnitude neither term can make the sum overflow; above it, the sum is 2 * (a/2 + b/2), exact since halving a
-- double that large is exact and doubling commutes with rounding, and it overflows when a/2 + b/2 reaches 2^1023.
CREATE FUNCTION ch_float_add(a double precision, b double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE
    WHEN abs(a) < 8.98846567431158e307 AND abs(b) < 8.98846567431158e307 THEN a + b
    WHEN a = 'NaN' OR b = 'NaN' OR a = -b AND abs(a) = 'Infinity' THEN 'NaN'::double precision
    WHEN abs(a) = 'Infinity' THEN a
    WHEN abs(b) = 'Infinity' THEN b
    WHEN abs(a / 2 + b / 2) < 8.98846567431158e307 THEN 2 * (a / 2 + b / 2)
    ELSE sign(a / 2 + b / 2) * 'Infinity'::double precision
END
$$;

-- The aggregate: an aggregate's step is never inlined, and a PL/pgSQL step costs a fraction of an SQL one's call.
-- Its rare branch is ch_float_add's, written out so that the step needs no search_path to find it.
CREATE FUNCTION ch_float_sum_step(s double precision, v double precision) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    half double precision;
BEGIN
    IF abs(s) < 8.98846567431158e307 AND abs(v) < 8.98846567431158e307 THEN
        RETURN s + v;
    ELSIF s = 'NaN' OR v = 'NaN' OR s = -v AND abs(s) = 'Infinity' THEN
        RETURN 'NaN';
    ELSIF abs(s) = 'Infinity' THEN
        RETURN s;
    ELSIF abs(v) = 'Infinity' THEN
        RETURN v;
    END IF;
    half := s / 2 + v / 2;
    IF abs(half) < 8.98846567431158e307 THEN
        RETURN 2 * half;
    END IF;
    RETURN sign(half) * 'Infinity'::double precision;
END
$$;
CREATE AGGREGATE ch_float_sum(double precision) (SFUNC = ch_float_sum_step, STYPE = double precision,
    COMBINEFUNC = ch_float_sum_step, PARALLEL = SAFE);

-- The same for the arithmetic of $filter (result add 1.7e308, result mul 10, result div 1e-300): PostgreSQL raises
-- exactly where IEEE 754's answer is an infinity (overflow) or a zero (underflow), so the rare case catches that.
-- Products and quotients of magnitudes within 1e-150..1e150 can do neither: those take the inlined fast path.
CREATE FUNCTION ch_float_rare(op text, a double precision, b double precision) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN CASE op WHEN '*' THEN a * b ELSE a / b END;
EXCEPTION WHEN numeric_value_out_of_range THEN
    IF (CASE op WHEN '*' THEN ln(abs(a)) + ln(abs(b)) ELSE ln(abs(a)) - ln(abs(b)) END) > 0 THEN
        RETURN sign(a) * sign(b) * 'Infinity'::double precision;
    END IF;
    RETURN 0;
END
$$;
CREATE FUNCTION ch_float_mul(a double precision, b double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE
    WHEN abs(a) BETWEEN 1e-150 AND 1e150 AND abs(b) BETWEEN 1e-150 AND 1e150 OR a = 0 OR b = 0 THEN a * b
    ELSE ch_float_rare('*', a, b)
END
$$;
CREATE FUNCTION ch_float_div(a double precision, b double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE
    WHEN abs(a) BETWEEN 1e-150 AND 1e150 AND abs(b) BETWEEN 1e-150 AND 1e150 OR a = 0 THEN a / b
    ELSE ch_float_rare('/', a, b)
END
$$;

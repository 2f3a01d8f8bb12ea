"""The ``$filter`` tokenizer: text to a list of :class:`Token`, literals already turned into AST nodes.

Literals are decoded here rather than in the parser so that a malformed datetime, number, duration or WKT
is reported at the offset where it starts.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import NamedTuple

from cityhub.sensorthings.filter.ast import INT64_MAX, INT64_MIN, FilterError, Literal, duration_to_timedelta

WS = " \t\r\n"
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
SEGMENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
INDEX_RE = re.compile(r"\[[0-9]{1,9}\]")  # an array index in a path to a JSON member: properties/list[0]
_NUMBER_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_AFTER_LITERAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:")


class Token(NamedTuple):
    kind: str  # ident literal index ( ) , / : - eof
    pos: int
    end: int
    text: str
    value: Literal | None = None


def describe(tok: Token) -> str:
    if tok.kind == "eof":
        return "end of input"
    text = tok.text if len(tok.text) <= 30 else tok.text[:27] + "..."
    return f"'{text}'"


def _scan_string(text: str, start: int) -> tuple[str, int]:
    """The value of the quoted string opening at ``start`` and the offset just past its closing quote."""
    parts: list[str] = []
    i = start + 1
    while True:
        j = text.find("'", i)
        if j < 0:
            raise FilterError(f"unterminated string literal starting at position {start}", start)
        parts.append(text[i:j])
        if text.startswith("'", j + 1):  # '' is an escaped quote
            parts.append("'")
            i = j + 2
            continue
        return "".join(parts), j + 1


def _check_boundary(text: str, end: int, what: str, start: int) -> None:
    if end < len(text) and text[end] in _AFTER_LITERAL:
        raise FilterError(f"invalid {what} literal at position {start}", start)


def _lex_datetime(text: str, m: re.Match[str]) -> Literal:
    start = m.start()
    if m.group(8) is None:
        raise FilterError(f"timestamp needs a zone ('Z' or an offset such as '+07:00') at position {m.end()}", m.end())
    _check_boundary(text, m.end(), "datetime", start)
    year, month, day, hour, minute, second = (int(g or 0) for g in m.groups()[:6])
    micros = int((m.group(7) or "")[:6].ljust(6, "0"))
    zone = m.group(8)
    try:
        if zone == "Z":
            tz = dt.UTC
        else:
            hh, mm = int(zone[1:3]), int(zone[4:6])
            if hh > 23 or mm > 59:
                raise ValueError
            off = dt.timedelta(hours=hh, minutes=mm)
            tz = dt.timezone(-off if zone[0] == "-" else off)
        value = dt.datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
    except ValueError:
        raise FilterError(f"invalid datetime '{m.group()}' at position {start}", start) from None
    return Literal(value, "datetime")


_DURATION_RE = re.compile(r"P[0-9YMWDTHS.]+")


def _lex_period(text: str, start: Literal, m: re.Match[str]) -> tuple[Literal, int]:
    """The interval whose start ``start`` (matched by ``m``) is followed by '/'; returns it and the offset just
    past its end."""
    begin, slash = m.start(), m.end()
    assert isinstance(start.value, dt.datetime)
    if (e := _DATETIME_RE.match(text, slash + 1)) is not None:
        end = _lex_datetime(text, e)
        assert isinstance(end.value, dt.datetime)
        stop, until = e.end(), end.value
    elif (d := _DURATION_RE.match(text, slash + 1)) is not None:
        _check_boundary(text, d.end(), "interval", begin)
        try:
            until = start.value + duration_to_timedelta(d.group())
        except (ValueError, OverflowError):
            raise FilterError(f"invalid interval '{text[begin : d.end()]}' at position {begin}", begin) from None
        stop = d.end()
    else:
        raise FilterError(f"expected a datetime or a duration after '/' at position {slash + 1}", slash + 1)
    if until < start.value:
        raise FilterError(f"the interval at position {begin} ends before it starts", begin)
    return Literal((start.value, until), "period"), stop


def _lex_number(text: str, m: re.Match[str]) -> Literal:
    start, raw = m.start(), m.group()
    _check_boundary(text, m.end(), "number", start)
    if m.group(1) is None and m.group(2) is None:
        digits = raw.lstrip("-").lstrip("0")
        value = int(raw) if len(digits) <= 19 else None  # int() of huge strings is slow (and capped)
        if value is None or not INT64_MIN <= value <= INT64_MAX:
            raise FilterError(f"integer out of range at position {start}", start)
        return Literal(value, "int")
    number = float(raw)
    if not math.isfinite(number):
        raise FilterError(f"number out of range at position {start}", start)
    return Literal(number, "float")


def _lex_typed(text: str, prefix: str, start: int, quote: int) -> tuple[Literal, int]:
    body, end = _scan_string(text, quote)
    try:
        if prefix == "duration":
            duration_to_timedelta(body)
            return Literal(body, "duration"), end
        return Literal(body, "geometry"), end
    except OverflowError:
        raise FilterError(f"duration out of range at position {start}", start) from None
    except Exception as exc:  # shapely/GEOS raise assorted types; all mean "bad literal"
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise FilterError(f"invalid {prefix} literal at position {start}: {detail}", start) from None


def tokenize(text: str) -> list[Token]:
    toks: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in WS:
            i += 1
        elif ch in "(),/:":  # ':' only in a lambda: Datastreams/any(d: d/name eq 'x')
            toks.append(Token(ch, i, i + 1, ch))
            i += 1
        elif ch == "'":
            value, end = _scan_string(text, i)
            toks.append(Token("literal", i, end, text[i:end], Literal(value, "string")))
            i = end
        elif "0" <= ch <= "9" or (ch == "-" and i + 1 < n and "0" <= text[i + 1] <= "9"):
            # An adjacent minus belongs to the number (OData's signed literals); '- 5' is negation.
            end = None
            if ch != "-" and (m := _DATETIME_RE.match(text, i)):
                lit = _lex_datetime(text, m)
                if text.startswith("/", m.end()):  # an ISO 8601 interval: start/end or start/duration
                    lit, end = _lex_period(text, lit, m)
            elif ch != "-" and (m := _DATE_RE.match(text, i)):
                _check_boundary(text, m.end(), "date", i)
                try:
                    lit = Literal(dt.date(*(int(g) for g in m.groups())), "date")
                except ValueError:
                    raise FilterError(f"invalid date '{m.group()}' at position {i}", i) from None
            else:
                m = _NUMBER_RE.match(text, i)
                assert m is not None
                lit = _lex_number(text, m)
            end = m.end() if end is None else end
            toks.append(Token("literal", i, end, text[i:end], lit))
            i = end
        elif ch == "-":
            toks.append(Token("-", i, i + 1, ch))
            i += 1
        elif ch == "[":
            m = INDEX_RE.match(text, i)
            if m is None:
                raise FilterError(f"expected an array index such as '[0]' at position {i}", i)
            toks.append(Token("index", i, m.end(), m.group()))
            i = m.end()
        elif ch == "_" or ("a" <= ch <= "z") or ("A" <= ch <= "Z"):
            m = _IDENT_RE.match(text, i)
            assert m is not None
            word = m.group()
            if word in ("duration", "geography", "geometry") and text.startswith("'", m.end()):
                lit, end = _lex_typed(text, word, i, m.end())
                toks.append(Token("literal", i, end, text[i:end], lit))
                i = end
            else:
                toks.append(Token("ident", i, m.end(), word))
                i = m.end()
        elif text.startswith("@iot.id", i):
            raise FilterError(f"unexpected character '@' at position {i}; write 'id' for '@iot.id'", i)
        else:
            raise FilterError(f"unexpected character {ch!r} at position {i}", i)
    toks.append(Token("eof", n, n, ""))
    return toks

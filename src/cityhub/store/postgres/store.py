"""The server store: PostgreSQL with PostGIS, shared by any number of hub processes.

Every process keeps a bounded pool of connections (psycopg_pool). Reads run on autocommit connections; a write
transaction holds one connection for its length. Observations arrive as Arrow tables, go into a temporary staging
table by binary ``COPY`` and into the month-partitioned ``observations`` table by one set-based merge (or, when
every row is new, straight in by ``COPY``).

Roll-ups (latest values, hourly aggregates) of appended rows are deferred, as on the embedded store: the id ranges
awaiting them are committed with the rows in ``rollup_pending`` and folded in later, many commits at once, by
whichever process comes first: the writer after a quiet moment or every half second, any read of a roll-up before
it reads, a transaction that recomputes one before it does. A 10,000-row body touching 10,000 Datastreams upserted
20,000 roll-up rows in its own transaction; folded every few bodies, each upsert serves many. What one process
acknowledges, every process reads at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import psycopg
import psycopg.sql
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import errors as pgerr
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from cityhub.errors import ProblemError
from cityhub.store.base import (
    OBSERVATION_BATCH_SCHEMA,
    AppendResult,
    Dialect,
    QueryError,
    Store,
    StoreUnavailable,
)
from cityhub.store.postgres import migrate
from cityhub.store.postgres.airquality import PgAirQuality
from cityhub.store.postgres.alerts import PgAlertOps
from cityhub.store.postgres.catalog import PgCatalog
from cityhub.store.postgres.cluster import PgChannel, PgLease
from cityhub.store.postgres.copy import decode_array, decode_fixed, encode
from cityhub.store.postgres.deadletters import PgDeadLetters
from cityhub.store.postgres.entities import PgEntityOps
from cityhub.store.postgres.export import PgExport
from cityhub.store.postgres.geo import PgGeoOps
from cityhub.store.postgres.observations import PgObservations
from cityhub.store.postgres.transfer import PgTransfer
from cityhub.store.postgres.util import id_array
from cityhub.store.postgres.webhooks import PgWebhookOps
from cityhub.store.schema import (
    DUPLICATE_KEY,
    ENTITY_TABLES,
    ID_SPACE,
    SAME_RESULT,
    replace_in_place,
    variants_to_insert,
)
from cityhub.store.transaction import Transaction

log = logging.getLogger(__name__)

_OBS_COLUMNS = [f.name for f in OBSERVATION_BATCH_SCHEMA]
_OBS_TYPES = [
    "int8", "int8", "timestamptz", "timestamptz", "timestamptz", "float8", "text", "text", "json", "timestamptz",
    "timestamptz", "json", "int8",
]  # fmt: skip
_STAGE_DDL = """CREATE TEMP TABLE IF NOT EXISTS _ch_stage (
    id bigint, datastream_id bigint, phenomenon_time timestamptz, phenomenon_time_end timestamptz,
    result_time timestamptz, result_number double precision, result_string text, result_json text,
    result_quality json, valid_time_start timestamptz, valid_time_end timestamptz, parameters json,
    feature_of_interest_id bigint) ON COMMIT DELETE ROWS"""
_INS_DDL = """CREATE TEMP TABLE IF NOT EXISTS _ch_ins (
    id bigint, datastream_id bigint, phenomenon_time timestamptz, phenomenon_time_end timestamptz,
    result_time timestamptz, result_number double precision, result_string text, result_json text)
    ON COMMIT DELETE ROWS"""
# Roll-ups of an all-new batch, aggregated in Arrow and upserted from these.
_HOURLY_DDL = """CREATE TEMP TABLE IF NOT EXISTS _ch_hourly (
    datastream_id bigint, hour timestamptz, n bigint, total double precision, minimum double precision,
    maximum double precision) ON COMMIT DELETE ROWS"""
_LATEST_DDL = """CREATE TEMP TABLE IF NOT EXISTS _ch_latest (
    datastream_id bigint, phenomenon_time timestamptz, result_number double precision, result_string text,
    result_json text, observation_id bigint, first_time timestamptz, count bigint, last_end timestamptz,
    result_first timestamptz, result_last timestamptz) ON COMMIT DELETE ROWS"""
_OBS_TYPE_OF = dict(zip(_OBS_COLUMNS, _OBS_TYPES, strict=True))
_ID_BLOCK = 1024
# Rounds of planning variants against other writers taking them first (each lost race costs one; 8 never met).
_VARIANT_ROUNDS = 8
# Rows held for deferred roll-ups past which an append folds them itself (the writer folds every 400,000).
_MAX_PENDING_ROWS = 2_000_000
# A pooled connection idle longer than this is checked before use (see PostgresStore._check).
_CHECK_IDLE_S = 2.0
# What a roll-up needs of an Observation.
_ROLLUP_COLUMNS = [
    "id", "datastream_id", "phenomenon_time", "phenomenon_time_end", "result_time", "result_number", "result_string",
    "result_json",
]  # fmt: skip
_RETURNING = f"RETURNING {', '.join(_ROLLUP_COLUMNS)}"
# Rows go in key order; of a Datastream's Observations at its latest time (variants, schema.DUPLICATE_KEY) the one
# stored last (highest id) is its latest value, as on the embedded store.
_KEY_ORDER = [("datastream_id", "ascending"), ("phenomenon_time", "ascending"), ("id", "ascending")]
_LATEST_SCHEMA = pa.schema(
    [
        ("datastream_id", pa.int64()),
        ("phenomenon_time", pa.timestamp("us", tz="UTC")),
        ("result_number", pa.float64()),
        ("result_string", pa.string()),
        ("result_json", pa.string()),
        ("observation_id", pa.int64()),
        ("first_time", pa.timestamp("us", tz="UTC")),
        ("count", pa.int64()),
    ]
)
_AGGREGATE_SCHEMA = pa.schema(
    [
        ("datastream_id", pa.int64()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("value", pa.float64()),
        ("count", pa.int64()),
    ]
)
# Months from 2000 to 2099 get a partition each (made when first needed, and a few ahead of today); the rest share
# the two made by the first migration.
_FIRST_MONTHLY, _END_MONTHLY = 2000, 2100
_MONTHS_AHEAD = 3
_GEO = {
    "geo.distance": "ST_Distance",
    "geo.length": "ST_Length",
    "geo.intersects": "ST_Intersects",
    "st_equals": "ST_Equals",
    "st_disjoint": "ST_Disjoint",
    "st_touches": "ST_Touches",
    "st_within": "ST_Within",
    "st_overlaps": "ST_Overlaps",
    "st_crosses": "ST_Crosses",
    "st_intersects": "ST_Intersects",
    "st_contains": "ST_Contains",
    "st_relate": "ch_st_relate",
}
_JSON_TYPES = {"number": "ch_try_float8", "boolean": "ch_try_bool"}
_TRY_CAST = {"BOOLEAN": "ch_try_bool", "DOUBLE PRECISION": "ch_try_float8", "DOUBLE": "ch_try_float8"}


@dataclass(eq=False)
class _Pending:
    """Rows this process appended whose roll-ups are deferred: their id ranges in ``rollup_pending``, the rows
    themselves (sorted by Datastream and time), and whether their transaction has committed."""

    ranges: list[tuple[int, int]]
    rows: pa.Table
    committed: bool = False


@dataclass
class _Folded:
    """What a fold claimed, and which of this process's committed entries it saw when it began."""

    claimed: set[tuple[int, int]]
    seen: list[_Pending] = field(default_factory=list)


def _json_path(keys: Sequence[str]) -> str:
    """A ``text[]`` path literal for member ``keys``, an array index ``[n]`` its element n. A dialect cannot bind
    parameters, so the path is a literal; '%' doubled for psycopg."""
    elements = ",".join(
        '"' + (k[1:-1] if k.startswith("[") else k).replace("\\", "\\\\").replace('"', '\\"') + '"' for k in keys
    )
    return "'{" + elements.replace("'", "''").replace("%", "%%") + "}'::text[]"


class PgDialect(Dialect):
    placeholder = "%s"

    def json_value(self, sql: str, keys: Sequence[str], as_type: str) -> str:
        path = _json_path(keys)
        text = f"(({sql})::json #>> {path})"
        if as_type == "string":
            return text
        # A member is a number (or a boolean) only where the JSON holds one: the string "5" is no number, as
        # FROST-Server reads it; as a string, any scalar member is its JSON text.
        return f"(CASE WHEN json_typeof(({sql})::json #> {path}) = '{as_type}' THEN {_JSON_TYPES[as_type]}({text}) END)"

    def json_contains(self, sql: str, keys: Sequence[str], value_sql: str, as_type: str) -> str:
        path = _json_path(keys)
        # jsonb containment: the array holds an element equal to the value, of its JSON type (9 is 9.0, not "9").
        return f"coalesce((({sql})::jsonb #> {path}) @> jsonb_build_array({value_sql}), FALSE)"

    def try_cast(self, sql: str, sql_type: str) -> str:
        return f"{_TRY_CAST[sql_type]}(({sql})::text)"

    def double_text(self, sql: str) -> str:
        # float8 text is the shortest exact form, as Python's repr, except that a whole number has no ".0".
        return f"""(CASE WHEN ({sql}) = trunc({sql}) AND abs({sql}) < 1e16
                         THEN trunc({sql})::numeric::text || '.0' ELSE ({sql})::text END)"""

    def geo(self, func: str, args: list[str]) -> str:
        return f"{_GEO[func]}({', '.join(args)})"

    def arithmetic(self, op: str, left: str, right: str) -> str:
        # PostgreSQL's float8 operators raise "value out of range" where IEEE 754 gives an infinity or a zero: the
        # ch_float_* functions of migration 0011 answer as DuckDB does (inlined; one comparison more per operand).
        if op == "sub":
            return f"ch_float_add({left}, -({right}))"
        return f"ch_float_{op}({left}, {right})"

    def row_key(self, table: str) -> tuple[str, ...] | None:
        # Observations: a filter's rows are found through indexes that hold the key (migration 0002), and each
        # row read is a page of its own (rows of one sensor are spread over the table, one per batch).
        # The whole primary key: Observations of one Datastream and phenomenonTime differ by variant (migration 0005).
        return ("datastream_id", "phenomenon_time", "variant") if table == "observations" else None

    def distance_within(self, inclusive: bool) -> str | None:
        # ST_DWithin is what the GiST index serves (ST_Distance < d is computed for every row); it is "<=", so a
        # strict comparison keeps the exact test beside it.
        if inclusive:
            return "ST_DWithin({a}, {b}, {d})"
        return "(ST_DWithin({a}, {b}, {d}) AND ST_Distance({a}, {b}) < {d})"

    def geometry_column(self, alias: str, column: str) -> str:
        # The generated PostGIS column beside the GeoJSON text, which has a GiST index.
        return f"{alias}.{column}_geom"

    def geometry_literal(self, placeholder: str) -> str:
        return f"ch_wkt({placeholder})"


class _PgTransaction(Transaction):
    def __init__(self, store: PostgresStore, cur: psycopg.Cursor[Any]) -> None:
        self.store = store
        self.cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cur.execute(sql, list(params) if params else None)
        return self.cur.fetchall() if self.cur.description is not None else []

    def append_table(self, table: str, rows: pa.Table) -> None:
        if table == "observations":
            self.store.ensure_partitions(rows.column("phenomenon_time"), cur=self.cur)
        self.store.copy_in(self.cur, table, rows)

    def insert(self, table: str, values: dict[str, Any]) -> int:
        new_id = int(self.store.allocate_ids(table, 1)[0])
        cols = ["id", *values]
        marks = ", ".join("%s" for _ in cols)
        self.cur.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", [new_id, *values.values()])
        return new_id


def split_url(url: str) -> tuple[str, str]:
    """(libpq connection string, schema) of a store URL: ``postgresql://user@host:5432/db?schema=name`` keeps
    CityHub's tables in schema ``name`` (default ``public``); every other part is libpq's."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), "") or "public"
    rest = [(k, v) for k, v in query if k != "schema"]
    if not schema.replace("_", "").isalnum() or schema[0].isdigit():
        raise ValueError(f"schema {schema!r}: letters, digits and '_' only, not starting with a digit")
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql", "postgresql+psycopg") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment)), schema


class PostgresStore(Store):
    """A PostgreSQL database (``url``: ``postgresql://user@host:port/db[?schema=name]``).

    ``migrate``: "auto" brings an empty schema to the current version (a deployment runs ``cityhub db init``
    instead, but a first ``serve`` need not fail), "check" refuses any other version than this code's.
    ``statement_timeout_s`` cancels a statement that runs longer (answered 503); ``pool_size`` bounds the
    connections this process opens; a request waits at most ``pool_timeout_s`` for one.
    """

    # Other processes' reads fold this process's pending rows by reading them back from the table, which costs far
    # more than the writer folding them from memory: fold them often (a fold of a few rows costs ~3 ms).
    fold_interval_s = 0.1

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 16,
        statement_timeout_s: float = 30.0,
        pool_timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        migrate_mode: str = "auto",
    ) -> None:
        self.url = url
        self.conninfo, self.schema = split_url(url)
        self.statement_timeout_ms = int(statement_timeout_s * 1000)
        # jit=off: compiling a query plan cost 10-25 ms of queries that run in 40 (a geo filter over 5 M rows); what
        # a hub asks is never the long analytical query JIT pays off for.
        options = (
            f"-c search_path={self.schema},public -c TimeZone=UTC -c jit=off "
            f"-c statement_timeout={self.statement_timeout_ms} -c idle_in_transaction_session_timeout="
            f"{max(self.statement_timeout_ms * 2, 60_000)}"
        )
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "options": options,
            "connect_timeout": max(1, int(connect_timeout_s)),
            "application_name": "cityhub",
        }
        self._migrate(migrate_mode)
        self._sweeping = threading.Lock()
        self._pool = ConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=pool_size,
            kwargs=self._kwargs,
            configure=self._configure,
            check=self._check,
            reset=self._returned,
            timeout=pool_timeout_s,
            open=False,
            name="cityhub",
        )
        self._pool.open(wait=True, timeout=connect_timeout_s + pool_timeout_s)
        self.dialect = PgDialect()
        self.entities = PgEntityOps(self)
        self.geo = PgGeoOps(self)
        self.alerts = PgAlertOps(self)
        self.webhooks = PgWebhookOps(self)
        self.catalog = PgCatalog(self)
        self.observations = PgObservations(self)
        self.deadletters = PgDeadLetters(self)
        self.airquality = PgAirQuality(self)
        self.export = PgExport(self)
        self.transfer = PgTransfer(self)
        self._write_lock = threading.RLock()
        self._types: dict[str, dict[str, str]] = {}
        self._partitions: set[tuple[int, int]] = set()
        self._partition_lock = threading.Lock()
        self._id_lock = threading.Lock()
        self._id_block = [0, 0]  # [next, end) of the block of Observation ids reserved for small requests
        self._pending: list[_Pending] = []
        self._pending_rows = 0
        self._pending_lock = threading.Lock()
        self._fold_lock = threading.Lock()
        self._load_partitions()
        self.ensure_partitions(None)
        self.flush_derived()  # what a killed process left pending

    # -- plumbing --------------------------------------------------------------------------------------
    def _migrate(self, mode: str) -> None:
        try:
            # Under the schema lock: several workers start at once, and the first initialises an empty schema.
            with psycopg.connect(self.conninfo, **self._kwargs) as con, migrate.schema_lock(con):
                version = migrate.current_version(con, self.schema)
                if version > migrate.CODE_VERSION:
                    raise migrate.SchemaError(migrate.newer_message(version))
                if version == 0 and mode == "auto":
                    migrate.upgrade(con, self.schema)
                elif version < migrate.CODE_VERSION:
                    raise migrate.SchemaError(
                        migrate.older_message(version)
                        if version
                        else f"no CityHub schema in {self.schema!r}: run `cityhub db init --store <url>` first"
                    )
        except pgerr.QueryCanceled:
            raise StoreUnavailable(
                f"another process held the schema lock for longer than {self.statement_timeout_ms / 1000:g} s "
                "(a `cityhub db upgrade` running?)"
            ) from None
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"PostgreSQL is not reachable: {str(exc).strip().splitlines()[0]}") from None

    @staticmethod
    def _configure_types(con: psycopg.Connection[Any]) -> None:
        # JSON members come back as their text, as from the embedded store (callers parse what they need).
        for name in ("json", "jsonb"):
            con.adapters.register_loader(name, TextLoader)

    def _sweep_pool(self) -> None:
        """A connection failed: check the idle ones in the background (a server restart broke them all, and those
        used moments ago are handed out unchecked), so that the next requests get live ones."""
        if not self._sweeping.acquire(blocking=False):
            return

        def sweep() -> None:
            try:
                self._pool.check()
            except Exception:  # the server is still away: the next failure sweeps again
                log.debug("checking pooled connections failed", exc_info=True)
            finally:
                self._sweeping.release()

        threading.Thread(target=sweep, name="cityhub-pool-check", daemon=True).start()

    @staticmethod
    def _check(con: psycopg.Connection[Any]) -> None:
        """Check a pooled connection before handing it out, unless it was in use moments ago: the check is a round
        trip, one more for every request and commit, and a connection broken since fails its request with a 503
        all the same (and is replaced)."""
        if time.monotonic() - getattr(con, "_ch_returned", 0.0) > _CHECK_IDLE_S:
            ConnectionPool.check_connection(con)

    @staticmethod
    def _returned(con: psycopg.Connection[Any]) -> None:
        con._ch_returned = time.monotonic()  # type: ignore[attr-defined]

    @staticmethod
    def _configure(con: psycopg.Connection[Any]) -> None:
        PostgresStore._configure_types(con)
        con.execute(_STAGE_DDL)
        con.execute(_INS_DDL)
        con.execute(_HOURLY_DDL)
        con.execute(_LATEST_DDL)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled autocommit connection for the block; database outages become :class:`StoreUnavailable`."""
        with self._errors(), self._pool.connection() as con:
            yield con

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except PoolTimeout:
            raise StoreUnavailable("every database connection of this process is busy; retry shortly", 1) from None
        except pgerr.QueryCanceled:
            raise ProblemError(
                503,
                "Service Unavailable",
                f"the query ran longer than the store's statement timeout ({self.statement_timeout_ms / 1000:g} s) "
                "and was cancelled: narrow it ($filter on time, $top) or retry later",
                field="query",
                headers={"Retry-After": "5"},
            ) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            first = (str(exc).strip().splitlines() or ["connection lost"])[0]
            self._sweep_pool()
            raise StoreUnavailable(f"the database is unavailable ({first}); retry shortly") from None
        except (pgerr.CharacterNotInRepertoire, pgerr.UntranslatableCharacter):
            # Valid Unicode that PostgreSQL's text cannot hold (U+0000): the request's fault, never a 500.
            raise ProblemError(
                400,
                "Bad Request",
                "a text value contains the NUL character (U+0000), which cannot be stored",
                field="body",
            ) from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self.connection() as con:
                cur = con.execute(sql, list(params) if params else None)
                return cur.fetchall() if cur.description is not None else []
        except psycopg.DataError as exc:  # SQLSTATE class 22 (pgerr.DataException is 22000 alone)
            raise QueryError(f"the query could not be evaluated: {str(exc).splitlines()[0]}") from None

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        try:
            with self.connection() as con:
                cur = con.execute(sql, list(params) if params else None)
                names = [d.name for d in cur.description or ()]
                rows = cur.fetchall()
        except psycopg.DataError as exc:
            raise QueryError(f"the query could not be evaluated: {str(exc).splitlines()[0]}") from None
        cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
        return pa.table({n: pa.array(list(c)) for n, c in zip(names, cols, strict=True)})

    def _arrow(self, rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
        cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
        return pa.table([pa.array(list(c), f.type) for c, f in zip(cols, schema, strict=True)], schema=schema)

    @contextmanager
    def transaction(self, *, fold_derived: bool = True) -> Iterator[Transaction]:
        # Serialised within the process, as on the embedded store (service code reads, then writes); between
        # processes PostgreSQL's row locks and unique keys decide.
        with self._write_lock, self.connection() as con:
            folded: _Folded | None = None
            with con.transaction():
                cur = con.cursor()
                if fold_derived:
                    folded = self._fold_locked(cur)
                yield _PgTransaction(self, cur)
            if folded is not None:
                self._settle(folded)

    def allocate_ids(self, table: str, n: int) -> np.ndarray:
        table = ID_SPACE.get(table, table)
        if table == "observations" and n < _ID_BLOCK // 4:
            # A lone Observation took a round trip for its id (4,000 a second under single POSTs): small requests
            # take theirs from a block this process reserves. Ids stay unique across processes, not gap-free.
            with self._id_lock:
                if self._id_block[1] - self._id_block[0] < n:
                    first = int(self._reserve_ids(table, _ID_BLOCK)[0])
                    self._id_block = [first, first + _ID_BLOCK]
                start = self._id_block[0]
                self._id_block[0] += n
            return np.arange(start, start + n, dtype=np.int64)
        return self._reserve_ids(table, n)

    def _reserve_ids(self, table: str, n: int) -> np.ndarray:
        with self.connection() as con:
            row = con.execute(
                "UPDATE id_counters SET next_id = next_id + %s WHERE name = %s RETURNING next_id - %s",
                [int(n), table, int(n)],
            ).fetchone()
        if row is None:
            raise KeyError(f"no id counter for table {table}")
        start = int(row[0])
        return np.arange(start, start + n, dtype=np.int64)

    def copy_in(self, cur: psycopg.Cursor[Any], table: str, rows: pa.Table) -> None:
        """Append ``rows`` (columns named as ``table``'s) to ``table`` with one binary COPY."""
        if all(c in _OBS_TYPE_OF for c in rows.column_names):
            types = [_OBS_TYPE_OF[c] for c in rows.column_names]
        else:
            types = self._column_types(cur, table, rows.column_names)
        data = encode(rows, types)  # before the COPY starts: the server's side of it (and its locks) waits for none
        with cur.copy(f"COPY {table} ({', '.join(rows.column_names)}) FROM STDIN (FORMAT BINARY)") as cp:
            cp.write(data)

    _TYPE_NAMES: ClassVar[dict[str, str]] = {
                   "bigint": "int8", "integer": "int4", "smallint": "int2", "double precision": "float8",
                   "real": "float4", "boolean": "bool", "timestamp with time zone": "timestamptz", "text": "text",
                   "json": "json", "character varying": "text"}  # fmt: skip

    def _column_types(self, cur: psycopg.Cursor[Any], table: str, columns: Sequence[str]) -> list[str]:
        # Read once per table: the schema does not change under a running store (migrations run before it opens).
        types = self._types.get(table)
        if types is None:
            rows = cur.execute(
                """SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a
                   WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped""",
                [table],
            ).fetchall()
            types = self._types[table] = {name: self._TYPE_NAMES.get(t, "text") for name, t in rows}
        return [types[c] for c in columns]

    # -- partitions ----------------------------------------------------------------------------------
    def _load_partitions(self) -> None:
        rows = self.query(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = to_regclass('observations')"""
        )
        for (name,) in rows:
            if name.startswith("observations_p") and len(name) == 20:
                self._partitions.add((int(name[14:18]), int(name[18:20])))

    def ensure_partitions(self, times: pa.ChunkedArray | pa.Array | Sequence[datetime] | None,
                          cur: psycopg.Cursor[Any] | None = None) -> None:  # fmt: skip
        """Make the month partitions that rows at ``times`` need, and the next few months' (None: those only).

        Within a transaction (``cur``) they are made on its connection: another connection would wait for the
        locks this transaction holds on ``observations``."""
        now = datetime.now(UTC)
        months = {
            ((now.year * 12 + now.month - 1 + k) // 12, (now.month - 1 + k) % 12 + 1) for k in range(_MONTHS_AHEAD)
        }
        if times is not None:
            if not isinstance(times, pa.ChunkedArray | pa.Array):
                times = pa.array(list(times), pa.timestamp("us", tz="UTC"))
            firsts = pc.unique(pc.floor_temporal(pc.cast(times, pa.timestamp("us", tz="UTC")), unit="month"))
            months |= {(t.year, t.month) for t in firsts.to_pylist() if t is not None}
        missing = sorted(m for m in months if m not in self._partitions and _FIRST_MONTHLY <= m[0] < _END_MONTHLY)
        if not missing:
            return
        if cur is not None:
            for m in missing:
                cur.execute(_partition_ddl(*m))
            return  # recorded once seen committed (_load_partitions), since this transaction may roll back
        with self._partition_lock, self.connection() as con:
            for m in missing:
                # DuplicateTable/UniqueViolation: another process made it just now.
                with suppress(pgerr.DuplicateTable, pgerr.UniqueViolation):
                    con.execute(_partition_ddl(*m))
                self._partitions.add(m)

    # -- observations --------------------------------------------------------------------------------
    def append_observations(self, tx: Transaction, batch: pa.Table) -> AppendResult:
        assert isinstance(tx, _PgTransaction)
        self.ensure_partitions(batch.column("phenomenon_time"), cur=tx.cur)
        return self._merge(tx.cur, batch)

    def _merge(self, cur: psycopg.Cursor[Any], batch: pa.Table) -> AppendResult:
        """Stage ``batch`` by COPY and store its new rows in one statement; roll-ups from the rows stored."""
        batch = batch.select(_OBS_COLUMNS)
        # Emptied at commit, but a transaction may merge more than once (a deep insert, a replacing batch).
        cur.execute("TRUNCATE _ch_stage, _ch_ins")
        self.copy_in(cur, "_ch_stage", batch)
        cols = ", ".join(_OBS_COLUMNS)
        # Within one batch the first row of a key wins; the others are reported as duplicates below. Rows go in
        # key order, so two processes merging overlapping batches lock index entries in the same order.
        cur.execute(
            f"""WITH ins AS (
                    INSERT INTO observations ({cols})
                    SELECT DISTINCT ON (datastream_id, phenomenon_time) {cols} FROM _ch_stage
                    ORDER BY datastream_id, phenomenon_time, id
                    ON CONFLICT DO NOTHING
                    {_RETURNING})
                INSERT INTO _ch_ins SELECT * FROM ins"""
        )
        inserted = cur.rowcount
        result = AppendResult(inserted=np.empty(0, np.int64))
        if inserted < batch.num_rows:
            # Re-sent rows first (one index probe each): only what is left can be an Observation that shares a
            # (Datastream, phenomenonTime) and differs in the rest of the key, and the variant plan probes each
            # row it is given, so a batch of re-sends never reaches it.
            found = self._find_duplicates(cur, result, drop=True)
            if inserted + found < batch.num_rows:
                inserted += self._insert_variants(cur, cols)
                if inserted + found < batch.num_rows:  # duplicates of rows just stored as variants
                    self._find_duplicates(cur, result)
        stored = batch
        if inserted < batch.num_rows:
            ids = pa.array([r[0] for r in cur.execute("SELECT id FROM _ch_ins").fetchall()], pa.int64())
            stored = batch.filter(pc.is_in(batch.column("id"), ids))
        result.inserted = np.sort(stored.column("id").to_numpy())
        if inserted:
            stored = stored.sort_by(_KEY_ORDER)
            self._roll_up_now(cur, stored)
        return result

    def _insert_variants(self, cur: psycopg.Cursor[Any], cols: str) -> int:
        """Store the staged rows that share (Datastream, phenomenonTime) with a stored or an earlier staged row but
        differ in the rest of the duplicate key, each with the next free ``variant`` (schema.variants_to_insert);
        the number stored. Another process may take a variant between the plan and the insert: its row is skipped
        by ON CONFLICT and the plan is made again from what is stored then (rows stored by now, this transaction's
        included, have their duplicate key stored and drop out of it)."""
        total = 0
        for _ in range(_VARIANT_ROUNDS):
            planned, stored = cur.execute(
                f"""WITH plan AS ({variants_to_insert("_ch_stage")}),
                    ins AS (INSERT INTO observations ({cols}, variant)
                            SELECT {cols}, plan.variant FROM _ch_stage JOIN plan USING (id)
                            ORDER BY datastream_id, phenomenon_time, plan.variant
                            ON CONFLICT DO NOTHING
                            {_RETURNING}),
                    moved AS (INSERT INTO _ch_ins SELECT * FROM ins RETURNING 1)
                    SELECT (SELECT count(*) FROM plan), (SELECT count(*) FROM moved)"""
            ).fetchone()  # type: ignore[misc]
            total += stored
            if stored == planned:
                return total
        raise RuntimeError(f"no free variant after {_VARIANT_ROUNDS} rounds: other writers keep taking them")

    def append_batch(self, batch: pa.Table, before_commit: Any) -> AppendResult:
        self.ensure_partitions(batch.column("phenomenon_time"))
        entry: _Pending | None = None
        try:
            with self.connection() as con, con.transaction():
                cur = con.cursor()
                # Taken first: a transaction that recomputes roll-ups locks rollup_pending against appends before
                # it touches anything, so an append never holds rows it waits on while waiting for it.
                new = self._append_new(cur, batch, "LOCK TABLE rollup_pending IN ROW EXCLUSIVE MODE; ")
                if new is None:
                    result = self._merge(cur, batch)
                else:
                    result, stored = new
                    entry = self._defer(cur, stored)
                before_commit(result)
        except BaseException:
            if entry is not None:
                self._forget(entry)
            raise
        if entry is not None:
            entry.committed = True
            if self._pending_rows > _MAX_PENDING_ROWS:
                # A caller without the writer's periodic folds (an in-process load) must not hold every row here.
                self.fold_own_derived()
        return result

    def _append_new(
        self, cur: psycopg.Cursor[Any], batch: pa.Table, first: str = ""
    ) -> tuple[AppendResult, pa.Table] | None:
        """The usual batch, all new rows: COPY straight into ``observations`` (no staging, no merge); returns the
        result and the rows sorted by key, for the roll-ups. None, with nothing written, when a key repeats in the
        batch or is stored already: then the careful merge runs (a savepoint undoes the COPY)."""
        batch = batch.select(_OBS_COLUMNS).sort_by(_KEY_ORDER)
        ds = batch.column("datastream_id").to_numpy()
        times = batch.column("phenomenon_time").cast(pa.int64()).to_numpy()
        if len(ds) > 1 and ((ds[1:] == ds[:-1]) & (times[1:] == times[:-1])).any():
            return None
        # Columns that are NULL throughout stay out of the COPY (NULL is their default): fewer bytes to send.
        present = [c for c in _OBS_COLUMNS if batch.column(c).null_count < batch.num_rows]
        # ``first`` (statements to run before) goes in the same round trip; the savepoint is left to the commit.
        cur.execute(f"{first}SAVEPOINT ch_new")
        try:
            # Key order: index entries go in order, and two processes lock them in the same order.
            self.copy_in(cur, "observations", batch.select(present))
        except pgerr.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT ch_new")
            return None
        return AppendResult(inserted=np.sort(batch.column("id").to_numpy())), batch.select(_ROLLUP_COLUMNS)

    # -- deferred roll-ups ------------------------------------------------------------------------------------
    def _defer(self, cur: psycopg.Cursor[Any], rows: pa.Table) -> _Pending:
        """Record the id ranges of ``rows`` as awaiting their roll-ups, in the appending transaction, and keep the
        rows here so that this process folds them without reading them back. Kept before the commit, so that no
        fold can claim the ranges before this process knows it holds their rows."""
        ids = np.sort(rows.column("id").to_numpy())
        breaks = np.flatnonzero(np.diff(ids) != 1)
        lo = np.concatenate([ids[:1], ids[breaks + 1]])
        hi = np.concatenate([ids[breaks], ids[-1:]])
        cur.execute(
            "INSERT INTO rollup_pending SELECT * FROM unnest(%s::bigint[], %s::bigint[])", [id_array(lo), id_array(hi)]
        )
        entry = _Pending(ranges=list(zip(lo.tolist(), hi.tolist(), strict=True)), rows=rows)
        with self._pending_lock:
            self._pending.append(entry)
            self._pending_rows += rows.num_rows
        return entry

    def _forget(self, entry: _Pending) -> None:
        with self._pending_lock:
            if entry in self._pending:
                self._pending.remove(entry)
                self._pending_rows -= entry.rows.num_rows

    def pending_derived(self) -> int:
        return self._pending_rows

    def flush_derived(self) -> None:
        """Fold every committed Observation still awaiting its roll-ups, this process's and any other's (a read of a
        roll-up calls this first). With nothing held here, one cheap look at ``rollup_pending``."""
        if not self._pending_rows and not self.query("SELECT EXISTS (SELECT 1 FROM rollup_pending)")[0][0]:
            return
        with self._fold_lock, self.connection() as con:
            with con.transaction():
                folded = self._fold(con.cursor())
            self._settle(folded)

    def fold_own_derived(self) -> None:
        """The writer's fold: this process's own pending rows only, from memory. Claiming every process's, as a
        read must, made two processes' writers read each other's rows back from the table at every fold (two hubs
        under single POSTs: 33 a second); theirs are folded by their own writers, or by the next read."""
        if not self._pending_rows:
            return
        with self._fold_lock, self.connection() as con:
            with con.transaction():
                folded = self._fold(con.cursor(), own_only=True)
            self._settle(folded)

    def _fold_locked(self, cur: psycopg.Cursor[Any]) -> _Folded:
        """Fold in a transaction that will recompute roll-ups from stored rows: appends wait until it commits, so
        that no row is both pending and counted by the recompute (it would be counted twice when folded)."""
        cur.execute("LOCK TABLE rollup_pending IN EXCLUSIVE MODE")
        return self._fold(cur)

    def _fold(self, cur: psycopg.Cursor[Any], *, own_only: bool = False) -> _Folded:
        """Claim every committed pending range (row locks make each claimed by one transaction of one process) and
        fold their rows into the roll-ups: from memory where this process appended them, else read in the
        database. The claims and the folds commit together; :meth:`_settle` then drops what memory no longer needs."""
        with self._pending_lock:
            seen = [e for e in self._pending if e.committed]
        if own_only:
            los = [r[0] for e in seen for r in e.ranges]
            if not los:
                return _Folded(set(), seen)
            rows = cur.execute(
                "DELETE FROM rollup_pending WHERE lo = ANY(%s::bigint[]) RETURNING lo, hi", [id_array(los)]
            )
        else:
            rows = cur.execute("DELETE FROM rollup_pending RETURNING lo, hi")
        claimed = {(int(lo), int(hi)) for lo, hi in rows}
        folded = _Folded(claimed, seen)
        if not claimed:
            return folded
        mine = [e for e in seen if all(r in claimed for r in e.ranges)]
        held = {r for e in mine for r in e.ranges}
        elsewhere = sorted(claimed - held)
        cur.execute("TRUNCATE _ch_hourly, _ch_latest")
        if mine:
            rows = pa.concat_tables([e.rows for e in mine])
            if len(mine) > 1:
                rows = rows.sort_by(_KEY_ORDER)
            self._stage_roll_ups(cur, rows)
        if elsewhere:
            if mine:  # the two may share an hour: each set's hours are added on their own (see _upsert_roll_ups)
                self._upsert_hourly(cur)
                cur.execute("TRUNCATE _ch_hourly")
            self._stage_roll_ups_stored(cur, elsewhere)
        self._upsert_roll_ups(cur)
        return folded

    def _settle(self, folded: _Folded) -> None:
        """After a fold committed: drop the rows it folded, and those another process's fold claimed (committed
        here before this fold began, yet not claimed by it: so claimed and folded elsewhere)."""
        seen = {id(e) for e in folded.seen}
        with self._pending_lock:
            keep = [e for e in self._pending if id(e) not in seen and not all(r in folded.claimed for r in e.ranges)]
            self._pending = keep
            self._pending_rows = sum(e.rows.num_rows for e in keep)

    def _roll_up_now(self, cur: psycopg.Cursor[Any], rows: pa.Table) -> None:
        """Fold rows sorted by (Datastream, time) into the roll-ups in this transaction (the careful merge)."""
        cur.execute("TRUNCATE _ch_hourly, _ch_latest")
        self._stage_roll_ups(cur, rows)
        self._upsert_roll_ups(cur)

    def _stage_roll_ups(self, cur: psycopg.Cursor[Any], batch: pa.Table) -> None:
        """The roll-ups of rows sorted by (Datastream, time), aggregated in Arrow, into ``_ch_hourly`` and
        ``_ch_latest`` by two small COPYs."""
        ds = batch.column("datastream_id").to_numpy()
        numeric = batch.filter(pc.is_valid(batch.column("result_number")))
        if numeric.num_rows:
            hourly = (
                pa.table(
                    {
                        "datastream_id": numeric.column("datastream_id"),
                        "hour": pc.floor_temporal(numeric.column("phenomenon_time"), unit="hour"),
                        "v": numeric.column("result_number"),
                    }
                )
                .group_by(["datastream_id", "hour"], use_threads=False)
                .aggregate([("v", "count"), ("v", "sum"), ("v", "min"), ("v", "max")])
            )
            hourly = hourly.rename_columns(["datastream_id", "hour", "n", "total", "minimum", "maximum"])
            data = encode(hourly, ["int8", "timestamptz", "int8", "float8", "float8", "float8"])
            with cur.copy("COPY _ch_hourly FROM STDIN (FORMAT BINARY)") as cp:
                cp.write(data)
        ends = np.flatnonzero(ds[1:] != ds[:-1])
        last = np.concatenate([ends, [len(ds) - 1]])
        first = np.concatenate([[0], ends + 1])
        pick = pa.array(last)
        latest = pa.table({
            "datastream_id": batch.column("datastream_id").take(pick),
            "phenomenon_time": batch.column("phenomenon_time").take(pick),
            "result_number": batch.column("result_number").take(pick),
            "result_string": batch.column("result_string").take(pick),
            "result_json": batch.column("result_json").take(pick),
            "observation_id": batch.column("id").take(pick),
            "first_time": batch.column("phenomenon_time").take(pa.array(first)),
            "count": pa.array(last - first + 1, pa.int64()),
        })  # fmt: skip
        # The extents of phenomenonTime and resultTime per Datastream (groups come in the rows' order: by key).
        extents = (
            pa.table({
                "datastream_id": batch.column("datastream_id"),
                "end": pc.coalesce(batch.column("phenomenon_time_end"), batch.column("phenomenon_time")),
                "rt": batch.column("result_time"),
            })
            .group_by("datastream_id", use_threads=False)
            .aggregate([("end", "max"), ("rt", "min"), ("rt", "max")])
        )  # fmt: skip
        for name, col in (("last_end", "end_max"), ("result_first", "rt_min"), ("result_last", "rt_max")):
            latest = latest.append_column(name, extents.column(col).cast(pa.timestamp("us", tz="UTC")))
        data = encode(latest, ["int8", "timestamptz", "float8", "text", "text", "int8", "timestamptz", "int8",
                               "timestamptz", "timestamptz", "timestamptz"])  # fmt: skip
        with cur.copy("COPY _ch_latest FROM STDIN (FORMAT BINARY)") as cp:
            cp.write(data)

    @staticmethod
    def _stage_roll_ups_stored(cur: psycopg.Cursor[Any], ranges: list[tuple[int, int]]) -> None:
        """The roll-ups of stored rows in these id ranges (another process's, or a killed one's), aggregated in the
        database into ``_ch_hourly`` and ``_ch_latest``: the same figures :meth:`_stage_roll_ups` makes."""
        # The rows read once, into the staging table of inserted rows (free here: a merge empties it first).
        cur.execute("TRUNCATE _ch_ins")
        cur.execute(
            """INSERT INTO _ch_ins
               SELECT o.id, o.datastream_id, o.phenomenon_time, o.phenomenon_time_end, o.result_time, o.result_number,
                      o.result_string, o.result_json
               FROM unnest(%s::bigint[], %s::bigint[]) AS r(lo, hi)
               JOIN observations o ON o.id BETWEEN r.lo AND r.hi""",
            [id_array([r[0] for r in ranges]), id_array([r[1] for r in ranges])],
        )
        cur.execute(
            """INSERT INTO _ch_hourly
               SELECT datastream_id, date_trunc('hour', phenomenon_time), count(*), ch_float_sum(result_number),
                      min(result_number), max(result_number)
               FROM _ch_ins WHERE result_number IS NOT NULL GROUP BY 1, 2"""
        )
        cur.execute(
            """INSERT INTO _ch_latest
               SELECT DISTINCT ON (datastream_id) datastream_id, phenomenon_time, result_number, result_string,
                      result_json, id, min(phenomenon_time) OVER w, count(*) OVER w,
                      max(coalesce(phenomenon_time_end, phenomenon_time)) OVER w, min(result_time) OVER w,
                      max(result_time) OVER w
               FROM _ch_ins WINDOW w AS (PARTITION BY datastream_id)
               ORDER BY datastream_id, phenomenon_time DESC, id DESC"""
        )

    @staticmethod
    def _upsert_hourly(cur: psycopg.Cursor[Any]) -> None:
        """Add the hours ``_ch_hourly`` holds, one row per (Datastream, hour), to ``obs_hourly``. Sums are added as
        IEEE 754 adds them (``ch_float_add``: past the largest double they are infinite, as on DuckDB), where
        PostgreSQL's ``+`` would fail the transaction."""
        cur.execute(
            """INSERT INTO obs_hourly AS h (datastream_id, hour, n, total, minimum, maximum)
               SELECT datastream_id, hour, n, total, minimum, maximum FROM _ch_hourly ORDER BY 1, 2
               ON CONFLICT (datastream_id, hour) DO UPDATE SET n = h.n + excluded.n,
                   total = ch_float_add(h.total, excluded.total), minimum = least(h.minimum, excluded.minimum),
                   maximum = greatest(h.maximum, excluded.maximum)"""
        )

    def _upsert_roll_ups(self, cur: psycopg.Cursor[Any]) -> None:
        """Add what ``_ch_hourly`` and ``_ch_latest`` hold to the roll-up tables, one upsert each. ``_ch_hourly``
        holds each hour once (a fold that stages rows held here and rows read back adds the first set's hours
        before staging the second's); ``_ch_latest``'s rows are combined per Datastream here."""
        self._upsert_hourly(cur)
        # Of a Datastream's staged rows, the latest (by time, then id) is its latest value.
        cur.execute(
            """INSERT INTO ds_latest AS l
               SELECT DISTINCT ON (datastream_id) datastream_id, phenomenon_time, result_number, result_string,
                      result_json, observation_id, min(first_time) OVER w, sum(count) OVER w, max(last_end) OVER w,
                      min(result_first) OVER w, max(result_last) OVER w
               FROM _ch_latest WINDOW w AS (PARTITION BY datastream_id)
               ORDER BY datastream_id, phenomenon_time DESC, observation_id DESC
               ON CONFLICT (datastream_id) DO UPDATE SET
                   result_number = CASE WHEN excluded.phenomenon_time >= l.phenomenon_time
                                        THEN excluded.result_number ELSE l.result_number END,
                   result_string = CASE WHEN excluded.phenomenon_time >= l.phenomenon_time
                                        THEN excluded.result_string ELSE l.result_string END,
                   result_json = CASE WHEN excluded.phenomenon_time >= l.phenomenon_time
                                      THEN excluded.result_json ELSE l.result_json END,
                   observation_id = CASE WHEN excluded.phenomenon_time >= l.phenomenon_time
                                         THEN excluded.observation_id ELSE l.observation_id END,
                   phenomenon_time = greatest(l.phenomenon_time, excluded.phenomenon_time),
                   first_time = least(l.first_time, excluded.first_time),
                   count = l.count + excluded.count,
                   last_end = greatest(l.last_end, excluded.last_end),
                   result_first = least(l.result_first, excluded.result_first),
                   result_last = greatest(l.result_last, excluded.result_last)"""
        )

    def _find_duplicates(self, cur: psycopg.Cursor[Any], result: AppendResult, *, drop: bool = False) -> int:
        """Record the staged rows not stored that duplicate a stored row, with whether their results differ; how
        many. With ``drop`` they also leave ``_ch_stage``, so that what follows sees only the rows left."""
        # One index lookup per staged row (LATERAL ... LIMIT 1: a stored duplicate key is unique), not a hash of the
        # month's partition. Hash joins stay allowed for the rest: turned off (as _replace does), the test against
        # the rows just stored became a nested loop over them, quadratic: 23 s for the demo's 30,000-row backfill.
        # (Turned on again: _replace, which merges its new rows, turns them off for its own lookups.)
        cur.execute("SET LOCAL enable_hashjoin = on; SET LOCAL enable_mergejoin = on")
        rows = cur.execute(
            f"""SELECT b.id, o.id, {SAME_RESULT}
               FROM (SELECT * FROM _ch_stage s WHERE NOT EXISTS (SELECT 1 FROM _ch_ins i WHERE i.id = s.id)) b
               CROSS JOIN LATERAL (SELECT * FROM observations o WHERE {DUPLICATE_KEY} LIMIT 1) o"""
        ).fetchall()
        for dup_id, stored_id, same in rows:
            result.duplicate_of[int(dup_id)] = int(stored_id)
            if not same:
                result.conflicting.add(int(dup_id))
        if drop and rows:
            cur.execute("DELETE FROM _ch_stage WHERE id = ANY(%s::bigint[])", [id_array([r[0] for r in rows])])
        return len(rows)

    def replace_batch(self, batch: pa.Table) -> AppendResult:
        """Store derived Observations in place: a row whose (Datastream, phenomenonTime) is stored updates that
        Observation's result and keeps its id; the others are appended. Roll-ups are kept in step in the same
        transaction, touching only the hours and latest values of these rows."""
        batch = batch.select(_OBS_COLUMNS)
        self.ensure_partitions(batch.column("phenomenon_time"))
        # No fold first as a rule: the hours of replaced rows are recomputed from the stored rows that are not
        # pending (see _refresh_keys), so this needs no lock against appends (it held every process's appends while
        # it folded them all, once per round of derived indices). Only a replaced row that is itself pending (a
        # client's append to a derived Datastream, or the same key replaced right after its append) folds first.
        with self.connection() as con:
            with con.transaction():
                result, folded = self._replace(con.cursor(), batch)
            if folded is not None:
                self._settle(folded)
        return result

    def _replace(self, cur: psycopg.Cursor[Any], batch: pa.Table) -> tuple[AppendResult, _Folded | None]:
        cur.execute("TRUNCATE _ch_stage, _ch_ins")
        self.copy_in(cur, "_ch_stage", batch)
        # One index lookup per staged row: with a few thousand staged rows (a round of derived indices) the planner
        # hashed the whole month's partition instead, analysed or not (100-300 ms a round instead of ~15).
        cur.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
        pairs = cur.execute(
            """SELECT b.id, o.id FROM _ch_stage b JOIN observations o
               ON o.datastream_id = b.datastream_id AND o.phenomenon_time = b.phenomenon_time"""
        ).fetchall()
        folded = None
        pending = (
            pairs
            and cur.execute(
                """SELECT EXISTS (SELECT 1 FROM unnest(%s::bigint[]) AS s(id)
                              JOIN rollup_pending p ON s.id BETWEEN p.lo AND p.hi)""",
                [id_array([p[1] for p in pairs])],
            ).fetchone()
        )
        if pending and pending[0]:
            # A row to replace is itself pending (appended, not folded yet): its fold would add the old value
            # after the recompute below. Folded first, under the lock (nothing shared is locked here yet).
            folded = self._fold_locked(cur)
        if pairs:
            # The stored rows take the new results; a replaced row that is its Datastream's latest changes the latest
            # value, nothing else there.
            for statement in replace_in_place("_ch_stage"):
                cur.execute(statement)
            old = [int(p[0]) for p in pairs]
            keys = cur.execute(
                """SELECT DISTINCT datastream_id, date_trunc('hour', phenomenon_time) FROM _ch_stage
                   WHERE id = ANY(%s::bigint[])""",
                [old],
            ).fetchall()
            self._refresh_keys(cur, [k[0] for k in keys], [k[1] for k in keys], latest=False)
            fresh = batch.filter(pc.invert(pc.is_in(batch.column("id"), pa.array(old, pa.int64()))))
        else:
            fresh = batch
        result = self._merge(cur, fresh) if fresh.num_rows else AppendResult(np.empty(0, np.int64))
        result.replaced = {int(new): int(stored) for new, stored in pairs}
        return result, folded

    def _refresh_keys(
        self, cur: psycopg.Cursor[Any], ds_ids: Sequence[int], hours: Sequence[datetime | None], *, latest: bool = True
    ) -> None:
        """Recompute the hourly roll-ups of the (Datastream, hour) pairs given from the stored rows, and with
        ``latest`` the latest values of their Datastreams (a scan of each one's history).

        Rows still pending are left out of the hours: their fold adds them later, whenever it commits (a fold
        racing this either commits first, and its rows are no longer pending here, or waits on the roll-up row
        this deletes and adds to the recomputed one). The latest values are recomputed only in transactions that
        folded everything first under the lock on rollup_pending (``transaction``), where nothing is pending."""
        keys = "SELECT DISTINCT * FROM unnest(%s::bigint[], %s::timestamptz[]) AS k(datastream_id, hour)"
        params = [id_array(ds_ids), list(hours)]
        cur.execute(
            f"""DELETE FROM obs_hourly h USING ({keys}) k
                WHERE h.datastream_id = k.datastream_id AND h.hour = k.hour""",
            params,
        )
        # One index range scan per (Datastream, hour), pruned to its month's partition at run time: a join over
        # the keys let the planner scan whole partitions (42 ms a batch of derived indices, instead of ~1 ms).
        cur.execute(
            f"""INSERT INTO obs_hourly (datastream_id, hour, n, total, minimum, maximum)
                SELECT k.datastream_id, k.hour, a.n, a.total, a.minimum, a.maximum
                FROM ({keys}) k
                CROSS JOIN LATERAL (
                    SELECT count(*) AS n, ch_float_sum(o.result_number) AS total, min(o.result_number) AS minimum,
                           max(o.result_number) AS maximum
                    FROM observations o
                    WHERE o.datastream_id = k.datastream_id AND o.phenomenon_time >= k.hour
                      AND o.phenomenon_time < k.hour + INTERVAL '1 hour' AND o.result_number IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM rollup_pending p WHERE o.id BETWEEN p.lo AND p.hi)) a
                WHERE k.hour IS NOT NULL AND a.n > 0""",
            params,
        )
        if not latest:
            return
        streams = sorted({int(i) for i in ds_ids})
        cur.execute("DELETE FROM ds_latest WHERE datastream_id = ANY(%s::bigint[])", [streams])
        cur.execute(
            """INSERT INTO ds_latest
               SELECT a.datastream_id, a.last_time, t.result_number, t.result_string, t.result_json, t.id,
                      a.first_time, a.n, a.last_end, a.result_first, a.result_last
               FROM (SELECT datastream_id, max(phenomenon_time) AS last_time, min(phenomenon_time) AS first_time,
                            count(*) AS n, max(coalesce(phenomenon_time_end, phenomenon_time)) AS last_end,
                            min(result_time) AS result_first, max(result_time) AS result_last
                     FROM observations WHERE datastream_id = ANY(%s::bigint[]) GROUP BY datastream_id) a
               CROSS JOIN LATERAL (
                     SELECT o.result_number, o.result_string, o.result_json, o.id FROM observations o
                     WHERE o.datastream_id = a.datastream_id
                     ORDER BY o.phenomenon_time DESC, o.variant DESC LIMIT 1) t""",
            [streams],
        )

    def observation_columns(self) -> list[str]:
        return list(_OBS_COLUMNS)

    def delete_observations_where(self, tx: Transaction, col: str, value: int) -> None:
        """Delete the Observations whose ``col`` is ``value`` and recompute the roll-ups of the (Datastream, hour)
        pairs they leave, in one set-based pass."""
        assert isinstance(tx, _PgTransaction) and col in ("id", "feature_of_interest_id", "datastream_id")
        gone = tx.cur.execute(
            f"""WITH d AS (DELETE FROM observations WHERE {col} = %s RETURNING datastream_id, phenomenon_time)
                SELECT DISTINCT datastream_id, date_trunc('hour', phenomenon_time) FROM d""",
            [value],
        ).fetchall()
        if gone:
            self._refresh_keys(tx.cur, [g[0] for g in gone], [g[1] for g in gone])

    def refresh_derived(self, tx: Transaction, datastream_id: int, hours: Sequence[datetime]) -> None:
        assert isinstance(tx, _PgTransaction)
        # With no hours, a key whose hour is NULL: no hourly roll-up matches it, the latest value is recomputed.
        truncated: list[datetime | None] = (
            [h.astimezone(UTC).replace(minute=0, second=0, microsecond=0) for h in hours] if hours else [None]
        )
        self._refresh_keys(tx.cur, [datastream_id] * len(truncated), truncated)

    def latest(self, datastream_ids: Sequence[int]) -> pa.Table:
        # One row of arrays, read in binary, times as integer microseconds: a row per Datastream made ~10 Python
        # objects each (10,000 Datastreams: 80 ms of the 95 ms; now ~15 ms in all).
        self.flush_derived()
        with self.connection() as con:
            cur = con.cursor(binary=True)
            cur.execute(
                # Unordered: eight ORDER BY aggregates sorted the rows eight times (26 of 30 ms for 10,000); Arrow
                # sorts the table below.
                """SELECT array_agg(datastream_id),
                          array_agg((extract(epoch FROM phenomenon_time) * 1000000)::int8),
                          array_agg(result_number),
                          array_agg(result_string),
                          array_agg(result_json),
                          array_agg(observation_id),
                          array_agg((extract(epoch FROM first_time) * 1000000)::int8),
                          array_agg(count)
                   FROM ds_latest WHERE datastream_id = ANY(%s::bigint[])""",
                [id_array(datastream_ids)],
            )
            row = cur.fetchone()
        if row is None or row[0] is None:
            return _LATEST_SCHEMA.empty_table()
        micros = pa.timestamp("us", tz="UTC")
        cols = [
            pa.array(values, pa.int64()).cast(micros) if f.type == micros else pa.array(values, f.type)
            for values, f in zip(row, _LATEST_SCHEMA, strict=True)
        ]
        return pa.table(cols, schema=_LATEST_SCHEMA).sort_by("datastream_id")

    def aggregate(
        self,
        datastream_ids: Sequence[int],
        func: str,
        interval: str,
        start: datetime | None,
        end: datetime | None,
        offset_minutes: int,
    ) -> pa.Table:
        self.flush_derived()
        value = {
            "avg": "{sum}(total) / sum(n)",
            "min": "min(minimum)",
            "max": "max(maximum)",
            "sum": "{sum}(total)",
            "count": "CAST(sum(n) AS double precision)",
        }[func]
        if interval == "hour":
            bucket = "hour"
        else:
            shift = f"INTERVAL '{int(offset_minutes)} minutes'"
            bucket = f"date_trunc('day', hour + {shift}) - {shift}"
        where: list[str] = ["datastream_id = ANY(%s::bigint[])"]
        params: list[Any] = [id_array(datastream_ids)]
        if start is not None:
            where.append("hour >= %s")
            params.append(start)
        if end is not None:
            where.append("hour < %s")
            params.append(end)
        if interval == "hour":  # the roll-up's own rows: nothing to group
            value = {"avg": "total / n", "min": "minimum", "max": "maximum", "sum": "total",
                     "count": "CAST(n AS double precision)"}[func]  # fmt: skip
            sql = f"""SELECT datastream_id, hour AS time, {value} AS value, n AS count
                      FROM obs_hourly WHERE {" AND ".join(where)} ORDER BY 1, 2"""
        else:
            sql = f"""SELECT datastream_id, {bucket} AS time, {value} AS value, CAST(sum(n) AS bigint) AS count
                      FROM obs_hourly WHERE {" AND ".join(where)}
                      GROUP BY 1, 2 ORDER BY 1, 2"""
        types = ["int8", "timestamptz", "float8", "int8"]
        try:
            return self._array_arrow(sql.format(sum="sum"), params, _AGGREGATE_SCHEMA, types)
        except pgerr.NumericValueOutOfRange:
            # Hours whose sums add past the largest double: PostgreSQL's sum() raises where IEEE 754 (and DuckDB)
            # gives infinity. ch_float_sum adds as IEEE 754 does, at several times sum()'s cost: so only here.
            return self._array_arrow(sql.format(sum="ch_float_sum"), params, _AGGREGATE_SCHEMA, types)

    def _array_arrow(self, sql: str, params: list[Any], schema: pa.Schema, types: list[str]) -> pa.Table:
        """A query ordered by its first two columns as Arrow, read as one array per column (``decode_array``);
        through ``_fixed_arrow`` if a value is NULL."""
        names = [f"c{i}" for i in range(len(types))]
        arrays = ", ".join(f"array_send(array_agg({n}))" for n in names)
        with self.connection() as con:
            cur = con.cursor(binary=True)
            row = cur.execute(f"SELECT {arrays} FROM ({sql}) s({', '.join(names)})", params).fetchone()
        assert row is not None
        if row[0] is None:
            return schema.empty_table()
        cols = [decode_array(bytes(v), t) for v, t in zip(row, types, strict=True)]
        if any(c is None for c in cols):
            return self._fixed_arrow(sql, params, schema, types)
        table = pa.table(
            [pa.array(c).cast(f.type) if t == "timestamptz" else pa.array(c, f.type)
             for c, t, f in zip(cols, types, schema, strict=True)],
            schema=schema,
        )  # fmt: skip
        # array_agg takes the rows in the order of the ordered subquery, as PostgreSQL does for a plain scan; a
        # plan that did not (a parallel one) is put right here, so that the answer never depends on it.
        a, b = cols[0], cols[1]
        assert a is not None and b is not None
        da, db = np.diff(a), np.diff(b)
        if not ((da > 0) | ((da == 0) & (db > 0))).all():
            table = table.sort_by([(schema.names[0], "ascending"), (schema.names[1], "ascending")])
        return table

    def _fixed_arrow(self, sql: str, params: list[Any], schema: pa.Schema, types: list[str]) -> pa.Table:
        """A query's rows as Arrow through a binary COPY when every value is fixed-width and present (see
        copy.decode_fixed), else through fetched rows."""
        with self.connection() as con:
            cur = con.cursor()
            # COPY takes no parameters: they are bound into the text client-side, as literals of their types.
            inner = psycopg.sql.SQL(sql.replace("%s", "{}")).format(*(psycopg.sql.Literal(p) for p in params))
            buf = bytearray()
            with cur.copy(psycopg.sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(inner)) as cp:
                for chunk in cp:
                    buf += chunk
        table = decode_fixed(bytes(buf), schema.names, types)
        if table is not None:
            return table.cast(schema)
        return self._arrow(self.query(sql, params), schema)

    def info(self) -> dict[str, Any]:
        self.flush_derived()
        counts = {t: self.query(f"SELECT count(*) FROM {t}")[0][0] for t in ENTITY_TABLES if t != "observations"}
        # Counting a partitioned table of millions of rows scans it; the roll-up keeps the exact count per stream.
        counts["observations"] = int(self.query("SELECT coalesce(sum(count), 0) FROM ds_latest")[0][0])
        span = self.query("SELECT min(first_time), max(phenomenon_time) FROM ds_latest")[0]
        size = self.query(
            """SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'm')""",
            [self.schema],
        )[0][0]
        return {
            "backend": "postgresql",
            "path": self.redacted_url(),
            "counts": {t: int(counts[t]) for t in ENTITY_TABLES},
            "observations_from": span[0],
            "observations_to": span[1],
            "bytes_on_disk": int(size),
        }

    def redacted_url(self) -> str:
        """The store URL without its password (for logs and /healthz)."""
        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
        return self.url

    # -- several processes --------------------------------------------------------------------------------------
    def _dedicated(self) -> psycopg.Connection[Any]:
        con = psycopg.connect(self.conninfo, **self._kwargs)
        self._configure_types(con)
        return con

    def channel(self) -> PgChannel:
        # One channel per schema: hubs on other schemas of the same database do not hear each other.
        return PgChannel(f"cityhub_{self.schema}", self._dedicated, self.connection)

    def lease(self, name: str) -> PgLease:
        return PgLease(name, self.schema, self._dedicated, self.connection)

    def close(self) -> None:
        # Left pending, the rows would be folded by the next process that reads a roll-up; folded now, by this one.
        with suppress(Exception):
            self.flush_derived()
        self._pool.close()


def _partition_ddl(year: int, month: int) -> str:
    nxt = (year + month // 12, month % 12 + 1)
    return (
        f"CREATE TABLE IF NOT EXISTS observations_p{year:04d}{month:02d} PARTITION OF observations "
        f"FOR VALUES FROM ('{year:04d}-{month:02d}-01 00:00:00+00') TO ('{nxt[0]:04d}-{nxt[1]:02d}-01 00:00:00+00')"
    )

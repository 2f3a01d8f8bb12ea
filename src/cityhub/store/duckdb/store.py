"""The embedded store: one DuckDB file owned by one process, shared by all its threads.

Reads use a cursor per thread; writes are serialised by a lock (DuckDB has a single writer anyway),
and Observations arrive as Arrow tables appended in one statement per group of requests.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from duckdb.func import FunctionNullHandling, PythonUDFType

from cityhub.store.base import OBSERVATION_BATCH_SCHEMA, AppendResult, Dialect, QueryError, Store, StoreInUse
from cityhub.store.duckdb.airquality import DuckDBAirQuality
from cityhub.store.duckdb.alerts import DuckDBAlertOps
from cityhub.store.duckdb.catalog import DuckDBCatalog
from cityhub.store.duckdb.deadletters import DuckDBDeadLetters
from cityhub.store.duckdb.entities import DuckDBEntityOps
from cityhub.store.duckdb.export import DuckDBExport
from cityhub.store.duckdb.geo import DuckDBGeoOps
from cityhub.store.duckdb.observations import DuckDBObservations
from cityhub.store.duckdb.transfer import DuckDBTransfer
from cityhub.store.duckdb.util import id_list
from cityhub.store.duckdb.webhooks import DuckDBWebhookOps
from cityhub.store.schema import (
    ALERT_TABLES,
    DUPLICATE_KEY,
    ENTITY_TABLES,
    ID_SPACE,
    SAME_RESULT,
    TABLES,
    ddl,
    replace_in_place,
    variants_to_insert,
)
from cityhub.store.transaction import Transaction

log = logging.getLogger(__name__)

# Errors raised by evaluating a (valid) query on particular values: overflow, failed casts, bad input.
_DATA_ERRORS = (duckdb.ConversionException, duckdb.OutOfRangeException, duckdb.InvalidInputException)
_ROLLUP_COLUMNS = [
    "id", "datastream_id", "phenomenon_time", "phenomenon_time_end", "result_time", "result_number", "result_string",
    "result_json",
]  # fmt: skip
# The extent columns of ds_latest from rows of _ROLLUP_COLUMNS (schema.TABLES: last_end, result_first/last).
_EXTENTS = "max(coalesce(phenomenon_time_end, phenomenon_time)), min(result_time), max(result_time)"
_BINARY_PREDICATES = (
    "equals",
    "disjoint",
    "touches",
    "within",
    "overlaps",
    "crosses",
    "intersects",
    "contains",
)


def _geometries(arr: pa.Array) -> np.ndarray:
    """Parse GeoJSON (column values) or WKT (filter literals) into shapely geometries; bad input → None."""
    out = np.empty(len(arr), dtype=object)
    for i, text in enumerate(arr.to_pylist()):
        if text is None:
            continue
        try:
            if text.lstrip().startswith("{"):
                obj = orjson.loads(text)
                if obj.get("type") == "Feature":
                    obj = obj.get("geometry") or {}
                out[i] = shapely.geometry.shape(obj)
            else:
                out[i] = shapely.from_wkt(text)
        except Exception:  # a malformed stored geometry must not fail the whole query
            out[i] = None
    return out


def _predicate(name: str) -> Callable[[pa.Array, pa.Array], pa.Array]:
    func = getattr(shapely, name)

    def udf(a: pa.Array, b: pa.Array) -> pa.Array:
        ga, gb = _geometries(a), _geometries(b)
        valid = np.array([x is not None and y is not None for x, y in zip(ga, gb, strict=True)], dtype=bool)
        res = np.zeros(len(ga), dtype=bool)
        if valid.any():
            res[valid] = func(ga[valid], gb[valid])
        return pa.array(res, mask=~valid)

    return udf


def _distance(a: pa.Array, b: pa.Array) -> pa.Array:
    ga, gb = _geometries(a), _geometries(b)
    valid = np.array([x is not None and y is not None for x, y in zip(ga, gb, strict=True)], dtype=bool)
    res = np.zeros(len(ga))
    if valid.any():
        res[valid] = shapely.distance(ga[valid], gb[valid])
    return pa.array(res, mask=~valid)


_LINEAR = (1, 2, 5)  # shapely type ids of LineString, LinearRing, MultiLineString
_COLLECTION = 7


def _linear_length(g: Any) -> float:
    """Length of the linear parts only, as PostGIS's ST_Length (and OData's geo.length, defined for lines) gives
    it: 0 for points and polygons (shapely's length of a polygon is its perimeter). FROST-Server's GeoTests hold
    a polygon whose geo.length is 0."""
    kind = shapely.get_type_id(g)
    if kind in _LINEAR:
        return float(shapely.length(g))
    if kind == _COLLECTION:
        return sum(_linear_length(part) for part in g.geoms)
    return 0.0


def _length(a: pa.Array) -> pa.Array:
    ga = _geometries(a)
    valid = np.array([x is not None for x in ga], dtype=bool)
    res = np.zeros(len(ga))
    if valid.any():
        res[valid] = [_linear_length(g) for g in ga[valid]]
    return pa.array(res, mask=~valid)


def _relate(a: pa.Array, b: pa.Array, pattern: pa.Array) -> pa.Array:
    ga, gb = _geometries(a), _geometries(b)
    pats = pattern.to_pylist()
    out: list[bool | None] = []
    for x, y, p in zip(ga, gb, pats, strict=True):
        try:
            out.append(None if x is None or y is None or p is None else bool(shapely.relate_pattern(x, y, p)))
        except Exception:  # an invalid DE-9IM pattern is a non-match, not a server error
            out.append(None)
    return pa.array(out, pa.bool_())


_JSON_NUMBERS = "'BIGINT', 'UBIGINT', 'HUGEINT', 'DOUBLE'"  # json_type's names of a JSON number


def _json_path(keys: Sequence[str]) -> str:
    """A JSONPath literal for member ``keys`` (an array index written ``[n]``)."""
    path = "$" + "".join(k if k.startswith("[") else f'."{k}"' for k in keys)
    return "'" + path.replace("'", "''") + "'"


class DuckDBDialect(Dialect):
    placeholder = "?"

    def json_value(self, sql: str, keys: Sequence[str], as_type: str) -> str:
        path = _json_path(keys)
        text = f"json_extract_string({sql}, {path})"
        # A member is a number (or a boolean) only where the JSON holds one: the string "5" is no number, as
        # FROST-Server reads it; as a string, any scalar member is its JSON text.
        if as_type == "number":
            return f"(CASE WHEN json_type({sql}, {path}) IN ({_JSON_NUMBERS}) THEN TRY_CAST({text} AS DOUBLE) END)"
        if as_type == "boolean":
            return f"(CASE WHEN json_type({sql}, {path}) = 'BOOLEAN' THEN TRY_CAST({text} AS BOOLEAN) END)"
        return text

    def json_contains(self, sql: str, keys: Sequence[str], value_sql: str, as_type: str) -> str:
        elements = f"json_extract({sql}, {_json_path([*keys, '[*]'])})"  # [] where the member is no array
        types = {"number": _JSON_NUMBERS, "string": "'VARCHAR'", "boolean": "'BOOLEAN'"}[as_type]
        cast = {"number": "DOUBLE", "string": "VARCHAR", "boolean": "BOOLEAN"}[as_type]
        element = f"CASE WHEN json_type(x) IN ({types}) THEN CAST(json_extract_string(x, '$') AS {cast}) END"
        return f"coalesce(list_contains(list_transform({elements}, lambda x: {element}), {value_sql}), FALSE)"

    def geo(self, func: str, args: list[str]) -> str:
        name = {
            "geo.distance": "ch_geo_distance",
            "geo.length": "ch_geo_length",
            "geo.intersects": "ch_st_intersects",
        }
        if func in name:
            return f"{name[func]}({', '.join(args)})"
        return f"ch_{func}({', '.join(args)})"

    def geometry_literal(self, placeholder: str) -> str:
        return f"CAST({placeholder} AS VARCHAR)"

    def try_cast(self, sql: str, sql_type: str) -> str:
        return f"TRY_CAST({sql} AS {sql_type})"


class _DuckTransaction(Transaction):
    def __init__(self, store: DuckDBStore, cur: duckdb.DuckDBPyConnection) -> None:
        self.store = store
        self.cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        res = self.cur.execute(sql, list(params))
        try:
            return res.fetchall()
        except duckdb.InvalidInputException:  # statement without a result set
            return []

    def append_table(self, table: str, rows: pa.Table) -> None:
        self.cur.register("_ch_rows", rows)
        try:
            self.cur.execute(f"INSERT INTO {table} ({', '.join(rows.column_names)}) SELECT * FROM _ch_rows")
        finally:
            self.cur.unregister("_ch_rows")

    def insert(self, table: str, values: dict[str, Any]) -> int:
        new_id = int(self.store.allocate_ids(table, 1)[0])
        cols = ["id", *values]
        marks = ", ".join("?" for _ in cols)
        self.cur.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", [new_id, *values.values()])
        return new_id


class DuckDBStore(Store):
    """A DuckDB file (``path``) or an in-memory database (``path=None``, for tests)."""

    def __init__(self, path: str | Path | None, *, memory_limit: str = "", auto_checkpoint_bytes: int = 0) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path) if self.path else ":memory:")
        except duckdb.IOException as exc:
            # "Could not set lock on file ...: Conflicting lock is held in <program> (PID 123)": one line for the
            # user (a CLI command while a hub serves this file), not DuckDB's traceback.
            if "lock" not in str(exc).lower():
                raise
            pid = re.search(r"PID (\d+)", str(exc))
            raise StoreInUse(str(self.path), int(pid.group(1)) if pid else None) from None
        self._con.execute("SET TimeZone = 'UTC'")
        if auto_checkpoint_bytes:
            # DuckDB checkpoints by itself, inside whichever COMMIT takes the log past 16 MiB: a client's write then
            # waits for the whole checkpoint (serial 10,000-row bodies: -15 %). The writer checkpoints between
            # commits instead (ObservationWriter._maybe_checkpoint); DuckDB's own stays as a backstop above it.
            self._con.execute(f"SET checkpoint_threshold = '{max(1, auto_checkpoint_bytes >> 20)}MiB'")
        if memory_limit:
            # DuckDB's own default is 80 % of the machine: its cache of table data and indexes grew with every row
            # stored. A limit makes it evict to the file instead.
            self._con.execute("SET memory_limit = ?", [memory_limit])
        self.dialect = DuckDBDialect()
        self.entities = DuckDBEntityOps(self)
        self.geo = DuckDBGeoOps(self)
        self.alerts = DuckDBAlertOps(self)
        self.webhooks = DuckDBWebhookOps(self)
        self.catalog = DuckDBCatalog(self)
        self.observations = DuckDBObservations(self)
        self.deadletters = DuckDBDeadLetters(self)
        self.airquality = DuckDBAirQuality(self)
        self.export = DuckDBExport(self)
        self.transfer = DuckDBTransfer(self)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._id_lock = threading.Lock()
        before = {r[0] for r in self._con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for stmt in ddl():
            self._con.execute(stmt)
        self._upgrade(before)
        self._register_udfs()
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._recover_derived()
        self._next_id: dict[str, int] = {}
        # Every result is fetched in full (fetchall, to_arrow_table), never with fetchone or left unread: a result
        # not read to its end keeps its connection's transaction open, and once another connection has committed
        # an UPDATE (the roll-ups' upserts) or a catalog change, DuckDB refuses every CHECKPOINT ("other write
        # transactions active") until that connection runs its next statement. The main connection runs none
        # after start-up, so a fetchone here kept the write-ahead log from being checkpointed while serving.
        for table in (*ENTITY_TABLES, "api_keys", "deadletters", *ALERT_TABLES):
            ((mx,),) = self._con.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchall()
            space = ID_SPACE.get(table, table)
            self._next_id[space] = max(self._next_id.get(space, 1), int(mx) + 1)

    def _upgrade(self, before: set[str]) -> None:
        """Bring a file made by an earlier CityHub (``before``: the tables it had) to this schema: the embedded
        store's counterpart of the PostgreSQL migrations; each step checks for itself whether it is needed."""
        con = self._con
        if "observations" in before and "datastream_features" not in before:
            # As migration 0006: the pairs of the Observations stored, and the observedAreas made from them.
            con.execute(
                """INSERT INTO datastream_features SELECT DISTINCT datastream_id, feature_of_interest_id
                   FROM observations WHERE feature_of_interest_id IS NOT NULL"""
            )
            ids = [r[0] for r in con.execute("SELECT DISTINCT datastream_id FROM datastream_features").fetchall()]
            if ids:
                with self.transaction(fold_derived=False) as tx:
                    self.geo.recompute_observed_areas(tx, ids)
        cols = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'observations'"
        ).fetchall()}  # fmt: skip
        latest_cols = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'ds_latest'"
        ).fetchall()}  # fmt: skip
        if "last_end" not in latest_cols:
            # As migration 0010: the extents of phenomenonTime and resultTime, made once from the stored rows.
            for col in ("last_end", "result_first", "result_last"):
                con.execute(f"ALTER TABLE ds_latest ADD COLUMN {col} TIMESTAMPTZ")
            con.execute(
                """UPDATE ds_latest l SET last_end = x.last_end, result_first = x.result_first,
                       result_last = x.result_last
                   FROM (SELECT datastream_id, max(coalesce(phenomenon_time_end, phenomenon_time)) AS last_end,
                                min(result_time) AS result_first, max(result_time) AS result_last
                         FROM observations GROUP BY datastream_id) x
                   WHERE l.datastream_id = x.datastream_id"""
            )
        link_cols = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'multi_datastream_observed_properties'"
        ).fetchall()}  # fmt: skip
        if "rank" not in link_cols:
            # As migration 0012: a MultiDatastream's ObservedProperties keyed by their position, which is the id
            # order they were read back in so far. A new key means a new table here too.
            con.execute("BEGIN TRANSACTION")
            con.execute("ALTER TABLE multi_datastream_observed_properties RENAME TO mdop_before_rank")
            body = TABLES["multi_datastream_observed_properties"].strip()
            con.execute(f"CREATE TABLE multi_datastream_observed_properties ({body})")
            con.execute(
                """INSERT INTO multi_datastream_observed_properties
                   SELECT multi_datastream_id, observed_property_id,
                          row_number() OVER (PARTITION BY multi_datastream_id ORDER BY observed_property_id) - 1
                   FROM mdop_before_rank"""
            )
            con.execute("DROP TABLE mdop_before_rank")
            con.execute("COMMIT")
        if "variant" not in cols:
            # The duplicate key grew resultTime, FeatureOfInterest and parameters (schema.DUPLICATE_KEY). DuckDB
            # cannot change a primary key in place: the table is rebuilt once, every stored row keeping variant 0
            # (the old key allowed one row per Datastream and phenomenonTime).
            con.execute("BEGIN TRANSACTION")
            con.execute("ALTER TABLE observations RENAME TO observations_before_variant")
            con.execute(f"CREATE TABLE observations ({TABLES['observations'].strip()})")
            con.execute("INSERT INTO observations SELECT *, 0 FROM observations_before_variant")
            con.execute("DROP TABLE observations_before_variant")
            con.execute("COMMIT")

    def _register_udfs(self) -> None:
        con = self._con
        v, b, d = duckdb.sqltype("VARCHAR"), duckdb.sqltype("BOOLEAN"), duckdb.sqltype("DOUBLE")
        arrow = PythonUDFType.ARROW
        # "special": the functions answer NULL themselves where a value holds no geometry (a text/plain Location,
        # an address), which DuckDB's default handling refuses as an error of the whole query.
        nulls = FunctionNullHandling.SPECIAL
        for name in _BINARY_PREDICATES:
            con.create_function(
                f"ch_st_{name}", _predicate(name), [v, v], b, type=arrow, side_effects=False, null_handling=nulls
            )
        con.create_function("ch_st_relate", _relate, [v, v, v], b, type=arrow, null_handling=nulls)
        con.create_function("ch_geo_distance", _distance, [v, v], d, type=arrow, null_handling=nulls)
        con.create_function("ch_geo_length", _length, [v], d, type=arrow, null_handling=nulls)

    # -- plumbing --------------------------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._con.cursor()
            cur.execute("SET TimeZone = 'UTC'")
            self._local.cur = cur
        return cur

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._cursor().execute(sql, list(params)).fetchall()
        except _DATA_ERRORS as exc:
            raise QueryError(f"the query could not be evaluated: {str(exc).splitlines()[0]}") from None

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        try:
            return self._cursor().sql(sql, params=list(params) or None).to_arrow_table()
        except _DATA_ERRORS as exc:
            raise QueryError(f"the query could not be evaluated: {str(exc).splitlines()[0]}") from None

    @contextmanager
    def transaction(self, *, fold_derived: bool = True) -> Iterator[Transaction]:
        with self._write_lock:
            # Explicit transactions may recompute roll-ups from raw rows: fold pending ones in first.
            if fold_derived:
                self.flush_derived()
            cur = self._cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield _DuckTransaction(self, cur)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def allocate_ids(self, table: str, n: int) -> np.ndarray:
        table = ID_SPACE.get(table, table)
        with self._id_lock:
            start = self._next_id[table]
            self._next_id[table] = start + n
        return np.arange(start, start + n, dtype=np.int64)

    # -- observations --------------------------------------------------------------------------------
    def append_observations(self, tx: Transaction, batch: pa.Table) -> AppendResult:
        assert isinstance(tx, _DuckTransaction)
        cur = tx.cur
        cols = ", ".join(batch.column_names)
        cur.register("_ch_batch", batch)
        try:
            # The usual rows first, one per (Datastream, phenomenonTime) with variant 0; then, if any row is left,
            # the rows that share those with a stored or earlier row but differ in the rest of the duplicate key
            # (schema.variants_to_insert). Within one batch the first row of a duplicate key wins; the others are
            # reported as duplicates below. Writes hold the write lock: the variants chosen are still free.
            returning = f"RETURNING {', '.join(_ROLLUP_COLUMNS)}"
            inserted = cur.sql(
                f"""INSERT INTO observations ({cols})
                    SELECT {cols} FROM _ch_batch
                    QUALIFY row_number() OVER (PARTITION BY datastream_id, phenomenon_time ORDER BY id) = 1
                    ON CONFLICT DO NOTHING {returning}"""
            ).to_arrow_table()
            result = AppendResult(inserted=inserted.column("id").to_numpy())
            if inserted.num_rows < batch.num_rows:
                # Re-sent rows first: only the rows left can be variants, and the plan probes each row it is given.
                found = self._find_duplicates(cur, result)
                if inserted.num_rows + found < batch.num_rows:
                    done = pa.array([*result.inserted.tolist(), *result.duplicate_of], pa.int64())
                    cur.register("_ch_left", batch.filter(pc.invert(pc.is_in(batch.column("id"), done))))
                    try:
                        more = cur.sql(
                            f"""INSERT INTO observations ({cols}, variant)
                                SELECT {cols}, variant FROM _ch_left
                                JOIN ({variants_to_insert("_ch_left")}) plan USING (id)
                                {returning}"""
                        ).to_arrow_table()
                    finally:
                        cur.unregister("_ch_left")
                    inserted = pa.concat_tables([inserted, more])
                    result.inserted = inserted.column("id").to_numpy()
                    if inserted.num_rows + found < batch.num_rows:  # duplicates of rows just stored as variants
                        self._find_duplicates(cur, result)
            if inserted.num_rows:
                cur.register("_ch_ins", inserted)
                self._roll_up(cur, "_ch_ins")
                cur.unregister("_ch_ins")
        finally:
            cur.unregister("_ch_batch")
        return result

    def append_batch(self, batch: pa.Table, before_commit: Callable[[AppendResult], None]) -> AppendResult:
        # Optimistic path: a plain append, about twice as fast as ON CONFLICT ... RETURNING, since almost
        # every batch holds only new rows; a duplicate key aborts it and the careful path runs instead.
        # The roll-ups are deferred (see flush_derived): their upserts cost ~3 ms each whatever the size,
        # so they run once for many commits. The id ranges awaiting them are committed with the rows.
        cols = ", ".join(batch.column_names)
        ids = batch.column("id").to_numpy()
        breaks = np.flatnonzero(np.diff(ids) != 1)
        ranges = pa.table(
            {"lo": np.concatenate([ids[:1], ids[breaks + 1]]), "hi": np.concatenate([ids[breaks], ids[-1:]])}
        )
        single = batch.num_rows == 1
        with self._write_lock:
            cur = self._cursor()
            # Registering an Arrow table costs ~1.5 ms, most of a lone Observation's commit: one row goes in as
            # one parameterised INSERT (a single statement, not a row-by-row loop), anything more as Arrow.
            if not single:
                cur.register("_ch_batch", batch)
            if len(ranges) > 1:
                cur.register("_ch_ranges", ranges)
            try:
                cur.execute("BEGIN TRANSACTION")
                try:
                    if single:
                        row = batch.to_pylist()[0]
                        marks = ", ".join("?" for _ in row)
                        cur.execute(f"INSERT INTO observations ({cols}) VALUES ({marks})", list(row.values()))
                    else:
                        cur.execute(f"INSERT INTO observations ({cols}) SELECT {cols} FROM _ch_batch")
                    if len(ranges) == 1:  # the usual case: one statement with two values, no Arrow scan
                        cur.execute("INSERT INTO rollup_pending VALUES (?, ?)", [int(ids[0]), int(ids[-1])])
                    else:
                        cur.execute("INSERT INTO rollup_pending SELECT lo, hi FROM _ch_ranges")
                    result = AppendResult(inserted=ids)
                    before_commit(result)
                except duckdb.ConstraintException:
                    cur.execute("ROLLBACK")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                else:
                    cur.execute("COMMIT")
                    self._pending.append(batch.select(_ROLLUP_COLUMNS))
                    self._pending_rows += batch.num_rows
                    return result
            finally:
                if not single:
                    cur.unregister("_ch_batch")
                if len(ranges) > 1:
                    cur.unregister("_ch_ranges")
        return super().append_batch(batch, before_commit)

    def replace_batch(self, batch: pa.Table) -> AppendResult:
        """Store derived Observations in place: a row whose (Datastream, phenomenonTime) is stored updates that
        Observation's result and keeps its id; the others are appended. Roll-ups are kept in step in the same
        transaction, touching only the hours and latest values of these rows."""
        # Derived Datastreams get rows only here, so their roll-ups are never pending; should a batch touch a
        # Datastream that has pending rows, those are folded in first so that the recompute below counts them.
        ds_ids = pc.unique(batch.column("datastream_id")).to_numpy()
        touches = any(np.isin(t.column("datastream_id").to_numpy(), ds_ids).any() for t in list(self._pending))
        with self.transaction(fold_derived=touches) as tx:
            assert isinstance(tx, _DuckTransaction)
            cur = tx.cur
            cur.register("_ch_replace", batch)
            try:
                pairs = cur.execute(
                    """SELECT b.id, o.id FROM _ch_replace b JOIN observations o
                       ON o.datastream_id = b.datastream_id AND o.phenomenon_time = b.phenomenon_time"""
                ).fetchall()
                if pairs:
                    # As on PostgreSQL: the stored rows take the new results, and the latest value where it is one.
                    for statement in replace_in_place("_ch_replace"):
                        cur.execute(statement)
                    old = pa.array([p[0] for p in pairs], pa.int64())
                    replaced = batch.filter(pc.is_in(batch.column("id"), old))
                    cur.register("_ch_replaced", replaced)
                    try:
                        self._refresh_keys(cur, "_ch_replaced", latest=False)
                    finally:
                        cur.unregister("_ch_replaced")
                    fresh = batch.filter(pc.invert(pc.is_in(batch.column("id"), old)))
                else:
                    fresh = batch
            finally:
                cur.unregister("_ch_replace")
            result = self.append_observations(tx, fresh) if fresh.num_rows else AppendResult(np.empty(0, np.int64))
            result.replaced = {int(new): int(stored) for new, stored in pairs}
        return result

    def _refresh_keys(self, cur: duckdb.DuckDBPyConnection, source: str, *, latest: bool = True) -> None:
        """Recompute the hourly roll-ups of the (Datastream, hour) pairs of ``source``'s rows from the stored rows,
        and with ``latest`` the latest values of their Datastreams (a scan of each one's history)."""
        cur.execute(
            f"""CREATE OR REPLACE TEMP TABLE _ch_keys AS
                SELECT DISTINCT datastream_id, date_trunc('hour', phenomenon_time) AS hour FROM {source}"""
        )
        try:
            cur.execute(
                "DELETE FROM obs_hourly h USING _ch_keys k WHERE h.datastream_id = k.datastream_id AND h.hour = k.hour"
            )
            cur.execute(
                """INSERT INTO obs_hourly
                   SELECT o.datastream_id, date_trunc('hour', o.phenomenon_time) AS hour, count(*),
                          sum(o.result_number), min(o.result_number), max(o.result_number)
                   FROM observations o
                   JOIN _ch_keys k ON o.datastream_id = k.datastream_id
                    AND o.phenomenon_time >= k.hour AND o.phenomenon_time < k.hour + INTERVAL 1 HOUR
                   WHERE o.result_number IS NOT NULL
                   GROUP BY o.datastream_id, date_trunc('hour', o.phenomenon_time)"""
            )
            if not latest:
                return
            cur.execute("DELETE FROM ds_latest WHERE datastream_id IN (SELECT datastream_id FROM _ch_keys)")
            cur.execute(
                f"""INSERT INTO ds_latest
                   SELECT datastream_id, max(phenomenon_time), arg_max(result_number, (phenomenon_time, id)),
                          arg_max(result_string, (phenomenon_time, id)), arg_max(result_json, (phenomenon_time, id)),
                          arg_max(id, (phenomenon_time, id)), min(phenomenon_time), count(*), {_EXTENTS}
                   FROM observations WHERE datastream_id IN (SELECT DISTINCT datastream_id FROM _ch_keys)
                   GROUP BY datastream_id"""
            )
        finally:
            cur.execute("DROP TABLE IF EXISTS _ch_keys")

    def pending_derived(self) -> int:
        return self._pending_rows

    def flush_derived(self) -> None:
        """Fold the Observations appended since the last flush into the latest-value and hourly tables."""
        if not self._pending_rows:
            return
        with self._write_lock:
            if not self._pending:
                return
            cur = self._cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                self._flush_pending(cur)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            self._pending.clear()
            self._pending_rows = 0

    def _flush_pending(self, cur: duckdb.DuckDBPyConnection) -> None:
        table = pa.concat_tables(self._pending)
        cur.register("_ch_pending", table)
        try:
            self._roll_up(cur, "_ch_pending")
            cur.execute("DELETE FROM rollup_pending")
        finally:
            cur.unregister("_ch_pending")

    def _recover_derived(self) -> None:
        """After a crash: roll up the Observations whose commit was acknowledged but not yet rolled up."""
        con = self._con
        if not con.execute("SELECT count(*) FROM rollup_pending").fetchall()[0][0]:  # in full: see __init__
            return
        con.execute("BEGIN TRANSACTION")
        con.execute(
            """CREATE TEMP TABLE _ch_recover AS
               SELECT o.id, o.datastream_id, o.phenomenon_time, o.phenomenon_time_end, o.result_time, o.result_number,
                      o.result_string, o.result_json
               FROM observations o JOIN rollup_pending p ON o.id BETWEEN p.lo AND p.hi"""
        )
        self._roll_up(con, "_ch_recover")
        con.execute("DROP TABLE _ch_recover")
        con.execute("DELETE FROM rollup_pending")
        con.execute("COMMIT")

    def _find_duplicates(self, cur: duckdb.DuckDBPyConnection, result: AppendResult) -> int:
        """Record the rows of ``_ch_batch`` not stored that duplicate a stored row, with whether their results
        differ; how many."""
        cur.register("_ch_ins_ids", pa.table({"id": result.inserted}))
        rows = cur.execute(
            f"""SELECT b.id, o.id, {SAME_RESULT}
               FROM (SELECT * FROM _ch_batch ANTI JOIN _ch_ins_ids USING (id)) b
               JOIN observations o ON {DUPLICATE_KEY}"""
        ).fetchall()
        cur.unregister("_ch_ins_ids")
        for dup_id, stored_id, same in rows:
            result.duplicate_of[int(dup_id)] = int(stored_id)
            if not same:
                result.conflicting.add(int(dup_id))
        return len(rows)

    def _roll_up(self, cur: duckdb.DuckDBPyConnection, source: str) -> None:
        cur.execute(
            f"""INSERT INTO obs_hourly
                SELECT datastream_id, date_trunc('hour', phenomenon_time), count(*), sum(result_number),
                       min(result_number), max(result_number)
                FROM {source} WHERE result_number IS NOT NULL GROUP BY ALL
                ON CONFLICT DO UPDATE SET n = n + excluded.n, total = total + excluded.total,
                    minimum = least(minimum, excluded.minimum), maximum = greatest(maximum, excluded.maximum)"""
        )
        cur.execute(
            f"""INSERT INTO ds_latest
                SELECT datastream_id, max(phenomenon_time),
                       arg_max(result_number, (phenomenon_time, id)), arg_max(result_string, (phenomenon_time, id)),
                       arg_max(result_json, (phenomenon_time, id)), arg_max(id, (phenomenon_time, id)),
                       min(phenomenon_time), count(*), {_EXTENTS}
                FROM {source} GROUP BY datastream_id
                ON CONFLICT DO UPDATE SET
                    result_number = CASE WHEN excluded.phenomenon_time >= phenomenon_time
                                         THEN excluded.result_number ELSE result_number END,
                    result_string = CASE WHEN excluded.phenomenon_time >= phenomenon_time
                                         THEN excluded.result_string ELSE result_string END,
                    result_json = CASE WHEN excluded.phenomenon_time >= phenomenon_time
                                       THEN excluded.result_json ELSE result_json END,
                    observation_id = CASE WHEN excluded.phenomenon_time >= phenomenon_time
                                          THEN excluded.observation_id ELSE observation_id END,
                    phenomenon_time = greatest(phenomenon_time, excluded.phenomenon_time),
                    first_time = least(first_time, excluded.first_time),
                    count = count + excluded.count,
                    last_end = greatest(last_end, excluded.last_end),
                    result_first = least(result_first, excluded.result_first),
                    result_last = greatest(result_last, excluded.result_last)"""
        )

    def observation_columns(self) -> list[str]:
        return [f.name for f in OBSERVATION_BATCH_SCHEMA]

    def delete_observations_where(self, tx: Transaction, col: str, value: int) -> None:
        """Delete the Observations whose ``col`` is ``value`` and recompute the roll-ups of the (Datastream, hour)
        pairs they leave, in one set-based pass: a FeatureOfInterest with a million Observations costs a few
        statements, not one refresh per Observation."""
        assert isinstance(tx, _DuckTransaction) and col in ("id", "feature_of_interest_id", "datastream_id")
        cur = tx.cur
        cur.execute(
            f"""CREATE OR REPLACE TEMP TABLE _ch_gone AS
                SELECT datastream_id, phenomenon_time FROM observations WHERE {col} = ?""",
            [value],
        )
        try:
            cur.execute(f"DELETE FROM observations WHERE {col} = ?", [value])
            self._refresh_keys(cur, "_ch_gone")
        finally:
            cur.execute("DROP TABLE IF EXISTS _ch_gone")

    def refresh_derived(self, tx: Transaction, datastream_id: int, hours: Sequence[datetime]) -> None:
        assert isinstance(tx, _DuckTransaction)
        # With no hours, a key whose hour is NULL: no hourly roll-up matches it, the latest value is recomputed.
        keys = pa.table(
            {
                "datastream_id": pa.array([datastream_id] * max(1, len(hours)), pa.int64()),
                "phenomenon_time": pa.array(list(hours) if hours else [None], pa.timestamp("us", tz="UTC")),
            }
        )
        tx.cur.register("_ch_refresh", keys)
        try:
            self._refresh_keys(tx.cur, "_ch_refresh")
        finally:
            tx.cur.unregister("_ch_refresh")

    def latest(self, datastream_ids: Sequence[int]) -> pa.Table:
        self.flush_derived()
        return (
            self._cursor()
            .sql(
                f"""SELECT l.datastream_id, l.phenomenon_time, l.result_number, l.result_string, l.result_json,
                       l.observation_id, l.first_time, l.count
                FROM ds_latest l SEMI JOIN {id_list("datastream_id")} USING (datastream_id)
                ORDER BY l.datastream_id""",
                params=[[int(i) for i in datastream_ids]],
            )
            .to_arrow_table()
        )

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
            "avg": "sum(total) / sum(n)",
            "min": "min(minimum)",
            "max": "max(maximum)",
            "sum": "sum(total)",
            "count": "CAST(sum(n) AS DOUBLE)",
        }[func]
        if interval == "hour":
            bucket = "hour"
        else:
            shift = f"INTERVAL '{int(offset_minutes)} minutes'"
            bucket = f"date_trunc('day', hour + {shift}) - {shift}"
        where, params = ["1 = 1"], []
        if start is not None:
            where.append("hour >= ?")
            params.append(start)
        if end is not None:
            where.append("hour < ?")
            params.append(end)
        return (
            self._cursor()
            .sql(
                f"""SELECT datastream_id, {bucket} AS time, {value} AS value, CAST(sum(n) AS BIGINT) AS count
                FROM obs_hourly SEMI JOIN {id_list("datastream_id")} USING (datastream_id)
                WHERE {" AND ".join(where)}
                GROUP BY ALL ORDER BY datastream_id, time""",
                params=[[int(i) for i in datastream_ids], *params],
            )
            .to_arrow_table()
        )

    def info(self) -> dict[str, Any]:
        self.flush_derived()
        counts = {t: self.query(f"SELECT count(*) FROM {t}")[0][0] for t in ENTITY_TABLES}
        span = self.query("SELECT min(first_time), max(phenomenon_time) FROM ds_latest")[0]
        size = 0
        if self.path is not None:
            for p in (self.path, self.path.with_name(self.path.name + ".wal")):
                if p.exists():
                    size += p.stat().st_size
        return {
            "backend": "duckdb",
            "path": str(self.path) if self.path else ":memory:",
            "counts": counts,
            "observations_from": span[0],
            "observations_to": span[1],
            "bytes_on_disk": size,
        }

    def log_bytes(self) -> int:
        if self.path is None:
            return 0
        try:
            return self.path.with_name(self.path.name + ".wal").stat().st_size
        except FileNotFoundError:
            return 0

    def checkpoint(self) -> None:
        """Raises while another thread is in a query (DuckDB's CHECKPOINT needs the database to itself)."""
        with self._write_lock:
            self._cursor().execute("CHECKPOINT")

    def close(self) -> None:
        # The connection is closed whatever happens before it: a process that exits holding it would keep the
        # file's lock from the next start. Roll-ups not folded here are folded at the next start (rollup_pending).
        with self._write_lock:
            try:
                self.flush_derived()
            except Exception:
                log.exception("folding the roll-ups at close failed; the next start folds them")
            finally:
                self._con.close()

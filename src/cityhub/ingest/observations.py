"""Turning Observations as clients send them (JSON, CSV, NDJSON, Arrow IPC) into validated Arrow batches.

Validation is vectorised: the rows and the Datastream catalogue are joined in an in-memory DuckDB (used
here as a compute engine, whatever the store) and each row gets the first reason it is unacceptable.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as paipc
import pyarrow.json as pajson

from cityhub import jsontext, results, timefmt
from cityhub.errors import ProblemError, bad_request
from cityhub.ingest.plain import MIN_ROWS as PLAIN_MIN_ROWS
from cityhub.ingest.plain import validate_plain
from cityhub.ingest.small import validate_small
from cityhub.ingest.validated import Validated
from cityhub.store.base import OBSERVATION_BATCH_SCHEMA, Store
from cityhub.store.duckdb.validation import check_rows
from cityhub.store.ops.catalog import DatastreamInfo  # also imported from here (obsin.DatastreamInfo)
from cityhub.store.transaction import Transaction

FORMATS: dict[str, Literal["csv", "ndjson", "arrow"]] = {
    "text/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/vnd.apache.arrow.stream": "arrow",
    "application/vnd.apache.arrow.file": "arrow",
}
COLUMNS = ("datastream", "phenomenonTime", "result", "resultTime", "unit", "featureOfInterest", "parameters")
MAX_BAD_ROWS_LISTED = 1000


def datastream_table(infos: list[DatastreamInfo]) -> pa.Table:
    """The catalogue as the Arrow table ``validate`` joins rows with."""
    return pa.table(
        {
            "id": pa.array([i.id for i in infos], pa.int64()),
            "observation_type": pa.array([i.observation_type for i in infos], pa.string()),
            "unit_symbol": pa.array([i.unit_symbol for i in infos], pa.string()),
            "thing_id": pa.array([i.thing_id for i in infos], pa.int64()),
        }
    )


class DatastreamCatalog:
    """What validation needs to know about each Datastream, cached and reloaded after model changes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self.version = 0
        self._table: pa.Table | None = None
        self._infos: dict[int, DatastreamInfo] = {}
        self._default_foi: dict[int, int | None] = {}
        self._foi_lookup = threading.Lock()  # one default-FeatureOfInterest lookup at a time (see default_fois)
        self._by_thing: dict[int, list[int]] = {}
        self._names: dict[str, int] | None = None
        self._names_version = -1
        self._features_version = 0  # bumped when cached features are dropped (see invalidate)
        # Told the FeaturesOfInterest made from Locations (after their commit): the hub announces them (MQTT).
        self.features_made: Callable[[list[int]], None] | None = None

    def invalidate(self, *, features: bool = True) -> None:
        """The model changed: read the Datastreams again. ``features=False`` where no Datastream's default
        FeatureOfInterest can have changed (entities created, none of them a Location): the air-quality domain
        creates derived Datastreams as stations appear, and each such change dropped every cached feature, so
        that the next Observation of every Datastream looked its feature up again (44 ms each, 10,000 Things)."""
        with self._lock:
            self.version += 1  # lets other caches of the model (air-quality stations) know to reload
            self._table = None
            if features:
                self._default_foi.clear()
                self._features_version += 1

    def entity_changed(self, entity_set: str, op: str) -> None:
        """:meth:`invalidate` after a model change, by what changed: a created entity that is not a Location or
        HistoricalLocation changes no Datastream's default FeatureOfInterest (its Thing's current Location)."""
        created = op == "created" and entity_set not in ("Locations", "HistoricalLocations")
        self.invalidate(features=not created)

    def table(self) -> pa.Table:
        return self._load()[0]

    def id_by_name(self, name: str) -> int | None:
        """The Datastream with this name (the lowest id if several share it), for topic mappings."""
        with self._lock:
            if self._names is None or self._names_version != self.version:
                self._names = self.store.catalog.datastream_ids_by_name()
                self._names_version = self.version
            return self._names.get(name)

    def lookup(self, datastream_id: int) -> DatastreamInfo | None:
        return self._load()[1].get(datastream_id)

    def _load(self) -> tuple[pa.Table, dict[int, DatastreamInfo]]:
        with self._lock:
            if self._table is None:
                infos = {i.id: i for i in self.store.catalog.datastream_infos()}
                self._infos = infos
                by_thing: dict[int, list[int]] = {}
                for i in infos.values():
                    by_thing.setdefault(i.thing_id, []).append(i.id)
                self._by_thing = by_thing
                self._table = datastream_table(list(infos.values()))
            return self._table, self._infos

    def cached_default_foi(self, datastream_id: int) -> int | None:
        with self._lock:
            return self._default_foi.get(datastream_id)

    def default_foi(self, datastream_id: int) -> int | None:
        """The FeatureOfInterest made from the Datastream's Thing's Location (SensorThings §8.2.7)."""
        return self.default_fois([datastream_id])[datastream_id]

    def default_fois(self, datastream_ids: list[int]) -> dict[int, int | None]:
        """``default_foi`` for many Datastreams: one query and at most one transaction for all the new ones."""
        with self._lock:
            out = {d: self._default_foi[d] for d in datastream_ids if d in self._default_foi}
        if len(out) == len(datastream_ids):
            return out
        # One lookup at a time: after a start or a model change, every client's first Observation misses at once;
        # the later ones then find theirs cached instead of each paying a transaction, and no two of them make the
        # same Location's feature.
        with self._foi_lookup:
            self._load()
            with self._lock:
                version = self._features_version
                out.update((d, self._default_foi[d]) for d in datastream_ids if d in self._default_foi)
                todo = [d for d in datastream_ids if d not in out]
                # The Thing's other Datastreams share its Location, hence its feature: resolved in the same query.
                also = {o for d in todo if d in self._infos for o in self._by_thing[self._infos[d].thing_id]}
                wanted = list(dict.fromkeys([*todo, *(o for o in also if o not in self._default_foi)]))
            made: list[int] = []
            if todo:
                found = ensure_location_fois(self.store, wanted, made)
                with self._lock:
                    if self._features_version == version:  # else features changed meanwhile: it may be stale
                        self._default_foi.update(found)
                out.update((d, found[d]) for d in todo)
        if made and self.features_made is not None:
            self.features_made(made)
        return out


def ensure_location_fois(
    store: Store, datastream_ids: list[int], made: list[int] | None = None
) -> dict[int, int | None]:
    """Find or create the FeatureOfInterest of each Datastream's Thing's (first) Location (those created: in
    ``made``)."""
    return store.catalog.location_features(datastream_ids, made)


def location_fois_in(
    tx: Transaction, datastream_ids: list[int], made: list[int] | None = None
) -> dict[int, int | None]:
    """``ensure_location_fois`` inside a transaction the caller holds (a deep insert, say)."""
    return tx.store.catalog.location_features_in(tx, datastream_ids, made)


# -- parsing bodies --------------------------------------------------------------------------------------
CSV_CONVERT = pacsv.ConvertOptions(
    column_types={
        "phenomenonTime": pa.string(),
        "resultTime": pa.string(),
        "unit": pa.string(),
        # JSON text: left to type inference, 2026-01-01 became a date and 7 a number
        "parameters": pa.string(),
    },
    strings_can_be_null=True,
    null_values=[""],  # keep NaN/NA visible so validation can name them
)


def parse_body(body: bytes, fmt: str) -> pa.Table:
    """Parse a bulk body into a table with (a subset of) COLUMNS; syntax errors are 400s."""
    if not body.strip():
        raise bad_request("the body is empty", field="body")
    if fmt == "csv":
        try:
            table = pacsv.read_csv(io.BytesIO(body), convert_options=CSV_CONVERT)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
            raise bad_request(f"CSV could not be read: {exc}", field="body") from None
    elif fmt == "ndjson":
        # Arrow's JSON reader wants one object per line, and pyarrow 26 crashes the process on a line that is a
        # bare `null`: such bodies take the line-by-line path, which names the line at fault.
        table = _ndjson_rows(body) if _NOT_AN_OBJECT_LINE.search(body) else _read_ndjson_objects(body)
    elif fmt == "arrow":
        try:
            reader = paipc.open_stream(io.BytesIO(body))
            table = reader.read_all()
        except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError):
            try:
                table = paipc.open_file(io.BytesIO(body)).read_all()
            except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as exc:
                raise bad_request(f"Arrow IPC body could not be read: {exc}", field="body") from None
        try:  # IPC buffers come from the client: check offsets and lengths before any kernel reads them
            table.validate(full=True)
        except (pa.ArrowException, UnicodeDecodeError) as exc:  # a name that is not UTF-8 fails in the message
            raise bad_request(f"Arrow IPC body is not consistent: {exc}", field="body") from None
    else:
        raise bad_request(f"unknown format {fmt!r}; use csv, ndjson or arrow", field="format")
    return check_columns(table, fmt)


def check_columns(table: pa.Table, fmt: str) -> pa.Table:
    """The columns of a parsed body (or one batch of a streamed one): known ones only, the required ones there."""
    try:
        names = table.column_names
    except UnicodeDecodeError:  # a header that is not UTF-8
        raise bad_request("column names must be UTF-8 text", field="body") from None
    # The JSON paths add result_text/result_json themselves (rows_to_table); a client's are refused there.
    internal = _JSON_RESULT if fmt == "ndjson" else ()
    unknown = [c for c in names if c not in COLUMNS and c not in internal]
    if unknown:
        raise bad_request(f"unknown column(s) {unknown}; allowed: {list(COLUMNS)}", field=unknown[0])
    for col in ("datastream", "phenomenonTime", "result"):
        if col not in table.column_names:
            raise bad_request(f"column {col!r} is required", field=col)
    return table


# What the JSON paths make of ``result``: its text, its JSON text (a boolean, an object, null) and the exact text
# of an integer (results.INT64_MIN..MAX), beside the number in ``result`` itself.
_JSON_RESULT = ("result_text", "result_json", "result_int")
# A line whose first non-blank character does not open an object.
_NOT_AN_OBJECT_LINE = re.compile(rb"(?m)^[ \t\r]*[^{\s]")


def _read_ndjson_objects(body: bytes) -> pa.Table:
    try:
        table = pajson.read_json(
            io.BytesIO(body),
            parse_options=pajson.ParseOptions(
                # Times stay text so validation can see whether they carry a zone.
                explicit_schema=pa.schema(
                    [("phenomenonTime", pa.string()), ("resultTime", pa.string()), ("unit", pa.string())]
                ),
                unexpected_field_behavior="infer",
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # Mixed result types, or a broken line: the slow path says exactly which line.
        return _ndjson_rows(body)
    ptype = table.schema.field("parameters").type if "parameters" in table.column_names else pa.null()
    if not (pa.types.is_string(ptype) or pa.types.is_null(ptype)):
        # Objects (the documented form) were read as structs, numbers as numbers: the line-by-line path
        # turns them back into JSON text, as it does for the other JSON paths.
        return _ndjson_rows(body)
    typed = _json_typed_results(table)
    return _ndjson_rows(body) if typed is None else typed


def _json_typed_results(table: pa.Table) -> pa.Table | None:
    """Split a JSON-read ``result`` column into the columns ``rows_to_table`` makes, so that a JSON string
    stays a string (``"7"`` is no number, ``"true"`` no boolean) as it does on every other JSON path.
    None for objects and arrays, which the line-by-line path turns back into JSON text."""
    sent = [c for c in _JSON_RESULT if c in table.column_names]
    if sent:
        raise bad_request(f"unknown field(s) {sent}; allowed: {list(COLUMNS)}", field=sent[0])
    if "result" not in table.column_names:
        return table  # parse_body names the missing column
    col = table.column("result")
    typ = col.type
    n = table.num_rows
    if col.null_count:
        return None  # null results: the line-by-line path tells an explicit null from a missing result
    number, text, js = pa.nulls(n, pa.float64()), pa.nulls(n, pa.string()), pa.nulls(n, pa.string())
    exact = pa.nulls(n, pa.string())
    if pa.types.is_integer(typ) or pa.types.is_floating(typ):
        number = pc.cast(col, pa.float64(), safe=False)  # an integer beyond 2**53 is stored as its double
        if pa.types.is_integer(typ):
            if typ == pa.uint64():
                return None  # past INT64_MAX an integer is a double: the line-by-line path decides which
            exact = pc.cast(col, pa.string())
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
        text = pc.cast(col, pa.string())
    elif pa.types.is_boolean(typ):
        js = pc.if_else(col, "true", "false")
    elif not pa.types.is_null(typ):
        return None
    i = table.schema.get_field_index("result")
    table = table.set_column(i, "result", number)
    return table.append_column("result_text", text).append_column("result_json", js).append_column("result_int", exact)


def _ndjson_rows(body: bytes) -> pa.Table:
    records: list[dict[str, Any]] = []
    for lineno, line in enumerate(body.splitlines()):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"line {lineno + 1} is not valid JSON: {exc}", field="body", line=lineno + 1) from None
        if not isinstance(obj, dict):
            raise bad_request(f"line {lineno + 1} is not a JSON object", field="body", line=lineno + 1)
        records.append(obj)
    return rows_to_table(records)


def rows_to_table(records: list[dict[str, Any]]) -> pa.Table:
    """Observation-like dicts (bulk columns) → raw table, keeping each result's JSON type."""
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    numbers: list[float | None] = []
    texts: list[str | None] = []
    jsons: list[str | None] = []
    ints: list[str | None] = []
    present: set[str] = set()
    for i, rec in enumerate(records):
        for c in COLUMNS:
            if c == "result":
                continue
            v = rec.get(c)
            if v is not None:
                present.add(c)
            if c == "parameters" and v is not None and not isinstance(v, str):
                v = _json_member(v, c, i)
            elif c in ("phenomenonTime", "resultTime", "unit") and v is not None and not isinstance(v, str):
                v = _json_member(v, c, i)  # validation then says what is wrong with it
            elif c in ("datastream", "featureOfInterest") and v is not None:
                v = str(v)
            cols[c].append(v)
        r = rec.get("result")
        if "result" in rec:
            present.add("result")
        exact = None
        if r is None:
            numbers.append(None)
            texts.append(None)
            jsons.append("null" if "result" in rec else None)
        elif isinstance(r, (bool, dict, list)):
            numbers.append(None)
            texts.append(None)
            jsons.append(_json_member(r, "result", i))
        elif isinstance(r, (int, float)):
            try:
                numbers.append(float(r))
            except OverflowError:  # an integer of hundreds of digits
                raise bad_request("result is a number too large to store", field="result", index=i) from None
            texts.append(None)
            jsons.append(None)
            if type(r) is int and results.INT64_MIN <= r <= results.INT64_MAX:
                exact = str(r)
        else:
            numbers.append(None)
            texts.append(str(r))
            jsons.append(None)
        ints.append(exact)
        unknown = set(rec) - set(COLUMNS)
        if unknown:
            raise bad_request(f"unknown field(s) {sorted(unknown)}; allowed: {list(COLUMNS)}", field=sorted(unknown)[0])
    out: dict[str, pa.Array] = {
        c: pa.array(cols[c], pa.string()) for c in COLUMNS if c != "result" and (c in present or c == "datastream")
    }
    if "phenomenonTime" not in out:
        out["phenomenonTime"] = pa.array(cols["phenomenonTime"], pa.string())
    out["result"] = pa.array(numbers, pa.float64())
    out["result_text"] = pa.array(texts, pa.string())
    out["result_json"] = pa.array(jsons, pa.string())
    out["result_int"] = pa.array(ints, pa.string())
    return pa.table(out)


# SensorThings data-array components and the bulk columns they fill.
DATA_ARRAY_COLUMNS = {"phenomenonTime": "phenomenonTime", "result": "result", "resultTime": "resultTime",
                      "FeatureOfInterest/id": "featureOfInterest", "parameters": "parameters"}  # fmt: skip


def data_array_table(groups: Sequence[tuple[int, Sequence[str], Sequence[Sequence[Any]]]]) -> pa.Table:
    """``CreateObservations`` groups (Datastream id, components, dataArray rows; shapes already checked) → a raw
    table, a column at a time where a group's columns are plain (times as text, numbers as results, integer feature
    ids): a dict per row cost more than storing it (issue 13 measured the path at a third of NDJSON's rate). A body
    of plain groups only is typed as an Arrow body is (integer ids, numeric results, the exact text of integer
    results in ``result_int``), so that validation takes the Arrow-kernel path; otherwise every group is in the form
    :func:`rows_to_table` makes of the same rows, the row-wise path saying what is wrong where."""
    parts: list[pa.Table] = []
    plain = True
    offset = 0
    for ds, comps, rows in groups:
        n = len(rows)
        if not n:
            continue
        by_name = {DATA_ARRAY_COLUMNS[c]: vals for c, vals in zip(comps, zip(*rows, strict=True), strict=True)}
        table = _plain_group(ds, by_name, n)
        if table is None:
            plain = False
            records = [{"datastream": ds, **{k: v[i] for k, v in by_name.items()}} for i in range(n)]
            try:
                table = rows_to_table(records)
            except ProblemError as exc:  # the row's index in the whole body, not in its group
                if "index" in exc.extra:
                    exc.extra["index"] += offset
                raise
        parts.append(table)
        offset += n
    if not parts:
        return rows_to_table([])
    if not plain:
        parts = [_row_wise(t) for t in parts]
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="default")


def _row_wise(table: pa.Table) -> pa.Table:
    """A plain group's table in the form :func:`rows_to_table` gives (ids as text, results split by kind)."""
    if "result_text" in table.column_names:
        return table
    for col in ("datastream", "featureOfInterest"):
        if col in table.column_names:
            i = table.schema.get_field_index(col)
            table = table.set_column(i, col, pc.cast(table.column(col), pa.string()))
    n = table.num_rows
    if "result_int" not in table.column_names:
        table = table.append_column("result_int", pa.nulls(n, pa.string()))
    exact = table.column("result_int")
    table = table.drop_columns(["result_int"]).append_column("result_text", pa.nulls(n, pa.string()))
    return table.append_column("result_json", pa.nulls(n, pa.string())).append_column("result_int", exact)


def _plain_group(ds: int, cols: dict[str, tuple[Any, ...]], n: int) -> pa.Table | None:
    result = cols["result"]
    # bool is an int: not plain; nor an integer a double cannot hold exactly (the row-wise path stores its double
    # beside its exact text, or refuses one past float's range by name)
    if not all(type(v) is float or (type(v) is int and -(2**53) <= v <= 2**53) for v in result):
        return None
    for c in ("phenomenonTime", "resultTime"):
        if c in cols and not all(v is None or type(v) is str for v in cols[c]):
            return None
    foi = cols.get("featureOfInterest")
    lo, hi = results.INT64_MIN, results.INT64_MAX
    if foi is not None and not all(v is None or (type(v) is int and lo <= v <= hi) for v in foi):
        return None
    if not lo <= ds <= hi:
        return None
    params = cols.get("parameters")
    if params is not None and not all(v is None for v in params):
        return None
    out: dict[str, pa.Array] = {"datastream": pa.array(np.full(n, ds, dtype=np.int64))}
    out["phenomenonTime"] = pa.array(cols.get("phenomenonTime", (None,) * n), pa.string())
    if "resultTime" in cols and any(v is not None for v in cols["resultTime"]):
        out["resultTime"] = pa.array(cols["resultTime"], pa.string())
    if foi is not None and any(v is not None for v in foi):
        out["featureOfInterest"] = pa.array(foi, pa.int64())
    out["result"] = pa.array(result, pa.float64())
    if any(type(v) is int for v in result):  # integers keep their exact text (results.stored)
        out["result_int"] = pa.array([str(v) if type(v) is int else None for v in result], pa.string())
    return pa.table(out)


def _json_member(value: Any, field: str, index: int) -> str:
    # A member too deep to be read back cannot travel as text to the row-wise rules: the body is refused.
    try:
        return jsontext.dump(value, field)
    except ProblemError as exc:
        exc.extra["index"] = index
        raise


# -- validation ------------------------------------------------------------------------------------------
def validate(
    table: pa.Table,
    datastreams: pa.Table,
    *,
    max_future: timedelta,
    now: datetime | None = None,
    lookup: Callable[[int], DatastreamInfo | None] | None = None,
) -> Validated:
    """Each row's first reason to be refused, or its stored columns. With ``lookup`` (the catalogue's), a small
    body of plain shapes is checked row by row in Python (:mod:`cityhub.ingest.small`) and a large one whose
    rows are all plainly good with Arrow kernels (:mod:`cityhub.ingest.plain`): the same checks without
    planning a query."""
    now = now or datetime.now(UTC)
    if lookup is not None:
        # Cheapest first: row by row for a few rows, Arrow kernels for many plainly good ones.
        fast = (validate_small, validate_plain) if table.num_rows < PLAIN_MIN_ROWS else (validate_plain, validate_small)
        for check in fast:
            done = check(table, lookup, max_future=max_future, now=now)
            if done is not None:
                return done
    out = check_rows(table, datastreams, now + max_future)
    error = out.column("error")
    ok = pc.is_null(error)
    good = out.filter(ok)
    bad_rows = out.filter(pc.invert(ok))
    bad = [
        {"index": int(i), "field": e.split(":", 1)[0], "reason": e.split(": ", 1)[1]}
        for i, e in zip(
            bad_rows.column("_idx").to_pylist()[:MAX_BAD_ROWS_LISTED],
            bad_rows.column("error").to_pylist()[:MAX_BAD_ROWS_LISTED],
            strict=True,
        )
    ]
    n = good.num_rows
    null_ts = pa.nulls(n, pa.timestamp("us", tz="UTC"))
    batch = pa.table(
        {
            "datastream_id": good.column("ds"),
            "phenomenon_time": good.column("pt").cast(pa.timestamp("us", tz="UTC")),
            "phenomenon_time_end": null_ts,
            "result_time": good.column("rt").cast(pa.timestamp("us", tz="UTC")),
            "result_number": good.column("result_number"),
            "result_string": good.column("result_string"),
            "result_json": good.column("result_json"),
            "result_quality": pa.nulls(n, pa.string()),
            "valid_time_start": null_ts,
            "valid_time_end": null_ts,
            "parameters": good.column("params"),
            "feature_of_interest_id": good.column("foi"),
        }
    )
    return Validated(
        good=batch,
        good_index=good.column("_idx").to_numpy(),
        thing_ids=good.column("thing_id").to_numpy(),
        bad=bad,
        bad_count=bad_rows.num_rows,
    )


def resolve_features(v: Validated, catalog: DatastreamCatalog) -> Validated:
    """Give rows without a FeatureOfInterest the one made from their Thing's Location (SensorThings
    §8.2.7), check that the ones given exist, and move the rows where neither holds to ``bad``."""
    batch = v.good
    foi = batch.column("feature_of_interest_id")
    missing = pc.is_null(foi).to_numpy(zero_copy_only=False)
    filled = pc.fill_null(foi, 0).to_numpy().astype(np.int64, copy=True)
    reasons: dict[int, str] = {}
    if missing.any():
        uniq, inverse = np.unique(batch.column("datastream_id").to_numpy()[missing], return_inverse=True)
        found = catalog.default_fois([int(d) for d in uniq])
        defaults = np.array([found[int(d)] or -1 for d in uniq], dtype=np.int64)
        filled[missing] = defaults[inverse]
        for i in np.flatnonzero(filled == -1):
            reasons[int(i)] = "none given and the Thing has no Location to make one from"
    given = np.unique(filled[~missing])
    if given.size:
        known = catalog.store.catalog.existing_features(given.tolist())
        for i in np.flatnonzero(~missing):
            if int(filled[i]) not in known:
                reasons[int(i)] = f"no FeatureOfInterest has id {int(filled[i])}"
    if not reasons:
        arr = pa.array(filled, pa.int64())
        good = batch.set_column(batch.schema.get_field_index("feature_of_interest_id"), "feature_of_interest_id", arr)
        return Validated(good, v.good_index, v.thing_ids, v.bad, v.bad_count)
    arr = pa.array(np.where(filled == -1, 0, filled), pa.int64())
    good = batch.set_column(batch.schema.get_field_index("feature_of_interest_id"), "feature_of_interest_id", arr)
    return _refuse_rows(Validated(good, v.good_index, v.thing_ids, v.bad, v.bad_count), reasons, "featureOfInterest")


def check_components(v: Validated, catalog: DatastreamCatalog) -> Validated:
    """Move to ``bad`` the rows of a MultiDatastream whose result is not an array with one value per
    ObservedProperty (SensorThings v1.1 §12.2); rows of Datastreams pass untouched, at the cost of one look-up
    per distinct Datastream of the body."""
    batch = v.good
    if not batch.num_rows:
        return v
    ds = batch.column("datastream_id").to_numpy()
    sizes: dict[int, int] = {}
    for d in np.unique(ds).tolist():
        info = catalog.lookup(int(d))
        if info is not None and info.components is not None:
            sizes[int(d)] = info.components
    if not sizes:
        return v
    texts = batch.column("result_json")
    reasons: dict[int, str] = {}
    for i in np.flatnonzero(np.isin(ds, list(sizes))).tolist():
        text, n = texts[i].as_py(), sizes[int(ds[i])]
        value = orjson.loads(text) if text is not None else None
        if not isinstance(value, list) or len(value) != n:
            reasons[i] = f"must be an array of {n} values, one per ObservedProperty of the MultiDatastream"
    return _refuse_rows(v, reasons, "result")


def _refuse_rows(v: Validated, reasons: dict[int, str], field: str) -> Validated:
    """``v`` with the good rows at these positions moved to ``bad``, each with its reason."""
    if not reasons:
        return v
    keep = np.ones(v.good.num_rows, dtype=bool)
    keep[list(reasons)] = False
    extra = [{"index": int(v.good_index[i]), "field": field, "reason": r} for i, r in reasons.items()]
    return Validated(
        v.good.filter(pa.array(keep)),
        v.good_index[keep],
        v.thing_ids[keep],
        sorted(v.bad + extra, key=lambda e: e["index"])[:MAX_BAD_ROWS_LISTED],
        v.bad_count + len(reasons),
    )


def validate_one(
    record: dict[str, Any], info: DatastreamInfo | None, *, max_future: timedelta, now: datetime | None = None
) -> dict[str, Any]:
    """The single-Observation fast path: the rules of ``validate`` for one JSON record, without planning
    a query or building Arrow arrays (a POST must cost well under a millisecond). Returns the row
    (columns of OBSERVATION_BATCH_SCHEMA, ``id`` still None); raises a 400 naming the field."""
    now = now or datetime.now(UTC)

    def fail(field: str, reason: str) -> ProblemError:
        return bad_request(f"{field} {reason}", field=field)

    if info is None:
        raise fail("datastream", "no Datastream has this id")
    pt = _one_time(record.get("phenomenonTime"), "phenomenonTime", fail)
    if pt is None:
        raise fail("phenomenonTime", "is missing")
    if pt > now + max_future:
        raise fail("phenomenonTime", "is too far in the future")
    if pt.year < 1900:
        raise fail("phenomenonTime", "is before 1900")
    rt = _one_time(record.get("resultTime"), "resultTime", fail)
    stored = results.result_columns(record.get("result"), info.observation_type, present="result" in record)
    results.check_components(record.get("result"), info.components)
    params = record.get("parameters")
    return {
        "id": None,
        "datastream_id": info.id,
        "phenomenon_time": pt,
        "phenomenon_time_end": None,
        "result_time": rt,
        **stored,
        "result_quality": None,
        "valid_time_start": None,
        "valid_time_end": None,
        "parameters": None if params is None else jsontext.dump(params, "parameters"),
        "feature_of_interest_id": None,
    }


def rows_to_batch(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows from ``validate_one`` (ids filled in) as one batch for the store."""
    return pa.Table.from_pylist(rows, schema=OBSERVATION_BATCH_SCHEMA)


def _one_time(value: Any, field: str, fail: Any) -> datetime | None:
    # The reasons are the vectorised check's (``_time_exprs``), not parse_time's wordier messages.
    if value is None:
        return None
    if not isinstance(value, str):
        raise fail(field, timefmt.NOT_ISO)
    try:
        return timefmt.parse_iso(value)
    except timefmt.TimeFormatError as exc:
        raise fail(field, exc.reason) from None


def with_ids(batch: pa.Table, ids: np.ndarray) -> pa.Table:
    """Prepend allocated ids and order the columns as the store expects."""
    table = batch.add_column(0, "id", pa.array(ids, pa.int64()))
    return table.select(OBSERVATION_BATCH_SCHEMA.names).cast(OBSERVATION_BATCH_SCHEMA)


def problem_for_bad_rows(v: Validated, total: int) -> ProblemError:
    return ProblemError(
        422,
        "Unprocessable Content",
        f"{v.bad_count} of {total} rows are not acceptable; nothing was stored "
        "(send ?partial=true to store the good rows)",
        field="rows",
        errors=v.bad,
        rejected=v.bad_count,
    )

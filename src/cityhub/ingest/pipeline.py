"""The one way Observations get into CityHub.

Every entry point (HTTP single POST and bulk bodies, CreateObservations, MQTT, ``cityhub import``, the demo
simulator, derived indices such as VN_AQI, and later NGSI-LD and GTFS-Realtime) hands its rows here:

1. ``prepare``: a raw table (the columns of ``POST /api/v1/ingest``) is validated against the Datastream
   catalogue in one vectorised pass (:func:`cityhub.ingest.observations.validate`), a device key is held to
   its own Thing, and default FeaturesOfInterest are resolved;
2. ``submit``: ids are allocated and the batch goes to the group-commit writer, which answers after the
   commit and publishes the committed rows on the event bus before that;
3. ``outcome``: what happened to each row, in the shape of the bulk response (stored, duplicates, rejected
   with index, field and reason).

Rows built one at a time (a SensorThings JSON body) skip step 1's table and enter at ``submit_rows``; derived
Observations enter at ``write_derived``, which updates them in place so their ids stay stable.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cityhub.auth.keys import Principal
from cityhub.errors import ProblemError, bad_request
from cityhub.ingest import observations as obsin
from cityhub.ingest.writer import ObservationWriter
from cityhub.jsontext import NUL, check_no_nul
from cityhub.store.base import AppendResult, Store


@dataclass
class Prepared:
    """A validated body ready for the writer: the batch with ids, and how to map results back to input rows."""

    raw_rows: int
    validated: obsin.Validated
    batch: pa.Table  # OBSERVATION_BATCH_SCHEMA, ids allocated
    ids: np.ndarray
    partial: bool


class IngestPipeline:
    """Validation, authorisation and group commit of Observations, shared by every entry point."""

    def __init__(
        self, store: Store, catalog: obsin.DatastreamCatalog, writer: ObservationWriter, *, max_future: timedelta
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.writer = writer
        self.max_future = max_future

    # -- tables ------------------------------------------------------------------------------------------
    def prepare(self, raw: pa.Table, who: Principal | None = None, *, partial: bool = False) -> Prepared:
        """Validate a raw table. Without ``partial`` any bad row refuses the whole body (a 422 listing every
        bad row); a device key writing another Thing's Datastream is a 403."""
        _refuse_nul(raw)
        v = obsin.validate(raw, self.catalog.table(), max_future=self.max_future, lookup=self.catalog.lookup)
        if who is not None and who.role == "device" and v.good.num_rows and (v.thing_ids != who.thing_id).any():
            raise ProblemError(
                403, "Forbidden", "this device key may only write its own Thing's Datastreams", field="datastream"
            )
        v = obsin.check_components(obsin.resolve_features(v, self.catalog), self.catalog)
        if v.bad_count and not partial:
            raise obsin.problem_for_bad_rows(v, raw.num_rows)
        ids = self.store.allocate_ids("observations", v.good.num_rows)
        return Prepared(raw.num_rows, v, obsin.with_ids(v.good, ids), ids, partial)

    def submit(self, prep: Prepared, *, wait: bool = False) -> Future[AppendResult]:
        """Queue a prepared body; a full writer refuses it (WriterBusy, a 503), or with ``wait`` is waited for."""
        if wait:
            return self.writer.submit_waiting(prep.batch, all_or_nothing=not prep.partial)
        return self.writer.submit(prep.batch, all_or_nothing=not prep.partial)

    def outcome(self, prep: Prepared, result: AppendResult) -> dict[str, Any]:
        """The bulk response: counts, and every refused row (bad, or conflicting with a stored Observation)
        with its index in the body. A conflict in an all-or-nothing body is a 409 and nothing was stored."""
        v, ids = prep.validated, prep.ids
        conflicts = sorted(result.conflicting)

        def index_of(row_id: int) -> int:  # ids were allocated as one consecutive range, one per good row
            return int(v.good_index[row_id - int(ids[0])])

        conflict_errors = [
            {
                "index": index_of(c),
                "field": "result",
                "reason": f"conflicts with stored Observation {result.duplicate_of[c]}",
            }
            for c in conflicts
        ]
        if conflicts and not prep.partial:
            raise ProblemError(
                409,
                "Conflict",
                f"{len(conflicts)} rows repeat a stored Observation (datastream, phenomenonTime, resultTime, "
                "FeatureOfInterest, parameters) with another result; "
                "nothing was stored",
                field="rows",
                errors=conflict_errors[: obsin.MAX_BAD_ROWS_LISTED],
            )
        rejected = v.bad + conflict_errors
        return {
            "received": prep.raw_rows,
            "stored": int(result.inserted.size),
            "duplicates": len(result.duplicate_of) - len(conflicts),
            "rejected": v.bad_count + len(conflicts),
            "errors": sorted(rejected, key=lambda e: e["index"])[: obsin.MAX_BAD_ROWS_LISTED],
        }

    def stored_ids(self, prep: Prepared, result: AppendResult) -> dict[int, int]:
        """The Observation each row of the body is now, by the row's index in the body: the new one, or the
        stored one it repeated. Refused rows (bad, or conflicting with a stored Observation) are absent. Taken
        from what the write itself found, so it costs no read of stored Observations, however many there are."""
        inserted = set(result.inserted.tolist())
        out: dict[int, int] = {}
        for row_id, index in zip(prep.ids.tolist(), prep.validated.good_index.tolist(), strict=True):
            if row_id in result.conflicting:
                continue
            stored = row_id if row_id in inserted else result.duplicate_of.get(row_id)
            if stored is not None:
                out[int(index)] = stored
        return out

    def ingest(self, raw: pa.Table, who: Principal | None = None, *, partial: bool = False) -> dict[str, Any]:
        """``prepare``, ``submit`` and ``outcome`` in one blocking call (threads outside the event loop)."""
        prep = self.prepare(raw, who, partial=partial)
        return self.outcome(prep, self.submit(prep).result())

    # -- rows ---------------------------------------------------------------------------------------------
    def submit_rows(self, rows: list[dict[str, Any]], *, all_or_nothing: bool = True) -> Future[AppendResult]:
        """Rows validated one by one (columns of OBSERVATION_BATCH_SCHEMA, ``id`` allocated here if absent)."""
        for r in rows:
            text = r.get("result_string")
            if isinstance(text, str):
                check_no_nul(text, "result")
        missing = [r for r in rows if r.get("id") is None]
        if missing:
            for r, i in zip(missing, self.store.allocate_ids("observations", len(missing)), strict=True):
                r["id"] = int(i)
        return self.writer.submit(rows, all_or_nothing=all_or_nothing)

    def write_derived(self, rows: list[dict[str, Any]]) -> Future[AppendResult]:
        """Derived Observations (an index computed from others): a row whose (Datastream, phenomenonTime) is
        stored updates that Observation in place, so its id and link stay; new ones are appended."""
        ids = self.store.allocate_ids("observations", len(rows))
        for r, i in zip(rows, ids, strict=True):
            r["id"] = int(i)
        return self.writer.submit(obsin.rows_to_batch(rows), all_or_nothing=False, replace=True, bounded=False)


def _refuse_nul(raw: pa.Table) -> None:
    """Text results holding U+0000 refuse the body, naming the rows (see jsontext.check_no_nul)."""
    # NDJSON bodies carry a text result as result_text beside result (ingest.observations.rows_to_table).
    for name in ("result", "result_text"):
        if name not in raw.column_names:
            continue
        kind = raw.schema.field(name).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            continue
        hits = pc.fill_null(pc.match_substring(raw.column(name), "\x00"), False)
        if pc.any(hits).as_py():
            rows = pc.indices_nonzero(hits).to_pylist()[:10]
            raise bad_request(f"result {NUL}: rows {rows}", field="result")

"""Observations through the SensorThings API: one body validated against its Datastream (the shared rule
table), its FeatureOfInterest resolved, and the row handed to the one ingest pipeline; deep-inserted ones and
PATCHes inside the caller's transaction."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from cityhub import jsontext, model, results
from cityhub.errors import ProblemError, bad_request, conflict
from cityhub.ingest import observations as obsin
from cityhub.sensorthings.filter.query import columns
from cityhub.sensorthings.service.base import ServiceBase
from cityhub.sensorthings.service.serialize import row_to_dict, self_link, shape
from cityhub.store.ops.catalog import components, unit_symbol
from cityhub.store.transaction import Transaction
from cityhub.timefmt import iso_time, parse_interval


class ObservationMixin(ServiceBase):
    def _observation_table(
        self,
        body: dict[str, Any],
        ds_id: int | None,
        field_prefix: str,
        datastream: obsin.DatastreamInfo | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Validate one Observation body; returns the row (no id yet) and extra info."""
        known = {p.name for p in model.OBSERVATION.props} | {"Datastream", "MultiDatastream", "FeatureOfInterest"}
        for k in body:
            if k not in known and not k.endswith("@iot.navigationLink") and k != "@iot.selfLink":
                raise bad_request(f"Observation has no property {k!r}", field=field_prefix + k)
        if "@iot.id" in body:
            raise bad_request("@iot.id is assigned by the server", field=field_prefix + "@iot.id")
        # The Datastream by its id; other members beside it are ignored, as FROST-Server does (clients send the
        # whole entity they hold). In a Datastream's own collection, a body naming that same Datastream is fine.
        # A MultiDatastream in place of the Datastream (the extension); their ids never coincide (schema.ID_SPACE).
        if "Datastream" in body and "MultiDatastream" in body:
            raise bad_request("an Observation has a Datastream or a MultiDatastream, not both", field=field_prefix +
                              "MultiDatastream")  # fmt: skip
        stream = "MultiDatastream" if "MultiDatastream" in body else "Datastream"
        ds = body.get(stream)
        if ds_id is None:
            if not isinstance(ds, dict) or "@iot.id" not in ds:
                raise bad_request(
                    'an Observation needs Datastream (or MultiDatastream): {"@iot.id": <id>}',
                    field=field_prefix + "Datastream",
                )
            ds_id = ds["@iot.id"]
            if not isinstance(ds_id, int) or isinstance(ds_id, bool):
                raise bad_request(f"{stream} @iot.id must be an integer", field=field_prefix + stream)
        elif stream in body and not (isinstance(ds, dict) and ds.get("@iot.id") == ds_id):
            raise bad_request(
                f"the {stream} is given by the path or topic ({ds_id}); the body names another",
                field=field_prefix + stream,
            )
        if "result" not in body:
            raise bad_request("Observation.result is required", field=field_prefix + "result")
        pt = body.get("phenomenonTime")
        pt_end = None
        if pt is None:
            pt = iso_time(datetime.now(UTC))
        elif isinstance(pt, str) and "/" in pt:
            s, e = parse_interval(pt, field_prefix + "phenomenonTime")
            pt, pt_end = iso_time(s), e
        if body.get("parameters") is not None and not isinstance(body["parameters"], dict):
            raise bad_request("parameters must be a JSON object", field=field_prefix + "parameters")
        info = datastream if datastream is not None else self.catalog.lookup(ds_id)
        if info is not None and stream in body and (info.components is not None) != (stream == "MultiDatastream"):
            raise bad_request(f"no {stream} has id {ds_id}", field=field_prefix + stream)
        try:
            row = obsin.validate_one({**body, "phenomenonTime": pt}, info, max_future=self.max_future)
        except ProblemError as exc:
            exc.field = field_prefix + (exc.field or "")
            raise
        assert info is not None
        extra: dict[str, Any] = {"thing_id": info.thing_id, "datastream_id": ds_id}
        row["phenomenon_time_end"] = pt_end
        if body.get("validTime") is not None:
            row["valid_time_start"], row["valid_time_end"] = parse_interval(
                body["validTime"], field_prefix + "validTime"
            )
        if body.get("resultQuality") is not None:
            row["result_quality"] = jsontext.dump(body["resultQuality"], field_prefix + "resultQuality")
        return row, extra

    async def create_observation(
        self, body: dict[str, Any], ds_id: int | None, base: str, *, device_thing: int | None = None
    ) -> dict[str, Any]:
        row, extra = self._observation_table(body, ds_id, "")  # cheap: no query once the catalogue is loaded
        if device_thing is not None and extra["thing_id"] != device_thing:
            raise ProblemError(403, "Forbidden", "this device key may not write to that Datastream", field="Datastream")
        foi_id = None if "FeatureOfInterest" in body else self.catalog.cached_default_foi(extra["datastream_id"])
        if foi_id is None:  # needs a query, or a new FeatureOfInterest
            foi_id = await asyncio.to_thread(self._feature_of_interest, body, extra["datastream_id"])
        row["feature_of_interest_id"] = foi_id
        new_id = row["id"] = int(self.store.allocate_ids("observations", 1)[0])
        result = await asyncio.wrap_future(self.pipeline.submit_rows([row]))
        if new_id in result.conflicting:
            stored = result.duplicate_of[new_id]
            raise conflict(
                f"Datastream already has Observation {stored} with this phenomenonTime, resultTime, "
                "FeatureOfInterest and parameters and another result; PATCH that Observation to change it",
                field="phenomenonTime",
                existing=self_link(base, model.OBSERVATION, stored),
            )
        if new_id in result.duplicate_of:  # the same Observation again: answer with the stored one
            entity = self._fetch(base, model.OBSERVATION, result.duplicate_of[new_id])
            entity["_created"] = False
            return entity
        entity, _ = row_to_dict(model.OBSERVATION, tuple(row[c] for c in columns(model.OBSERVATION)))
        return shape(base, model.OBSERVATION, entity, None)

    def _feature_of_interest(self, body: dict[str, Any], ds_id: int) -> int:
        foi = body.get("FeatureOfInterest")
        if foi is not None:
            if not isinstance(foi, dict):
                raise bad_request("FeatureOfInterest must be an object", field="FeatureOfInterest")
            with self._tx() as tx:
                return self._create(tx, model.FEATURE_OF_INTEREST, foi, "FeatureOfInterest", None)
        foi_id = self.catalog.default_foi(ds_id)
        if foi_id is None:
            raise bad_request(
                "no FeatureOfInterest given and the Datastream's Thing has no Location to make one from",
                field="FeatureOfInterest",
            )
        return foi_id

    def observation_row(self, body: Any, ds_id: int | None) -> dict[str, Any]:
        """Validate one Observation as a client would POST it (to a Datastream's Observations when ``ds_id``
        is given, else with a Datastream link) and return its row for the writer, id allocated. For
        callers outside a request (the MQTT bridge); raises ProblemError naming the field at fault."""
        if not isinstance(body, dict):
            raise bad_request("an Observation must be a JSON object", field="body")
        row, extra = self._observation_table(body, ds_id, "")
        foi_id = None if "FeatureOfInterest" in body else self.catalog.cached_default_foi(extra["datastream_id"])
        if foi_id is None:
            foi_id = self._feature_of_interest(body, extra["datastream_id"])
        row["feature_of_interest_id"] = foi_id
        row["id"] = int(self.store.allocate_ids("observations", 1)[0])
        return row

    def _create_observation_in_tx(self, tx: Transaction, body: dict[str, Any], ds_id: int, field: str) -> int:
        """Deep insert, or a change set of ``$batch``: validated against this transaction's view (its Datastream
        may be new in it); returns the stored id (an identical one already stored: that one's). Subscribers get
        the row once the transaction commits."""
        prefix = f"{field}." if field else ""
        found = self.store.entities.datastream_in_tx(tx, ds_id)
        if found is None:
            raise bad_request(f"Datastream({ds_id}) does not exist", field=prefix + "Datastream")
        otype, uom_text, thing_id = found
        if otype == model.OM_COMPLEX:  # a MultiDatastream: its unitOfMeasurements, one per value
            info = obsin.DatastreamInfo(ds_id, otype, None, thing_id, components(uom_text))
        else:
            info = obsin.DatastreamInfo(ds_id, otype, unit_symbol(uom_text), thing_id)
        row, _ = self._observation_table(body, ds_id, prefix, info)
        if isinstance(body.get("FeatureOfInterest"), dict):
            foi_id: int | None = self._create(
                tx, model.FEATURE_OF_INTEREST, body["FeatureOfInterest"], prefix + "FeatureOfInterest", None
            )
        else:
            made: list[int] = []
            foi_id = obsin.location_fois_in(tx, [ds_id], made)[ds_id]
            for feature in made:
                self._announce(model.FEATURE_OF_INTEREST, feature)
            if foi_id is None:
                raise bad_request("no FeatureOfInterest and the Thing has no Location", field=field or "body")
        row["feature_of_interest_id"] = foi_id
        new_id = row["id"] = int(self.store.allocate_ids("observations", 1)[0])
        batch = obsin.rows_to_batch([row])
        res = self.store.append_observations(tx, batch)
        if res.conflicting:
            raise conflict(
                "two Observations with the same phenomenonTime, resultTime, FeatureOfInterest and parameters and "
                "different results",
                field=prefix + "phenomenonTime",
            )
        if new_id in res.duplicate_of:
            return res.duplicate_of[new_id]
        self._after_commit(lambda: self.bus.observations(batch))
        return new_id

    def _update_observation(self, tx: Transaction, obs_id: int, body: dict[str, Any], values: dict[str, Any]) -> None:
        if "phenomenonTime" in body:
            self._check_new_phenomenon_time(values["phenomenon_time"])
        key = self.store.entities.observation_key(tx, obs_id)
        assert key is not None  # resolved by the caller
        ds_id, _ = key
        if "result" in body:
            values.pop("result", None)
            found = self.store.entities.datastream_in_tx(tx, ds_id)
            assert found is not None
            values.update(results.result_columns(body["result"], found[0]))
        if values.pop("datastream_id", ds_id) != ds_id:
            raise bad_request(
                "an Observation cannot move to another Datastream; delete and recreate it", field="Datastream"
            )
        if not values:
            return
        if self.store.entities.observation_like(tx, obs_id, values) is not None:
            field = next((f for f in ("phenomenonTime", "resultTime", "FeatureOfInterest", "parameters") if f in body),
                         "phenomenonTime")  # fmt: skip
            raise conflict(
                "the Datastream already has an Observation with this phenomenonTime, resultTime, FeatureOfInterest "
                "and parameters",
                field=field,
            )
        self.store.entities.update_observation(tx, obs_id, values)
        if values.get("feature_of_interest_id") is not None:
            pair = (ds_id, int(values["feature_of_interest_id"]))
            self._after_commit(lambda: self.observed_areas.add([pair]))

    def _check_new_phenomenon_time(self, start: datetime | None) -> None:
        # A PATCH is held to the rules of a POST: the column is NOT NULL, and bulk ingest would refuse the time.
        if start is None:
            raise bad_request("phenomenonTime may not be null", field="phenomenonTime")
        if start > datetime.now(UTC) + self.max_future:
            raise bad_request("phenomenonTime is too far in the future", field="phenomenonTime")
        if start.year < 1900:
            raise bad_request("phenomenonTime is before 1900", field="phenomenonTime")

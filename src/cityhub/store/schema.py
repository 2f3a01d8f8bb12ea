"""Tables of the SensorThings model plus CityHub's derived tables, in SQL both DuckDB and PostgreSQL
accept (JSON members are stored as JSON text)."""

from __future__ import annotations

TABLES: dict[str, str] = {
    "things": """
        id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, description VARCHAR NOT NULL, properties JSON""",
    "locations": """
        id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, description VARCHAR NOT NULL,
        encoding_type VARCHAR NOT NULL, location JSON NOT NULL, properties JSON""",
    "thing_locations": """
        thing_id BIGINT NOT NULL, location_id BIGINT NOT NULL, PRIMARY KEY (thing_id, location_id)""",
    "historical_locations": """
        id BIGINT PRIMARY KEY, time TIMESTAMPTZ NOT NULL, thing_id BIGINT NOT NULL""",
    "historical_location_locations": """
        historical_location_id BIGINT NOT NULL, location_id BIGINT NOT NULL,
        PRIMARY KEY (historical_location_id, location_id)""",
    "sensors": """
        id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, description VARCHAR NOT NULL,
        encoding_type VARCHAR NOT NULL, metadata VARCHAR NOT NULL, properties JSON""",
    "observed_properties": """
        id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, definition VARCHAR NOT NULL,
        description VARCHAR NOT NULL, properties JSON""",
    "datastreams": """
        id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, description VARCHAR NOT NULL,
        observation_type VARCHAR NOT NULL, unit_of_measurement JSON NOT NULL, observed_area JSON,
        properties JSON, thing_id BIGINT NOT NULL, sensor_id BIGINT NOT NULL,
        observed_property_id BIGINT NOT NULL""",
    # MultiDatastreams (model.MULTI_DATASTREAM): ids from the Datastreams' sequence (ID_SPACE). Its ObservedProperties
    # are its result's values: ``rank`` is the position of each (0, 1, ...), and one may be there twice.
    "multi_datastreams": """
        id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, description VARCHAR NOT NULL,
        observation_type VARCHAR NOT NULL, unit_of_measurements JSON NOT NULL,
        multi_observation_data_types JSON NOT NULL, observed_area JSON, properties JSON,
        thing_id BIGINT NOT NULL, sensor_id BIGINT NOT NULL""",
    "multi_datastream_observed_properties": """
        multi_datastream_id BIGINT NOT NULL, observed_property_id BIGINT NOT NULL, rank INTEGER NOT NULL,
        PRIMARY KEY (multi_datastream_id, rank)""",
    # Tasking Core (model.ACTUATOR, TASKING_CAPABILITY, TASK).
    "actuators": """
        id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, description VARCHAR NOT NULL,
        encoding_type VARCHAR NOT NULL, metadata VARCHAR NOT NULL, properties JSON""",
    "tasking_capabilities": """
        id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, description VARCHAR NOT NULL, tasking_parameters JSON NOT NULL,
        properties JSON, thing_id BIGINT NOT NULL, actuator_id BIGINT NOT NULL""",
    "tasks": """
        id BIGINT PRIMARY KEY, creation_time TIMESTAMPTZ NOT NULL, tasking_parameters JSON NOT NULL,
        tasking_capability_id BIGINT NOT NULL""",
    "features_of_interest": """
        id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, description VARCHAR NOT NULL,
        encoding_type VARCHAR NOT NULL, feature JSON NOT NULL, properties JSON,
        from_location_id BIGINT""",
    # The duplicate key (DUPLICATE_KEY below) makes a resent Observation a no-op; ``variant`` numbers the
    # Observations of one Datastream and phenomenonTime that differ in it (0 for the first, as almost all are).
    "observations": """
        id BIGINT NOT NULL, datastream_id BIGINT NOT NULL, phenomenon_time TIMESTAMPTZ NOT NULL,
        phenomenon_time_end TIMESTAMPTZ, result_time TIMESTAMPTZ, result_number DOUBLE PRECISION,
        result_string VARCHAR, result_json VARCHAR, result_quality JSON, valid_time_start TIMESTAMPTZ,
        valid_time_end TIMESTAMPTZ, parameters JSON, feature_of_interest_id BIGINT,
        variant INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (datastream_id, phenomenon_time, variant)""",
    # Each FeatureOfInterest a Datastream's Observations have had, kept as they are stored: its observedArea is the
    # hull of their geometries (store/ops/geo.py).
    "datastream_features": """
        datastream_id BIGINT NOT NULL, feature_of_interest_id BIGINT NOT NULL,
        PRIMARY KEY (datastream_id, feature_of_interest_id)""",
    # Latest value and extent per Datastream, kept on ingest: "latest of 10,000 Datastreams" is a lookup.
    # last_end: the latest end of a phenomenonTime (an interval's end, an instant's time); result_first/last: the
    # extent of resultTime. Datastream.phenomenonTime and resultTime are these (SensorThings §8.2.4).
    "ds_latest": """
        datastream_id BIGINT PRIMARY KEY, phenomenon_time TIMESTAMPTZ NOT NULL,
        result_number DOUBLE PRECISION, result_string VARCHAR, result_json VARCHAR, observation_id BIGINT,
        first_time TIMESTAMPTZ NOT NULL, count BIGINT NOT NULL, last_end TIMESTAMPTZ, result_first TIMESTAMPTZ,
        result_last TIMESTAMPTZ""",
    # Hourly roll-up of numeric results (UTC hours), kept on ingest; days are built from hours.
    "obs_hourly": """
        datastream_id BIGINT NOT NULL, hour TIMESTAMPTZ NOT NULL, n BIGINT NOT NULL,
        total DOUBLE PRECISION NOT NULL, minimum DOUBLE PRECISION NOT NULL,
        maximum DOUBLE PRECISION NOT NULL, PRIMARY KEY (datastream_id, hour)""",
    # Id ranges of committed Observations not yet folded into ds_latest and obs_hourly (deferred so that
    # many small commits share one roll-up); recovered at start-up after a crash.
    "rollup_pending": """
        lo BIGINT NOT NULL, hi BIGINT NOT NULL""",
    # Messages that could not become Observations (malformed MQTT payloads, unknown Datastreams, conflicts),
    # kept with the reason so that nothing a device sent is silently dropped.
    "deadletters": """
        id BIGINT PRIMARY KEY, received_at TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL, topic VARCHAR,
        payload VARCHAR, payload_encoding VARCHAR NOT NULL, reason VARCHAR NOT NULL, field VARCHAR""",
    # Alerts (cityhub.alerts): rules, alerts with their event history, per-(rule, subject) evaluation state so a
    # restart neither re-raises nor loses an alert, and webhooks with their delivery log.
    "alert_rules": """
        id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, ruleset VARCHAR, enabled BOOLEAN NOT NULL, spec JSON NOT NULL,
        created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, created_by VARCHAR""",
    "alerts": """
        id BIGINT PRIMARY KEY, rule_id BIGINT NOT NULL, rule_name VARCHAR NOT NULL, subject_type VARCHAR NOT NULL,
        subject_id BIGINT NOT NULL, subject_name VARCHAR, state VARCHAR NOT NULL, level INTEGER NOT NULL,
        level_name VARCHAR, severity VARCHAR NOT NULL, opened_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
        acknowledged_at TIMESTAMPTZ, acknowledged_by VARCHAR, resolved_at TIMESTAMPTZ, resolved_by VARCHAR,
        trigger_time TIMESTAMPTZ, since TIMESTAMPTZ, value DOUBLE PRECISION, message VARCHAR, details JSON""",
    "alert_events": """
        id BIGINT PRIMARY KEY, alert_id BIGINT NOT NULL, time TIMESTAMPTZ NOT NULL, kind VARCHAR NOT NULL,
        state VARCHAR NOT NULL, level INTEGER NOT NULL, actor VARCHAR, phenomenon_time TIMESTAMPTZ,
        value DOUBLE PRECISION, payload JSON""",
    "alert_state": """
        state_key BIGINT PRIMARY KEY, rule_id BIGINT NOT NULL, subject_id BIGINT NOT NULL, state JSON NOT NULL""",
    "webhooks": """
        id BIGINT PRIMARY KEY, url VARCHAR NOT NULL, secret VARCHAR NOT NULL, filter JSON, description VARCHAR,
        created_at TIMESTAMPTZ NOT NULL, created_by VARCHAR""",
    "webhook_deliveries": """
        id BIGINT PRIMARY KEY, webhook_id BIGINT NOT NULL, event_id BIGINT NOT NULL, alert_id BIGINT NOT NULL,
        event VARCHAR NOT NULL, status VARCHAR NOT NULL, attempts INTEGER NOT NULL, created_at TIMESTAMPTZ NOT NULL,
        next_attempt_at TIMESTAMPTZ, delivered_at TIMESTAMPTZ, last_status INTEGER, last_error VARCHAR,
        payload VARCHAR NOT NULL, log JSON""",
    "api_keys": """
        id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, role VARCHAR NOT NULL, key_hash VARCHAR NOT NULL UNIQUE,
        thing_id BIGINT, created_at TIMESTAMPTZ NOT NULL, revoked BOOLEAN NOT NULL DEFAULT FALSE""",
}

VIEWS: dict[str, str] = {
    # Datastream.phenomenonTime is derived from its Observations (SensorThings §8.2.4).
    "datastreams_v": """
        SELECT d.*, l.first_time AS phenomenon_time_start,
               coalesce(l.last_end, l.phenomenon_time) AS phenomenon_time_end,
               l.result_first AS result_time_start, l.result_last AS result_time_end
        FROM datastreams d LEFT JOIN ds_latest l ON l.datastream_id = d.id""",
    "multi_datastreams_v": """
        SELECT d.*, l.first_time AS phenomenon_time_start,
               coalesce(l.last_end, l.phenomenon_time) AS phenomenon_time_end,
               l.result_first AS result_time_start, l.result_last AS result_time_end
        FROM multi_datastreams d LEFT JOIN ds_latest l ON l.datastream_id = d.id""",
}

# Tables whose reads go through a view.
READ_VIEW = {"datastreams": "datastreams_v", "multi_datastreams": "multi_datastreams_v"}
# Tables whose ids come from another table's sequence: an Observation's datastream_id names a Datastream or a
# MultiDatastream, never both.
ID_SPACE = {"multi_datastreams": "datastreams"}

ENTITY_TABLES = (
    "things",
    "locations",
    "historical_locations",
    "sensors",
    "observed_properties",
    "datastreams",
    "multi_datastreams",
    "features_of_interest",
    "observations",
    "actuators",
    "tasking_capabilities",
    "tasks",
)

# Tables of cityhub.alerts whose ids come from Store.allocate_ids.
ALERT_TABLES = ("alert_rules", "alerts", "alert_events", "webhooks", "webhook_deliveries")


def ddl() -> list[str]:
    stmts = [f"CREATE TABLE IF NOT EXISTS {name} ({cols.strip()})" for name, cols in TABLES.items()]
    stmts += [f"CREATE OR REPLACE VIEW {name} AS {sql.strip()}" for name, sql in VIEWS.items()]
    return stmts


def replace_in_place(stage: str) -> tuple[str, str]:
    """The two statements both backends run to replace stored Observations from the staged rows of ``stage`` (same
    key): the rows take the new results and keep their ids, and a replaced row that is its Datastream's latest
    changes the latest value, nothing else there."""
    return (
        f"""UPDATE observations o SET phenomenon_time_end = b.phenomenon_time_end,
               result_time = b.result_time, result_number = b.result_number,
               result_string = b.result_string, result_json = b.result_json,
               result_quality = b.result_quality, valid_time_start = b.valid_time_start,
               valid_time_end = b.valid_time_end, parameters = b.parameters,
               feature_of_interest_id = b.feature_of_interest_id
           FROM {stage} b
           WHERE o.datastream_id = b.datastream_id AND o.phenomenon_time = b.phenomenon_time""",
        f"""UPDATE ds_latest l SET result_number = b.result_number, result_string = b.result_string,
               result_json = b.result_json
           FROM {stage} b
           WHERE l.datastream_id = b.datastream_id AND l.phenomenon_time = b.phenomenon_time""",
    )


# The duplicate key of an Observation (issue 13, point 2): stored Observation ``o`` and new row ``b`` are one
# Observation sent twice when they share Datastream, phenomenonTime (both ends of an interval), resultTime,
# FeatureOfInterest and parameters (as JSON text: a re-send carries the same text). Two that differ in any of these
# are two Observations, as SensorThings allows and FROST's test data has (a forecast issued twice for one hour,
# hourly and daily means starting at one time, one instrument reporting on two features). Result, resultQuality and
# validTime are what was observed: a re-send that differs there is a conflict, refused, never a second Observation.
# The index (Datastream, phenomenonTime, variant) finds candidates; the rest is compared on them.
DUPLICATE_KEY_COLUMNS = (
    "phenomenon_time", "phenomenon_time_end", "result_time", "feature_of_interest_id", "parameters"
)  # and Datastream  # fmt: skip
DUPLICATE_KEY = """o.datastream_id = b.datastream_id AND o.phenomenon_time = b.phenomenon_time
    AND o.phenomenon_time_end IS NOT DISTINCT FROM b.phenomenon_time_end
    AND o.result_time IS NOT DISTINCT FROM b.result_time
    AND o.feature_of_interest_id IS NOT DISTINCT FROM b.feature_of_interest_id
    AND CAST(o.parameters AS VARCHAR) IS NOT DISTINCT FROM CAST(b.parameters AS VARCHAR)"""


def variants_to_insert(stage: str) -> str:
    """A query both backends run: ``(id, variant)`` of the staged rows of ``stage`` that are new Observations, each
    the first of its duplicate key in the batch (by id) whose key is not stored, with the next free ``variant``
    of its (Datastream, phenomenonTime). The other staged rows are duplicates, of a stored row or of an earlier
    row of the batch (found after the insert by DUPLICATE_KEY)."""
    return f"""
        WITH b AS (
            SELECT id, datastream_id, phenomenon_time, phenomenon_time_end, result_time, feature_of_interest_id,
                   parameters,
                   row_number() OVER (PARTITION BY datastream_id, phenomenon_time, phenomenon_time_end, result_time,
                                      feature_of_interest_id, CAST(parameters AS VARCHAR) ORDER BY id) AS nth
            FROM {stage}),
        n AS (
            SELECT b.id, b.datastream_id, b.phenomenon_time FROM b
            WHERE b.nth = 1 AND NOT EXISTS (SELECT 1 FROM observations o WHERE {DUPLICATE_KEY}))
        SELECT n.id, CAST(coalesce((SELECT max(o.variant) FROM observations o
                                    WHERE o.datastream_id = n.datastream_id AND o.phenomenon_time = n.phenomenon_time),
                                   -1)
                          + row_number() OVER (PARTITION BY n.datastream_id, n.phenomenon_time ORDER BY n.id)
                          AS INTEGER) AS variant
        FROM n"""


# Whether stored Observation ``o`` and new row ``b`` (same duplicate key) hold the same result: a
# re-send to store once, not a conflict. As JSON compares them: 10 and 10.0 are the same number (an integer keeps
# its exact text in result_json, a float has none there); two integers compare exactly (two past 2**53 can share
# a double).
SAME_RESULT = """(o.result_number IS NOT DISTINCT FROM b.result_number
    AND o.result_string IS NOT DISTINCT FROM b.result_string
    AND (o.result_json IS NOT DISTINCT FROM b.result_json
         OR (o.result_number IS NOT NULL AND (o.result_json IS NULL OR b.result_json IS NULL))))"""

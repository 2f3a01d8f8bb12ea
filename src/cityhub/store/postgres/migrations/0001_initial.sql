-- CityHub on PostgreSQL/PostGIS, schema version 1: the SensorThings model, CityHub's derived tables, alerts,
-- webhooks and dead letters. The same tables and columns as the embedded store (cityhub/store/schema.py), plus
-- what a server database adds: PostGIS geometry columns with GiST indexes, Observations partitioned by month,
-- and a counter table from which every process takes ids.

-- GeoJSON text (a geometry or a Feature) -> geometry (SRID 4326); NULL where the text is not GeoJSON, so that a
-- malformed stored value never fails a query. IMMUTABLE: it feeds generated columns and their indexes.
CREATE FUNCTION ch_geom(doc json) RETURNS geometry LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF doc IS NULL OR json_typeof(doc) <> 'object' THEN
        RETURN NULL;
    END IF;
    IF doc ->> 'type' = 'Feature' THEN
        doc := doc -> 'geometry';
        IF doc IS NULL OR json_typeof(doc) <> 'object' THEN
            RETURN NULL;
        END IF;
    END IF;
    RETURN ST_SetSRID(ST_GeomFromGeoJSON(doc::text), 4326);
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END $$;

-- Lenient casts for $filter over JSON members (DuckDB's TRY_CAST): NULL where the text does not convert.
CREATE FUNCTION ch_try_float8(v text) RETURNS double precision LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN v::double precision;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END $$;

CREATE FUNCTION ch_try_bool(v text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN v::boolean;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END $$;

-- A DE-9IM pattern that is not one is a non-match (as on the embedded store), not an error.
CREATE FUNCTION ch_st_relate(a geometry, b geometry, pattern text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
PARALLEL SAFE AS $$
BEGIN
    RETURN ST_Relate(a, b, pattern);
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END $$;

-- Next id per table, shared by every hub process: one UPDATE ... RETURNING takes a block atomically.
CREATE TABLE id_counters (name text PRIMARY KEY, next_id bigint NOT NULL);
INSERT INTO id_counters (name, next_id)
SELECT t, 1 FROM unnest(ARRAY['things', 'locations', 'historical_locations', 'sensors', 'observed_properties',
    'datastreams', 'features_of_interest', 'observations', 'api_keys', 'deadletters', 'alert_rules', 'alerts',
    'alert_events', 'webhooks', 'webhook_deliveries']) AS t;

CREATE TABLE things (
    id bigint PRIMARY KEY, name text NOT NULL, description text NOT NULL, properties json);
CREATE TABLE locations (
    id bigint PRIMARY KEY, name text NOT NULL, description text NOT NULL, encoding_type text NOT NULL,
    location json NOT NULL, properties json,
    location_geom geometry GENERATED ALWAYS AS (ch_geom(location)) STORED);
CREATE INDEX locations_geom ON locations USING gist (location_geom);
CREATE TABLE thing_locations (
    thing_id bigint NOT NULL, location_id bigint NOT NULL, PRIMARY KEY (thing_id, location_id));
CREATE INDEX thing_locations_location ON thing_locations (location_id);
CREATE TABLE historical_locations (id bigint PRIMARY KEY, time timestamptz NOT NULL, thing_id bigint NOT NULL);
CREATE INDEX historical_locations_thing ON historical_locations (thing_id);
CREATE TABLE historical_location_locations (
    historical_location_id bigint NOT NULL, location_id bigint NOT NULL,
    PRIMARY KEY (historical_location_id, location_id));
CREATE TABLE sensors (
    id bigint PRIMARY KEY, name text NOT NULL, description text NOT NULL, encoding_type text NOT NULL,
    metadata text NOT NULL, properties json);
CREATE TABLE observed_properties (
    id bigint PRIMARY KEY, name text NOT NULL, definition text NOT NULL, description text NOT NULL, properties json);
CREATE TABLE datastreams (
    id bigint PRIMARY KEY, name text NOT NULL, description text NOT NULL, observation_type text NOT NULL,
    unit_of_measurement json NOT NULL, observed_area json, properties json, thing_id bigint NOT NULL,
    sensor_id bigint NOT NULL, observed_property_id bigint NOT NULL,
    observed_area_geom geometry GENERATED ALWAYS AS (ch_geom(observed_area)) STORED);
CREATE INDEX datastreams_thing ON datastreams (thing_id);
CREATE INDEX datastreams_sensor ON datastreams (sensor_id);
CREATE INDEX datastreams_observed_property ON datastreams (observed_property_id);
CREATE INDEX datastreams_geom ON datastreams USING gist (observed_area_geom);
CREATE TABLE features_of_interest (
    id bigint PRIMARY KEY, name text NOT NULL, description text NOT NULL, encoding_type text NOT NULL,
    feature json NOT NULL, properties json, from_location_id bigint,
    feature_geom geometry GENERATED ALWAYS AS (ch_geom(feature)) STORED);
CREATE INDEX features_of_interest_geom ON features_of_interest USING gist (feature_geom);
CREATE INDEX features_of_interest_location ON features_of_interest (from_location_id);

-- Observations by month of phenomenonTime (cityhub/store/postgres/partitions.py makes the partitions ahead of
-- need). The natural key (Datastream, phenomenonTime) makes a resent Observation a no-op; ids are unique by
-- construction (id_counters). Ids grow with the order rows are stored in, so a BRIN index finds an id among a
-- few pages of each partition, at a fraction of a B-tree's cost per row stored (10,000 rows: 26 ms instead of
-- 40 ms to COPY with every index).
CREATE TABLE observations (
    id bigint NOT NULL, datastream_id bigint NOT NULL, phenomenon_time timestamptz NOT NULL,
    phenomenon_time_end timestamptz, result_time timestamptz, result_number double precision,
    result_string text, result_json text, result_quality json, valid_time_start timestamptz,
    valid_time_end timestamptz, parameters json, feature_of_interest_id bigint,
    PRIMARY KEY (datastream_id, phenomenon_time)
) PARTITION BY RANGE (phenomenon_time);
CREATE INDEX observations_id ON observations USING brin (id) WITH (pages_per_range = 16, autosummarize = on);
-- Time ranges across Datastreams ($filter on phenomenonTime alone, exports): rows arrive roughly in time order,
-- so a BRIN index narrows a partition to the pages of the range (1 M rows, one hour: 42 ms -> 14 ms).
CREATE INDEX observations_time ON observations USING brin (phenomenon_time)
    WITH (pages_per_range = 16, autosummarize = on);
CREATE INDEX observations_foi ON observations (feature_of_interest_id);

-- Latest value and extent per Datastream, kept in the transaction that stores the Observations. Both roll-ups
-- are updated in place with every batch: room left in each page lets PostgreSQL write the new row version beside
-- the old one without touching the key index (a "HOT" update).
CREATE TABLE ds_latest (
    datastream_id bigint PRIMARY KEY, phenomenon_time timestamptz NOT NULL, result_number double precision,
    result_string text, result_json text, observation_id bigint, first_time timestamptz NOT NULL,
    count bigint NOT NULL) WITH (fillfactor = 50);
-- Hourly roll-up of numeric results (UTC hours); days are built from hours.
CREATE TABLE obs_hourly (
    datastream_id bigint NOT NULL, hour timestamptz NOT NULL, n bigint NOT NULL, total double precision NOT NULL,
    minimum double precision NOT NULL, maximum double precision NOT NULL, PRIMARY KEY (datastream_id, hour))
    WITH (fillfactor = 70);
-- Kept for the embedded store's deferred roll-ups; on PostgreSQL roll-ups commit with their rows and this stays empty.
CREATE TABLE rollup_pending (lo bigint NOT NULL, hi bigint NOT NULL);

CREATE TABLE deadletters (
    id bigint PRIMARY KEY, received_at timestamptz NOT NULL, source text NOT NULL, topic text, payload text,
    payload_encoding text NOT NULL, reason text NOT NULL, field text);
CREATE INDEX deadletters_received ON deadletters (received_at);

CREATE TABLE alert_rules (
    id bigint PRIMARY KEY, name text NOT NULL, ruleset text, enabled boolean NOT NULL, spec json NOT NULL,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, created_by text);
CREATE TABLE alerts (
    id bigint PRIMARY KEY, rule_id bigint NOT NULL, rule_name text NOT NULL, subject_type text NOT NULL,
    subject_id bigint NOT NULL, subject_name text, state text NOT NULL, level integer NOT NULL, level_name text,
    severity text NOT NULL, opened_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
    acknowledged_at timestamptz, acknowledged_by text, resolved_at timestamptz, resolved_by text,
    trigger_time timestamptz, since timestamptz, value double precision, message text, details json);
CREATE INDEX alerts_rule ON alerts (rule_id);
CREATE TABLE alert_events (
    id bigint PRIMARY KEY, alert_id bigint NOT NULL, time timestamptz NOT NULL, kind text NOT NULL,
    state text NOT NULL, level integer NOT NULL, actor text, phenomenon_time timestamptz, value double precision,
    payload json);
CREATE INDEX alert_events_alert ON alert_events (alert_id);
CREATE TABLE alert_state (
    state_key bigint PRIMARY KEY, rule_id bigint NOT NULL, subject_id bigint NOT NULL, state json NOT NULL);
CREATE TABLE webhooks (
    id bigint PRIMARY KEY, url text NOT NULL, secret text NOT NULL, filter json, description text,
    created_at timestamptz NOT NULL, created_by text);
CREATE TABLE webhook_deliveries (
    id bigint PRIMARY KEY, webhook_id bigint NOT NULL, event_id bigint NOT NULL, alert_id bigint NOT NULL,
    event text NOT NULL, status text NOT NULL, attempts integer NOT NULL, created_at timestamptz NOT NULL,
    next_attempt_at timestamptz, delivered_at timestamptz, last_status integer, last_error text,
    payload text NOT NULL, log json);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE TABLE api_keys (
    id bigint PRIMARY KEY, name text NOT NULL, role text NOT NULL, key_hash text NOT NULL UNIQUE, thing_id bigint,
    created_at timestamptz NOT NULL, revoked boolean NOT NULL DEFAULT FALSE);

-- Datastream.phenomenonTime is derived from its Observations (SensorThings 8.2.4).
CREATE VIEW datastreams_v AS
SELECT d.*, l.first_time AS phenomenon_time_start, l.phenomenon_time AS phenomenon_time_end,
       CAST(NULL AS timestamptz) AS result_time_start, CAST(NULL AS timestamptz) AS result_time_end
FROM datastreams d LEFT JOIN ds_latest l ON l.datastream_id = d.id;

-- A $filter's WKT literal (SRID 4326); NULL where the text is not WKT, as on the embedded store.
CREATE FUNCTION ch_wkt(wkt text) RETURNS geometry LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN ST_GeomFromText(wkt, 4326);
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END $$;

-- Observations far from today share two partitions (before 2000, from 2100): months in between get their own
-- partition when first needed, so that a stray timestamp cannot make thousands of tables.
CREATE TABLE observations_before_2000 PARTITION OF observations FOR VALUES FROM (MINVALUE) TO ('2000-01-01 00:00:00+00');
CREATE TABLE observations_from_2100 PARTITION OF observations FOR VALUES FROM ('2100-01-01 00:00:00+00') TO (MAXVALUE);

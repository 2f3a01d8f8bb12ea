-- The MultiDatastream extension (issue 13, point 6; cityhub/model.py MULTI_DATASTREAM). Ids come from the
-- Datastreams' counter (schema.ID_SPACE): an Observation's datastream_id names a Datastream or a MultiDatastream,
-- so Observations, their key, roll-ups and latest values serve both without another column.
CREATE TABLE multi_datastreams (
    id bigint PRIMARY KEY, name text NOT NULL, description text NOT NULL, observation_type text NOT NULL,
    unit_of_measurements json NOT NULL, multi_observation_data_types json NOT NULL, observed_area json,
    properties json, thing_id bigint NOT NULL, sensor_id bigint NOT NULL,
    observed_area_geom geometry GENERATED ALWAYS AS (ch_geom(observed_area)) STORED);
CREATE INDEX multi_datastreams_thing ON multi_datastreams (thing_id);
CREATE INDEX multi_datastreams_sensor ON multi_datastreams (sensor_id);
CREATE INDEX multi_datastreams_geom ON multi_datastreams USING gist (observed_area_geom);
CREATE TABLE multi_datastream_observed_properties (
    multi_datastream_id bigint NOT NULL, observed_property_id bigint NOT NULL,
    PRIMARY KEY (multi_datastream_id, observed_property_id));
CREATE INDEX multi_datastream_observed_properties_op ON multi_datastream_observed_properties (observed_property_id);
CREATE VIEW multi_datastreams_v AS
SELECT d.*, l.first_time AS phenomenon_time_start, l.phenomenon_time AS phenomenon_time_end,
       CAST(NULL AS timestamptz) AS result_time_start, CAST(NULL AS timestamptz) AS result_time_end
FROM multi_datastreams d LEFT JOIN ds_latest l ON l.datastream_id = d.id;

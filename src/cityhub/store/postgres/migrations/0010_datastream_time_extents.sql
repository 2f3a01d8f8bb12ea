-- Datastream.phenomenonTime ends at the latest end of its Observations' phenomenonTime (an interval's end, not
-- its start), and Datastream.resultTime is the extent of their resultTime (SensorThings §8.2.4): kept in
-- ds_latest with the other roll-ups, made here once from the stored Observations (one scan of them).
ALTER TABLE ds_latest ADD COLUMN last_end timestamptz, ADD COLUMN result_first timestamptz,
    ADD COLUMN result_last timestamptz;
UPDATE ds_latest l SET last_end = x.last_end, result_first = x.result_first, result_last = x.result_last
FROM (SELECT datastream_id, max(coalesce(phenomenon_time_end, phenomenon_time)) AS last_end,
             min(result_time) AS result_first, max(result_time) AS result_last
      FROM observations GROUP BY datastream_id) x
WHERE l.datastream_id = x.datastream_id;
CREATE OR REPLACE VIEW datastreams_v AS
SELECT d.*, l.first_time AS phenomenon_time_start, coalesce(l.last_end, l.phenomenon_time) AS phenomenon_time_end,
       l.result_first AS result_time_start, l.result_last AS result_time_end
FROM datastreams d LEFT JOIN ds_latest l ON l.datastream_id = d.id;
CREATE OR REPLACE VIEW multi_datastreams_v AS
SELECT d.*, l.first_time AS phenomenon_time_start, coalesce(l.last_end, l.phenomenon_time) AS phenomenon_time_end,
       l.result_first AS result_time_start, l.result_last AS result_time_end
FROM multi_datastreams d LEFT JOIN ds_latest l ON l.datastream_id = d.id;

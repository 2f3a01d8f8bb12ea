-- The duplicate key of an Observation grows resultTime, FeatureOfInterest and parameters (issue 13; see
-- cityhub/store/schema.py, DUPLICATE_KEY): Observations of one Datastream at one phenomenonTime that differ there
-- are all kept, numbered by ``variant`` (0 for the first). Every stored row keeps variant 0, as the old key allowed
-- one row per Datastream and phenomenonTime. The primary key is rebuilt on every partition (a few seconds per
-- million rows); adding the column with a constant default rewrites nothing.
ALTER TABLE observations ADD COLUMN variant integer NOT NULL DEFAULT 0;
ALTER TABLE observations DROP CONSTRAINT observations_pkey;
ALTER TABLE observations ADD PRIMARY KEY (datastream_id, phenomenon_time, variant);

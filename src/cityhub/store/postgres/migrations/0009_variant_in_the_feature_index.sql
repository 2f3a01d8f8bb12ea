-- A page of Observations is chosen by the primary key, which since migration 0005 ends in ``variant``
-- (PgDialect.row_key): the covering index of (FeatureOfInterest, phenomenonTime) carries it too, so that a
-- feature-and-time filter still picks its page from the index alone. Without it the page held every Observation
-- sharing a Datastream and start time with a match, whether it matched or not.
DROP INDEX observations_foi_time;
CREATE INDEX observations_foi_time ON observations (feature_of_interest_id, phenomenon_time)
    INCLUDE (id, datastream_id, phenomenon_time_end, variant);

-- Observations of some FeaturesOfInterest in a time range: a $filter on FeatureOfInterest/feature (geo.distance,
-- st_within...) with a phenomenonTime range finds the features through their GiST index, then each feature's rows
-- of the range through this index. The key (id, datastream_id) rides along, so that the page of results is chosen
-- from the index alone and only its rows are read (the rows of one feature are spread one per batch over the
-- table: 10,000 Things, 5 M rows, the Observations of an hour within 0.05 degrees: 3.1 s with the old index on
-- feature_of_interest_id alone, 41 ms with this one). It serves what the old one did (deleting a feature's rows).
DROP INDEX observations_foi;
CREATE INDEX observations_foi_time ON observations (feature_of_interest_id, phenomenon_time) INCLUDE (id, datastream_id);

-- Deferred roll-ups: each writer claims its own pending ranges by their first id, on a table that churns (a row
-- per commit, deleted by the next fold): without an index every claim read the whole table and its dead rows
-- (21 ms a claim under single POSTs from two processes).
CREATE INDEX rollup_pending_lo ON rollup_pending (lo);

-- Observations by id: a B-tree instead of BRIN. Ids grow as rows are stored, so each B-tree insert goes to the
-- rightmost page (cheap), while BRIN left the pages stored since its last summary unsummarized, and every look-up
-- read all of them: the rows just stored, which is what the look-ups by id want (a relayed commit read back by
-- another process, a fold of another process's pending rows) took ~100 ms each under load.
DROP INDEX observations_id;
CREATE INDEX observations_id ON observations (id);

-- phenomenonTime is a time interval when phenomenon_time_end is set (NULL: an instant). A comparison with a time
-- reads both ends (an interval is before an instant only if it ends before it), so the end rides along in the index
-- that selects a page of Observations by feature and time (migration 0002): the page is still chosen from the
-- index alone, without reading each candidate row for its end.
DROP INDEX observations_foi_time;
CREATE INDEX observations_foi_time ON observations (feature_of_interest_id, phenomenon_time)
    INCLUDE (id, datastream_id, phenomenon_time_end);

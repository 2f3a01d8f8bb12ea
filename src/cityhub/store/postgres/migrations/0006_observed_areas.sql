-- A Datastream's observedArea is the convex hull of its FeaturesOfInterest (issue 13, point 4; see
-- cityhub/store/ops/geo.py): the (Datastream, FeatureOfInterest) pairs are kept as Observations are stored, and
-- here made once from the Observations already stored (one scan of them).
CREATE TABLE datastream_features (
    datastream_id bigint NOT NULL, feature_of_interest_id bigint NOT NULL,
    PRIMARY KEY (datastream_id, feature_of_interest_id));
INSERT INTO datastream_features
    SELECT DISTINCT datastream_id, feature_of_interest_id FROM observations WHERE feature_of_interest_id IS NOT NULL;
UPDATE datastreams d SET observed_area = (
    SELECT ST_AsGeoJSON(ST_ConvexHull(ST_Collect(f.feature_geom)))::json
    FROM datastream_features x JOIN features_of_interest f ON f.id = x.feature_of_interest_id
    WHERE x.datastream_id = d.id)
WHERE d.id IN (SELECT datastream_id FROM datastream_features);

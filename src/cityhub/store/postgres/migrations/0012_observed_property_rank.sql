-- A MultiDatastream's ObservedProperties are its result's values in order, and the same one may be there twice
-- (two sensors of one property): each link row gets its position, which keys it. The links stored so far were
-- read back by ObservedProperty id, so that order becomes their position: what clients saw stays what they see.
ALTER TABLE multi_datastream_observed_properties ADD COLUMN rank integer;
UPDATE multi_datastream_observed_properties l SET rank = x.rank
FROM (SELECT multi_datastream_id, observed_property_id,
             (row_number() OVER (PARTITION BY multi_datastream_id ORDER BY observed_property_id) - 1)::integer AS rank
      FROM multi_datastream_observed_properties) x
WHERE l.multi_datastream_id = x.multi_datastream_id AND l.observed_property_id = x.observed_property_id;
ALTER TABLE multi_datastream_observed_properties ALTER COLUMN rank SET NOT NULL;
ALTER TABLE multi_datastream_observed_properties DROP CONSTRAINT multi_datastream_observed_properties_pkey;
ALTER TABLE multi_datastream_observed_properties ADD PRIMARY KEY (multi_datastream_id, rank);

-- SensorThings Part 2, Tasking Core (issue 13, point 6; cityhub/model.py ACTUATOR, TASKING_CAPABILITY, TASK).
CREATE TABLE actuators (
    id bigint PRIMARY KEY, name text NOT NULL, description text NOT NULL, encoding_type text NOT NULL,
    metadata text NOT NULL, properties json);
CREATE TABLE tasking_capabilities (
    id bigint PRIMARY KEY, name text NOT NULL, description text NOT NULL, tasking_parameters json NOT NULL,
    properties json, thing_id bigint NOT NULL, actuator_id bigint NOT NULL);
CREATE INDEX tasking_capabilities_thing ON tasking_capabilities (thing_id);
CREATE INDEX tasking_capabilities_actuator ON tasking_capabilities (actuator_id);
CREATE TABLE tasks (
    id bigint PRIMARY KEY, creation_time timestamptz NOT NULL, tasking_parameters json NOT NULL,
    tasking_capability_id bigint NOT NULL);
CREATE INDEX tasks_capability ON tasks (tasking_capability_id, creation_time);
INSERT INTO id_counters (name, next_id) VALUES ('actuators', 1), ('tasking_capabilities', 1), ('tasks', 1);

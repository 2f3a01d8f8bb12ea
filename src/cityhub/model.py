"""The OGC SensorThings API v1.1 Part 1 (Sensing) data model as metadata.

One table of facts drives storage, validation, ``$filter`` resolution, ``$expand`` and the OpenAPI
schemas, so adding a property means touching one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Property kinds. "interval" is a SensorThings TM_Period or TM_Instant stored as two columns.
STRING, JSON, DATETIME, INTERVAL, GEOMETRY, RESULT, URI = (
    "string",
    "json",
    "datetime",
    "interval",
    "geometry",
    "result",
    "uri",
)

OBSERVATION_TYPES = {
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation",
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation",
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_TruthObservation",
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation",
}
OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
OM_COUNT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation"
OM_TRUTH = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_TruthObservation"
OM_CATEGORY = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation"
OM_OBSERVATION = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation"
# The one observationType of a MultiDatastream: its result is an array, one value per ObservedProperty.
OM_COMPLEX = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_ComplexObservation"

ENCODING_GEOJSON = "application/geo+json"
ENCODING_TYPES = {
    ENCODING_GEOJSON,
    "application/vnd.geo+json",
    "application/pdf",
    "http://www.opengis.net/doc/IS/SensorML/2.0",
    "text/html",
    "application/json",
    "text/plain",
}


@dataclass(frozen=True)
class Prop:
    """A property of an entity: its JSON name, SQL column(s) and kind."""

    name: str
    column: str
    kind: str
    required: bool = False
    column_end: str | None = None  # second column of an interval
    read_only: bool = False  # computed by the server (Datastream.phenomenonTime)


@dataclass(frozen=True)
class Nav:
    """A navigation property between two entity types.

    Exactly one of ``fk`` (to-one, foreign key on this table), ``remote_fk`` (to-many, foreign key on
    the target's table) or ``link`` (many-to-many, a link table ``(table, this_col, other_col)``).
    """

    name: str
    target: str
    many: bool
    fk: str | None = None
    remote_fk: str | None = None
    link: tuple[str, str, str] | None = None
    required: bool = False  # must be given (or be implied) when the entity is created
    # A link whose rows are positions: (the link table's position column, the column of the entity whose links it
    # orders). A MultiDatastream's ObservedProperties are its result's values in order, and one may be there twice;
    # named on both navigations of the link, since both must know the same pair may repeat.
    rank: tuple[str, str] | None = None

    @property
    def ordered(self) -> bool:
        """Whether this navigation lists its targets in link order, each as often as it is linked (the other side
        of a ranked link lists each entity once)."""
        return self.rank is not None and self.link is not None and self.rank[1] == self.link[1]


@dataclass(frozen=True)
class EntityType:
    name: str  # singular: "Thing"
    plural: str  # entity set: "Things"
    table: str
    props: tuple[Prop, ...]
    navs: tuple[Nav, ...]
    extra: dict[str, str] = field(default_factory=dict)

    def prop(self, name: str) -> Prop | None:
        for p in self.props:
            if p.name == name:
                return p
        return None

    def nav(self, name: str) -> Nav | None:
        for n in self.navs:
            if n.name == name:
                return n
        return None


_common = (
    Prop("name", "name", STRING, required=True),
    Prop("description", "description", STRING, required=True),
)
_props = Prop("properties", "properties", JSON)
# What a Datastream or MultiDatastream has of its Observations, kept by the server: observedArea, the convex hull of
# their FeaturesOfInterest (cityhub.sensorthings.observed_area), and the extents of their times (store roll-ups).
_stream_extents = (
    Prop("observedArea", "observed_area", GEOMETRY, read_only=True),
    Prop("phenomenonTime", "phenomenon_time_start", INTERVAL, column_end="phenomenon_time_end", read_only=True),
    Prop("resultTime", "result_time_start", INTERVAL, column_end="result_time_end", read_only=True),
)

THING = EntityType(
    "Thing",
    "Things",
    "things",
    (*_common, _props),
    (
        Nav("Locations", "Location", True, link=("thing_locations", "thing_id", "location_id")),
        Nav("HistoricalLocations", "HistoricalLocation", True, remote_fk="thing_id"),
        Nav("Datastreams", "Datastream", True, remote_fk="thing_id"),
        Nav("MultiDatastreams", "MultiDatastream", True, remote_fk="thing_id"),
        Nav("TaskingCapabilities", "TaskingCapability", True, remote_fk="thing_id"),
    ),
)
LOCATION = EntityType(
    "Location",
    "Locations",
    "locations",
    (
        *_common,
        Prop("encodingType", "encoding_type", STRING, required=True),
        Prop("location", "location", GEOMETRY, required=True),
        _props,
    ),
    (
        Nav("Things", "Thing", True, link=("thing_locations", "location_id", "thing_id")),
        Nav(
            "HistoricalLocations",
            "HistoricalLocation",
            True,
            link=("historical_location_locations", "location_id", "historical_location_id"),
        ),
    ),
)
HISTORICAL_LOCATION = EntityType(
    "HistoricalLocation",
    "HistoricalLocations",
    "historical_locations",
    (Prop("time", "time", DATETIME, required=True),),
    (
        Nav("Thing", "Thing", False, fk="thing_id", required=True),
        Nav(
            "Locations",
            "Location",
            True,
            link=("historical_location_locations", "historical_location_id", "location_id"),
        ),
    ),
)
SENSOR = EntityType(
    "Sensor",
    "Sensors",
    "sensors",
    (
        *_common,
        Prop("encodingType", "encoding_type", STRING, required=True),
        Prop("metadata", "metadata", STRING, required=True),
        _props,
    ),
    (
        Nav("Datastreams", "Datastream", True, remote_fk="sensor_id"),
        Nav("MultiDatastreams", "MultiDatastream", True, remote_fk="sensor_id"),
    ),
)
# A MultiDatastream's ObservedProperties: the position of each in its result (schema.TABLES).
_OP_RANK = ("rank", "multi_datastream_id")
OBSERVED_PROPERTY = EntityType(
    "ObservedProperty",
    "ObservedProperties",
    "observed_properties",
    (
        Prop("name", "name", STRING, required=True),
        Prop("definition", "definition", URI, required=True),
        Prop("description", "description", STRING, required=True),
        _props,
    ),
    (
        Nav("Datastreams", "Datastream", True, remote_fk="observed_property_id"),
        Nav(
            "MultiDatastreams",
            "MultiDatastream",
            True,
            link=("multi_datastream_observed_properties", "observed_property_id", "multi_datastream_id"),
            rank=_OP_RANK,
        ),
    ),
)
DATASTREAM = EntityType(
    "Datastream",
    "Datastreams",
    "datastreams",
    (
        *_common,
        # Not required, and any URI: FROST-Server's test data writes "someType", and a Datastream without one
        # takes OM_Observation's rules (results.rule_for); see validate.values_of.
        Prop("observationType", "observation_type", URI),
        Prop("unitOfMeasurement", "unit_of_measurement", JSON, required=True),
        *_stream_extents,
        _props,
    ),
    (
        Nav("Thing", "Thing", False, fk="thing_id", required=True),
        Nav("Sensor", "Sensor", False, fk="sensor_id", required=True),
        Nav("ObservedProperty", "ObservedProperty", False, fk="observed_property_id", required=True),
        Nav("Observations", "Observation", True, remote_fk="datastream_id"),
    ),
)
# The MultiDatastream extension (SensorThings v1.1 §12): one stream of Observations whose result is an array,
# one value per ObservedProperty, in the order of unitOfMeasurements and multiObservationDataTypes (a monitor
# reporting PM2.5, PM10 and NO2 together; wind speed and direction). MultiDatastreams take their ids from the
# Datastreams' sequence (schema.ID_SPACE), so an Observation's one stream column names either, never both.
MULTI_DATASTREAM = EntityType(
    "MultiDatastream",
    "MultiDatastreams",
    "multi_datastreams",
    (
        *_common,
        Prop("observationType", "observation_type", URI),
        Prop("unitOfMeasurements", "unit_of_measurements", JSON, required=True),
        Prop("multiObservationDataTypes", "multi_observation_data_types", JSON, required=True),
        *_stream_extents,
        _props,
    ),
    (
        Nav("Thing", "Thing", False, fk="thing_id", required=True),
        Nav("Sensor", "Sensor", False, fk="sensor_id", required=True),
        Nav(
            "ObservedProperties",
            "ObservedProperty",
            True,
            link=("multi_datastream_observed_properties", "multi_datastream_id", "observed_property_id"),
            rank=_OP_RANK,
        ),
        Nav("Observations", "Observation", True, remote_fk="datastream_id"),
    ),
)
OBSERVATION = EntityType(
    "Observation",
    "Observations",
    "observations",
    (
        Prop("phenomenonTime", "phenomenon_time", INTERVAL, column_end="phenomenon_time_end"),
        Prop("resultTime", "result_time", DATETIME),
        Prop("result", "result", RESULT, required=True),
        Prop("resultQuality", "result_quality", JSON),
        Prop("validTime", "valid_time_start", INTERVAL, column_end="valid_time_end"),
        Prop("parameters", "parameters", JSON),
    ),
    (
        Nav("Datastream", "Datastream", False, fk="datastream_id", required=True),
        Nav("MultiDatastream", "MultiDatastream", False, fk="datastream_id"),
        Nav("FeatureOfInterest", "FeatureOfInterest", False, fk="feature_of_interest_id"),
    ),
)
FEATURE_OF_INTEREST = EntityType(
    "FeatureOfInterest",
    "FeaturesOfInterest",
    "features_of_interest",
    (
        *_common,
        Prop("encodingType", "encoding_type", STRING, required=True),
        Prop("feature", "feature", GEOMETRY, required=True),
        _props,
    ),
    (Nav("Observations", "Observation", True, remote_fk="feature_of_interest_id"),),
)

# SensorThings Part 2, Tasking Core (OGC 17-079r1): what a Thing can be told to do (a TaskingCapability of one of
# its Actuators, with the parameters a Task gives it as a SWE Common data record) and the Tasks sent to it: a
# variable message sign's text, a siren, a drone's mission. A device learns of a new Task on MQTT
# (v1.1/TaskingCapabilities(<id>)/Tasks) or by reading its TaskingCapability's Tasks.
ACTUATOR = EntityType(
    "Actuator",
    "Actuators",
    "actuators",
    (
        *_common,
        Prop("encodingType", "encoding_type", STRING, required=True),
        Prop("metadata", "metadata", STRING, required=True),
        _props,
    ),
    (Nav("TaskingCapabilities", "TaskingCapability", True, remote_fk="actuator_id"),),
)
TASKING_CAPABILITY = EntityType(
    "TaskingCapability",
    "TaskingCapabilities",
    "tasking_capabilities",
    (*_common, Prop("taskingParameters", "tasking_parameters", JSON, required=True), _props),
    (
        Nav("Thing", "Thing", False, fk="thing_id", required=True),
        Nav("Actuator", "Actuator", False, fk="actuator_id", required=True),
        Nav("Tasks", "Task", True, remote_fk="tasking_capability_id"),
    ),
)
TASK = EntityType(
    "Task",
    "Tasks",
    "tasks",
    (
        Prop("creationTime", "creation_time", DATETIME, read_only=True),  # when the hub received it
        Prop("taskingParameters", "tasking_parameters", JSON, required=True),
    ),
    (Nav("TaskingCapability", "TaskingCapability", False, fk="tasking_capability_id", required=True),),
)

# Served only with the tasking setting (CITYHUB_TASKING).
TASKING_TYPES: frozenset[str] = frozenset({"Actuator", "TaskingCapability", "Task"})

ENTITY_TYPES: tuple[EntityType, ...] = (
    THING,
    LOCATION,
    HISTORICAL_LOCATION,
    SENSOR,
    OBSERVED_PROPERTY,
    DATASTREAM,
    MULTI_DATASTREAM,
    OBSERVATION,
    FEATURE_OF_INTEREST,
    ACTUATOR,
    TASKING_CAPABILITY,
    TASK,
)
BY_NAME = {e.name: e for e in ENTITY_TYPES}
BY_PLURAL = {e.plural: e for e in ENTITY_TYPES}


def entity(name: str) -> EntityType:
    return BY_NAME[name]

"""FROST-Server's date and time filter tests on MultiDatastreams (``statests.c05multidatastream.MdDateTimeTests``,
v1.1 as ``MdDateTimeTests11`` runs it), ported to pytest.

MdDateTimeTests is DateTimeTests with the Datastreams made MultiDatastreams: the same Observations, times and
results (each result the one-value array ``[n]`` of a MultiDatastream with one ObservedProperty), the same filters,
and every expected list the same, ``MULTI_DATASTREAMS`` for ``DATASTREAMS``; ``testDsTpl`` filters
``MultiDatastreams`` on their phenomenonTime and resultTime, and test19 reads the MultiDatastreams' phenomenonTime
once their Observations are gone. So each Java test keeps its name (``test_<name>``) and runs the checks of its
DateTimeTests twin (``tests/test_frost_datetime.py``) on the ``scene`` fixture made here, ``createEntities`` with
FROST's entities as its client sends them (``TimeScene.streams`` is ``MultiDatastreams``). The Java class's shared
state and its cleanup become a fresh hub for each test.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests import test_frost_datetime as twin
from tests.frost_data import OBSERVATION_TIMES, SENSOR_1, TEMPERATURE, THING, UOM_TEMP, TimeScene, create, json_time

# FROST's client constants (Constants.OM_MEASUREMENT, OM_COMPLEXOBSERVATION): what newMultiDatastream sends.
OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
OM_COMPLEX = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_ComplexObservation"


def _multi_datastream(name: str, description: str, thing: int) -> dict[str, object]:
    """mMdl.newMultiDatastream(name, description, degree celcius) of the Thing, with the Sensor and ObservedProperty
    written whole: the client has no id for them after the first MultiDatastream's deep insert (as in
    ``frost_data.datastream``), so the second one makes copies of them."""
    return {
        "name": name,
        "description": description,
        "observationType": OM_COMPLEX,
        "multiObservationDataTypes": [OM_MEASUREMENT],
        "unitOfMeasurements": [dict(UOM_TEMP)],
        "Thing": {"@iot.id": thing},
        "Sensor": dict(SENSOR_1),
        "ObservedProperties": [dict(TEMPERATURE)],
    }


@pytest.fixture
def scene(client: TestClient) -> TimeScene:
    """createEntities: a Thing with its Location, a MultiDatastream with Observations 0 to 24 (result ``[n]``), a
    second MultiDatastream without Observations."""
    thing = create(client, "Things", THING)
    mds1 = create(
        client, "MultiDatastreams", _multi_datastream("Datastream 1", "The temperature of thing 1, sensor 1.", thing)
    )
    observations = []
    for n, (pt, rt, vt) in enumerate(OBSERVATION_TIMES):
        body = {
            "result": [float(n)],
            "phenomenonTime": json_time(pt),
            "MultiDatastream": {"@iot.id": mds1},
            "resultTime": json_time(rt),
            "validTime": json_time(vt),
        }
        observations.append(create(client, "Observations", body))
    mds2 = create(
        client,
        "MultiDatastreams",
        _multi_datastream("Datastream 2", "The second temperature of thing 1, sensor 1.", thing),
    )
    return TimeScene(client, observations, [mds1, mds2], "MultiDatastreams")


def test_test01Lt(scene: TimeScene) -> None:
    twin.test_test01Lt(scene)


def test_test02Gt(scene: TimeScene) -> None:
    twin.test_test02Gt(scene)


def test_test03Le(scene: TimeScene) -> None:
    twin.test_test03Le(scene)


def test_test04Ge(scene: TimeScene) -> None:
    twin.test_test04Ge(scene)


def test_test05Eq(scene: TimeScene) -> None:
    twin.test_test05Eq(scene)


def test_test06Before(scene: TimeScene) -> None:
    twin.test_test06Before(scene)


def test_test07After(scene: TimeScene) -> None:
    twin.test_test07After(scene)


def test_test08Meets(scene: TimeScene) -> None:
    twin.test_test08Meets(scene)


def test_test09During(scene: TimeScene) -> None:
    twin.test_test09During(scene)


def test_test10Overlaps(scene: TimeScene) -> None:
    twin.test_test10Overlaps(scene)


def test_test11Starts(scene: TimeScene) -> None:
    twin.test_test11Starts(scene)


def test_test12Finishes(scene: TimeScene) -> None:
    twin.test_test12Finishes(scene)


def test_test13Year(scene: TimeScene) -> None:
    twin.test_test13Year(scene)


def test_test14Durations(scene: TimeScene) -> None:
    twin.test_test14Durations(scene)


def test_test15AlternativeOverlaps(scene: TimeScene) -> None:
    twin.test_test15AlternativeOverlaps(scene)


def test_test19PhenomenonTimeAfterDelete(scene: TimeScene) -> None:
    twin.test_test19PhenomenonTimeAfterDelete(scene)

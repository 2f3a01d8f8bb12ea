"""frost_sta_client, the SensorThings client on PyPI, used exactly as its documentation shows, against a real hub.

Issue 13 found that it failed at its second step: it links existing entities as the whole entity it holds
(``{"@iot.id": 5, "name": ...}``), which the hub refused. It authenticates with HTTP Basic
(``AuthHandler(username, password)``): the hub takes the API key as the password. Each step below is the
client's documented way: create, link, deep insert, filter, expand, paging through nextLinks, the data array
document, delete.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from geojson import Point

from cityhub.auth.keys import KeyStore
from tests.servers import free_port, start_server, stop_server

fsc = pytest.importorskip("frost_sta_client")

OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[object]:
    data = tmp_path / "var"
    key = KeyStore(data / "keys.json").create("admin", "frost client")
    port = free_port()
    proc = start_server(data, port)
    try:
        yield fsc.SensorThingsService(
            f"http://127.0.0.1:{port}/v1.1", auth_handler=fsc.AuthHandler(username="admin", password=key)
        )
    finally:
        stop_server(proc)


def _datastream(service: object, thing: object, name: str) -> object:
    sensor = fsc.Sensor(name="BAM-1020", description="beta attenuation", encoding_type="text/html",
                        metadata="https://metone.com/bam-1020")  # fmt: skip
    prop = fsc.ObservedProperty(name="PM2.5", definition="http://vocabs.lter-europe.net/EnvThes/22281",
                                description="fine particulate matter")  # fmt: skip
    service.create(sensor)  # type: ignore[attr-defined]
    service.create(prop)  # type: ignore[attr-defined]
    ds = fsc.Datastream(
        name=name, description="hourly PM2.5", observation_type=OM_MEASUREMENT,
        unit_of_measurement=fsc.UnitOfMeasurement(name="microgram per cubic metre", symbol="µg/m³",
                                                  definition="http://qudt.org/vocab/unit/MicroGM-PER-M3"),
        thing=thing, sensor=sensor, observed_property=prop,
    )  # fmt: skip
    service.create(ds)  # type: ignore[attr-defined]
    return ds


def test_frost_sta_client_as_documented(service: object) -> None:
    svc = service
    # Creating entities (the README's first example): a Thing with a Location.
    location = fsc.Location(name="here", description="Hoàn Kiếm", location=Point((105.8535, 21.0245)),
                            encoding_type="application/geo+json")  # fmt: skip
    thing = fsc.Thing(name="new thing", description="I am a thing with a location",
                      properties={"withLocation": True, "owner": "IOSB"})  # fmt: skip
    thing.locations = [location]
    svc.create(thing)  # type: ignore[attr-defined]
    assert isinstance(thing.id, int)

    # Linking: a Datastream made of entities the client holds (sent whole, with their @iot.id).
    ds = _datastream(svc, thing, "PM2.5 Hoàn Kiếm")
    assert isinstance(ds.id, int)  # type: ignore[attr-defined]
    found = svc.datastreams().find(ds.id)  # type: ignore[attr-defined]
    assert found.name == "PM2.5 Hoàn Kiếm"

    # Observations, one request each, then read back with a filter on the related list.
    for h in range(25):
        obs = fsc.Observation(result=float(h), phenomenon_time=f"2026-01-01T{h % 24:02d}:00:00Z" if h < 24
                              else "2026-01-02T00:00:00Z", datastream=found)  # fmt: skip
        svc.create(obs)  # type: ignore[attr-defined]
        assert isinstance(obs.id, int)
    high = found.get_observations().query().filter("result gt 10").list()
    assert sorted(o.result for o in high) == [float(h) for h in range(11, 25)]

    # Paging: the EntityList follows @iot.nextLink through every chunk; .entities holds the first only.
    chunked = found.get_observations().query().top(10).list()
    assert len(chunked.entities) == 10
    assert len(list(chunked)) == 25

    # Deep insert: a Thing with its Location and a Datastream with a new Sensor and ObservedProperty.
    deep = fsc.Thing(name="deep thing", description="deep insert")
    deep.locations = [fsc.Location(name="there", description="Cầu Giấy", location=Point((105.79, 21.03)),
                                   encoding_type="application/geo+json")]  # fmt: skip
    deep.datastreams = [
        fsc.Datastream(
            name="NO2 Cầu Giấy", description="hourly NO2", observation_type=OM_MEASUREMENT,
            unit_of_measurement=fsc.UnitOfMeasurement(name="ppb", symbol="ppb", definition="ppb"),
            sensor=fsc.Sensor(name="NO2 sensor", description="chemiluminescence", encoding_type="text/html",
                              metadata="m"),
            observed_property=fsc.ObservedProperty(name="NO2", definition="no2", description="nitrogen dioxide"),
        )
    ]  # fmt: skip
    svc.create(deep)  # type: ignore[attr-defined]
    assert isinstance(deep.id, int)

    # Querying with a filter and an expansion (the README's "Querying Entities").
    things = svc.things().query().filter("name eq 'deep thing'").expand("Datastreams").list()  # type: ignore[attr-defined]
    got = list(things)
    assert [t.name for t in got] == ["deep thing"]
    assert [d.name for d in got[0].datastreams] == ["NO2 Cầu Giấy"]
    assert [t.name for t in svc.things().query().filter(f"id eq {thing.id}").list()] == ["new thing"]  # type: ignore[attr-defined]

    # DataArrays (the README's example): several Observations in one request. The README's second Observation has
    # an interval phenomenonTime starting at the first one's; the hub keys Observations on (Datastream,
    # phenomenonTime start) and its data-array path reads instants only (both open in issue 13), so the second
    # is an instant an hour later here.
    foi = svc.features_of_interest().query().list().entities[0]  # type: ignore[attr-defined]
    dav = fsc.model.ext.data_array_value.DataArrayValue()
    dav.components = {dav.Property.PHENOMENON_TIME, dav.Property.RESULT, dav.Property.FEATURE_OF_INTEREST}
    dav.datastream = found
    dav.add_observation(fsc.Observation(result=3, phenomenon_time="2026-01-03T10:00:00Z", datastream=found,
                                        feature_of_interest=foi))  # fmt: skip
    dav.add_observation(fsc.Observation(result=5, phenomenon_time="2026-01-03T11:00:00Z",
                                        datastream=found, feature_of_interest=foi))  # fmt: skip
    dad = fsc.model.ext.data_array_document.DataArrayDocument()
    dad.add_data_array_value(dav)
    result_list = svc.observations().create(dad)  # type: ignore[attr-defined]
    # One selfLink per row, or "error: ..." where a row was refused.
    assert [o.self_link.rsplit("/", 1)[-1].startswith("Observations(") for o in result_list] == [True, True]
    assert len(list(found.get_observations().query().list())) == 27

    # Deleting.
    first = found.get_observations().query().top(1).list().entities[0]
    svc.delete(first)  # type: ignore[attr-defined]
    assert len(list(found.get_observations().query().list())) == 26
    svc.delete(deep)  # type: ignore[attr-defined]
    assert list(svc.things().query().filter("name eq 'deep thing'").list()) == []  # type: ignore[attr-defined]

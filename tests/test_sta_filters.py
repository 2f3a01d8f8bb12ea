"""``$filter`` as SensorThings clients and FROST-Server's tests write it (issue 13, point 4): lambda operators
``any``/``all``, ISO 8601 interval literals and interval/instant comparisons, ``eq null`` on navigation
properties, ``not`` taking the comparison after it, and a Datastream's observedArea (FROST-Server's GeoTests,
``geo.length`` among them, are in test_frost_geo.py). Both stores, through the same tests."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import OM_MEASUREMENT, UGM3


def _names(client: TestClient, entity_set: str, flt: str) -> list[str]:
    r = client.get(f"/v1.1/{entity_set}", params={"$filter": flt, "$orderby": "id"})
    assert r.status_code == 200, (flt, r.text)
    return [e["name"] for e in r.json()["value"]]


def _results(client: TestClient, flt: str) -> list[Any]:
    r = client.get("/v1.1/Observations", params={"$filter": flt, "$orderby": "id"})
    assert r.status_code == 200, (flt, r.text)
    return [o["result"] for o in r.json()["value"]]


def _refused(client: TestClient, entity_set: str, flt: str) -> str:
    r = client.get(f"/v1.1/{entity_set}", params={"$filter": flt})
    assert r.status_code == 400, (flt, r.text)
    assert r.json()["field"] == "$filter"
    return str(r.json()["detail"])


def _datastream(name: str, observations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} of a Hanoi station",
        "observationType": OM_MEASUREMENT,
        "unitOfMeasurement": UGM3,
        "Sensor": {"name": f"{name} sensor", "description": "d", "encodingType": "text/html", "metadata": "m"},
        "ObservedProperty": {"name": name, "definition": f"http://example.org/{name}", "description": "d"},
        **({"Observations": observations} if observations else {}),
    }


@pytest.fixture
def city(client: TestClient) -> None:
    """Three Things: one with Noise (results 10, 40) and Rain (results 5), one with Noise only (results 80),
    one with no Datastream. Not PM2.5 or NO2: the hub would add its VN_AQI Datastreams to those stations."""
    loc = {"name": "Hồ Gươm", "description": "d", "encodingType": "application/geo+json",
           "location": {"type": "Point", "coordinates": [105.85, 21.03]}}  # fmt: skip

    def obs(*values: float) -> list[dict[str, Any]]:
        return [{"phenomenonTime": f"2025-01-01T0{k}:00:00Z", "result": v} for k, v in enumerate(values)]

    bodies = [
        {"name": "Hoàn Kiếm", "description": "d", "Locations": [loc],
         "Datastreams": [_datastream("Noise", obs(10, 40)), _datastream("Rain", obs(5))]},
        {"name": "Cầu Giấy", "description": "d", "Locations": [{**loc, "name": "Cầu Giấy"}],
         "Datastreams": [_datastream("Noise", obs(80))]},
        {"name": "Tây Hồ", "description": "d"},
    ]  # fmt: skip
    for body in bodies:
        r = client.post("/v1.1/Things", json=body)
        assert r.status_code == 201, r.text


# -- lambda operators --------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("city")
def test_any_and_all_over_a_collection(client: TestClient) -> None:
    assert _names(client, "Things", "Datastreams/any(d: d/name eq 'Rain')") == ["Hoàn Kiếm"]
    assert _names(client, "Things", "Datastreams/any(d: d/name eq 'Noise')") == ["Hoàn Kiếm", "Cầu Giấy"]
    # all: every member; true of an empty collection (OData), so Tây Hồ is in
    assert _names(client, "Things", "Datastreams/all(d: d/name eq 'Noise')") == ["Cầu Giấy", "Tây Hồ"]
    assert _names(client, "Things", "Datastreams/any()") == ["Hoàn Kiếm", "Cầu Giấy"]
    assert _names(client, "Things", "not Datastreams/any()") == ["Tây Hồ"]
    # one member meets both conditions (a path through Datastreams meets each on any member)
    both = "Datastreams/any(d: d/name eq 'Rain' and d/description eq 'Noise of a Hanoi station')"
    assert _names(client, "Things", both) == []
    assert _names(client, "Things", "Datastreams/name eq 'Rain' and Datastreams/description eq "
                  "'Noise of a Hanoi station'") == ["Hoàn Kiếm"]  # fmt: skip


@pytest.mark.usefixtures("city")
def test_lambdas_nest_and_see_the_entity_outside(client: TestClient) -> None:
    nested = "Datastreams/any(d: d/Observations/any(o: o/result gt 50))"
    assert _names(client, "Things", nested) == ["Cầu Giấy"]
    every = "Datastreams/all(d: d/Observations/all(o: o/result lt 50))"
    assert _names(client, "Things", every) == ["Hoàn Kiếm", "Tây Hồ"]
    outer = "Datastreams/any(d: d/name eq 'Noise' and name eq 'Hoàn Kiếm')"  # name: the Thing's
    assert _names(client, "Things", outer) == ["Hoàn Kiếm"]
    mixed = "Observations/any(o: o/result gt 30 and o/phenomenonTime gt 2025-01-01T00:30:00Z)"
    assert _names(client, "Datastreams", mixed) == ["Noise"]
    assert _names(client, "Datastreams", "Thing/Datastreams/any(d: d/name eq 'Rain')") == ["Noise", "Rain"]


@pytest.mark.usefixtures("city")
def test_lambda_errors_name_the_filter(client: TestClient) -> None:
    assert "single entity" in _refused(client, "Datastreams", "Thing/any()")
    assert "all" in _refused(client, "Things", "Datastreams/all()")
    assert "boolean" in _refused(client, "Things", "Datastreams/any(d: d/name)")
    assert "entity" in _refused(client, "Things", "Datastreams/any(d: d eq 1)")
    _refused(client, "Things", "Datastreams/any(d d/name eq 'x')")
    _refused(client, "Things", "Datastreams/any(name: name eq 'x')")  # a reserved or clashing name
    _refused(client, "Things", "Datastreams/any(d: d/nosuch eq 1)")


# -- time intervals --------------------------------------------------------------------------------------------
@pytest.fixture
def times(client: TestClient, station: dict[str, int]) -> None:
    """Observation 1 at an instant (valid for 12 hours), observation 2 over a whole day."""
    ds = station["datastream"]
    for body in (
        {"phenomenonTime": "2025-01-01T00:00:00Z", "result": 1,
         "validTime": "2025-01-01T00:00:00Z/2025-01-01T12:00:00Z"},
        {"phenomenonTime": "2025-01-02T00:00:00Z/2025-01-03T00:00:00Z", "result": 2},
    ):  # fmt: skip
        r = client.post(f"/v1.1/Datastreams({ds})/Observations", json=body)
        assert r.status_code == 201, r.text


@pytest.mark.usefixtures("times")
@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        # an interval is before an instant only if it ends before it; after it only if it starts after it
        ("phenomenonTime lt 2025-01-02T12:00:00Z", [1]),
        ("phenomenonTime le 2025-01-03T00:00:00Z", [1, 2]),
        ("phenomenonTime gt 2025-01-01T12:00:00Z", [2]),
        ("phenomenonTime ge 2025-01-02T00:00:00Z", [2]),
        # eq: the same start and end, so an interval equals no instant; ne: different at both ends. (Until
        # FROST-Server's DateTimeTests were ported, eq meant "the instant lies in the interval": FROST's
        # StaTimeIntervalWrapper says otherwise, and its tests/test_frost_datetime.py cases pass now.)
        ("phenomenonTime eq 2025-01-02T12:00:00Z", []),
        ("phenomenonTime eq 2025-01-03T00:00:00Z", []),
        ("phenomenonTime ne 2025-01-02T12:00:00Z", [1, 2]),
        ("2025-01-02T12:00:00Z eq phenomenonTime", []),
        # the time relations: during (the second argument an interval), overlaps
        ("during(2025-01-02T12:00:00Z, phenomenonTime)", [2]),
        ("overlaps(phenomenonTime, 2025-01-02T12:00:00Z/2025-01-05T00:00:00Z)", [2]),
        ("before(phenomenonTime, 2025-01-02T00:00:00Z)", [1]),
        ("2025-01-02T12:00:00Z gt phenomenonTime", [1]),
        # interval literals: start/end and start/duration
        ("phenomenonTime eq 2025-01-02T00:00:00Z/2025-01-03T00:00:00Z", [2]),
        ("phenomenonTime eq 2025-01-02T00:00:00Z/P1D", [2]),
        ("phenomenonTime lt 2025-01-02T00:00:00Z/P1D", [1]),
        ("phenomenonTime gt 2024-12-31T00:00:00Z/2024-12-31T23:00:00Z", [1, 2]),
        ("phenomenonTime lt 2025-01-03T00:00:01Z/2025-01-04T00:00:00Z", [1, 2]),
        ("validTime eq 2025-01-01T06:00:00Z", []),
        ("validTime eq 2025-01-01T00:00:00Z/2025-01-01T12:00:00Z", [1]),
        ("validTime eq null", [2]),
        ("phenomenonTime ge 2025-01-02T00:00:00Z and phenomenonTime lt 2025-01-04T00:00:00Z", [2]),
    ],
)
def test_intervals_compare_as_frost_defines_them(client: TestClient, flt: str, expected: list[int]) -> None:
    assert _results(client, flt) == expected


@pytest.mark.usefixtures("times")
def test_interval_literal_errors(client: TestClient) -> None:
    assert "ends before it starts" in _refused(
        client, "Observations", "phenomenonTime lt 2025-01-02T00:00:00Z/2025-01-01T00:00:00Z"
    )
    assert "time interval" in _refused(client, "Observations", "result eq 2025-01-01T00:00:00Z/P1D")
    _refused(client, "Observations", "year(2025-01-01T00:00:00Z/P1D) eq 2025")
    _refused(client, "Observations", "phenomenonTime lt 2025-01-01T00:00:00Z/")
    _refused(client, "Observations", "phenomenonTime lt 2025-01-01T00:00:00Z/Pxyz")


# -- not, eq null on navigation properties -----------------------------------------------------------------------
@pytest.mark.usefixtures("city")
def test_not_takes_the_comparison_after_it(client: TestClient) -> None:
    assert _names(client, "Things", "not name eq 'Hoàn Kiếm'") == ["Cầu Giấy", "Tây Hồ"]
    assert _names(client, "Things", "not name eq 'Hoàn Kiếm' and not name eq 'Tây Hồ'") == ["Cầu Giấy"]
    assert _names(client, "Things", "not (name eq 'Hoàn Kiếm' or name eq 'Tây Hồ')") == ["Cầu Giấy"]


@pytest.mark.usefixtures("city")
def test_eq_null_on_navigation_properties(client: TestClient) -> None:
    assert _names(client, "Things", "Datastreams eq null") == ["Tây Hồ"]
    assert _names(client, "Things", "Locations ne null") == ["Hoàn Kiếm", "Cầu Giấy"]
    assert _names(client, "Datastreams", "Thing eq null") == []
    assert _names(client, "Datastreams", "Thing/Locations ne null") == ["Noise", "Rain", "Noise"]
    assert _names(client, "Things", "Datastreams/any(d: d/Observations eq null)") == []
    # A property behind a to-many navigation that leads nowhere is null, as FROST-Server has it.
    assert _names(client, "Things", "Datastreams/name eq null") == ["Tây Hồ"]
    assert _names(client, "Things", "Datastreams/name ne null") == ["Hoàn Kiếm", "Cầu Giấy"]
    assert "entity" in _refused(client, "Datastreams", "Thing eq 'x'")


# -- observedArea ------------------------------------------------------------------------------------------------
def test_observed_area_is_the_hull_of_the_features_and_filters_on_it(client: TestClient) -> None:
    """Datastream.observedArea (issue 13, point 4): kept as the convex hull of the geometries of its
    FeaturesOfInterest as Observations arrive (a point, then a line, then a polygon), read-only, usable in
    ``st_*`` filters, shrinking when a FeatureOfInterest is deleted; a text/plain feature adds nothing."""
    thing = client.post("/v1.1/Things", json={"name": "Xe đo di động", "description": "mobile monitor"}).json()
    body = {"name": "PM2.5", "description": "d", "unitOfMeasurement": {"symbol": "µg/m³"},
            "Sensor": {"name": "s", "description": "d", "encodingType": "text/html", "metadata": "m"},
            "ObservedProperty": {"name": "PM2.5", "definition": "http://example.org/pm25",
                                 "description": "d"}}  # fmt: skip
    ds = client.post(f"/v1.1/Things({thing['@iot.id']})/Datastreams", json=body).json()["@iot.id"]
    refused = client.post(f"/v1.1/Things({thing['@iot.id']})/Datastreams",
                          json={**body, "observedArea": {"type": "Point", "coordinates": [0, 0]}})  # fmt: skip
    assert refused.status_code == 400 and refused.json()["field"] == "observedArea"
    assert client.get(f"/v1.1/Datastreams({ds})").json()["observedArea"] is None

    def observe(k: int, feature: dict[str, Any] | str, encoding: str = "application/vnd.geo+json") -> int:
        foi = {"name": f"f{k}", "description": "d", "encodingType": encoding, "feature": feature}
        obs = {"phenomenonTime": f"2025-01-01T0{k}:00:00Z", "result": k, "FeatureOfInterest": foi}
        r = client.post(f"/v1.1/Datastreams({ds})/Observations", json=obs)
        assert r.status_code == 201, r.text
        return int(client.get(f"/v1.1/Observations({r.json()['@iot.id']})/FeatureOfInterest").json()["@iot.id"])

    def area() -> Any:
        return client.get(f"/v1.1/Datastreams({ds})").json()["observedArea"]

    observe(0, {"type": "Point", "coordinates": [105.80, 21.00]})
    assert area() == {"type": "Point", "coordinates": [105.80, 21.00]}
    observe(1, {"type": "Point", "coordinates": [105.90, 21.00]})
    assert area()["type"] == "LineString" and sorted(area()["coordinates"]) == [[105.80, 21.00], [105.90, 21.00]]
    third = observe(2, {"type": "Point", "coordinates": [105.85, 21.10]})
    observe(3, "Phố Hàng Bài, Hoàn Kiếm", "text/plain")  # an address: no geometry, the area stays
    hull = area()
    assert hull["type"] == "Polygon"
    assert sorted(map(tuple, hull["coordinates"][0][:-1])) == [(105.80, 21.00), (105.85, 21.10), (105.90, 21.00)]
    inside = "geography'POLYGON((105.7 20.9, 106 20.9, 106 21.2, 105.7 21.2, 105.7 20.9))'"
    found = client.get("/v1.1/Datastreams", params={"$filter": f"st_within(observedArea, {inside})"}).json()
    assert [d["@iot.id"] for d in found["value"]] == [ds]
    near = "geography'POINT(105.85 21.05)'"
    found = client.get("/v1.1/Datastreams", params={"$filter": f"st_intersects(observedArea, {near})"}).json()
    assert [d["@iot.id"] for d in found["value"]] == [ds]
    assert client.delete(f"/v1.1/FeaturesOfInterest({third})").status_code == 200
    assert area()["type"] == "LineString"  # the hull of what is left

"""HistoricalLocations as SensorThings v1.1 defines them (§8.2.3, issue 13 point 3): one is made whenever a Thing's
Locations change, by whichever path the link is made (a Thing with Locations, a Location with Things, POST in a
Thing's Locations, PATCH from either side, ``$ref`` from either side, a ``$batch`` change set); a posted
HistoricalLocation that is the Thing's latest moves the Thing; deleting a Location deletes its HistoricalLocations;
each new one is announced on the event bus (MQTT publishes it). Both stores, through the same tests."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cityhub.bus import ENTITIES, EntityChanged


def _location(name: str, lon: float, lat: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": f"{name}, Hà Nội", "encodingType": "application/geo+json",
            "location": {"type": "Point", "coordinates": [lon, lat]}, **extra}  # fmt: skip


def _thing(client: TestClient, name: str = "Xe buýt 32", **extra: Any) -> int:
    r = client.post("/v1.1/Things", json={"name": name, "description": "a bus", **extra})
    assert r.status_code == 201, r.text
    return int(r.json()["@iot.id"])


def _history(client: TestClient, thing: int) -> list[list[str]]:
    """The Thing's HistoricalLocations, oldest first, each as the names of its Locations."""
    r = client.get(
        f"/v1.1/Things({thing})/HistoricalLocations",
        params={"$orderby": "time asc,id asc", "$expand": "Locations($select=name;$orderby=name)"},
    )
    assert r.status_code == 200, r.text
    return [[loc["name"] for loc in h["Locations"]] for h in r.json()["value"]]


def _current(client: TestClient, thing: int) -> list[str]:
    r = client.get(f"/v1.1/Things({thing})/Locations", params={"$orderby": "name"})
    return [loc["name"] for loc in r.json()["value"]]


def test_every_way_of_linking_makes_one_historical_location(client: TestClient) -> None:
    thing = _thing(client, Locations=[_location("Cầu Giấy", 105.80, 21.03), _location("Kim Mã", 105.82, 21.03)])
    assert _history(client, thing) == [["Cầu Giấy", "Kim Mã"]]  # one for the deep insert, with both

    # a Location created with Things
    r = client.post("/v1.1/Locations", json=_location("Giảng Võ", 105.82, 21.02, Things=[{"@iot.id": thing}]))
    assert r.status_code == 201, r.text
    giang_vo = r.json()["@iot.id"]
    assert _history(client, thing)[-1] == ["Cầu Giấy", "Giảng Võ", "Kim Mã"]

    # POST in the Thing's Locations
    r = client.post(f"/v1.1/Things({thing})/Locations", json=_location("Láng Hạ", 105.81, 21.01))
    assert r.status_code == 201, r.text
    assert len(_history(client, thing)) == 3

    # PATCH of the Thing's Locations (they are replaced), and of a Location's Things
    assert client.patch(f"/v1.1/Things({thing})", json={"Locations": [{"@iot.id": giang_vo}]}).status_code == 200
    assert _history(client, thing)[-1] == ["Giảng Võ"]
    other = _thing(client, "Xe buýt 09")
    # (a PATCH of a Location's Things replaces them: the first bus is no longer at Giảng Võ)
    assert client.patch(f"/v1.1/Locations({giang_vo})", json={"Things": [{"@iot.id": other}]}).status_code == 200
    assert _history(client, other) == [["Giảng Võ"]]
    assert _current(client, thing) == []

    # $ref from either side
    loc = client.post("/v1.1/Locations", json=_location("Hồ Gươm", 105.85, 21.03)).json()["@iot.id"]
    assert client.post(f"/v1.1/Locations({loc})/Things/$ref", json={"@iot.id": other}).status_code == 204
    assert _history(client, other)[-1] == ["Giảng Võ", "Hồ Gươm"]
    assert client.post(f"/v1.1/Things({thing})/Locations/$ref", json={"@iot.id": loc}).status_code == 204
    assert _history(client, thing)[-1] == ["Hồ Gươm"]
    assert len(_history(client, thing)) == 5

    # a change set that links twice makes one
    r = client.post(
        "/v1.1/$batch",
        json={"requests": [
            {"id": "a", "method": "post", "url": f"Things({thing})/Locations", "atomicityGroup": "g",
             "body": _location("Long Biên", 105.86, 21.04)},
            {"id": "b", "method": "post", "url": f"Things({thing})/Locations", "atomicityGroup": "g",
             "body": _location("Gia Lâm", 105.88, 21.05)},
        ]},
    )  # fmt: skip
    assert r.status_code == 200 and all(x["status"] == 201 for x in r.json()["responses"]), r.text
    assert len(_history(client, thing)) == 6
    assert _history(client, thing)[-1] == ["Gia Lâm", "Hồ Gươm", "Long Biên"]


def test_a_posted_historical_location_moves_its_thing_when_it_is_the_latest(client: TestClient) -> None:
    thing = _thing(client, Locations=[_location("Bến xe Mỹ Đình", 105.78, 21.03)])
    depot = client.post("/v1.1/Locations", json=_location("Depot", 105.75, 21.00)).json()["@iot.id"]
    stop = client.post("/v1.1/Locations", json=_location("Trần Duy Hưng", 105.80, 21.01)).json()["@iot.id"]
    first = client.get(f"/v1.1/Things({thing})/HistoricalLocations").json()["value"][0]["time"]

    # an older record is history only: the Thing stays where it is
    old = {"time": "2020-01-01T00:00:00Z", "Thing": {"@iot.id": thing}, "Locations": [{"@iot.id": depot}]}
    assert client.post("/v1.1/HistoricalLocations", json=old).status_code == 201
    assert _current(client, thing) == ["Bến xe Mỹ Đình"]

    # a newer one is where the Thing is now
    assert first < "2099-01-01T00:00:00Z"
    new = {"time": "2099-01-01T00:00:00Z", "Thing": {"@iot.id": thing}, "Locations": [{"@iot.id": stop}]}
    assert client.post("/v1.1/HistoricalLocations", json=new).status_code == 201
    assert _current(client, thing) == ["Trần Duy Hưng"]
    assert _history(client, thing) == [["Depot"], ["Bến xe Mỹ Đình"], ["Trần Duy Hưng"]]  # no extra record


def test_deleting_a_location_deletes_its_historical_locations(client: TestClient) -> None:
    thing = _thing(client, Locations=[_location("Ô Chợ Dừa", 105.83, 21.02)])
    loc = client.get(f"/v1.1/Things({thing})/Locations").json()["value"][0]["@iot.id"]
    other = client.post("/v1.1/Locations", json=_location("Ngã Tư Sở", 105.82, 21.00)).json()["@iot.id"]
    assert client.post(f"/v1.1/Things({thing})/Locations/$ref", json={"@iot.id": other}).status_code == 204
    assert len(_history(client, thing)) == 2
    assert client.delete(f"/v1.1/Locations({loc})").status_code == 200
    assert _history(client, thing) == []  # both held Ô Chợ Dừa
    assert client.get("/v1.1/HistoricalLocations?$count=true&$top=0").json()["@iot.count"] == 0
    assert _current(client, thing) == ["Ngã Tư Sở"]


def test_new_historical_locations_are_announced(client: TestClient, app_client: TestClient) -> None:
    seen: list[EntityChanged] = []
    bus = app_client.app.state.hub.bus  # type: ignore[attr-defined]
    sub = bus.subscribe(ENTITIES, lambda e: seen.append(e) if isinstance(e, EntityChanged) else None)
    try:
        thing = _thing(client, Locations=[_location("Hoàng Mai", 105.85, 20.98)])
        loc = client.post("/v1.1/Locations", json=_location("Linh Đàm", 105.83, 20.96)).json()["@iot.id"]
        assert client.post(f"/v1.1/Things({thing})/Locations/$ref", json={"@iot.id": loc}).status_code == 204
    finally:
        sub.close()
    made = [e.entity_id for e in seen if e.entity_set == "HistoricalLocations" and e.op == "created"]
    ids = [h["@iot.id"] for h in client.get(f"/v1.1/Things({thing})/HistoricalLocations?$orderby=id").json()["value"]]
    assert made == ids and len(ids) == 2

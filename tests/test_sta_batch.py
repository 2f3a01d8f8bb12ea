"""``POST /v1.1/$batch`` (SensorThings v1.1 §11, issue 13 point 5): the OData JSON batch and multipart/mixed as
FROST-Server accepts them; change sets commit together or not at all; any batch of valid requests leaves the
same state as the same requests sent one by one (property test). Both stores, through the same tests."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import station_body


def _batch(client: TestClient, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = client.post("/v1.1/$batch", json={"requests": requests})
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()["responses"]
    return out


def test_json_batch_serves_each_request_as_if_alone(client: TestClient, station: dict[str, int]) -> None:
    ds = station["datastream"]
    got = _batch(
        client,
        [
            {"id": "r1", "method": "get", "url": f"Things({station['thing']})?$select=name"},
            {"id": "r2", "method": "post", "url": "Things", "body": {"name": "Sign 1", "description": "VMS"}},
            {"id": "r3", "method": "post", "url": f"Datastreams({ds})/Observations",
             "body": {"phenomenonTime": "2025-01-01T00:00:00Z", "result": 12.5}},
            {"id": "r4", "method": "get", "url": "/v1.1/Things(999999)"},
            {"id": "r5", "method": "patch", "url": "Things(999999)", "body": {"name": "x"}},
        ],
    )  # fmt: skip
    assert [g["id"] for g in got] == ["r1", "r2", "r3", "r4", "r5"]
    assert [g["status"] for g in got] == [200, 201, 201, 404, 404]
    assert got[0]["body"] == {"name": "Trạm Hoàn Kiếm"}
    thing = got[1]["body"]["@iot.id"]
    assert got[1]["headers"]["location"].endswith(f"/v1.1/Things({thing})")
    assert client.get(f"/v1.1/Things({thing})").json()["name"] == "Sign 1"
    obs = client.get(f"/v1.1/Datastreams({ds})/Observations").json()["value"]
    assert [o["result"] for o in obs] == [12.5]
    assert got[3]["body"]["field"] == "path"


def test_change_set_commits_together_and_refers_to_what_it_made(client: TestClient) -> None:
    body = station_body("Cầu Giấy")
    ds_body = body["Datastreams"][0]
    got = _batch(
        client,
        [
            {"id": "t", "method": "post", "url": "Things", "atomicityGroup": "g",
             "body": {k: v for k, v in body.items() if k != "Datastreams"}},
            {"id": "d", "method": "post", "url": "$t/Datastreams", "atomicityGroup": "g", "body": ds_body},
            {"id": "o", "method": "post", "url": "$d/Observations", "atomicityGroup": "g",
             "body": {"phenomenonTime": "2025-01-01T00:00:00Z", "result": 30}},
            {"id": "p", "method": "patch", "url": "$t", "atomicityGroup": "g", "body": {"description": "moved"}},
        ],
    )  # fmt: skip
    assert [(g["id"], g["status"]) for g in got] == [("t", 201), ("d", 201), ("o", 201), ("p", 200)]
    ds = got[1]["body"]["@iot.id"]
    assert got[2]["body"]["result"] == 30
    assert client.get(f"/v1.1/Things({got[0]['body']['@iot.id']})").json()["description"] == "moved"
    latest = client.get(f"/api/v1/latest?datastreams={ds}").json()["value"]
    assert [v["result"] for v in latest] == [30]  # the roll-ups of a change set's Observations


def test_failed_change_set_leaves_nothing(client: TestClient, station: dict[str, int]) -> None:
    ds = station["datastream"]
    things = client.get("/v1.1/Things?$count=true").json()["@iot.count"]
    got = _batch(
        client,
        [
            {"id": "a", "method": "post", "url": "Things", "atomicityGroup": "g",
             "body": {"name": "kept?", "description": "no"}},
            {"id": "b", "method": "post", "url": f"Datastreams({ds})/Observations", "atomicityGroup": "g",
             "body": {"phenomenonTime": "2025-01-01T00:00:00Z", "result": 1}},
            {"id": "c", "method": "patch", "url": f"Things({station['thing']})", "atomicityGroup": "g",
             "body": {"name": "renamed"}},
            {"id": "d", "method": "post", "url": "Things", "atomicityGroup": "g", "body": {"name": "no description"}},
            {"id": "e", "method": "get", "url": "Things?$count=true&$top=0"},
        ],
    )  # fmt: skip
    assert [(g["id"], g["status"]) for g in got] == [("d", 400), ("e", 200)]
    assert got[0]["body"]["field"] == "description"
    assert got[1]["body"]["@iot.count"] == things
    assert client.get(f"/v1.1/Datastreams({ds})/Observations").json()["value"] == []
    assert client.get(f"/v1.1/Things({station['thing']})").json()["name"] == "Trạm Hoàn Kiếm"
    # the Observation of the rolled-back set can be sent again: nothing of it was kept
    r = client.post(
        f"/v1.1/Datastreams({ds})/Observations", json={"phenomenonTime": "2025-01-01T00:00:00Z", "result": 2}
    )
    assert r.status_code == 201, r.text


def test_batch_errors_name_the_field(client: TestClient) -> None:
    cases: list[tuple[Any, str]] = [
        ({"requests": []}, "requests"),
        ({"requests": [{"id": "1", "method": "TRACE", "url": "Things"}]}, "requests[0].method"),
        ({"requests": [{"id": "1", "method": "GET"}]}, "requests[0].url"),
        ({"requests": [{"method": "GET", "url": "Things"}]}, "requests[0].id"),
        ({"requests": [{"id": "1", "method": "GET", "url": "Things"}] * 2}, "requests[1].id"),
        ({"requests": [{"id": "1", "method": "GET", "url": "Things", "dependsOn": ["9"]}]}, "requests[0].dependsOn"),
        ({"requests": [{"id": "1", "method": "POST", "url": "$batch", "body": {}}]}, "requests[0].url"),
        (
            {"requests": [
                {"id": "1", "method": "GET", "url": "Things", "atomicityGroup": "g"},
                {"id": "2", "method": "GET", "url": "Things"},
                {"id": "3", "method": "GET", "url": "Things", "atomicityGroup": "g"},
            ]},
            "requests[2].atomicityGroup",
        ),
        ({"requests": [{"id": str(i), "method": "GET", "url": "Things"} for i in range(1001)]}, "requests"),
    ]  # fmt: skip
    for body, field in cases:
        r = client.post("/v1.1/$batch", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["field"] == field, (field, r.text)
    got = _batch(client, [{"id": "1", "method": "GET", "url": "Things", "atomicityGroup": "g"}])
    assert got[0]["status"] == 400  # a change set holds changes only
    r = client.post("/v1.1/$batch", content=b"{", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["field"]) == (400, "body")


MULTIPART = (
    "--batch_1\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "GET Things?$select=name&$orderby=id HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "\r\n"
    "\r\n"
    "--batch_1\r\n"
    "Content-Type: multipart/mixed; boundary=changeset_1\r\n"
    "\r\n"
    "--changeset_1\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "Content-ID: 1\r\n"
    "\r\n"
    "POST Things HTTP/1.1\r\n"
    "Content-Type: application/json\r\n"
    "\r\n"
    '{"name": "Siren 1", "description": "flood siren, Long Biên"}\r\n'
    "--changeset_1\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "Content-ID: 2\r\n"
    "\r\n"
    "PATCH $1 HTTP/1.1\r\n"
    "Content-Type: application/json\r\n"
    "\r\n"
    '{"properties": {"river": "Hồng"}}\r\n'
    "--changeset_1--\r\n"
    "\r\n"
    "--batch_1--\r\n"
)


def test_multipart_batch_as_frost_clients_send_it(client: TestClient) -> None:
    r = client.post(
        "/v1.1/$batch",
        content=MULTIPART.encode(),
        headers={"Content-Type": "multipart/mixed; boundary=batch_1"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("multipart/mixed; boundary=batchresponse_")
    text = r.text
    assert text.count("HTTP/1.1 200 OK") == 2 and text.count("HTTP/1.1 201 Created") == 1
    assert "Content-ID: 1" in text and "Content-ID: 2" in text
    things = client.get("/v1.1/Things?$filter=name eq 'Siren 1'").json()["value"]
    assert [t["properties"] for t in things] == [{"river": "Hồng"}]
    # a failed change set is answered with its one failure, and leaves nothing
    failing = MULTIPART.replace('"Siren 1"', '"Siren 2"').replace("PATCH $1", "PATCH Things(999999)")
    r = client.post(
        "/v1.1/$batch", content=failing.encode(), headers={"Content-Type": "multipart/mixed; boundary=batch_1"}
    )
    assert r.status_code == 200, r.text
    assert "HTTP/1.1 404 Not Found" in r.text and "201 Created" not in r.text
    assert client.get("/v1.1/Things?$filter=name eq 'Siren 2'").json()["value"] == []
    r = client.post("/v1.1/$batch", content=b"--x\r\n\r\n--x--", headers={"Content-Type": "multipart/mixed"})
    assert (r.status_code, r.json()["field"]) == (400, "body")


# -- property: a batch of valid requests = the same requests one by one -----------------------------------------
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(["Sign", "Siren", "Camera"])),
        st.tuples(st.just("rename"), st.integers(0, 5)),
        st.tuples(st.just("delete"), st.integers(0, 5)),
        st.tuples(st.just("observe"), st.integers(0, 3)),
    ),
    min_size=1,
    max_size=8,
)


def _requests(ops: list[tuple[str, Any]], ds: int, things: list[int]) -> list[dict[str, Any]]:
    """Valid requests only: renames and deletes of ``things`` that exist when they run (not the station's Thing,
    whose delete would take its Datastream along)."""
    alive = list(things)
    out: list[dict[str, Any]] = []
    for k, (op, arg) in enumerate(ops):
        rid = str(k)
        if op == "create":
            out.append(
                {"id": rid, "method": "post", "url": "Things", "body": {"name": f"{arg} {k}", "description": "d"}}
            )
        elif op == "rename" and alive:
            t = alive[arg % len(alive)]
            out.append({"id": rid, "method": "patch", "url": f"Things({t})", "body": {"name": f"renamed {k}"}})
        elif op == "delete" and alive:
            t = alive.pop(arg % len(alive))
            out.append({"id": rid, "method": "delete", "url": f"Things({t})"})
        elif op == "observe":
            out.append({"id": rid, "method": "post", "url": f"Datastreams({ds})/Observations",
                        "body": {"phenomenonTime": f"2025-01-01T0{arg}:00:00Z", "result": arg}})  # fmt: skip
    return out


def _state(client: TestClient, ds: int) -> Any:
    things = client.get("/v1.1/Things?$select=name&$orderby=id").json()["value"]
    obs = client.get(f"/v1.1/Datastreams({ds})/Observations?$select=phenomenonTime,result&$orderby=phenomenonTime")
    return [t["name"] for t in things], obs.json()["value"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, atomic=st.booleans())
def test_batch_equals_requests_one_by_one(client: TestClient, ops: list[tuple[str, Any]], atomic: bool) -> None:
    """Two fresh stations, same ops: one by batch (as one change set or not), one by single requests."""
    states = []
    for by_batch in (True, False):
        for t in client.get("/v1.1/Things").json()["value"]:
            client.delete(f"/v1.1/Things({t['@iot.id']})")
        r = client.post("/v1.1/Things", json=station_body())
        thing = r.json()["@iot.id"]
        ds = client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
        extra = [
            client.post("/v1.1/Things", json={"name": f"t{i}", "description": "d"}).json()["@iot.id"] for i in range(2)
        ]
        reqs = _requests(ops, ds, extra)
        if not reqs:
            return
        if by_batch:
            for q in reqs:
                if atomic:
                    q["atomicityGroup"] = "g"
            got = _batch(client, reqs)
            assert all(g["status"] < 300 for g in got), got
        else:
            for q in reqs:
                content = orjson.dumps(q["body"]) if "body" in q else None
                headers = {"Content-Type": "application/json"}
                r = client.request(q["method"].upper(), f"/v1.1/{q['url']}", content=content, headers=headers)
                assert r.status_code < 300, r.text
        names, obs = _state(client, ds)
        states.append(([n for n in names if not n.startswith("Trạm")], obs, len(names)))
    assert states[0] == states[1]


def test_change_set_body_names_what_an_earlier_request_made(client: TestClient) -> None:
    """``{"@iot.id": "$s"}`` in a body is the entity request ``s`` of the change set made (SensorThings v1.1
    §11.2.2), also inside a deep insert; free JSON (``properties``) is kept as sent; an unknown name is a 400."""
    body = station_body("Ba Đình")
    ds_body = {k: v for k, v in body["Datastreams"][0].items() if k != "Sensor"}
    got = _batch(
        client,
        [
            {"id": "s", "method": "post", "url": "Sensors", "atomicityGroup": "g",
             "body": {"name": "BAM-1020", "description": "d", "encodingType": "text/html", "metadata": "m"}},
            {"id": "t", "method": "post", "url": "Things", "atomicityGroup": "g",
             "body": {"name": "T", "description": "d", "properties": {"ref": {"@iot.id": "$s"}},
                      "Datastreams": [{**ds_body, "Sensor": {"@iot.id": "$s"}}]}},
        ],
    )  # fmt: skip
    assert [(g["id"], g["status"]) for g in got] == [("s", 201), ("t", 201)], got
    sensor, thing = got[0]["body"]["@iot.id"], got[1]["body"]["@iot.id"]
    assert got[1]["body"]["properties"] == {"ref": {"@iot.id": "$s"}}
    ds = client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    assert client.get(f"/v1.1/Datastreams({ds})/Sensor").json()["@iot.id"] == sensor
    got = _batch(
        client,
        [{"id": "d", "method": "post", "url": f"Things({thing})/Datastreams", "atomicityGroup": "g",
          "body": {**ds_body, "Sensor": {"@iot.id": "$nothing"}}}],
    )  # fmt: skip
    assert (got[0]["status"], got[0]["body"]["field"]) == (400, "requests[0].body"), got

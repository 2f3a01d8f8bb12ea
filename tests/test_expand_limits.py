"""What one read may cost: ``$expand`` depth and length (``max_expand_depth``), the entities in one response
(``max_response_entities``), and CreateObservations answering without reading the Datastream's history."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityhub import model
from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.config import Settings
from cityhub.sensorthings.options import expand_depth, parse_options
from tests.conftest import station_body

THINGS, DATASTREAMS = 3, 4  # per Thing
Opener = Callable[..., TestClient]


def seed(client: TestClient) -> None:
    for i in range(THINGS):
        r = client.post("/v1.1/Things", json=station_body(f"S{i}", lon=105.8 + i / 100, n_ds=DATASTREAMS))
        assert r.status_code == 201, r.text


@pytest.fixture
def city(client: TestClient) -> TestClient:
    seed(client)
    return client


def cycle(levels: int) -> str:
    """``Datastreams/Thing/Datastreams/…``: each Thing's Datastreams, each one's Thing, its Datastreams again."""
    return "/".join((["Datastreams", "Thing"] * levels)[:levels])


def nested_cycle(levels: int) -> str:
    names = (["Datastreams", "Thing"] * levels)[:levels]
    text = names[-1]
    for name in reversed(names[:-1]):
        text = f"{name}($expand={text})"
    return text


def entities(node: Any) -> int:
    """Entities a response shows, at every level."""
    if isinstance(node, list):
        return sum(entities(n) for n in node)
    if isinstance(node, dict):
        return ("@iot.id" in node) + sum(entities(v) for v in node.values())
    return 0


def assert_expand_refused(r: Any, detail: str) -> None:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["field"] == "$expand"
    assert detail in body["detail"], body["detail"]


# -- depth --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", [cycle, nested_cycle], ids=["path", "nested"])
def test_a_ten_level_cycle_is_refused_before_it_is_read(city: TestClient, form: Any) -> None:
    city.headers.pop("Authorization")  # what anyone may send
    r = city.get("/v1.1/Things", params={"$expand": form(10)})
    assert_expand_refused(r, "$expand is nested 10 levels deep; this hub allows 5")


@pytest.mark.parametrize("form", [cycle, nested_cycle], ids=["path", "nested"])
def test_a_tree_at_the_allowed_depth_is_served(city: TestClient, form: Any) -> None:
    r = city.get("/v1.1/Things", params={"$expand": form(5)})
    assert r.status_code == 200, r.text
    things = r.json()["value"]
    assert len(things) == THINGS
    fifth = things[0]["Datastreams"][0]["Thing"]["Datastreams"][0]["Thing"]["Datastreams"]
    assert len(fifth) == DATASTREAMS and "Thing" not in fifth[0]
    d = DATASTREAMS
    assert entities(things) == THINGS * (1 + d + d + d**2 + d**2 + d**3)
    assert city.get("/v1.1/Things", params={"$expand": form(6)}).status_code == 400


@pytest.mark.parametrize(
    ("expand", "detail"),
    [
        ("/".join(["Thing", "Datastreams"] * 250), "characters long; this hub allows 4,000"),  # 500 segments
        ("/".join(["Thing", "Datastreams"] * 150), "nested 300 levels deep"),  # short enough to be measured
        (nested_cycle(200), "nested 200 levels deep"),
        (nested_cycle(2000), "characters long; this hub allows 4,000"),
        ("Thing(" * 500 + ")" * 500, "bad nested option"),
    ],
    ids=["500-segments", "300-segments", "200-nested", "2000-nested", "parentheses"],
)
def test_absurd_expansions_are_400_not_500(client: TestClient, expand: str, detail: str) -> None:
    # The test client raises what the server did not handle, so a RecursionError would fail here.
    r = client.get("/v1.1/Datastreams", params={"$expand": expand})
    assert_expand_refused(r, detail)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("Datastreams", 1),
        ("Datastreams/Observations($expand=FeatureOfInterest)", 3),
        ("Datastreams($top=1;$expand=Thing/Locations;$select=name),Locations", 3),
        ("Datastreams($filter=substringof('(;$expand=', name) and (id gt 0);$expand=Thing)", 2),
        ("Datastreams($expand=Thing;$top=2),Locations/Things/Datastreams($expand=Sensor)", 4),
    ],
)
def test_the_depth_is_measured_as_the_parser_nests(text: str, depth: int) -> None:
    assert expand_depth(text) == depth
    opts = parse_options(model.THING, {"$expand": text}, max_top=100, default_top=100, max_expand_depth=depth)

    def levels(expands: list[Any]) -> int:
        return max((1 + levels(e.options.expand) for e in expands), default=0)

    assert levels(opts.expand) == depth


# -- the response budget ----------------------------------------------------------------------------------------
@pytest.fixture
def budget_app(tmp_path: Path) -> Iterator[Opener]:
    """Opens the same data with the budget (and default page size) a test asks for, closing the app opened
    before; seeded on the first open."""
    opened: list[TestClient] = []

    def open_(max_entities: int, **extra: Any) -> TestClient:
        if opened:
            opened.pop().__exit__(None, None, None)
        settings = Settings(data_dir=tmp_path / "var", max_response_entities=max_entities, **extra)
        client = TestClient(create_app(settings))
        client.__enter__()
        opened.append(client)
        client.headers["Authorization"] = "Bearer " + KeyStore(settings.keys_path).create("admin", "test")
        if client.get("/v1.1/Things", params={"$top": 0, "$count": "true"}).json()["@iot.count"] == 0:
            seed(client)
        return client

    yield open_
    if opened:
        opened.pop().__exit__(None, None, None)


def test_a_response_over_the_budget_is_400_and_one_under_it_200(budget_app: Opener) -> None:
    client = budget_app(50)
    small = client.get("/v1.1/Things", params={"$expand": "Datastreams/Thing"})
    assert small.status_code == 200, small.text
    assert entities(small.json()["value"]) == THINGS + 2 * THINGS * DATASTREAMS  # 27
    big = client.get("/v1.1/Things", params={"$expand": "Datastreams/Thing/Datastreams"})  # 75 entities
    assert_expand_refused(big, "more than 50 entities")
    assert "$top" in big.json()["detail"]  # it says how to ask for less


def test_the_budget_counts_an_entity_each_time_it_is_shown(budget_app: Opener) -> None:
    # 12 Datastreams, each showing its Thing: 24 entities in the JSON, though only 3 Things are read.
    client = budget_app(24)
    assert client.get("/v1.1/Datastreams", params={"$expand": "Thing"}).status_code == 200
    client = budget_app(23)
    assert_expand_refused(client.get("/v1.1/Datastreams", params={"$expand": "Thing"}), "more than 23 entities")
    # A single entity's expansion counts too: 1 Thing, 4 Datastreams, 4 Things, 16 Datastreams.
    thing = client.get("/v1.1/Things", params={"$top": 1}).json()["value"][0]["@iot.id"]
    deep = {"$expand": "Datastreams/Thing/Datastreams"}
    assert_expand_refused(client.get(f"/v1.1/Things({thing})", params=deep), "more than 23 entities")


def test_no_level_reads_more_rows_than_the_budget_allows(budget_app: Opener) -> None:
    client = budget_app(50)
    store = client.app.state.hub.store  # type: ignore[attr-defined]
    read: list[int] = []
    query = store.query

    def spy(sql: str, params: Any = ()) -> Any:
        rows = query(sql, params)
        read.append(len(rows))
        return rows

    store.query = spy
    # Without the budget the third level alone is 48 rows and the fourth 48 more: it stops at the third.
    r = client.get("/v1.1/Things", params={"$expand": "Datastreams/Thing/Datastreams/Thing"})
    assert_expand_refused(r, "more than 50 entities")
    assert read and max(read) <= 50 - (THINGS + 2 * THINGS * DATASTREAMS) + 1


def test_a_page_over_the_budget_names_top(budget_app: Opener) -> None:
    client = budget_app(50)
    ds = client.get("/v1.1/Datastreams", params={"$top": 1}).json()["value"][0]["@iot.id"]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [[(t0 + timedelta(minutes=m)).isoformat(), m] for m in range(60)]
    body = [{"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"], "dataArray": rows}]
    assert client.post("/v1.1/CreateObservations", json=body).status_code == 201
    r = client.get("/v1.1/Observations")  # the default page, 100, would hold all 60
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "$top"
    page = client.get("/v1.1/Observations", params={"$top": 50})
    assert page.status_code == 200
    assert len(page.json()["value"]) == 50 and "@iot.nextLink" in page.json()


def test_expanded_collections_are_paged_by_default(budget_app: Opener) -> None:
    client = budget_app(100_000, default_top=2)
    thing = client.get("/v1.1/Things", params={"$expand": "Datastreams"}).json()["value"][0]
    assert len(thing["Datastreams"]) == 2
    assert thing["Datastreams@iot.nextLink"].endswith("/Datastreams?$top=2&$skip=2")
    own = client.get("/v1.1/Things", params={"$expand": "Datastreams($top=3)"}).json()["value"][0]
    assert len(own["Datastreams"]) == 3


# -- CreateObservations ---------------------------------------------------------------------------------------
HISTORY = 5_000


def test_create_observations_answers_without_reading_the_history(client: TestClient, station: dict) -> None:
    ds = station["datastream"]
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    csv = "datastream,phenomenonTime,result\n" + "".join(
        f"{ds},{(t0 + timedelta(minutes=m)).isoformat()},1.5\n" for m in range(HISTORY)
    )
    r = client.post("/api/v1/ingest", content=csv, headers={"Content-Type": "text/csv"})
    assert r.json()["stored"] == HISTORY
    stored = client.get(
        f"/v1.1/Datastreams({ds})/Observations", params={"$filter": "phenomenonTime eq 2025-01-01T00:07:00Z"}
    ).json()["value"][0]["@iot.id"]

    # The look-up by (Datastream, phenomenonTime) reads the stored Observations; the write already knows
    # which stored Observation each repeated row is, so the answer must not depend on a look-up at all.
    store = client.app.state.hub.store  # type: ignore[attr-defined]
    looked_up: list[int] = []
    lookup = store.observations.ids_by_key

    def spy(keys: Any) -> Any:
        looked_up.append(len(keys))
        return lookup(keys)

    store.observations.ids_by_key = spy
    rows = [
        ["2026-01-01T00:00:00Z", 5],  # new
        ["2025-01-01T00:07:00Z", 1.5],  # a re-send of a stored one
        ["2026-01-01T00:00:00Z", 5],  # the first row again
        ["2025-01-01T00:08:00Z", 9],  # another result for a stored key
        ["2026-01-01T01:00:00Z", "bad"],
    ]
    body = [{"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"], "dataArray": rows}]
    r = client.post("/v1.1/CreateObservations", json=body)
    assert r.status_code == 201, r.text
    new, resent, again, conflict, bad = r.json()
    assert looked_up == []  # no rows read back, however long the history
    assert new.startswith("http://testserver/v1.1/Observations(")
    assert again == new
    assert resent == f"http://testserver/v1.1/Observations({stored})"
    assert conflict.startswith("error: result conflicts with stored Observation")
    assert bad.startswith("error: result")
    assert client.get(new.removeprefix("http://testserver")).json()["result"] == 5
    count = client.get(f"/v1.1/Datastreams({ds})/Observations", params={"$count": "true", "$top": 0}).json()
    assert count["@iot.count"] == HISTORY + 1

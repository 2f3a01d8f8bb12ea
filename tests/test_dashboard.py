"""The operations dashboard in a real browser: Playwright (Python) drives Debian's /usr/bin/chromium, headless,
against a real `cityhub serve --demo`. Also the public endpoints the page relies on: the live Observation stream
(SSE), the metro GeoJSON and the JSON index at /api.

Browser tests skip when /usr/bin/chromium, npm or Playwright is missing (fail with CITYHUB_REQUIRE_SERVICES=1).
Screenshots of the main views go to var/screenshots/.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pytest

from cityhub.auth.keys import KeyStore
from cityhub.bus import EventBus
from cityhub.sse import Subscriber, take_slot
from cityhub.store.base import OBSERVATION_BATCH_SCHEMA
from cityhub.web import live as web_live
from cityhub.web import vendor_built
from tests.servers import free_port, start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
LAPTOP = {"width": 1366, "height": 768}
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # never fetch a browser: Debian's is used


def _missing(msg: str) -> None:
    if os.environ.get("CITYHUB_REQUIRE_SERVICES") == "1":
        pytest.fail(msg + " and CITYHUB_REQUIRE_SERVICES=1")
    pytest.skip(msg)


# -- a demo city ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir: Path = tmp_path_factory.mktemp("dashboard") / "var"
    key = KeyStore(data_dir / "keys.json").create("admin", "dashboard tests")
    port = free_port()
    proc = start_server(data_dir, port, "--demo")
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    try:
        # The demo backfills 48 hours in the background: wait until every station has an index.
        deadline = time.monotonic() + 90
        while True:
            stations = client.get("/api/v1/aqi/stations").json()["value"]
            if len(stations) == 15 and all(s["aqi"] and s["aqi"]["value"] is not None for s in stations):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the demo city did not come up: {(data_dir / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield {"base": base, "client": client, "key": key, "stations": stations, "data_dir": data_dir}
    finally:
        client.close()
        stop_server(proc)


def pollutant_datastream(client: httpx.Client, thing: int, name: str = "PM2.5") -> int:
    r = client.get(f"/v1.1/Things({thing})/Datastreams", params={"$filter": f"ObservedProperty/name eq '{name}'"})
    return r.json()["value"][0]["@iot.id"]


def post_hazardous(client: httpx.Client, datastream: int) -> None:
    """PM2.5 of 900 µg/m³ now and in the previous hour (two hours in a row: what the hazardous-air rule asks),
    in one body so the index is derived once. Minutes and seconds of now avoid the demo's on-the-hour readings."""
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [now, now - timedelta(hours=1)]
    body = "datastream,phenomenonTime,result\n" + "".join(f"{datastream},{t.isoformat()},900\n" for t in rows)
    r = client.post("/api/v1/ingest", content=body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["stored"] == 2, r.text


# -- endpoints the page uses (no browser) ---------------------------------------------------------------------
def test_index_and_dashboard_are_served(city: dict[str, Any]) -> None:
    c = city["client"]
    page = c.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/js/main.js" in page.text and "cdn" not in page.text.lower()
    # The libraries by name through the import map, from web/node_modules (runtime dependencies only).
    assert '<script type="importmap">' in page.text
    if vendor_built():
        for path in ("leaflet/dist/leaflet-src.esm.js", "leaflet/dist/leaflet.css", "lit-html/lit-html.js"):
            assert c.get(f"/static/vendor/{path}").status_code == 200, path
    assert c.get("/static/vendor/eslint/package.json").status_code == 404
    assert c.get("/static/vendor/leaflet/%2e%2e/eslint/package.json").status_code == 404
    index = c.get("/api").json()
    assert index["name"] == "CityHub" and index["sensorthings"].endswith("/v1.1")
    assert {"latest", "aggregate", "aqi", "observations/stream", "geo/things", "transit/metro"} <= set(
        index["extensions"]
    )
    assert {k: index["map"][k] for k in ("tileUrl", "tileAttribution")} == {"tileUrl": None, "tileAttribution": None}


def test_metro_geojson(city: dict[str, Any]) -> None:
    r = city["client"].get("/api/v1/transit/metro")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    features = r.json()["features"]
    stations = [f for f in features if f["properties"]["kind"] == "station"]
    lines = [f for f in features if f["properties"]["kind"] == "line"]
    assert len([s for s in stations if s["properties"]["line"] == "2A"]) == 12
    assert len([s for s in stations if s["properties"]["line"] == "3"]) == 14
    assert {s["properties"]["status"] for s in stations} == {"operating", "construction", "planned"}
    assert {"Cát Linh", "Yên Nghĩa", "Nhổn", "Cầu Giấy", "Ga Hà Nội"} <= {s["properties"]["name"] for s in stations}
    for f in stations:
        lon, lat = f["geometry"]["coordinates"]
        assert 105.7 < lon < 105.9 and 20.9 < lat < 21.1
    sections = {(f["properties"]["line"], f["properties"]["status"]) for f in lines}
    assert sections >= {("2A", "operating"), ("3", "operating"), ("3", "construction")}
    assert "/api/v1/transit/metro" in city["client"].get("/openapi.json").json()["paths"]


def test_things_as_geojson(city: dict[str, Any]) -> None:
    c = city["client"]
    r = c.get("/api/v1/geo/things", params=[("kind", "traffic detector"), ("kind", "water gauge")])
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    features = r.json()["features"]
    kinds = [f["properties"]["properties"]["kind"] for f in features]
    assert kinds.count("traffic detector") == 28 and kinds.count("water gauge") == 3
    # The same Things, Locations and Datastreams as the SensorThings API says.
    st = c.get(
        "/v1.1/Things",
        params={"$filter": "properties/kind eq 'water gauge'", "$expand": "Locations,Datastreams", "$top": "100"},
    ).json()["value"]
    by_id = {f["id"]: f for f in features}
    for thing in st:
        f = by_id[thing["@iot.id"]]
        assert f["geometry"] == thing["Locations"][0]["location"]
        assert f["properties"]["name"] == thing["name"] and f["properties"]["properties"] == thing["properties"]
        assert [d["@iot.id"] for d in f["properties"]["Datastreams"]] == [d["@iot.id"] for d in thing["Datastreams"]]
        assert f["properties"]["Datastreams"][0]["unit"] == "cm"
    hanoi = next(f for f in features if f["properties"]["properties"].get("stationCode") == "74165")
    assert hanoi["properties"]["properties"]["alarmLevels"] == {"I": 950, "II": 1050, "III": 1150}
    assert len(c.get("/api/v1/geo/things").json()["features"]) == 46  # no kind: every Thing
    assert c.get("/api/v1/geo/things", params={"kind": "no such kind"}).json()["features"] == []
    # By ObservedProperty (definition or name): what the dashboard's views ask for.
    level = c.get("/api/v1/geo/things", params={"observedProperty": "https://cityhub.hanoi/def/WaterLevel"}).json()
    assert sorted(f["id"] for f in level["features"]) == sorted(t["@iot.id"] for t in st)
    speed = c.get("/api/v1/geo/things", params=[("observedProperty", "Traffic speed")]).json()["features"]
    assert len(speed) == 28 and all(
        any(d["observedProperty"]["name"] == "Traffic speed" for d in f["properties"]["Datastreams"]) for f in speed
    )
    both = [("observedProperty", "Traffic speed"), ("kind", "water gauge")]  # a Thing passes both
    assert c.get("/api/v1/geo/things", params=both).json()["features"] == []


def test_observation_stream_sends_new_observations(city: dict[str, Any]) -> None:
    c = city["client"]
    thing = city["stations"][5]["thing"]
    ds = pollutant_datastream(c, thing, "PM10")
    with httpx.stream("GET", f"{city['base']}/api/v1/observations/stream", params={"datastreams": ds}, timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        ready = list(itertools.takewhile(bool, lines))  # the first message, to its blank line
        assert "event: ready" in ready and any(x.startswith("retry:") for x in ready), ready
        t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1, seconds=7)
        posted = c.post(
            "/v1.1/Observations", json={"phenomenonTime": t.isoformat(), "result": 61.5, "Datastream": {"@iot.id": ds}}
        )
        assert posted.status_code == 201, posted.text
        event = None
        for line in lines:  # a read timeout (10 s) fails the test if the Observation never comes
            if line == "event: observation":
                data = next(lines)
                # Other Observations of the Datastream (the city's own feed) may come first: wait for ours.
                if orjson.loads(data.removeprefix("data: "))["id"] == posted.json()["@iot.id"]:
                    event = data
                    break
    assert event is not None, "the stream ended without the new Observation"
    body = orjson.loads(event.removeprefix("data: "))
    assert body == {
        "datastream": ds,
        "thing": thing,
        "phenomenonTime": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "result": 61.5,
        "id": posted.json()["@iot.id"],
    }
    bad = c.get("/api/v1/observations/stream", params={"datastreams": "1,x"})
    assert bad.status_code == 400 and bad.json()["field"] == "datastreams"


def test_a_slow_client_is_dropped_and_ingestion_never_waits() -> None:
    class Catalog:
        def table(self) -> pa.Table:
            return pa.table({"id": pa.array([], pa.int64()), "thing_id": pa.array([], pa.int64())})

    class Hub:
        bus = EventBus()
        catalog = Catalog()

    batch = pa.Table.from_pylist(
        [{"id": 1, "datastream_id": 7, "phenomenon_time": datetime(2026, 1, 1, tzinfo=UTC), "result_number": 1.0}],
        schema=OBSERVATION_BATCH_SCHEMA,
    )
    limit = 50

    async def run() -> tuple[web_live._Client, web_live._Client]:
        loop = asyncio.get_running_loop()
        fan = web_live.ObservationFanout(Hub(), loop)  # type: ignore[arg-type]
        slow = fan.subscribe(None, Subscriber(take_slot(1000), limit, resumable=False))
        other = fan.subscribe([8], Subscriber(take_slot(1000), limit, resumable=False))  # gets nothing
        for _ in range(limit + 10):
            Hub.bus.observations(batch)  # what the writer thread does
        # The writer's call only handed each batch to the loop: no client has been given anything yet.
        assert slow.sub.pending == 0 and slow.sub.reason is None
        handed = asyncio.Event()
        loop.call_soon_threadsafe(handed.set)  # runs after every batch handed over before it
        await asyncio.wait_for(handed.wait(), 10)
        return slow, other

    slow, other = asyncio.run(run())
    # Dropped on the batch past its buffer: the buffer was emptied and its slot freed.
    assert slow.sub.reason == f"this client fell {limit} events behind" and slow.sub.pending == 0
    assert not slow.sub.slot.held
    assert other.sub.reason is None and other.sub.pending == 0
    assert np.array_equal(other.datastreams, [8])
    other.sub.slot.release()


# -- the page in a browser ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(city: dict[str, Any]) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} not found (apt-get install chromium)")
    if shutil.which("npm") is None and not vendor_built():
        _missing("npm not found: the dashboard's map library cannot be built (make web)")
    if not vendor_built():
        subprocess.run(["make", "-C", str(ROOT), "web"], check=False, timeout=600)
        if not vendor_built():
            _missing("make web did not install web/node_modules/ (npm ci in web/)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A page on the dashboard that records console errors and uncaught exceptions."""

    def __init__(
        self, browser: Any, base: str, viewport: dict[str, int], lang: str | None = None, setup: Any = None
    ) -> None:
        self.context = browser.new_context(viewport=viewport)
        if lang:
            self.context.add_init_script(f"localStorage.setItem('cityhub.lang', '{lang}')")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        if setup is not None:
            setup(self.page)
        self.page.goto(base + "/")
        self.page.wait_for_function("window.cityhub && window.cityhub.ready", timeout=20_000)

    def shot(self, name: str) -> None:
        self.page.mouse.move(1, 1)  # no hover tooltip over the view
        self.page.wait_for_timeout(300)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser: Any, city: dict[str, Any]) -> Iterator[Page]:
    p = Page(browser, city["base"], LAPTOP)
    yield p
    p.close()
    assert p.errors == [], f"console errors: {p.errors}"


def test_page_loads_with_one_marker_per_station(page: Page, city: dict[str, Any]) -> None:
    pg = page.page
    stations = [s for s in city["client"].get("/api/v1/aqi/stations").json()["value"] if s["coordinates"]]
    assert pg.locator(".aq-marker").count() == len(stations) == 15
    assert pg.locator(".water-marker").count() == 3
    # Each marker shows its station's index in the category colour the API gives.
    first = stations[0]
    marker = pg.locator(f".aq-marker[data-thing='{first['thing']}']")
    assert marker.get_attribute("data-category") == first["aqi"]["category"]["key"]
    assert marker.inner_text() == str(first["aqi"]["value"])
    # KPIs: air stations counted on their own, traffic detectors and water gauges beside them; the worst named.
    assert pg.locator("#kpi-reporting-value").inner_text().endswith("/ 15")
    others = pg.locator("#kpi-reporting-others").inner_text()
    assert others.startswith("giao thông ") and "/ 28" in others and "mực nước " in others and "/ 3" in others
    worst = max(stations, key=lambda s: s["aqi"]["value"])
    assert pg.locator("#kpi-worst-index").inner_text() == str(worst["aqi"]["value"])
    # Layers toggle.
    pg.locator("#layer-aq").uncheck()
    assert pg.locator(".aq-marker").count() == 0
    pg.locator("#layer-aq").check()
    assert pg.locator(".aq-marker").count() == 15
    page.shot("laptop-vi")


@pytest.mark.parametrize("index", ["us", "us2012", "kr"])
def test_index_switch_recolours_with_the_api_values(page: Page, city: dict[str, Any], index: str) -> None:
    pg = page.page
    pg.locator("#index-select").select_option(index)
    stations = [s for s in city["client"].get(f"/api/v1/aqi/stations?index={index}").json()["value"] if s["aqi"]]
    first = stations[0]
    sel = f".aq-marker[data-thing='{first['thing']}']"
    # Two indices may give the same number in different categories (US 2024 vs 2012 PM2.5 bands): wait for both.
    pg.wait_for_function(
        f'(() => {{ const m = document.querySelector("{sel}"); return m && m.textContent === '
        f"'{first['aqi']['value']}' && m.dataset.category === '{first['aqi']['category']['key']}'; }})()",
        timeout=5000,
    )
    pg.locator("#index-select").select_option("vn")


def test_station_click_shows_chart_advice_and_school_guidance(page: Page, city: dict[str, Any]) -> None:
    pg = page.page
    thing = city["stations"][1]["thing"]
    pg.locator(f".aq-marker[data-thing='{thing}']").click()
    pg.wait_for_selector("#detail-chart svg rect.bar", timeout=5000)
    api = city["client"].get(f"/api/v1/aqi/stations/{thing}").json()
    assert pg.locator("#detail-name").inner_text() == api["name"]
    # The station's hour as the interval it covers, in Hanoi time: never stamped at an end still ahead.
    start = datetime.fromisoformat(api["hour"]).astimezone(timezone(timedelta(hours=7)))
    span = f"{start:%H}:00–{(start + timedelta(hours=1)):%H}:00"
    assert span in pg.locator(".detail-head .muted").inner_text()
    assert pg.locator("#detail-value").inner_text() == str(api["aqi"]["value"])
    assert pg.locator(".subindices tbody tr").count() == len(api["aqi"]["sub_indices"])
    assert pg.locator("#detail-chart rect.bar").count() >= 24  # the last 48 hours, hourly
    advice = pg.locator("#detail-advice").inner_text()
    assert api["aqi"]["advice"]["normal"]["vi"] in advice and api["aqi"]["advice"]["sensitive"]["vi"] in advice
    school = city["client"].get(f"/api/v1/aqi/stations/{thing}/school").json()
    assert school["vi"] in pg.locator("#detail-school").inner_text()
    page.shot("laptop-vi-station")
    pg.locator("#detail .close").click()
    assert pg.locator("#detail").is_hidden()


def test_a_hazardous_reading_recolours_the_marker_live(page: Page, city: dict[str, Any]) -> None:
    pg = page.page
    c = city["client"]
    thing = city["stations"][3]["thing"]
    marker = pg.locator(f".aq-marker[data-thing='{thing}']")
    assert marker.get_attribute("data-category") != "hazardous"
    ds = pollutant_datastream(c, thing)
    pg.evaluate("window.__reloads = performance.getEntriesByType('navigation').length")
    post_hazardous(c, ds)
    pg.wait_for_function(  # pushed by the live stream (no reload, below)
        f"document.querySelector(\".aq-marker[data-thing='{thing}']\").dataset.category === 'hazardous'",
        timeout=15_000,
    )
    api = c.get(f"/api/v1/aqi/stations/{thing}").json()
    assert marker.get_attribute("data-color") == api["aqi"]["category"]["color"]
    assert pg.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload
    # The city's worst station is now this one.
    pg.wait_for_function(f"document.querySelector('#kpi-worst').dataset.thing === '{thing}'", timeout=15_000)


def test_a_hazardous_reading_shows_in_the_alerts_panel_live(page: Page, city: dict[str, Any]) -> None:
    c = city["client"]
    listed = c.get("/api/v1/alerts")
    assert listed.status_code == 200, f"GET /api/v1/alerts: {listed.status_code} {listed.text[:200]}"
    pg = page.page
    thing = city["stations"][6]["thing"]
    # The demo's built-in "Hazardous air now" rule raises an alert in the hour the VN_AQI reaches 301.
    before = pg.locator("#alerts-list .alert").count()
    post_hazardous(c, pollutant_datastream(c, thing))
    pg.wait_for_function(f"document.querySelectorAll('#alerts-list .alert').length > {before}", timeout=15_000)
    assert pg.locator("#kpi-alerts-value").inner_text() != "0"
    page.shot("laptop-vi-alert")


def test_alerts_read_in_the_pages_language_and_a_click_opens_their_subject(page: Page, city: dict[str, Any]) -> None:
    """The demo's hanoi_air rules give every alert a title per language ("Không khí kém kéo dài 2 giờ ở ..."): the
    panel shows it in the page's language, with the rule's terms below; clicking an alert flies to its station and
    opens its detail panel."""
    c = city["client"]
    thing = city["stations"][4]["thing"]
    post_hazardous(c, pollutant_datastream(c, thing))  # "Hazardous air now" at this station, titled
    pg = page.page
    pg.wait_for_selector("#alerts-list .alert[data-alert-id]", timeout=15_000)

    def shown(lang: str) -> None:
        # One snapshot of the list (it re-renders as alerts arrive): id, title line, terms line of each item.
        items = pg.evaluate(
            "[...document.querySelectorAll('#alerts-list .alert')].map((el) => [Number(el.dataset.alertId),"
            " el.querySelector('.msg').innerText, el.querySelector('.meta').innerText])"
        )
        for aid, msg, meta in items:
            a = active.get(aid)
            if a and a["details"].get("title"):
                assert msg == a["details"]["title"][lang] and a["message"] in meta, (msg, meta, a)

    def listed() -> dict[int, dict[str, Any]]:
        return {a["id"]: a for a in c.get("/api/v1/alerts", params={"state": "active", "limit": 500}).json()["value"]}

    def hazardous_here() -> dict[str, Any] | None:
        return next((a for a in listed().values() if a["subject"]["id"] == thing
                     and a["rule"]["name"] == "Hazardous air now"), None)  # fmt: skip

    deadline = time.monotonic() + 15
    while (mine := hazardous_here()) is None:
        assert time.monotonic() < deadline, "no Hazardous air now alert"
        time.sleep(0.2)
    pg.wait_for_selector(f"#alerts-list .alert[data-alert-id='{mine['id']}']", timeout=15_000)
    active = listed()
    shown("vi")
    # Markers pulse in the colour of their worst active alert: red only for a critical one.
    rank = {"info": 0, "warning": 1, "critical": 2}
    worst: dict[int, str] = {}
    for a in active.values():
        if a["subject"]["type"] == "thing":
            t = a["subject"]["id"]
            worst[t] = max(worst.get(t, "info"), a["severity"], key=rank.__getitem__)
    assert worst[thing] == "critical"
    classes = pg.evaluate("Object.fromEntries([...document.querySelectorAll('.aq-marker')]"
                          ".map((m) => [m.dataset.thing, m.className]))")  # fmt: skip
    for t, severity in worst.items():
        if str(t) in classes:
            assert f"alert-{severity}" in classes[str(t)], (t, severity, classes[str(t)])
    # An hourly index's alert is dated by the hour it covers, as an interval (never a bare time, never one ahead).
    assert mine["details"]["period"] == "hour"
    stamp = pg.locator(f"#alerts-list .alert[data-alert-id='{mine['id']}'] time").inner_text()
    assert re.match(r"^\d\d:00–\d\d:00 ", stamp), stamp
    pg.locator(f"#alerts-list .alert[data-alert-id='{mine['id']}']").click()
    pg.wait_for_function(f"window.cityhub.state.selected === {thing} && window.cityhub.picked === {thing}")
    page.shot("laptop-vi-alert-picked")
    pg.locator("button[data-lang='en']").click()
    shown("en")
    assert (
        pg.locator(f"#alerts-list .alert[data-alert-id='{mine['id']}'] .msg").inner_text().startswith("Hazardous air")
    )
    pg.locator("button[data-lang='vi']").click()


def test_language_switch_is_remembered(page: Page) -> None:
    pg = page.page
    assert pg.evaluate("document.documentElement.lang") == "vi"
    assert pg.locator("label:has(#layer-aq)").inner_text().strip() == "Chất lượng không khí"
    assert pg.locator("#alerts h2").text_content() == "Cảnh báo"
    assert pg.locator("#kpi-worst .kpi-label").text_content() == "Trạm ô nhiễm nhất"
    assert pg.locator("#kpi-silent .kpi-label").text_content() == "Cảm biến mất tín hiệu"
    pg.locator("button[data-lang='en']").click()
    assert pg.evaluate("document.documentElement.lang") == "en"
    assert pg.locator("label:has(#layer-aq)").inner_text().strip() == "Air quality"
    assert pg.locator("#alerts h2").text_content() == "Alerts"
    assert pg.locator("#kpi-worst .kpi-label").text_content() == "Worst station"
    assert pg.locator("#live-btn").inner_text().strip() == "Live"
    page.shot("laptop-en")
    pg.reload()
    pg.wait_for_function("window.cityhub && window.cityhub.ready", timeout=20_000)
    assert pg.evaluate("document.documentElement.lang") == "en"
    assert pg.evaluate("localStorage.getItem('cityhub.lang')") == "en"
    pg.locator("button[data-lang='vi']").click()
    assert pg.locator("#live-btn").inner_text().strip() == "Trực tiếp"


def test_time_slider_shows_a_past_hour(page: Page, city: dict[str, Any]) -> None:
    pg = page.page
    pg.evaluate(
        "(() => { const s = document.querySelector('#time-slider'); s.value = '-30';"
        " s.dispatchEvent(new Event('input')); })()"
    )
    pg.wait_for_function("document.body.classList.contains('past') && window.cityhub.state.at !== null")
    pg.wait_for_function("document.querySelector('#time-label').textContent.startsWith('Số liệu lúc')")
    at = pg.evaluate("window.cityhub.state.at.toISOString()")
    pg.wait_for_timeout(500)
    past = city["client"].get("/api/v1/aqi/stations", params={"at": at}).json()["value"]
    for s in past[:5]:
        value = s["aqi"]["value"] if s["aqi"] else None
        shown = pg.locator(f".aq-marker[data-thing='{s['thing']}']").inner_text()
        assert shown == ("–" if value is None else str(value))
    # The header says its figures are those of the hour looked at, and the worst station is the past hour's.
    assert "lúc " in pg.locator("#kpi-reporting-others").inner_text()
    worst = max((s for s in past if s["aqi"]), key=lambda s: s["aqi"]["value"])
    assert pg.locator("#kpi-worst-index").inner_text() == str(worst["aqi"]["value"])
    page.shot("laptop-vi-past")
    pg.locator("#live-btn").click()
    pg.wait_for_function("!document.body.classList.contains('past')")


SCREENS = {"720p": {"width": 1280, "height": 720}, "1080p": {"width": 1920, "height": 1080},
           "wall": {"width": 3840, "height": 2160}}  # fmt: skip


@pytest.mark.parametrize("lang", ["vi", "en"])
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screenshots_at_each_screen_size(browser: Any, city: dict[str, Any], lang: str, screen: str) -> None:
    """The dashboard at a laptop's 1280×720, an office screen's 1920×1080 and a 4K wall of the operations centre,
    in both languages (var/screenshots/<screen>-<lang>*.png): every station on the map, names that fit."""
    p = Page(browser, city["base"], SCREENS[screen], lang)
    try:
        p.page.wait_for_function("document.documentElement.dataset.rendered === '1'", timeout=20_000)
        p.shot(f"{screen}-{lang}")
        p.page.locator(f".aq-marker[data-thing='{city['stations'][1]['thing']}']").click()
        p.page.wait_for_selector("#detail-chart svg rect.bar", timeout=5000)
        p.shot(f"{screen}-{lang}-station")
        assert p.page.locator(".aq-marker").count() == 15
    finally:
        p.close()
    assert p.errors == [], f"console errors: {p.errors}"


def test_alerts_panel_without_the_alerts_module(browser: Any, city: dict[str, Any]) -> None:
    """A hub without /api/v1/alerts: the panel says alerts are unavailable, with no console error."""

    def without_alerts(route: Any) -> None:
        body = city["client"].get("/api").json()
        body["extensions"] = {k: v for k, v in body["extensions"].items() if not k.startswith("alerts")}
        route.fulfill(json=body)

    p = Page(browser, city["base"], LAPTOP, setup=lambda page: page.route("**/api", without_alerts))
    try:
        p.page.wait_for_selector("#alerts-list .unavailable")
        assert "chưa có dịch vụ cảnh báo" in p.page.locator("#alerts-list").inner_text()
        assert p.page.locator("#kpi-alerts-value").inner_text() == "–"
    finally:
        p.close()
    assert p.errors == [], f"console errors: {p.errors}"


def test_api_docs_work_offline(browser: Any, city: dict[str, Any]) -> None:
    """/docs is Swagger UI from the hub's own npm libraries: every request the page makes goes to the hub (any other
    is aborted, as on a network without the internet), and it renders the OpenAPI 3.1 document's operations."""
    context = browser.new_context(viewport=LAPTOP)
    elsewhere: list[str] = []
    errors: list[str] = []

    def only_the_hub(route: Any) -> None:
        if route.request.url.startswith(city["base"] + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    try:
        context.route("**/*", only_the_hub)
        pg = context.new_page()
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.goto(city["base"] + "/docs")
        pg.wait_for_selector(".opblock-summary-path", timeout=20_000)
        paths = pg.locator(".opblock-summary-path").all_inner_texts()
        assert any(p.replace("\u200b", "") == "/api/v1/latest" for p in paths), paths[:20]
        assert pg.locator(".information-container .title").inner_text().startswith("CityHub")
        pg.screenshot(path=str(SCREENSHOTS / "api-docs.png"))
    finally:
        context.close()
    assert elsewhere == [] and errors == [], (elsewhere, errors)


def test_api_docs_without_the_npm_libraries_say_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from cityhub import web
    from cityhub.app import create_app
    from cityhub.config import Settings

    monkeypatch.setattr(web, "NODE_MODULES", tmp_path / "node_modules")
    with TestClient(create_app(Settings(data_dir=tmp_path / "var"))) as client:
        r = client.get("/docs")
        assert r.status_code == 503 and "make web" in r.text and "/openapi.json" in r.text
        assert client.get("/redoc").status_code == 404  # no offline copy of ReDoc: not served at all


def test_without_tiles_the_map_draws_hanois_wards_and_roads(page: Page, city: dict[str, Any]) -> None:
    """No tile server (as in these tests): the page draws the hub's basemap, 126 wards and the main roads of Hà Nội
    from the reference data, under the stations, with no request outside the hub."""
    index = city["client"].get("/api").json()["map"]
    if index["basemap"] is None:
        _missing("../shared/data/geo is absent: no basemap to draw")
    data = city["client"].get("/api/v1/basemap").json()
    layers = [f["properties"]["layer"] for f in data["features"]]
    assert layers.count("ward") == 126 and layers.count("road") > 1000
    etag = city["client"].get("/api/v1/basemap").headers["etag"]
    assert city["client"].get("/api/v1/basemap", headers={"If-None-Match": etag}).status_code == 304
    page.page.wait_for_function("window.cityhub.basemap > 0", timeout=20_000)
    assert page.page.evaluate("window.cityhub.basemap") == len(layers)
    assert page.page.locator(".leaflet-basemap-pane canvas").count() == 1
    page.shot("basemap-offline")


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 720}, LAPTOP])
def test_the_first_view_fits_every_station_and_gauge(
    browser: Any, city: dict[str, Any], viewport: dict[str, int]
) -> None:
    """On first load every air station and water gauge (the outlying Sơn Tây gauge too) is on the map, none under the
    layer panel or the legend."""
    p = Page(browser, city["base"], viewport)
    try:
        p.page.wait_for_function("document.documentElement.dataset.rendered === '1'", timeout=20_000)
        boxes = p.page.evaluate(
            """() => {
                const r = (el) => { const b = el.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
                const map = r(document.querySelector('#map'));
                const covers = [...document.querySelectorAll('#map .map-panel')].map(r);
                const markers = [...document.querySelectorAll('.aq-marker, .water-marker')].map((el) => {
                    const b = el.getBoundingClientRect();
                    return {thing: el.dataset.thing, x: (b.left + b.right) / 2, y: (b.top + b.bottom) / 2};
                });
                const shown = (sel) => [...document.querySelectorAll(sel)].filter((el) => el.offsetParent).map(r);
                const full = shown('.aq-icon:not(.crowded) .aq-marker');
                return {map, covers, markers, full, names: shown('.aq-name')};
            }"""
        )
        left, top, right, bottom = boxes["map"]
        assert len(boxes["markers"]) == 18
        for m in boxes["markers"]:
            assert left <= m["x"] <= right and top <= m["y"] <= bottom, m
            for x0, y0, x1, y1 in boxes["covers"]:
                assert not (x0 <= m["x"] <= x1 and y0 <= m["y"] <= y1), (m, "under a panel")

        # Collision-aware: the figures and names shown do not cover each other (crowded stations are dots).
        def apart(boxes: list[list[float]]) -> bool:
            return all(a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
                       for i, a in enumerate(boxes) for b in boxes[i + 1:])  # fmt: skip

        assert boxes["full"] and apart(boxes["full"]) and apart(boxes["names"]), boxes
        p.shot(f"first-view-{viewport['width']}x{viewport['height']}")
    finally:
        p.close()
    assert p.errors == [], p.errors


def test_the_us_view_shows_each_concentration_in_its_unit(browser: Any, city: dict[str, Any]) -> None:
    """The US index's breakpoints have O3 and CO in ppm, NO2 and SO2 in ppb: the API says so per concentration
    (`units`), and the station panel labels each row with it, not µg/m³ for all."""
    thing = city["stations"][0]["thing"]
    api = city["client"].get(f"/api/v1/aqi/stations/{thing}", params={"index": "us"}).json()["aqi"]
    assert api["units"]["o3"] == "ppm" and api["units"]["no2"] == "ppb" and api["units"]["pm25"] == "µg/m³"
    vn = city["client"].get(f"/api/v1/aqi/stations/{thing}").json()["aqi"]
    assert set(vn["units"].values()) == {"µg/m³"}
    p = Page(browser, city["base"], LAPTOP, setup=lambda pg: pg.add_init_script(
        "localStorage.setItem('cityhub.index', 'us')"))  # fmt: skip
    try:
        p.page.locator(f".aq-marker[data-thing='{thing}']").click()
        p.page.wait_for_selector(".subindices tbody tr")
        rows = p.page.evaluate(
            "[...document.querySelectorAll('.subindices tbody tr')].map((tr) => [tr.dataset.pollutant,"
            " tr.querySelector('[data-unit]').dataset.unit])"
        )
        assert dict(rows) == {k: api["units"][k] for k, _ in rows} and dict(rows).get("o3") == "ppm", rows
        p.shot("laptop-vi-station-us")
    finally:
        p.close()
    assert p.errors == [], p.errors

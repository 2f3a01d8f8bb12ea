"""The simulated city: calibrated on the real series, faults at their rates, reproducible, fed into the hub by the
demo and by `cityhub simulate`.

Tolerances (the real series are short, so the simulation is run long and compared with the real statistics):
PM2.5 monthly means of 20 simulated years within ±20 % of StateAir 2016–2017 each month (one simulated year's
month has ~25 % sampling error, twenty years ~6 %, the real two years themselves ~18 %), annual mean within ±5 %,
diurnal profile correlation ≥ 0.95 with its amplitude within ±15 %, 95th percentile within ±15 %, log-anomaly
autocorrelation at 1, 24, 72 h within ±0.08; between-station correlation of hourly log anomalies (estimated over
two weeks, as on aqiin.net's data) within ±0.03 of aqiin.net's, of daily means in [0.93, 0.99]; Red River monthly
means within max(10 %, 15 cm) of 2015's, the two gauges' correlation within ±0.05.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from cityhub import demo
from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.config import Settings
from cityhub.sim import fit
from cityhub.sim import params as P
from cityhub.sim.faults import FaultConfig
from cityhub.sim.generator import Simulator
from tests.servers import CITYHUB, free_port, start_server, stop_server

LOCAL = np.timedelta64(7, "h")
EMBASSY = "air/us-embassy/pm25"


def local_hours(t: np.ndarray) -> np.ndarray:
    return (t + LOCAL).astype("datetime64[h]")


# -- calibration -------------------------------------------------------------------------------------------------
def test_pm25_matches_stateair(shared_data: Path) -> None:
    rt, rv = fit.load_stateair(shared_data)
    sim = Simulator(seed=11, start=datetime(1998, 1, 1, tzinfo=UTC), kinds=["air"])
    t, v = sim.clean(datetime(2018, 1, 1, tzinfo=UTC), keys=[EMBASSY])[EMBASSY]
    lt = local_hours(t)
    real, simulated = fit.monthly_means(rt, rv), fit.monthly_means(lt, v)
    err = simulated / real - 1
    assert np.all(np.abs(err) <= 0.20), f"monthly means off by {np.round(err * 100, 1)} %"
    assert abs(v.mean() / rv.mean() - 1) <= 0.05
    assert simulated[[0, 1, 11]].mean() > 2 * simulated[[5, 6, 7]].mean()  # the winter peak
    dr, ds = fit.diurnal_ratio(rt, rv), fit.diurnal_ratio(lt, v)
    assert np.corrcoef(dr, ds)[0, 1] >= 0.95
    assert abs(np.ptp(ds) / np.ptp(dr) - 1) <= 0.15
    assert abs(np.percentile(v, 95) / np.percentile(rv, 95) - 1) <= 0.15
    # The persistence of episodes: the log anomaly's autocorrelation at 1 h, 24 h and 72 h.
    g = fit.dense(lt, fit.log_anomaly(lt, v), np.timedelta64(1, "h"))
    for lag, real_acf in ((1, 0.897), (24, 0.432), (72, 0.126)):
        assert abs(fit.acf(g, lag) - real_acf) <= 0.08


def test_stations_correlate_like_aqiin(shared_data: Path) -> None:
    real = fit.pairwise_median_corr(fit.station_log_anomalies(fit.load_aqiin_pm25(shared_data)[1]))
    assert abs(real - P.PM25_STATION_CORR) < 0.005
    sim = Simulator(seed=5, start=datetime(2017, 1, 1, tzinfo=UTC), kinds=["air"])
    series = sim.clean(datetime(2018, 1, 1, tzinfo=UTC))
    # Hourly PM2.5 of every station (the low-cost sensors' 5-minute values averaged), estimated as on aqiin's two
    # weeks, averaged over the year's two-week windows.
    x = np.array([v if v.size < 9000 else v.reshape(-1, 12).mean(1) for k, (_, v) in series.items() if "pm25" in k])
    windows = [fit.pairwise_median_corr(fit.station_log_anomalies(x[:, k : k + 336])) for k in range(0, 8424, 336)]
    assert abs(np.mean(windows) - real) <= 0.03
    days = x.reshape(len(x), 365, 24).mean(axis=2)
    assert 0.93 <= fit.pairwise_median_corr(days) <= 0.99


def test_red_river_matches_2015(shared_data: Path) -> None:
    rt, levels = fit.load_red_river(shared_data)
    sim = Simulator(seed=3, start=datetime(1998, 1, 1, tzinfo=UTC), kinds=["water"])
    series = sim.clean(datetime(2018, 1, 1, tzinfo=UTC), keys=["water/ha-noi/level", "water/son-tay/level"])
    for key, code in (("water/ha-noi/level", "74165"), ("water/son-tay/level", "74162")):
        t, v = series[key]
        real, simulated = fit.monthly_means(rt, levels[code]), fit.monthly_means(t + LOCAL, v)
        assert np.all(np.abs(simulated - real) <= np.maximum(0.10 * real, 15.0)), f"{code}: {simulated - real}"
        assert simulated[7:9].mean() > 1.8 * simulated[1:3].mean()  # flood season (Aug–Sep) vs low water (Feb–Mar)
    a, b = series["water/ha-noi/level"][1], series["water/son-tay/level"][1]
    ok = ~np.isnan(levels["74162"])
    assert abs(np.corrcoef(a, b)[0, 1] - np.corrcoef(levels["74165"][ok], levels["74162"][ok])[0, 1]) <= 0.05


def test_parameters_are_what_the_fit_gives(shared_data: Path) -> None:
    """params.py holds what ``python -m cityhub.sim.fit`` prints (PM2.5 and Red River; the fit is deterministic)."""
    pm = fit.fit_pm25(*fit.load_stateair(shared_data))
    assert pm["PM25_MONTHLY_MEAN"].tolist() == P.PM25_MONTHLY_MEAN
    assert pm["PM25_DIURNAL"].tolist() == P.PM25_DIURNAL
    assert (pm["PM25_SLOW_SHARE"], pm["PM25_PHI_SLOW"], pm["PM25_PHI_FAST"]) == (
        P.PM25_SLOW_SHARE, P.PM25_PHI_SLOW, P.PM25_PHI_FAST
    )  # fmt: skip
    river = fit.fit_river(*fit.load_red_river(shared_data))
    assert {k: v.tolist() for k, v in river["mean"].items()} == P.RIVER_MONTHLY_MEAN
    assert (river["RIVER_PHI_HOURLY"], river["RIVER_CORR"]) == (P.RIVER_PHI_HOURLY, P.RIVER_CORR)


# -- the stream --------------------------------------------------------------------------------------------------
START = datetime(2017, 1, 10, tzinfo=UTC)


def test_faults_occur_at_their_rates() -> None:
    rate = 0.03
    cfg = FaultConfig(gap=rate, stuck=rate, spike=rate, negative=rate, late=rate, duplicate=rate, offline_per_day=0)
    end = START + timedelta(days=2)
    clean = Simulator(seed=2, start=START).step(end)
    faulty = Simulator(seed=2, start=START, faults=cfg).step(end + timedelta(days=1))  # late ones arrive after `end`
    faulty = [r for r in faulty if r.time <= end]
    truth = {(r.key, r.time): r.value for r in clean}
    n = len(truth)
    interval = {s.key: s.interval for s in Simulator().sensors()}
    kinds: Counter[str] = Counter()
    seen: dict[tuple[str, datetime], int] = defaultdict(int)
    last: dict[str, float] = {}
    for r in faulty:
        seen[(r.key, r.time)] += 1
        faults = set(filter(None, r.fault.split("+")))
        kinds.update(faults)
        clean_value = truth[(r.key, r.time)]
        if "spike" in faults:
            assert 2.9 * clean_value <= r.value <= 8.1 * clean_value + 0.1
        if "negative" in faults:
            assert r.value < 0 <= clean_value
        if "late" in faults:
            assert r.emitted - r.time >= interval[r.key]
        if "stuck" in faults and "late" not in faults and r.key in last:
            kinds["stuck (repeats the previous value)"] += r.value == last[r.key]
        if "duplicate" not in faults:
            last[r.key] = r.value
        if not faults:
            assert r.value == clean_value
    missing = n - len(seen)
    assert abs(missing / n - rate) <= 0.2 * rate, "gaps"
    assert sum(k > 1 for k in seen.values()) == kinds["duplicate"]
    for kind in ("stuck", "spike", "negative", "late", "duplicate"):
        expected = rate * n * (1 - rate) ** (kind != "late")  # value faults only hit readings that were sent
        assert abs(kinds[kind] - expected) <= 0.2 * expected, (kind, kinds[kind], expected)
    assert kinds["stuck (repeats the previous value)"] >= 0.7 * kinds["stuck"]
    emitted = [r.emitted for r in faulty]
    assert emitted == sorted(emitted)  # emission order; late ones are out of phenomenon-time order
    order: dict[str, list[datetime]] = defaultdict(list)
    for r in faulty:
        order[r.key].append(r.time)
    assert sum(times != sorted(times) for times in order.values()) > len(order) / 2


def test_outages_silence_a_thing() -> None:
    cfg = replace(FaultConfig.none(), offline_per_day=0.5)
    end = START + timedelta(days=4)
    sim = Simulator(seed=4, start=START, faults=cfg, kinds=["traffic"])
    got = {(r.key, r.time) for r in sim.step(end)}
    clean = Simulator(seed=4, start=START, kinds=["traffic"]).step(end)
    missing = [(r.key.rsplit("/", 1)[0], r.time) for r in clean if (r.key, r.time) not in got]
    # 0.5 outages per Thing-day of 2–8 h cover about 1 − exp(−0.5·5/24) ≈ 10 % of the slots, all Datastreams at once
    assert 0.06 <= len(missing) / len(clean) <= 0.14
    per_slot = Counter(missing)
    assert set(per_slot.values()) == {2}  # speed and flow of a detector go silent together


def test_same_seed_same_stream() -> None:
    cfg = FaultConfig()
    end = START + timedelta(hours=30)
    whole = Simulator(seed=9, start=START, faults=cfg).step(end)
    sim = Simulator(seed=9, start=START, faults=cfg)
    pieces = []
    t = START
    while t < end:
        t = min(end, t + timedelta(minutes=17))
        pieces += sim.step(t)
    assert pieces == whole
    other = Simulator(seed=10, start=START, faults=cfg).step(end)
    assert [r.value for r in other[:500]] != [r.value for r in whole[:500]]
    # Clean values do not depend on the fault settings, and `clean` gives the same values as `step`.
    no_faults = Simulator(seed=9, start=START).step(end)
    arrays = Simulator(seed=9, start=START).clean(end)
    assert [r.value for r in no_faults if r.key == EMBASSY] == arrays[EMBASSY][1].tolist()
    assert len(no_faults) == sum(len(v) for _, v in arrays.values())
    sent = {(r.key, r.time): r.value for r in whole if not r.fault}
    assert all(sent[(r.key, r.time)] == r.value for r in no_faults if (r.key, r.time) in sent)


def test_backfill_sensors_are_complete() -> None:
    readings = Simulator(seed=1, start=START, faults=FaultConfig()).step(START + timedelta(hours=48))
    specs = Simulator().sensors()
    assert {s.site.kind for s in specs} == {"air-quality station", "traffic detector", "water gauge"}
    assert {s.vocab.name for s in specs if s.key.startswith("air/")} == {"PM2.5", "PM10", "O3", "NO2", "SO2", "CO"}
    assert {s.key for s in specs} == {r.key for r in readings}
    assert {s.interval for s in specs} == {timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1)}
    jan = [r.value for r in readings if r.key == EMBASSY]
    assert 10 < np.mean(jan) < 300  # a January replay: hazardous-season levels


# -- the hub -------------------------------------------------------------------------------------------------------
def wait_for(fn, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        out = fn()
        if out or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def test_demo_city_in_the_hub(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    with TestClient(create_app(settings, demo=True)) as c:
        # 60 s: a generous bound for a loaded CI machine; timing is not what this test asserts (the backfill takes
        # about 3 s on PostgreSQL alone, 25 s before the duplicate lookup stopped being quadratic).
        assert wait_for(lambda: c.get("/api/v1/info").json()["counts"].get("observations", 0) > 30_000, timeout=60)
        things = c.get("/v1.1/Things?$select=id,name,properties&$top=1000").json()["value"]
        kinds = Counter(t["properties"]["kind"] for t in things)
        assert kinds == {"air-quality station": 15, "traffic detector": 28, "water gauge": 3}
        assert all(t["properties"]["network"] == "simulated" for t in things)
        for name in ("PM2.5 Hoàn Kiếm", "Speed Giải Phóng", "Water level Hà Nội (Long Biên)"):
            ds = c.get(f"/v1.1/Datastreams?$filter=name eq '{name}'&$select=id").json()["value"][0]["@iot.id"]
            obs = c.get(f"/v1.1/Datastreams({ds})/Observations?$top=5&$count=true").json()
            assert obs["@iot.count"] >= 40 and len(obs["value"]) == 5
        stations = wait_for(
            lambda: [s for s in c.get("/api/v1/aqi/stations").json()["value"] if s["aqi"] and s["aqi"]["value"]]
        )
        assert len(stations) == 15
        derived = wait_for(
            lambda: (
                c.get("/v1.1/Datastreams?$filter=name eq 'VN_AQI hourly'&$count=true&$top=1").json()["@iot.count"] == 15
            )
        )
        assert derived
        before = c.get("/api/v1/info").json()["counts"]
        ids = demo.seed(c.app.state.hub)  # idempotent: finds everything the feed created
    with TestClient(create_app(settings, demo=True)) as c:
        time.sleep(1.0)
        assert demo.seed(c.app.state.hub) == ids
        after = c.get("/api/v1/info").json()["counts"]
        assert {k: after[k] for k in ("things", "locations", "sensors", "observed_properties", "datastreams")} == {
            k: before[k] for k in ("things", "locations", "sensors", "observed_properties", "datastreams")
        }
        assert after["observations"] < before["observations"] + 5_000  # the 48 hours are not backfilled again


def test_simulate_command_over_http(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    key = KeyStore(data_dir / "keys.json").create("admin", "simulator")
    port = free_port()
    proc = start_server(data_dir, port)
    try:
        args = [CITYHUB, "simulate", "--url", f"http://127.0.0.1:{port}", "--key", key, "--seed", "5",
                "--start", "2017-01-10", "--speed", "3600x", "--duration", "2s", "--backfill", "6h",
                "--kinds", "air,water"]  # fmt: skip
        out = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "stored" in out.stdout
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            info = c.get("/api/v1/info").json()
            assert info["counts"]["things"] == 18
            assert info["counts"]["observations"] > 500
            assert info["observations_from"].startswith("2017-01-09")
        # The same seed and start again: the hub counts every reading as a duplicate and stores nothing new.
        again = subprocess.run([*args[:-6], "--duration", "0s", "--backfill", "6h", "--kinds", "air,water"],
                               capture_output=True, text=True, timeout=60)  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
        assert "stored 0," in again.stdout
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/info").json()["counts"]["things"] == 18
    finally:
        stop_server(proc)


def test_simulate_against_a_demo_hub_leaves_the_demos_hours_to_it(tmp_path: Path) -> None:
    """`make run` feeds the simulated Datastreams itself: real time is refused in one line, and a backfill reaching
    before the demo's 48 hours sends only the hours before them (nothing rejected as a conflict)."""
    data_dir = tmp_path / "var"
    key = KeyStore(data_dir / "keys.json").create("admin", "simulator")
    port = free_port()
    proc = start_server(data_dir, port, "--demo")
    base = f"http://127.0.0.1:{port}"
    try:
        since = httpx.get(f"{base}/api", timeout=10).json()["demo"]["since"]
        hours_ago = (datetime.now(UTC) - datetime.fromisoformat(since)) / timedelta(hours=1)
        assert 48 <= hours_ago < 49.1  # the demo's backfill, from the hour its simulator starts at
        sim = [CITYHUB, "simulate", "--url", base, "--key", key, "--kinds", "water", "--no-faults"]
        now = subprocess.run([*sim, "--duration", "1s"], capture_output=True, text=True, timeout=60)
        assert now.returncode == 1 and "runs the demo city" in now.stdout and "Traceback" not in now.stderr, now
        before = subprocess.run([*sim, "--backfill", "60h", "--duration", "1s"], capture_output=True, text=True,
                                timeout=120)  # fmt: skip
        assert before.returncode == 0, before.stdout + before.stderr
        assert "readings not sent: the hub's demo city feeds those hours itself" in before.stdout
        assert ", rejected 0;" in before.stdout and "stored 0," not in before.stdout, before.stdout
        names = [t["name"] for t in httpx.get(f"{base}/v1.1/Things?$select=name&$top=1000").json()["value"]]
        assert names and len(names) == len(set(names))  # the demo's Things reused, none made twice
    finally:
        stop_server(proc)


def test_simulate_command_over_mqtt(tmp_path: Path) -> None:
    """--via mqtt through a broker of this test's own (so no other test's hub hears it)."""
    mosquitto = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if mosquitto is None:
        pytest.skip("mosquitto is not installed")
    broker_port, port = free_port(), free_port()
    broker = subprocess.Popen([mosquitto, "-p", str(broker_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data_dir = tmp_path / "var"
    key = KeyStore(data_dir / "keys.json").create("admin", "simulator")
    try:
        url = f"mqtt://127.0.0.1:{broker_port}"
        proc = start_server(data_dir, port, "--mqtt", url, "--mqtt-client-id", f"sim-test-{port}")
        try:
            out = subprocess.run(
                [CITYHUB, "simulate", "--url", f"http://127.0.0.1:{port}", "--key", key, "--via", "mqtt",
                 "--mqtt", url, "--start", "2017-01-10", "--speed", "3600x", "--duration", "1s", "--backfill", "3h",
                 "--kinds", "water"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert out.returncode == 0, out.stdout + out.stderr
            sent = int(out.stdout.split("published ")[1].split()[0].replace(",", ""))
            health = wait_for(
                lambda: (h := httpx.get(f"http://127.0.0.1:{port}/healthz").json()["mqtt"])["received"] == sent and h
            )
            assert health and health["stored"] + health["duplicates"] == sent and health["dead_letters"] == 0
        finally:
            stop_server(proc)
    finally:
        broker.terminate()
        broker.wait(10)

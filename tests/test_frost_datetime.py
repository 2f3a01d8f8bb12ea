"""FROST-Server's date and time filter tests (``statests.c03filtering.DateTimeTests``, v1.1), ported to pytest.

Each Java test keeps its name (``test_<name>``) and checks what it checks: the comparison operators and the time
functions (before, after, meets, during, overlaps, starts, finishes) between a time property and a time or interval
literal, in both orders, on Observations (resultTime, validTime, phenomenonTime) and on Datastreams (their
phenomenonTime and resultTime, the extent of their Observations); year(); duration arithmetic; the alternative
spelling of overlaps; and a Datastream's phenomenonTime once its Observations are gone.
``createEntities`` is the ``scene`` fixture, with FROST's entities, times and results, made as FROST's client sends
them; the Java class's shared state and its cleanup become a fresh hub for each test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.frost_data import THING, create, datastream

Instant = datetime
Interval = tuple[datetime, datetime]
Expected = Sequence[int] | None  # indices into the scene's Observations or Datastreams; None: not checked


def _t(text: str) -> Instant:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


T2014 = _t("2014-01-01T06:00:00.000Z")
T2015 = _t("2015-01-01T06:00:00.000Z")
T600 = _t("2016-01-01T06:00:00.000Z")
T659 = _t("2016-01-01T06:59:00.000Z")
T700 = _t("2016-01-01T07:00:00.000Z")
T701 = _t("2016-01-01T07:01:00.000Z")
T759 = _t("2016-01-01T07:59:00.000Z")
T800 = _t("2016-01-01T08:00:00.000Z")
T801 = _t("2016-01-01T08:01:00.000Z")
T900 = _t("2016-01-01T09:00:00.000Z")
T2017 = _t("2017-01-01T09:00:00.000Z")
T2017_2 = T2017 + timedelta(hours=1)
T2018 = _t("2018-01-01T09:00:00.000Z")
I2015 = (T2015, T2015 + timedelta(hours=1))
I600_659 = (T600, T659)
I600_700 = (T600, T700)
I600_701 = (T600, T701)
I700_800 = (T700, T800)
I701_759 = (T701, T759)
I759_900 = (T759, T900)
I800_900 = (T800, T900)
I801_900 = (T801, T900)
I659_801 = (T659, T801)
I700_759 = (T700, T759)
I700_801 = (T700, T801)
I659_800 = (T659, T800)
I701_800 = (T701, T800)
I2017 = (T2017, T2017_2)
I2014_2015 = (T2014, T2015)
I2014_2017_2 = (T2014, T2017_2)
I2014_2018 = (T2014, T2018)
I2015_2017_2 = (T2015, T2017_2)
I2015_2018 = (T2015, T2018)
I2017_2_2018 = (T2017_2, T2018)

# createEntities: (phenomenonTime, resultTime, validTime) of Observation n, whose result is n.
OBSERVATION_TIMES: list[tuple[Instant | Interval, Instant | None, Interval | None]] = [
    (T600, T600, None),  # 0
    (T659, T659, None),  # 1
    (T700, T700, None),  # 2
    (T701, T701, None),  # 3
    (T759, T759, None),  # 4
    (T800, T800, None),  # 5
    (T801, T801, None),  # 6
    (T900, T900, None),  # 7
    (I600_659, None, I600_659),  # 8
    (I600_700, None, I600_700),  # 9
    (I600_701, None, I600_701),  # 10
    (I700_800, None, I700_800),  # 11
    (I701_759, None, I701_759),  # 12
    (I759_900, None, I759_900),  # 13
    (I800_900, None, I800_900),  # 14
    (I801_900, None, I801_900),  # 15
    (I659_801, None, I659_801),  # 16
    (I700_759, None, I700_759),  # 17
    (I700_801, None, I700_801),  # 18
    (I659_800, None, I659_800),  # 19
    (I701_800, None, I701_800),  # 20
    (T2015, T2015, None),  # 21
    (T2017, T2017, None),  # 22
    (I2015, T2015, I2015),  # 23
    (I2017, T2017 + timedelta(hours=1), I2017),  # 24
]


def _moment(t: Instant) -> str:
    """FROST's client writes an instant with its seconds, and a fraction only when there is one."""
    text = t.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


def _json_time(t: Instant | Interval | None) -> str | None:
    """TimeInstant / TimeInterval as FROST's client serialises them in a request body."""
    if t is None:
        return None
    if isinstance(t, tuple):
        return f"{_moment(t[0])}/{_moment(t[1])}"
    return _moment(t)


def _literal(t: Instant | Interval) -> str:
    """What String.format("%s", value) puts in the Java test's $filter: ZonedDateTime.toString() leaves out
    seconds that are zero ("2016-01-01T07:00Z"); an interval prints as its client serialises it."""
    if isinstance(t, tuple):
        return f"{_moment(t[0])}/{_moment(t[1])}"
    utc = t.astimezone(UTC)
    if utc.second == 0 and utc.microsecond == 0:
        return utc.strftime("%Y-%m-%dT%H:%M") + "Z"
    return _moment(utc)


@dataclass
class Scene:
    """The Java class's OBSERVATIONS and DATASTREAMS (their ids, in creation order) and the service."""

    client: TestClient
    observations: list[int]
    datastreams: list[int]

    def ids(self, plural: str, flt: str) -> tuple[list[int], int | None]:
        """The ids a $filter on a collection gives, following its nextLinks as FROST's client iterates them, and
        the first page's @iot.count when the server sent one."""
        r = self.client.get(f"/v1.1/{plural}", params={"$filter": flt})
        assert r.status_code == 200, f"Failed to call service on filter: {flt}: {r.status_code} {r.text}"
        body = r.json()
        count = body.get("@iot.count")
        found = [int(e["@iot.id"]) for e in body["value"]]
        while "@iot.nextLink" in body:
            r = self.client.get(body["@iot.nextLink"])
            assert r.status_code == 200, f"nextLink of filter {flt}: {r.status_code} {r.text}"
            body = r.json()
            found += [int(e["@iot.id"]) for e in body["value"]]
        return found, count

    def results(self, plural: str, flt: str, expected: Sequence[int]) -> None:
        """EntityUtils.testFilterResults: each expected entity exactly once, and nothing else."""
        registry = self.observations if plural == "Observations" else self.datastreams
        want = [registry[i] for i in expected]
        found, count = self.ids(plural, flt)
        if count is not None:
            assert count == len(want), f"Failed on filter: {flt} Cause: Result count {count} != {len(want)}"
        named = {v: k for k, v in enumerate(registry)}
        assert Counter(found) == Counter(want), (
            f"Failed on filter: {flt}\nexpected {sorted(expected)},\n"
            f"     got {sorted(named.get(i, -i) for i in found)} (indices; negative: not in the list)"
        )

    def for_exception(self, flt: str, status: int) -> None:
        """EntityUtils.filterForException on Observations."""
        r = self.client.get("/v1.1/Observations", params={"$filter": flt})
        assert r.status_code == status, f"Filter {flt} did not respond with [{status}], but with {r.status_code}."

    def time_value(self, tpl: str, *expected: Expected) -> None:
        """testTimeValue: the property first, then T700 and I700_800."""
        self._both(lambda prop, t: tpl.format(prop, _literal(t)), expected)

    def value_time(self, tpl: str, *expected: Expected) -> None:
        """testValueTime: the literal first."""
        self._both(lambda prop, t: tpl.format(_literal(t), prop), expected)

    def _both(self, make: Callable[[str, Instant | Interval], str], expected: Sequence[Expected]) -> None:
        rt7, vt7, pt7, rt78, vt78, pt78 = expected
        for t, cases in ((T700, (rt7, vt7, pt7)), (I700_800, (rt78, vt78, pt78))):
            for prop, want in zip(("resultTime", "validTime", "phenomenonTime"), cases, strict=True):
                assert want is not None
                self.results("Observations", make(prop, t), want)

    def ds_tpl(self, tpl: str, *expected: Expected) -> None:
        """testDsTpl: a Datastream's phenomenonTime and resultTime against twelve literals; "{}" is the
        property. None skips a literal (the Java test's null)."""
        literals: tuple[Instant | Interval, ...] = (
            T2014,
            T2015,
            T700,
            T2017_2,
            T2018,
            I700_800,
            I2014_2015,
            I2014_2017_2,
            I2014_2018,
            I2015_2017_2,
            I2015_2018,
            I2017_2_2018,
        )
        for literal, want in zip(literals, expected, strict=True):
            if want is None:
                continue
            flt = tpl.replace("%s", _literal(literal))
            for prop in ("phenomenonTime", "resultTime"):
                self.results("Datastreams", flt.replace("{}", prop), want)


@pytest.fixture
def scene(client: TestClient) -> Scene:
    """createEntities: a Thing with its Location, a Datastream with Observations 0 to 24, a second Datastream
    without Observations."""
    thing = create(client, "Things", THING)
    ds1 = create(client, "Datastreams", datastream("Datastream 1", "The temperature of thing 1, sensor 1.", thing))
    observations = []
    for n, (pt, rt, vt) in enumerate(OBSERVATION_TIMES):
        body = {
            "result": float(n),
            "phenomenonTime": _json_time(pt),
            "Datastream": {"@iot.id": ds1},
            "resultTime": _json_time(rt),
            "validTime": _json_time(vt),
        }
        observations.append(create(client, "Observations", body))
    ds2 = create(
        client, "Datastreams", datastream("Datastream 2", "The second temperature of thing 1, sensor 1.", thing)
    )
    return Scene(client, observations, [ds1, ds2])


NONE: tuple[int, ...] = ()
DS0 = (0,)


def test_test01Lt(scene: Scene) -> None:
    op = "lt"
    scene.time_value(
        "{} " + op + " {}",
        (0, 1, 21, 23),
        (8, 9, 23),
        (0, 1, 8, 9, 21, 23),
        (0, 1, 21, 23),
        (8, 9, 23),
        (0, 1, 8, 9, 21, 23),
    )
    scene.value_time(
        "{} " + op + " {}",
        (3, 4, 5, 6, 7, 22, 24),
        (12, 13, 14, 15, 20, 24),
        (3, 4, 5, 6, 7, 12, 13, 14, 15, 20, 22, 24),
        (5, 6, 7, 22, 24),
        (14, 15, 24),
        (5, 6, 7, 14, 15, 22, 24),
    )
    scene.ds_tpl("{} " + op + " %s", NONE, NONE, NONE, DS0, DS0, NONE, NONE, NONE, NONE, NONE, NONE, DS0)


def test_test02Gt(scene: Scene) -> None:
    op = "gt"
    scene.time_value(
        "{} " + op + " {}",
        (3, 4, 5, 6, 7, 22, 24),
        (12, 13, 14, 15, 20, 24),
        (3, 4, 5, 6, 7, 12, 13, 14, 15, 20, 22, 24),
        (5, 6, 7, 22, 24),
        (14, 15, 24),
        (5, 6, 7, 14, 15, 22, 24),
    )
    scene.value_time(
        "{} " + op + " {}",
        (0, 1, 21, 23),
        (8, 9, 23),
        (0, 1, 8, 9, 21, 23),
        (0, 1, 21, 23),
        (8, 9, 23),
        (0, 1, 8, 9, 21, 23),
    )
    scene.ds_tpl("{} " + op + " %s", DS0, NONE, NONE, NONE, NONE, NONE, DS0, NONE, NONE, NONE, NONE, NONE)


def test_test03Le(scene: Scene) -> None:
    op = "le"
    scene.time_value(
        "{} " + op + " {}",
        (0, 1, 2, 21, 23),
        (8, 9, 23),
        (0, 1, 2, 8, 9, 21, 23),
        (0, 1, 2, 21, 23),
        (8, 9, 10, 11, 17, 19, 23),
        (0, 1, 2, 8, 9, 10, 11, 17, 19, 21, 23),
    )
    scene.value_time(
        "{} " + op + " {}",
        (2, 3, 4, 5, 6, 7, 22, 24),
        (11, 12, 13, 14, 15, 17, 18, 20, 24),
        (2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 17, 18, 20, 22, 24),
        (5, 6, 7, 22, 24),
        (11, 13, 14, 15, 18, 20, 24),
        (5, 6, 7, 11, 13, 14, 15, 18, 20, 22, 24),
    )
    scene.ds_tpl("{} " + op + " %s", NONE, NONE, NONE, DS0, DS0, NONE, NONE, NONE, NONE, DS0, DS0, DS0)


def test_test04Ge(scene: Scene) -> None:
    op = "ge"
    scene.time_value(
        "{} " + op + " {}",
        (2, 3, 4, 5, 6, 7, 22, 24),
        (11, 12, 13, 14, 15, 17, 18, 20, 24),
        (2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 17, 18, 20, 22, 24),
        (5, 6, 7, 22, 24),
        (11, 13, 14, 15, 18, 20, 24),
        (5, 6, 7, 11, 13, 14, 15, 18, 20, 22, 24),
    )
    scene.value_time(
        "{} " + op + " {}",
        (0, 1, 2, 21, 23),
        (8, 9, 23),
        (0, 1, 2, 8, 9, 21, 23),
        (0, 1, 2, 21, 23),
        (8, 9, 10, 11, 17, 19, 23),
        (0, 1, 2, 8, 9, 10, 11, 17, 19, 21, 23),
    )
    scene.ds_tpl("{} " + op + " %s", DS0, DS0, NONE, NONE, NONE, NONE, DS0, DS0, NONE, DS0, NONE, NONE)


def test_test05Eq(scene: Scene) -> None:
    op = "eq"
    scene.time_value("{} " + op + " {}", (2,), NONE, (2,), NONE, (11,), (11,))
    scene.value_time("{} " + op + " {}", (2,), NONE, (2,), NONE, (11,), (11,))
    scene.ds_tpl("{} " + op + " %s", NONE, NONE, NONE, NONE, NONE, NONE, NONE, NONE, NONE, DS0, NONE, NONE)


def test_test06Before(scene: Scene) -> None:
    tpl = "before({},{})"
    scene.time_value(
        tpl,
        (0, 1, 21, 23),
        (8, 9, 23),
        (0, 1, 8, 9, 21, 23),
        (0, 1, 21, 23),
        (8, 9, 23),
        (0, 1, 8, 9, 21, 23),
    )
    scene.value_time(
        tpl,
        (3, 4, 5, 6, 7, 22, 24),
        (12, 13, 14, 15, 20, 24),
        (3, 4, 5, 6, 7, 12, 13, 14, 15, 20, 22, 24),
        (5, 6, 7, 22, 24),
        (14, 15, 24),
        (5, 6, 7, 14, 15, 22, 24),
    )
    scene.ds_tpl("before({}, %s)", NONE, NONE, NONE, DS0, DS0, NONE, NONE, NONE, NONE, NONE, NONE, DS0)


def test_test07After(scene: Scene) -> None:
    tpl = "after({},{})"
    scene.time_value(
        tpl,
        (3, 4, 5, 6, 7, 22, 24),
        (12, 13, 14, 15, 20, 24),
        (3, 4, 5, 6, 7, 12, 13, 14, 15, 20, 22, 24),
        (5, 6, 7, 22, 24),
        (14, 15, 24),
        (5, 6, 7, 14, 15, 22, 24),
    )
    scene.value_time(
        tpl,
        (0, 1, 21, 23),
        (8, 9, 23),
        (0, 1, 8, 9, 21, 23),
        (0, 1, 21, 23),
        (8, 9, 23),
        (0, 1, 8, 9, 21, 23),
    )
    scene.ds_tpl("after({}, %s)", DS0, NONE, NONE, NONE, NONE, NONE, DS0, NONE, NONE, NONE, NONE, NONE)


def test_test08Meets(scene: Scene) -> None:
    tpl = "meets({},{})"
    scene.time_value(tpl, (2,), (9, 11, 17, 18), (2, 9, 11, 17, 18), (2, 5), (9, 14), (2, 5, 9, 14))
    scene.value_time(tpl, (2,), (9, 11, 17, 18), (2, 9, 11, 17, 18), (2, 5), (9, 14), (2, 5, 9, 14))
    scene.ds_tpl("meets({}, %s)", NONE, DS0, NONE, DS0, NONE, NONE, DS0, NONE, NONE, NONE, NONE, DS0)


def test_test09During(scene: Scene) -> None:
    # during() needs an interval as its second argument: an instant there, or a resultTime (always an instant)
    # there, is a bad request.
    scene.for_exception(f"during(resultTime,{_literal(T700)})", 400)
    scene.for_exception(f"during(validTime,{_literal(T700)})", 400)
    scene.for_exception(f"during(phenomenonTime,{_literal(T700)})", 400)

    scene.results("Observations", f"during(resultTime,{_literal(I700_800)})", (2, 3, 4))
    scene.results("Observations", f"during(validTime,{_literal(I700_800)})", (11, 12, 17, 20))
    scene.results("Observations", f"during(phenomenonTime,{_literal(I700_800)})", (2, 3, 4, 11, 12, 17, 20))

    scene.for_exception(f"during({_literal(T700)},resultTime)", 400)
    scene.results("Observations", f"during({_literal(T700)},validTime)", (10, 11, 16, 17, 18, 19))
    scene.results("Observations", f"during({_literal(T700)},phenomenonTime)", (10, 11, 16, 17, 18, 19))

    scene.for_exception(f"during({_literal(I700_800)},resultTime)", 400)
    scene.results("Observations", f"during({_literal(I700_800)},validTime)", (11, 16, 18, 19))
    scene.results("Observations", f"during({_literal(I700_800)},phenomenonTime)", (11, 16, 18, 19))

    scene.ds_tpl("during({}, %s)", None, None, None, None, None, NONE, NONE, DS0, DS0, DS0, DS0, NONE)


def test_test10Overlaps(scene: Scene) -> None:
    tpl = "overlaps({},{})"
    for check in (scene.time_value, scene.value_time):
        check(
            tpl,
            (2,),
            (10, 11, 16, 17, 18, 19),
            (2, 10, 11, 16, 17, 18, 19),
            (2, 3, 4),
            (10, 11, 12, 13, 16, 17, 18, 19, 20),
            (2, 3, 4, 10, 11, 12, 13, 16, 17, 18, 19, 20),
        )
    scene.ds_tpl("overlaps({}, %s)", NONE, DS0, DS0, NONE, NONE, DS0, NONE, DS0, DS0, DS0, DS0, NONE)


def test_test11Starts(scene: Scene) -> None:
    tpl = "starts({},{})"
    for check in (scene.time_value, scene.value_time):
        check(tpl, (2,), (11, 17, 18), (2, 11, 17, 18), (2,), (11, 17, 18), (2, 11, 17, 18))
    scene.ds_tpl("starts({}, %s)", NONE, DS0, NONE, NONE, NONE, NONE, NONE, NONE, NONE, DS0, DS0, NONE)


def test_test12Finishes(scene: Scene) -> None:
    tpl = "finishes({},{})"
    for check in (scene.time_value, scene.value_time):
        check(tpl, (2,), (9,), (2, 9), (5,), (11, 19, 20), (5, 11, 19, 20))
    scene.ds_tpl("finishes({}, %s)", NONE, NONE, NONE, DS0, NONE, NONE, NONE, DS0, NONE, DS0, NONE, NONE)


def test_test13Year(scene: Scene) -> None:
    scene.results("Observations", "year(resultTime) eq 2015", (21, 23))
    scene.results("Observations", "year(validTime) eq 2015", (23,))
    scene.results("Observations", "year(phenomenonTime) eq 2015", (21, 23))


def test_test14Durations(scene: Scene) -> None:
    t700, t800, t900 = _literal(T700), _literal(T800), _literal(T900)
    i600_700, i800_900 = _literal(I600_700), _literal(I800_900)
    cases: list[tuple[str, tuple[int, ...]]] = [
        (f"resultTime add duration'PT1H' gt {t900}", (6, 7, 22, 24)),
        (f"validTime add duration'PT1H' gt {t900}", (15, 24)),
        (f"phenomenonTime add duration'PT1H' gt {t900}", (6, 7, 15, 22, 24)),
        (f"resultTime gt {t900} sub duration'PT1H'", (6, 7, 22, 24)),
        (f"validTime gt {t900} sub duration'PT1H'", (15, 24)),
        (f"phenomenonTime gt {t900} sub duration'PT1H'", (6, 7, 15, 22, 24)),
        (f"resultTime sub duration'PT1H' gt {t700}", (6, 7, 22, 24)),
        (f"validTime sub duration'PT1H' gt {t700}", (15, 24)),
        (f"phenomenonTime sub duration'PT1H' gt {t700}", (6, 7, 15, 22, 24)),
        (f"resultTime lt {i600_700} add duration'PT1H'", (0, 1, 21, 23)),
        (f"validTime lt {i600_700} add duration'PT1H'", (8, 9, 23)),
        (f"phenomenonTime lt {i600_700} add duration'PT1H'", (0, 1, 8, 9, 21, 23)),
        (f"resultTime gt {i800_900} sub duration'PT1H'", (5, 6, 7, 22, 24)),
        (f"validTime gt {i800_900} sub duration'PT1H'", (14, 15, 24)),
        (f"phenomenonTime gt {i800_900} sub duration'PT1H'", (5, 6, 7, 14, 15, 22, 24)),
        (f"phenomenonTime sub {t800} eq duration'PT1H'", (7,)),
    ]
    for flt, want in cases:
        scene.results("Observations", flt, want)


def test_test15AlternativeOverlaps(scene: Scene) -> None:
    t700, t800 = _literal(T700), _literal(T800)
    scene.results("Observations", f"not resultTime lt {t700} and not resultTime ge {t800}", (2, 3, 4))
    scene.results(
        "Observations",
        f"not validTime lt {t700} and not validTime ge {t800}",
        (10, 11, 12, 13, 16, 17, 18, 19, 20),
    )
    scene.results(
        "Observations",
        f"not phenomenonTime lt {t700} and not phenomenonTime ge {t800}",
        (2, 3, 4, 10, 11, 12, 13, 16, 17, 18, 19, 20),
    )


def test_test19PhenomenonTimeAfterDelete(scene: Scene) -> None:
    client = scene.client
    # EntityUtils.deleteAll: read the collection and delete what it lists until it lists nothing.
    while batch := client.get("/v1.1/Observations").json()["value"]:
        for observation in batch:
            r = client.delete(f"/v1.1/Observations({observation['@iot.id']})")
            assert r.status_code in (200, 204), r.text
    for ds in scene.datastreams:
        r = client.get(f"/v1.1/Datastreams({ds})")
        assert r.status_code == 200, r.text
        assert r.json().get("phenomenonTime") is None, "phenomenonTime should be null"

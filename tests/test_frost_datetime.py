"""FROST-Server's date and time filter tests (``statests.c03filtering.DateTimeTests``, v1.1), ported to pytest.

Each Java test keeps its name (``test_<name>``) and checks what it checks: the comparison operators and the time
functions (before, after, meets, during, overlaps, starts, finishes) between a time property and a time or interval
literal, in both orders, on Observations (resultTime, validTime, phenomenonTime) and on Datastreams (their
phenomenonTime and resultTime, the extent of their Observations); year(); duration arithmetic; the alternative
spelling of overlaps; and a Datastream's phenomenonTime once its Observations are gone.
``createEntities`` is the ``scene`` fixture, with FROST's entities, times and results, made as FROST's client sends
them; the Java class's shared state and its cleanup become a fresh hub for each test. The times and the checks
(``frost_data.TimeScene``) are shared with MdDateTimeTests' port, ``tests/test_frost_md_datetime.py``.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.frost_data import (
    I600_700,
    I700_800,
    I800_900,
    OBSERVATION_TIMES,
    T700,
    T800,
    T900,
    THING,
    TimeScene,
    create,
    datastream,
    json_time,
    literal,
)


@pytest.fixture
def scene(client: TestClient) -> TimeScene:
    """createEntities: a Thing with its Location, a Datastream with Observations 0 to 24, a second Datastream
    without Observations."""
    thing = create(client, "Things", THING)
    ds1 = create(client, "Datastreams", datastream("Datastream 1", "The temperature of thing 1, sensor 1.", thing))
    observations = []
    for n, (pt, rt, vt) in enumerate(OBSERVATION_TIMES):
        body = {
            "result": float(n),
            "phenomenonTime": json_time(pt),
            "Datastream": {"@iot.id": ds1},
            "resultTime": json_time(rt),
            "validTime": json_time(vt),
        }
        observations.append(create(client, "Observations", body))
    ds2 = create(
        client, "Datastreams", datastream("Datastream 2", "The second temperature of thing 1, sensor 1.", thing)
    )
    return TimeScene(client, observations, [ds1, ds2])


NONE: tuple[int, ...] = ()
DS0 = (0,)


def test_test01Lt(scene: TimeScene) -> None:
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


def test_test02Gt(scene: TimeScene) -> None:
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


def test_test03Le(scene: TimeScene) -> None:
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


def test_test04Ge(scene: TimeScene) -> None:
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


def test_test05Eq(scene: TimeScene) -> None:
    op = "eq"
    scene.time_value("{} " + op + " {}", (2,), NONE, (2,), NONE, (11,), (11,))
    scene.value_time("{} " + op + " {}", (2,), NONE, (2,), NONE, (11,), (11,))
    scene.ds_tpl("{} " + op + " %s", NONE, NONE, NONE, NONE, NONE, NONE, NONE, NONE, NONE, DS0, NONE, NONE)


def test_test06Before(scene: TimeScene) -> None:
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


def test_test07After(scene: TimeScene) -> None:
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


def test_test08Meets(scene: TimeScene) -> None:
    tpl = "meets({},{})"
    scene.time_value(tpl, (2,), (9, 11, 17, 18), (2, 9, 11, 17, 18), (2, 5), (9, 14), (2, 5, 9, 14))
    scene.value_time(tpl, (2,), (9, 11, 17, 18), (2, 9, 11, 17, 18), (2, 5), (9, 14), (2, 5, 9, 14))
    scene.ds_tpl("meets({}, %s)", NONE, DS0, NONE, DS0, NONE, NONE, DS0, NONE, NONE, NONE, NONE, DS0)


def test_test09During(scene: TimeScene) -> None:
    # during() needs an interval as its second argument: an instant there, or a resultTime (always an instant)
    # there, is a bad request.
    scene.for_exception(f"during(resultTime,{literal(T700)})", 400)
    scene.for_exception(f"during(validTime,{literal(T700)})", 400)
    scene.for_exception(f"during(phenomenonTime,{literal(T700)})", 400)

    scene.results("Observations", f"during(resultTime,{literal(I700_800)})", (2, 3, 4))
    scene.results("Observations", f"during(validTime,{literal(I700_800)})", (11, 12, 17, 20))
    scene.results("Observations", f"during(phenomenonTime,{literal(I700_800)})", (2, 3, 4, 11, 12, 17, 20))

    scene.for_exception(f"during({literal(T700)},resultTime)", 400)
    scene.results("Observations", f"during({literal(T700)},validTime)", (10, 11, 16, 17, 18, 19))
    scene.results("Observations", f"during({literal(T700)},phenomenonTime)", (10, 11, 16, 17, 18, 19))

    scene.for_exception(f"during({literal(I700_800)},resultTime)", 400)
    scene.results("Observations", f"during({literal(I700_800)},validTime)", (11, 16, 18, 19))
    scene.results("Observations", f"during({literal(I700_800)},phenomenonTime)", (11, 16, 18, 19))

    scene.ds_tpl("during({}, %s)", None, None, None, None, None, NONE, NONE, DS0, DS0, DS0, DS0, NONE)


def test_test10Overlaps(scene: TimeScene) -> None:
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


def test_test11Starts(scene: TimeScene) -> None:
    tpl = "starts({},{})"
    for check in (scene.time_value, scene.value_time):
        check(tpl, (2,), (11, 17, 18), (2, 11, 17, 18), (2,), (11, 17, 18), (2, 11, 17, 18))
    scene.ds_tpl("starts({}, %s)", NONE, DS0, NONE, NONE, NONE, NONE, NONE, NONE, NONE, DS0, DS0, NONE)


def test_test12Finishes(scene: TimeScene) -> None:
    tpl = "finishes({},{})"
    for check in (scene.time_value, scene.value_time):
        check(tpl, (2,), (9,), (2, 9), (5,), (11, 19, 20), (5, 11, 19, 20))
    scene.ds_tpl("finishes({}, %s)", NONE, NONE, NONE, DS0, NONE, NONE, NONE, DS0, NONE, DS0, NONE, NONE)


def test_test13Year(scene: TimeScene) -> None:
    scene.results("Observations", "year(resultTime) eq 2015", (21, 23))
    scene.results("Observations", "year(validTime) eq 2015", (23,))
    scene.results("Observations", "year(phenomenonTime) eq 2015", (21, 23))


def test_test14Durations(scene: TimeScene) -> None:
    t700, t800, t900 = literal(T700), literal(T800), literal(T900)
    i600_700, i800_900 = literal(I600_700), literal(I800_900)
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


def test_test15AlternativeOverlaps(scene: TimeScene) -> None:
    t700, t800 = literal(T700), literal(T800)
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


def test_test19PhenomenonTimeAfterDelete(scene: TimeScene) -> None:
    client = scene.client
    # EntityUtils.deleteAll: read the collection and delete what it lists until it lists nothing.
    while batch := client.get("/v1.1/Observations").json()["value"]:
        for observation in batch:
            r = client.delete(f"/v1.1/Observations({observation['@iot.id']})")
            assert r.status_code in (200, 204), r.text
    for ds in scene.datastreams:
        r = client.get(f"/v1.1/{scene.streams}({ds})")
        assert r.status_code == 200, r.text
        assert r.json().get("phenomenonTime") is None, "phenomenonTime should be null"

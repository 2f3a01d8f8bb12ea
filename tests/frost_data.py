"""FROST-Server's test data and client habits, shared by its ported integration tests (tests/test_frost_*.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

# FROST's test Thing, with its Location.
THING: dict[str, Any] = {
    "name": "Thing 1",
    "description": "The first thing.",
    "Locations": [
        {
            "name": "Location 1.0",
            "description": "Location of Thing 1.",
            "encodingType": "application/vnd.geo+json",
            "location": {"type": "Point", "coordinates": [8, 51]},
        }
    ],
}


# FROST's unit, Sensor and ObservedProperty of its test Datastreams (copied into each body: bodies are not shared).
UOM_TEMP: dict[str, str] = {"name": "degree celcius", "symbol": "°C", "definition": "ucum:T"}
SENSOR_1: dict[str, str] = {
    "name": "Sensor 1",
    "description": "The first sensor.",
    "encodingType": "text",
    "metadata": "Some metadata.",
}
TEMPERATURE: dict[str, str] = {
    "name": "Temperature",
    "definition": "http://ucom.org/temperature",
    "description": "The temperature of the thing.",
}


def create(client: TestClient, plural: str, body: dict[str, Any]) -> int:
    """A POST as FROST's client makes it (sSrvc.create): 201, and the new id read from the Location header."""
    r = client.post(f"/v1.1/{plural}", json=body)
    assert r.status_code == 201, f"Failed to create {plural}: {r.status_code} {r.text}"
    location = r.headers["location"]
    return int(location[location.index("(") + 1 : location.index(")")])


def datastream(name: str, description: str, thing: int) -> dict[str, Any]:
    """FROST's test Datastream of a Thing, with its Sensor and ObservedProperty written whole: its client has no
    id for them after the first Datastream's deep insert, so each Datastream makes copies of them."""
    return {
        "name": name,
        "description": description,
        "observationType": "someType",
        "unitOfMeasurement": dict(UOM_TEMP),
        "Thing": {"@iot.id": thing},
        "Sensor": dict(SENSOR_1),
        "ObservedProperty": dict(TEMPERATURE),
    }


def ids(client: TestClient, url: str, params: dict[str, str] | None = None) -> tuple[list[int], int | None]:
    """The ids a collection lists, following its nextLinks as FROST's client iterates an EntitySet, and the first
    page's @iot.count when the server sent one."""
    r = client.get(url, params=params)
    assert r.status_code == 200, f"Failed to call service: {url} {params}: {r.status_code} {r.text}"
    body = r.json()
    count = body.get("@iot.count")
    found = [int(e["@iot.id"]) for e in body["value"]]
    while "@iot.nextLink" in body:
        r = client.get(body["@iot.nextLink"])
        assert r.status_code == 200, f"nextLink of {url} {params}: {r.status_code} {r.text}"
        body = r.json()
        found += [int(e["@iot.id"]) for e in body["value"]]
    return found, count


def contains(
    client: TestClient,
    url: str,
    registry: Sequence[int],
    expected: Sequence[int],
    message: str,
    params: dict[str, str] | None = None,
) -> None:
    """EntityUtils.resultContains: the collection at ``url`` lists each expected entity (indices into the registry,
    the Java test's list of what it created) exactly once and nothing else; @iot.count, when sent, is the number
    expected."""
    found, count = ids(client, url, params)
    want = [registry[i] for i in expected]
    if count is not None:
        assert count == len(want), f"{message} Cause: Result count {count} != {len(want)}"
    named = {v: k for k, v in enumerate(registry)}
    assert Counter(found) == Counter(want), (
        f"{message}\nexpected {sorted(expected)},\n"
        f"     got {sorted(named.get(i, -i) for i in found)} (indices; negative: not in the list)"
    )


def filter_results(client: TestClient, plural: str, flt: str, registry: Sequence[int], expected: Sequence[int]) -> None:
    """EntityUtils.testFilterResults: a $filter on a collection gives each expected entity exactly once and nothing
    else (``contains``)."""
    contains(client, f"/v1.1/{plural}", registry, expected, f"Failed on filter: {flt}", {"$filter": flt})


# -- the date and time tests (c03filtering.DateTimeTests, c05multidatastream.MdDateTimeTests) ---------------------
Instant = datetime
Interval = tuple[datetime, datetime]
Expected = Sequence[int] | None  # indices into the scene's Observations or streams; None: not checked


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

# DateTimeTests/MdDateTimeTests.createEntities: (phenomenonTime, resultTime, validTime) of Observation n, whose result
# is n.
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


def json_time(t: Instant | Interval | None) -> str | None:
    """TimeInstant / TimeInterval as FROST's client serialises them in a request body."""
    if t is None:
        return None
    if isinstance(t, tuple):
        return f"{_moment(t[0])}/{_moment(t[1])}"
    return _moment(t)


def literal(t: Instant | Interval) -> str:
    """What String.format("%s", value) puts in the Java test's $filter: ZonedDateTime.toString() leaves out
    seconds that are zero ("2016-01-01T07:00Z"); an interval prints as its client serialises it."""
    if isinstance(t, tuple):
        return f"{_moment(t[0])}/{_moment(t[1])}"
    utc = t.astimezone(UTC)
    if utc.second == 0 and utc.microsecond == 0:
        return utc.strftime("%Y-%m-%dT%H:%M") + "Z"
    return _moment(utc)


@dataclass
class TimeScene:
    """The date and time tests' OBSERVATIONS and their (MULTI_)DATASTREAMS (ids, in creation order), the service, and
    the collection the streams are in (``Datastreams`` for DateTimeTests, ``MultiDatastreams`` for MdDateTimeTests,
    whose tests are the same)."""

    client: TestClient
    observations: list[int]
    datastreams: list[int]
    streams: str = "Datastreams"

    def results(self, plural: str, flt: str, expected: Sequence[int]) -> None:
        """EntityUtils.testFilterResults: each expected entity exactly once, and nothing else."""
        registry = self.observations if plural == "Observations" else self.datastreams
        filter_results(self.client, plural, flt, registry, expected)

    def for_exception(self, flt: str, status: int) -> None:
        """EntityUtils.filterForException on Observations."""
        r = self.client.get("/v1.1/Observations", params={"$filter": flt})
        assert r.status_code == status, f"Filter {flt} did not respond with [{status}], but with {r.status_code}."

    def time_value(self, tpl: str, *expected: Expected) -> None:
        """testTimeValue: the property first, then T700 and I700_800."""
        self._both(lambda prop, t: tpl.format(prop, literal(t)), expected)

    def value_time(self, tpl: str, *expected: Expected) -> None:
        """testValueTime: the literal first."""
        self._both(lambda prop, t: tpl.format(literal(t), prop), expected)

    def _both(self, make: Callable[[str, Instant | Interval], str], expected: Sequence[Expected]) -> None:
        rt7, vt7, pt7, rt78, vt78, pt78 = expected
        for t, cases in ((T700, (rt7, vt7, pt7)), (I700_800, (rt78, vt78, pt78))):
            for prop, want in zip(("resultTime", "validTime", "phenomenonTime"), cases, strict=True):
                assert want is not None
                self.results("Observations", make(prop, t), want)

    def ds_tpl(self, tpl: str, *expected: Expected) -> None:
        """testDsTpl: a (Multi)Datastream's phenomenonTime and resultTime against twelve literals; "{}" is the
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
        for value, want in zip(literals, expected, strict=True):
            if want is None:
                continue
            flt = tpl.replace("%s", literal(value))
            for prop in ("phenomenonTime", "resultTime"):
                self.results(self.streams, flt.replace("{}", prop), want)


# FROST's tests give a TaskingCapability taskingParameters that are no SWE Common DataRecord ({} or {"todo": "yes"}):
# CityHub's Tasking Core takes a DataRecord with at least one field (README, Tasking Core), so the ports send this
# one, whose one Text field, "todo", is what FROST's Tasks name.
TASKING_RECORD: dict[str, Any] = {"type": "DataRecord", "field": [{"name": "todo", "label": "To do", "type": "Text"}]}

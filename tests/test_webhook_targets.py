"""Webhook targets: internal addresses refused at registration and at every attempt (the allow list excepted),
connections made to the checked address, redirects not followed, and a delivery log too coarse to scan ports with.

No test here sends a packet beyond loopback: names resolve through a fake resolver (a name it does not know fails
without a DNS query), and every connection the hub opens passes a guard that blocks and reports anything else.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from fastapi.testclient import TestClient

from cityhub.alerts import targets
from cityhub.alerts.notify import DELIVERED, NO_RESPONSE, REDIRECT
from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.config import Settings
from tests.test_alerts import add_rule, hours, ingest, make_gauge, wait_for

REAL_GETADDRINFO = socket.getaddrinfo
REAL_CREATE_CONNECTION = socket.create_connection


# -- the sandbox: a fake resolver and a connection guard ---------------------------------------------------------------
class FakeDNS:
    """Answers for made-up names, call by call (the last answer repeats); other names under the test domains fail
    as unknown, everything else (localhost, literals) goes to the real resolver."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.calls: dict[str, int] = {}

    def set(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = list(answers)

    def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
                    ) -> list[Any]:  # fmt: skip
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in self.answers:
            self.calls[name] = self.calls.get(name, 0) + 1
            seq = self.answers[name]
            addrs = seq[min(self.calls[name], len(seq)) - 1]
            out = []
            for a in addrs:
                if ipaddress.ip_address(a).version == 6:
                    out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, int(port or 0), 0, 0)))
                else:
                    out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, int(port or 0))))
            return out
        if name.endswith((".example.com", ".invalid")):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return REAL_GETADDRINFO(host, port, family, type, proto, flags)


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    fake = FakeDNS()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    return fake


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """Every TCP connection the hub opens (host as it asked for it, port); one to anything but loopback is blocked
    and fails the test.

    Only threads started during the test count as the hub's: a thread left by an earlier test of the run (a
    receiver, a hub still closing) may connect to loopback while this one runs, and CI once failed on one such
    stranger (127.0.0.1 on an ephemeral port). Its connections beyond loopback are still blocked and fail."""
    seen: list[tuple[str, int]] = []
    blocked: list[tuple[str, int]] = []
    before = set(threading.enumerate()) - {threading.current_thread()}

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host, port = address[0], int(address[1])
        if threading.current_thread() not in before:
            seen.append((host, port))
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            blocked.append((host, port))
            raise ConnectionRefusedError(f"test guard: no connection to {host}")
        return REAL_CREATE_CONNECTION(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    yield seen
    assert blocked == [], f"the hub tried to connect beyond loopback: {blocked}"


# -- receivers and the hub -------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    status: ClassVar[int] = 204
    location: ClassVar[str | None] = None
    got: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append(dict(self.headers))
        self.send_response(self.status)
        if self.location:
            self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[int, type[_Handler]]]]:
    """Start a receiver on 127.0.0.1: (port, its handler class with what it got)."""
    servers: list[ThreadingHTTPServer] = []

    def start(status: int = 204, location: str | None = None) -> tuple[int, type[_Handler]]:
        handler = type("Handler", (_Handler,), {"got": [], "status": status, "location": location})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1]), handler

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """An admin client on a fresh hub with the given ``webhook_allow_hosts``; one attempt per delivery."""
    with contextlib.ExitStack() as stack:

        def make(allow: str = "") -> TestClient:
            settings = Settings(data_dir=tmp_path / "var", webhook_allow_hosts=allow)
            key = KeyStore(settings.keys_path).create("admin", "test admin")
            client = stack.enter_context(TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}))
            client.app.state.hub.alerts.webhooks.max_attempts = 1
            return client

        yield make


def register(client: TestClient, url: str) -> int:
    r = client.post("/api/v1/webhooks", json={"url": url, "secret": "s3cret-key", "filter": {"events": ["opened"]}})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def raise_alert(client: TestClient) -> None:
    _, ds = make_gauge(client)
    add_rule(client, kind="threshold", value=100, scope={"datastream": ds})
    ingest(client, ds, hours([150]))


def finished(client: TestClient, wid: int) -> dict[str, Any]:
    """The webhook's one delivery once its (single) attempt is logged."""

    def done() -> dict[str, Any] | None:
        value = client.get(f"/api/v1/webhooks/{wid}/deliveries").json()["value"]
        return value[0] if value and value[0]["status"] != "pending" else None

    return wait_for(done, what="the delivery's attempt")


# -- which addresses are public --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "fe80::1",
     "fc00::1", "fd12:3456::1", "0.0.0.0", "::", "100.64.0.1", "100.127.255.254", "224.0.0.1", "239.255.255.250",
     "ff02::1", "ff0e::1", "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1", "fec0::1",
     "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::7f00:1", "2002:7f00:1::1",
     "2002:a00:1::1", "64:ff9b::a00:1", "64:ff9b::7f00:1", "2001:db8::1"],
)  # fmt: skip
def test_non_public_addresses(address: str) -> None:
    assert not targets.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:93.184.216.34",
                                     "64:ff9b::808:808"])  # fmt: skip
def test_public_addresses(address: str) -> None:
    assert targets.is_public(ipaddress.ip_address(address))


def test_allow_list_names_and_addresses() -> None:
    allow = targets.AllowList.parse(" Alerts.Internal. , [::1],127.0.0.1,,bücher.example")
    assert allow.allows_host("alerts.internal", "alerts.internal")
    assert allow.allows_host("alerts.internal.", "alerts.internal.")
    assert allow.allows_host("::1", "::1") and allow.allows_host("0:0::1", "0:0::1")
    assert allow.allows_host("bücher.example", "xn--bcher-kva.example")
    assert not allow.allows_host("127.0.0.2", "127.0.0.2")
    assert not allow.allows_host("internal", "internal")


# -- registration ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:{port}/hook", "http://[::1]/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
     "http://localhost/", "http://localhost:{port}/", "https://192.168.1.10/", "http://100.64.0.1/",
     "http://[::ffff:127.0.0.1]:{port}/", "http://0.0.0.0:{port}/", "http://2130706433:{port}/",
     "http://user@127.0.0.1:{port}/"],
)  # fmt: skip
def test_internal_targets_are_refused_at_registration(
    hub: Callable[..., TestClient],
    serve: Callable[..., tuple[int, type[_Handler]]],
    connections: list[tuple[str, int]],
    url: str,
) -> None:
    client = hub()
    port, handler = serve()
    r = client.post("/api/v1/webhooks", json={"url": url.format(port=port), "secret": "12345678"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "url"
    assert r.json()["detail"] == targets.CREATE_REFUSED  # the same words whatever the address was
    assert client.get("/api/v1/webhooks").json()["value"] == []
    assert connections == [] and handler.got == []  # checked, never contacted


def test_an_unknown_host_reads_like_an_internal_one(hub: Callable[..., TestClient], dns: FakeDNS) -> None:
    client = hub()
    dns.set("intranet.example.com", ["10.1.2.3"])
    answers = [client.post("/api/v1/webhooks", json={"url": url, "secret": "12345678"})
               for url in ("http://intranet.example.com/", "http://nowhere.example.com/")]  # fmt: skip
    assert [r.status_code for r in answers] == [400, 400]
    assert answers[0].json() == answers[1].json()  # no oracle for which internal names exist


def test_a_name_with_one_internal_address_is_refused(hub: Callable[..., TestClient], dns: FakeDNS) -> None:
    client = hub()
    dns.set("mixed.example.com", ["93.184.216.34", "127.0.0.1"])
    r = client.post("/api/v1/webhooks", json={"url": "http://mixed.example.com/", "secret": "12345678"})
    assert r.status_code == 400 and r.json()["field"] == "url"


# -- delivery --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("allow", ["127.0.0.1", "localhost", "LocalHost."])
def test_an_allowed_internal_receiver_gets_the_post(
    hub: Callable[..., TestClient], serve: Callable[..., tuple[int, type[_Handler]]], allow: str
) -> None:
    client = hub(allow)
    port, handler = serve()
    host = "127.0.0.1" if allow == "127.0.0.1" else "localhost"
    wid = register(client, f"http://{host}:{port}/hook")
    raise_alert(client)
    d = finished(client, wid)
    assert d["status"] == "delivered" and d["lastStatus"] == "2xx" and d["lastError"] is None
    assert [e["outcome"] for e in d["log"]] == [DELIVERED]
    (headers,) = handler.got
    assert headers["X-CityHub-Event"] == "opened" and headers["X-CityHub-Signature"].startswith("sha256=")


def test_delivery_connects_to_the_address_it_checked(
    hub: Callable[..., TestClient],
    serve: Callable[..., tuple[int, type[_Handler]]],
    dns: FakeDNS,
    connections: list[tuple[str, int]],
) -> None:
    """DNS rebinding: the name answers loopback (allowed by address) to the checks, then an internal address to
    anyone asking again. The POST goes to the checked address, with the name kept in Host."""
    client = hub("127.0.0.1")
    port, handler = serve()
    dns.set("rebind.example.com", ["127.0.0.1"], ["127.0.0.1"], ["10.9.9.9"])
    wid = register(client, f"http://rebind.example.com:{port}/hook")  # the first answer
    raise_alert(client)
    d = finished(client, wid)  # the check before the attempt had the second
    assert d["status"] == "delivered", d
    assert dns.calls["rebind.example.com"] == 2  # nobody asked a third time: the connection used the checked one
    assert connections == [("127.0.0.1", port)]
    assert handler.got[0]["Host"] == f"rebind.example.com:{port}"


def test_a_target_that_turns_internal_is_not_contacted(
    hub: Callable[..., TestClient],
    serve: Callable[..., tuple[int, type[_Handler]]],
    dns: FakeDNS,
    connections: list[tuple[str, int]],
) -> None:
    client = hub()  # no allow list
    port, handler = serve()
    dns.set("hooks.example.com", ["93.184.216.34"], ["127.0.0.1"])  # public when registered, loopback later
    wid = register(client, f"http://hooks.example.com:{port}/hook")
    raise_alert(client)
    d = finished(client, wid)
    assert d["status"] == "failed" and d["lastStatus"] is None
    assert d["lastError"] == targets.REFUSED_NON_PUBLIC
    assert [(e["outcome"], e["status"], e["ms"]) for e in d["log"]] == [(targets.REFUSED_NON_PUBLIC, None, None)]
    assert "127.0.0.1" not in orjson.dumps(d).decode()
    assert connections == [] and handler.got == []


def test_a_host_taken_off_the_allow_list_is_not_contacted(
    hub: Callable[..., TestClient],
    serve: Callable[..., tuple[int, type[_Handler]]],
    connections: list[tuple[str, int]],
) -> None:
    client = hub("localhost")
    port, handler = serve()
    wid = register(client, f"http://localhost:{port}/hook")
    client.app.state.hub.settings.webhook_allow_hosts = ""
    raise_alert(client)
    d = finished(client, wid)
    assert d["status"] == "failed" and d["lastError"] == targets.REFUSED_NON_PUBLIC
    assert connections == [] and handler.got == []


def test_redirects_are_not_followed(
    hub: Callable[..., TestClient], serve: Callable[..., tuple[int, type[_Handler]]]
) -> None:
    client = hub("127.0.0.1")
    inner_port, inner = serve()
    outer_port, outer = serve(302, f"http://127.0.0.1:{inner_port}/elsewhere")
    wid = register(client, f"http://127.0.0.1:{outer_port}/hook")
    raise_alert(client)
    d = finished(client, wid)
    assert d["status"] == "failed" and d["lastStatus"] == "3xx" and d["lastError"] == REDIRECT
    assert [e["outcome"] for e in d["log"]] == [REDIRECT]
    assert len(outer.got) == 1 and inner.got == []


def test_a_closed_port_and_a_timeout_read_the_same(hub: Callable[..., TestClient]) -> None:
    client = hub("127.0.0.1")
    client.app.state.hub.alerts.webhooks.timeout_s = 0.5
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hooks = [register(client, f"http://127.0.0.1:{port}/hook") for port in (closed, silent.getsockname()[1])]
        raise_alert(client)
        rows = [finished(client, wid) for wid in hooks]
    text = orjson.dumps(rows).decode()
    for word in ("Errno", "errno", "Connection refused", "ConnectError", "ReadTimeout", "111"):
        assert word not in text
    views = [(d["status"], d["lastStatus"], d["lastError"], [(e["outcome"], e["status"], e["ms"]) for e in d["log"]])
             for d in rows]  # fmt: skip
    assert views[0] == views[1] == ("failed", None, NO_RESPONSE, [(NO_RESPONSE, None, None)])


def test_old_log_rows_are_read_coarsely(hub: Callable[..., TestClient]) -> None:
    """Rows written before outcomes were coarse hold exception texts and exact codes: read back as outcomes."""
    client = hub("127.0.0.1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    wid = register(client, f"http://127.0.0.1:{closed}/hook")
    raise_alert(client)
    did = finished(client, wid)["id"]
    old = [
        {"attempt": 1, "at": "2026-01-01T00:00:00Z", "status": None, "ms": 0.4,
         "error": "ConnectError: [Errno 111] Connection refused"},
        {"attempt": 2, "at": "2026-01-01T00:00:02Z", "status": 404, "error": "HTTP 404", "ms": 3.1},
        {"attempt": 3, "at": "2026-01-01T00:00:06Z", "status": None, "ms": 10001.0,
         "error": "ReadTimeout: timed out"},
    ]  # fmt: skip
    store = client.app.state.hub.store
    store.webhooks.record_attempt(
        did, status="failed", attempts=3, next_attempt_at=None, delivered_at=None, last_status=404,
        last_error=old[-1]["error"], log=orjson.dumps(old).decode(),
    )  # fmt: skip
    (d,) = client.get(f"/api/v1/webhooks/{wid}/deliveries").json()["value"]
    assert d["lastStatus"] == "4xx" and d["lastError"] == NO_RESPONSE
    assert [(e["outcome"], e["status"], e["ms"]) for e in d["log"]] == [
        (NO_RESPONSE, None, None), ("failed: HTTP 4xx", "4xx", 3.1), (NO_RESPONSE, None, None)]  # fmt: skip
    assert "Errno" not in orjson.dumps(d).decode() and "ReadTimeout" not in orjson.dumps(d).decode()

"""``POST /v1.1/$batch``: several requests in one (SensorThings v1.1 §11, OData batch requests).

Two encodings, answered in the one the client sent:

- JSON (OData JSON Format 4.01 §19): ``{"requests": [{"id", "method", "url", "headers", "body",
  "atomicityGroup", "dependsOn"}]}``, answered ``{"responses": [{"id", "status", "headers", "body"}]}``;
- ``multipart/mixed`` (OData 4.0 Part 1 §11.7), each part an ``application/http`` request, change sets as nested
  ``multipart/mixed`` parts, as FROST-Server and its clients send them.

A request outside a change set (atomicity group) is served exactly as if it came alone: it goes through the
application, keys, limits and all. The requests of a change set run on one thread in one store transaction
(``SensorThings.change_set``): they commit together, or, when one fails, none does and the set is answered with
that one failure. A request of a change set may name an entity an earlier one created by its id: a URL that
starts with ``$<id>`` (OData's Content-ID referencing). Requests run in order; ``dependsOn`` must name earlier
requests.

Why the multipart reader is the standard library's ``email`` package and the HTTP request line is split by hand:
no maintained library parses OData batches, ``email`` is the MIME parser Python has (nested parts, boundaries),
and an embedded request is a request line, headers and a body.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Message

from cityhub import model
from cityhub.api.deps import JSONResponse, hub_of, principal, require
from cityhub.auth.keys import Principal
from cityhub.errors import ProblemError, bad_request
from cityhub.hub import Hub
from cityhub.sensorthings.service import parse_path
from cityhub.sensorthings.service.paths import delete_target, refuse_tasking

MAX_REQUESTS = 1000
METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})
JSON_PATCH = "application/json-patch+json"


@dataclass
class Part:
    """One request of a batch."""

    id: str
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    group: str | None = None
    where: str = ""  # how an error names it: requests[3] / part 3


@dataclass
class Answer:
    id: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    group: str | None = None


# -- reading -------------------------------------------------------------------------------------------------
def parse_json_batch(raw: bytes) -> list[Part]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}", field="body") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("requests"), list):
        raise bad_request('a JSON batch is {"requests": [...]}', field="requests")
    items = doc["requests"]
    _check_count(len(items), "requests")
    parts: list[Part] = []
    seen: set[str] = set()
    closed: set[str] = set()  # atomicity groups that other requests have followed: they must be adjacent
    for k, item in enumerate(items):
        where = f"requests[{k}]"
        if not isinstance(item, dict):
            raise bad_request("each request is an object", field=where)
        rid = item.get("id")
        if not isinstance(rid, str) or not rid:
            raise bad_request("id must be a non-empty string", field=f"{where}.id")
        if rid in seen:
            raise bad_request(f"id {rid!r} is used twice", field=f"{where}.id")
        method, url = item.get("method"), item.get("url")
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise bad_request(f"method must be one of {sorted(METHODS)}", field=f"{where}.method")
        if not isinstance(url, str) or not url:
            raise bad_request("url must be a string", field=f"{where}.url")
        headers = item.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise bad_request("headers must be an object of strings", field=f"{where}.headers")
        group = item.get("atomicityGroup")
        if group is not None and (not isinstance(group, str) or not group):
            raise bad_request("atomicityGroup must be a non-empty string", field=f"{where}.atomicityGroup")
        if group is not None and group in closed:
            raise bad_request("the requests of an atomicity group must be adjacent", field=f"{where}.atomicityGroup")
        if parts and parts[-1].group is not None and parts[-1].group != group:
            closed.add(parts[-1].group)
        depends = item.get("dependsOn", [])
        if not isinstance(depends, list) or any(
            not isinstance(d, str) or (d not in seen and d not in closed) for d in depends
        ):
            raise bad_request("dependsOn must name earlier requests or groups", field=f"{where}.dependsOn")
        headers = {str(k).lower(): v for k, v in headers.items()}
        body = b""
        if "body" in item and item["body"] is not None:
            body = item["body"].encode() if isinstance(item["body"], str) else orjson.dumps(item["body"])
            headers.setdefault("content-type", "application/json")
        parts.append(Part(rid, method.upper(), url, headers, body, group, where))
        seen.add(rid)
    return parts


def parse_multipart_batch(content_type: str, raw: bytes) -> list[Part]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    if not isinstance(message, EmailMessage) or not message.is_multipart() or not message.get_boundary():
        raise bad_request("a multipart batch needs a boundary and at least one part", field="body")
    parts: list[Part] = []
    for k, sub in enumerate(message.iter_parts()):
        assert isinstance(sub, EmailMessage)
        if sub.get_content_type() == "multipart/mixed":
            group = f"changeset{k}"
            for j, leaf in enumerate(sub.iter_parts()):
                assert isinstance(leaf, EmailMessage)
                parts.append(_http_part(leaf, group, f"part {k + 1}.{j + 1}", f"{k + 1}.{j + 1}"))
        else:
            parts.append(_http_part(sub, None, f"part {k + 1}", str(k + 1)))
    _check_count(len(parts), "body")
    return parts


def _http_part(leaf: EmailMessage, group: str | None, where: str, default_id: str) -> Part:
    if leaf.get_content_type() != "application/http":
        raise bad_request(f"{where}: each request is a part of type application/http", field="body")
    payload = leaf.get_payload(decode=True)
    text = payload if isinstance(payload, bytes) else str(leaf.get_payload()).encode()
    head, body = _split(text)
    lines = head.decode("utf-8", "replace").splitlines()
    m = re.fullmatch(r"([A-Za-z]+) (\S+)(?: HTTP/1\.[01])?", lines[0].strip()) if lines else None
    if m is None or m.group(1).upper() not in METHODS:
        raise bad_request(f"{where}: the first line must be '<METHOD> <url> HTTP/1.1'", field="body")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise bad_request(f"{where}: a header line must be 'Name: value'", field="body")
        headers[name.strip().lower()] = value.strip()
    cid = leaf.get("Content-ID") or headers.get("content-id") or default_id
    return Part(str(cid).strip(), m.group(1).upper(), m.group(2), headers, body.rstrip(b"\r\n"), group, where)


def _split(text: bytes) -> tuple[bytes, bytes]:
    """An embedded request's head (request line and headers) and body."""
    text = text.lstrip(b"\r\n")
    m = re.search(rb"\r?\n\r?\n", text)
    if m is None:
        return text, b""
    return text[: m.start()], text[m.end() :]


def _check_count(n: int, name: str) -> None:
    if n == 0:
        raise bad_request("the batch holds no request", field=name)
    if n > MAX_REQUESTS:
        raise bad_request(f"a batch holds at most {MAX_REQUESTS} requests; it had {n}", field=name)


# -- running -------------------------------------------------------------------------------------------------
def _target(url: str, created: dict[str, str], where: str) -> tuple[str, str]:
    """A request's URL as (path below /v1.1, query string); ``$<id>`` is the entity that request created."""
    parsed = urlsplit(url)
    path = parsed.path
    if path.startswith("$"):
        ref, _, rest = path[1:].partition("/")
        if ref not in created:
            raise bad_request(f"${ref} names no entity created earlier in this change set", field=f"{where}.url")
        path = created[ref] + ("/" + rest if rest else "")
    marker = "/v1.1/"
    if marker in "/" + path.lstrip("/") + "/" and (parsed.scheme or path.startswith("/")):
        path = ("/" + path.lstrip("/") + "/").split(marker, 1)[1].rstrip("/")
    path = path.strip("/")
    if path == "$batch":
        raise bad_request("a batch cannot hold another batch", field=f"{where}.url")
    return path, parsed.query


async def run_batch(request: Request, parts: list[Part]) -> list[Answer]:
    who = principal(request)
    hub = hub_of(request)
    base = str(request.base_url).rstrip("/") + "/v1.1"
    answers: list[Answer] = []
    k = 0
    while k < len(parts):
        part = parts[k]
        if part.group is None:
            answers.append(await _dispatch(request, part, _target(part.url, {}, part.where)))
            k += 1
            continue
        group = [p for p in parts[k:] if p.group == part.group]
        k += len(group)
        if who.role == "device":
            raise ProblemError(403, "Forbidden", "a device key sends no change sets", field="atomicityGroup")
        answers.extend(await run_in_threadpool(partial(_change_set, hub, who, base, group)))
    return answers


async def _dispatch(request: Request, part: Part, target: tuple[str, str]) -> Answer:
    """One request through the whole application, with the batch's own credentials."""
    path, query = target
    keep = [(k, v) for k, v in request.scope["headers"] if k.lower() in (b"authorization", b"host", b"x-api-key")]
    headers = keep + [(k.encode("latin-1"), v.encode("latin-1")) for k, v in part.headers.items()
                      if k not in ("authorization", "host", "content-length")]  # fmt: skip
    headers.append((b"content-length", str(len(part.body)).encode()))
    root = request.scope.get("root_path", "")
    scope = {
        **request.scope,
        "method": part.method,
        "path": f"{root}/v1.1/{path}",
        "raw_path": f"{root}/v1.1/{path}".encode(),
        "query_string": query.encode(),
        "headers": headers,
    }
    for key in ("route", "endpoint", "path_params", "state"):
        scope.pop(key, None)
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": part.body, "more_body": False}

    status, out_headers, chunks = 500, {}, []

    async def send(message: Message) -> None:
        nonlocal status, out_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await request.app(scope, receive, send)
    out_headers.pop("content-length", None)
    return Answer(part.id, status, out_headers, b"".join(chunks), part.group)


def _change_set(hub: Hub, who: Principal, base: str, group: list[Part]) -> list[Answer]:
    service = hub.sensorthings
    created: dict[str, str] = {}  # request id → the path of the entity it created
    ids: dict[str, int] = {}  # request id → that entity's id
    answers: list[Answer] = []
    current = group[0]
    try:
        with service.change_set():
            for part in group:
                current = part
                answer = _change(service, who, base, part, created, ids, tasking=hub.settings.tasking)
                answers.append(answer)
                location = answer.headers.get("location")
                if location:
                    created[part.id] = location.split("/v1.1/", 1)[-1]
                    ids[part.id] = orjson.loads(answer.body)["@iot.id"]
    except ProblemError as exc:
        body = {"title": exc.title, "status": exc.status, "detail": exc.detail}
        if exc.field:
            body["field"] = exc.field
        headers = {"content-type": "application/problem+json"}
        return [Answer(current.id, exc.status, headers, orjson.dumps(body), current.group)]
    return answers


def _change(
    service: Any, who: Principal, base: str, part: Part, created: dict[str, str], ids: dict[str, int], *, tasking: bool
) -> Answer:
    path, query = _target(part.url, created, part.where)
    res = parse_path(path)
    refuse_tasking(res, tasking)
    body: Any = None
    if part.method in ("POST", "PATCH", "PUT"):
        if not part.body.strip():
            raise bad_request(f"{part.where}: the body is empty", field="body")
        try:
            body = orjson.loads(part.body)
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"{part.where}: the body is not valid JSON: {exc}", field="body") from None
        if not res.ref and part.headers.get("content-type", "").split(";")[0].strip().lower() != JSON_PATCH:
            body = _resolve_references(body, res.et, ids, part.where)
    json_headers = {"content-type": "application/json"}
    if part.method == "GET":
        raise bad_request("a change set holds changes only (POST, PATCH, PUT, DELETE)", field=part.where)
    if part.method == "POST":
        require(who, "observations" if res.et is model.OBSERVATION and not res.ref else "model")
        if res.ref:
            service.add_reference(res, body)
            return Answer(part.id, 204, {}, b"", part.group)
        out = service.create_in_change_set(res, body, base)
        return Answer(part.id, 201, {**json_headers, "location": out["@iot.selfLink"]}, orjson.dumps(out), part.group)
    require(who, "model")
    if part.method == "DELETE":
        res, flt = delete_target(res, dict(parse_qsl(query)), f"{base}/{path}", base)
        service.delete(res, flt)
        if res.ref:  # as handle_delete answers it (OData 4.01 Part 1 §11.4.6.2)
            return Answer(part.id, 204, {}, b"", part.group)
        return Answer(part.id, 200, json_headers, orjson.dumps({"deleted": f"{base}/{path}"}), part.group)
    if part.method == "PUT" and res.ref:
        service.add_reference(res, body)
        return Answer(part.id, 204, {}, b"", part.group)
    if part.method == "PATCH" and part.headers.get("content-type", "").split(";")[0].strip().lower() == JSON_PATCH:
        out = service.patch_json(res, body, base)
    else:
        out = service.update(res, body, base, replace=part.method == "PUT")
    return Answer(part.id, 200, json_headers, orjson.dumps(out), part.group)


def _resolve_references(body: Any, et: model.EntityType, ids: dict[str, int], where: str) -> Any:
    """An entity body with each related entity written ``{"@iot.id": "$sensor1"}`` given the id of the entity that
    request ``sensor1`` of the change set created (SensorThings v1.1 §11.2.2), down through deep inserts. Only
    navigation members are followed: a property's free JSON (``properties``, ``parameters``) is left as sent."""
    if isinstance(body, list):
        return [_resolve_references(item, et, ids, where) for item in body]
    if not isinstance(body, dict):
        return body
    out = dict(body)
    ref = body.get("@iot.id")
    if isinstance(ref, str) and ref.startswith("$"):
        if ref[1:] not in ids:
            raise bad_request(f"{ref} names no entity created earlier in this change set", field=f"{where}.body")
        out["@iot.id"] = ids[ref[1:]]
    for name, value in body.items():
        nav = et.nav(name)
        if nav is not None:
            out[name] = _resolve_references(value, model.entity(nav.target), ids, where)
    return out


# -- answering -----------------------------------------------------------------------------------------------
def json_answer(answers: list[Answer]) -> Response:
    out = []
    for a in answers:
        item: dict[str, Any] = {"id": a.id, "status": a.status, "headers": a.headers}
        if a.group is not None:
            item["atomicityGroup"] = a.group
        if a.body:
            ctype = a.headers.get("content-type", "")
            item["body"] = orjson.loads(a.body) if "json" in ctype else a.body.decode("utf-8", "replace")
        out.append(item)
    return JSONResponse({"responses": out})


def multipart_answer(answers: list[Answer]) -> Response:
    boundary = f"batchresponse_{uuid.uuid4()}"
    chunks: list[bytes] = []
    k = 0
    while k < len(answers):
        a = answers[k]
        if a.group is None or (a.status >= 400 and _is_failed_set(answers, k)):
            chunks.append(f"--{boundary}\r\n".encode() + _http_answer(a, with_id=a.group is not None))
            k += 1
            continue
        group = [x for x in answers[k:] if x.group == a.group]
        k += len(group)
        inner = f"changesetresponse_{uuid.uuid4()}"
        body = b"".join(f"--{inner}\r\n".encode() + _http_answer(x, with_id=True) for x in group)
        body += f"--{inner}--\r\n".encode()
        chunks.append(f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n".encode() + body)
    chunks.append(f"--{boundary}--\r\n".encode())
    return Response(b"".join(chunks), media_type=f"multipart/mixed; boundary={boundary}")


def _is_failed_set(answers: list[Answer], k: int) -> bool:
    """A failed change set is answered with its one failure, as a single part (OData 4.0 Part 1 §11.7.4)."""
    a = answers[k]
    return sum(1 for x in answers if x.group == a.group) == 1


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _http_answer(a: Answer, *, with_id: bool) -> bytes:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if with_id:
        head += f"Content-ID: {a.id}\r\n"
    lines = [f"HTTP/1.1 {a.status} {_reason(a.status)}".rstrip()]
    lines += [f"{k.title()}: {v}" for k, v in a.headers.items()]
    return (head + "\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode() + a.body + b"\r\n"

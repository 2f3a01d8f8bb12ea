"""Dead letters: what devices sent that could not be stored, with the reason (operators and admins)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from cityhub.api.deps import JSONResponse, hub_of, principal, require
from cityhub.api.openapi import KEYED, json_ok
from cityhub.api.params import time_param
from cityhub.errors import bad_request, not_found
from cityhub.ingest import deadletters

router = APIRouter(prefix="/api/v1/deadletters", tags=["Dead letters"])


@router.get(
    "",
    summary="Messages that could not be stored, newest first",
    description="Each dead letter keeps the topic, the payload (text, or base64 when it is not UTF-8), the "
    "reason and the field at fault. Needs an operator or admin key.",
    openapi_extra=KEYED,
)
async def list_deadletters(
    request: Request,
    source: str | None = Query(None, max_length=50, description="e.g. mqtt"),
    topic: str | None = Query(None, max_length=1000, description="topic prefix"),
    since: str | None = Query(
        None, description="received at or after (ISO 8601 with offset)", json_schema_extra={"format": "date-time"}
    ),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=2**62),
) -> Response:
    require(principal(request), "operate")
    hub = hub_of(request)
    when = time_param(since, "since")
    out: dict[str, Any] = await asyncio.to_thread(
        deadletters.query, hub.store, source=source, topic=topic, since=when, limit=limit, offset=offset
    )
    return JSONResponse(out)


@router.delete(
    "/{letter_id}",
    summary="Delete one dead letter (once dealt with)",
    status_code=200,
    response_model=None,
    responses={
        200: json_ok({"type": "object", "properties": {"deleted": {"type": "integer"}}, "required": ["deleted"]})
    },
)
async def delete_deadletter(request: Request, letter_id: int = Path(ge=0, le=2**63 - 1)) -> Response:
    require(principal(request), "operate")
    if not 0 <= letter_id < 2**63:
        raise bad_request("id out of range", field="letter_id")
    n = await asyncio.to_thread(deadletters.delete, hub_of(request).store, [letter_id])
    if not n:
        raise not_found(f"no dead letter {letter_id}", field="letter_id")
    return JSONResponse({"deleted": n})

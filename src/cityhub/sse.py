"""Server-sent events through sse-starlette: the framing of messages and the response of every live stream.

The library frames each message (:func:`message`), sends the keep-alive comments, notices a client that went
away and ends the streams when uvicorn shuts down (it waits for open responses before the application's own
shutdown). Streams that frame many rows of one kind take the library's framing once (:func:`frame`) and put each
row's compact JSON between its two halves.
"""

from __future__ import annotations

from collections.abc import AsyncIterable

from sse_starlette import EventSourceResponse, ServerSentEvent

SEP = "\n"


def message(
    data: str | None = None,
    *,
    event: str | None = None,
    id: int | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> bytes:
    """One framed message: ``id``, ``event``, ``data`` and ``retry`` fields and a ``:`` comment, as given."""
    return ServerSentEvent(data, event=event, id=None if id is None else str(id), retry=retry, comment=comment,
                           sep=SEP).encode()  # fmt: skip


def frame(event: str) -> tuple[bytes, bytes]:
    """What goes before and after a one-line ``data`` (compact JSON has no line breaks) of an ``event``."""
    head, tail = message("\0", event=event).split(b"\0")
    return head, tail


def event_stream(content: AsyncIterable[bytes], *, keepalive_s: float, keepalive: str) -> EventSourceResponse:
    """A ``text/event-stream`` of ``content`` (framed messages) with a ``: <keepalive>`` comment every
    ``keepalive_s`` seconds."""
    return EventSourceResponse(
        content,
        headers={"Cache-Control": "no-cache"},
        ping=keepalive_s,
        sep=SEP,
        ping_message_factory=lambda: ServerSentEvent(comment=keepalive, sep=SEP),
    )

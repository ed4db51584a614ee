"""Server-sent events: the one response class and the one wire format every streaming route
uses (the OpenAI routes' token streams, the support conversations followed live).

Why one module: a stream must release what feeds it however the response ends (finished,
failed, or the client gone), a quiet stream must say something before a proxy's idle
timeout closes it, and every line must be framed the same way. Routes write events with
:func:`data` (a ``data:`` line of compact JSON), :func:`named` (an ``event:`` line first)
or :data:`DONE`, and hand the generator to :class:`EventStream`::

    async def events() -> AsyncIterator[str]:
        yield sse.data({"type": "state", "state": "bot"})

    return EventStream(events(), ping_s=15.0, request=request)

With ``ping_s``, a comment (``: ping``) goes out after that many seconds without an event,
and the stream ends on its own once ``request`` reports the client gone. Without it, the
events are sent as they come (the OpenAI streams, which always have news).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering
DONE = "data: [DONE]\n\n"  # the OpenAI stream's last line
PING = ": ping\n\n"  # a comment: clients ignore it, proxies see traffic


def _json(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def data(payload: Any) -> str:
    """An unnamed event (``message`` to a browser's EventSource) holding ``payload`` as JSON."""
    return f"data: {_json(payload)}\n\n"


def named(event: str, payload: Any) -> str:
    """An event of type ``event`` (``addEventListener(event, ...)`` in a browser)."""
    if "\n" in event or "\r" in event:
        raise ValueError("an event name is one line")
    return f"event: {event}\n{data(payload)}"


def comment(text: str = "ping") -> str:
    """A comment line, which every client skips: what keeps a quiet stream open."""
    return "".join(f": {line}\n" for line in text.splitlines() or [""]) + "\n"


async def _closed(events: AsyncIterator[str]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()


async def with_pings(
    events: AsyncIterator[str], ping_s: float, request: Request | None = None
) -> AsyncIterator[str]:
    """``events`` with :data:`PING` sent whenever ``ping_s`` seconds pass without one, until
    they end or ``request``'s client disconnects; ``events`` is closed either way.

    The next event is awaited in a task that a ping does not cancel, so an event that takes
    longer than ``ping_s`` to come is not lost (a timeout around the generator would be).
    """
    source = events.__aiter__()
    pending: asyncio.Future[str] | None = None
    try:
        while request is None or not await request.is_disconnected():
            if pending is None:
                pending = asyncio.ensure_future(source.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=ping_s)
            if not done:
                yield PING
                continue
            finished, pending = pending, None
            try:
                event = finished.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await _closed(source)


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response whose generator is always closed, so what feeds it
    (an engine's stream and its batch slot, a live watch) is released however the response
    ends: finished, failed or abandoned. ``ping_s`` adds keep-alive comments and, with
    ``request``, ends the stream when the client has gone (see :func:`with_pings`)."""

    def __init__(
        self, events: AsyncIterator[str], *, ping_s: float | None = None,
        request: Request | None = None,
    ) -> None:
        self.events = events
        if ping_s is not None:
            events = with_pings(events, ping_s, request)
        super().__init__(events, media_type=MEDIA_TYPE, headers=HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await _closed(self.body_iterator)  # type: ignore[arg-type]
            await _closed(self.events)  # never started: the wrapper could not close it

"""The one server-sent events module: framing, keep-alive pings, and closing the source."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aigc_apps.serve import sse
from aigc_apps.serve.sse import EventStream, with_pings


def test_framing_of_data_named_events_comments_and_done() -> None:
    assert sse.data({"a": "é", "b": [1, 2]}) == 'data: {"a":"é","b":[1,2]}\n\n'
    assert sse.named("state", {"x": 1}) == 'event: state\ndata: {"x":1}\n\n'
    assert sse.comment() == sse.PING == ": ping\n\n"
    assert sse.comment("two\nlines") == ": two\n: lines\n\n"
    assert sse.DONE == "data: [DONE]\n\n"
    with pytest.raises(ValueError, match="one line"):
        sse.named("bad\nname", {})


def test_a_quiet_source_gets_pings_and_a_slow_event_is_not_lost() -> None:
    closed: list[bool] = []

    async def slow() -> AsyncIterator[str]:
        try:
            await asyncio.sleep(0.05)
            yield sse.data({"n": 1})
        finally:
            closed.append(True)

    async def collect() -> list[str]:
        return [event async for event in with_pings(slow(), 0.01)]

    events = asyncio.run(collect())
    assert events[-1] == sse.data({"n": 1}) and sse.PING in events[:-1]
    assert closed == [True]


def test_the_source_is_closed_when_the_consumer_stops_early() -> None:
    closed: list[bool] = []

    async def forever() -> AsyncIterator[str]:
        try:
            while True:
                await asyncio.sleep(1)
                yield "never"
        finally:
            closed.append(True)

    async def first_ping() -> str:
        stream = with_pings(forever(), 0.01)
        event = await stream.__anext__()
        await stream.aclose()
        return event

    assert asyncio.run(first_ping()) == sse.PING and closed == [True]


def test_event_stream_response_headers_body_and_closing() -> None:
    closed: list[bool] = []

    async def events() -> AsyncIterator[str]:
        try:
            yield sse.data({"type": "state"})
            yield sse.DONE
        finally:
            closed.append(True)

    app = FastAPI()

    @app.get("/events", response_class=EventStream)
    async def route() -> EventStream:
        return EventStream(events(), ping_s=5.0)

    answer = TestClient(app).get("/events")
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["cache-control"] == "no-cache"
    lines = [line for line in answer.text.split("\n") if line]
    assert json.loads(lines[0][6:]) == {"type": "state"} and lines[1] == "data: [DONE]"
    assert closed == [True]


def test_the_old_import_path_warns() -> None:
    from aigc_apps.serve import openai_api

    with pytest.warns(DeprecationWarning, match="aigc_apps.serve.sse"):
        assert openai_api.EventStream is EventStream

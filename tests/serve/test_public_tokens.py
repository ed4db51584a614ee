"""A public token (``support:chat``, published in a website's chat widget) is limited per
client address and per conversation, so one visitor cannot spend every customer's budget;
a private token keeps one budget of its own wherever it is used from."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
from fastapi import Depends, FastAPI

from aigc_apps.serve.app import create_app
from aigc_apps.serve.auth import Principal, require_scope
from aigc_apps.serve.config import ServeConfig
from aigc_apps.serve.tokens import TokenStore

CHAT = require_scope("support:write", "support:chat")
Get = Callable[[str, str], Coroutine[Any, Any, int]]


def chat_app(config: ServeConfig, tokens: TokenStore) -> FastAPI:
    """The real app plus a chat route with a conversation and one without."""
    app = create_app(config, tokens=tokens)

    @app.post("/test/sessions")
    def open_session(who: Principal = Depends(CHAT)) -> dict:
        return {"by": who.name}

    @app.post("/test/sessions/{session_id}/messages")
    def message(session_id: str, who: Principal = Depends(CHAT)) -> dict:
        return {"session": session_id}

    return app


def statuses(app: FastAPI, token: str, calls: list[tuple[str, str]]) -> list[int]:
    """The status of each ``(client address, path)`` POST, in order, with ``token``."""

    async def run() -> list[int]:
        codes = []
        try:
            for address, path in calls:
                transport = httpx.ASGITransport(app=app, client=(address, 4000))
                async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
                    response = await c.post(path, headers={"Authorization": f"Bearer {token}"})
                codes.append(response.status_code)
        finally:
            await app.state.authenticate.limiter.aclose()
        return codes

    return asyncio.run(run())


def check_public_token_per_address(app: FastAPI, chat: str) -> None:
    """One address spending its whole budget leaves another's whole."""
    first = statuses(app, chat, [("203.0.113.1", "/test/sessions")] * 4)
    assert first == [200, 200, 200, 429]
    assert statuses(app, chat, [("198.51.100.7", "/test/sessions")] * 3) == [200] * 3


def test_a_public_token_is_limited_per_client_address(token_store: TokenStore) -> None:
    _, chat = token_store.create("web-chat", ["support:chat"])
    check_public_token_per_address(
        chat_app(ServeConfig(rate_limit=3, auth_cache_s=0), token_store), chat)


def test_a_public_token_is_also_limited_per_conversation(token_store: TokenStore) -> None:
    _, chat = token_store.create("web-chat", ["support:chat"])
    app = chat_app(ServeConfig(rate_limit=3, auth_cache_s=0), token_store)
    # many addresses posting into one conversation share that conversation's budget
    many = [(f"203.0.113.{n}", "/test/sessions/s1/messages") for n in range(1, 5)]
    assert statuses(app, chat, many) == [200, 200, 200, 429]
    assert statuses(app, chat, [("203.0.113.9", "/test/sessions/s2/messages")]) == [200]


def test_a_private_token_keeps_one_budget_wherever_it_is_used(token_store: TokenStore) -> None:
    _, writer = token_store.create("backend", ["support:write"])
    app = chat_app(ServeConfig(rate_limit=3, auth_cache_s=0), token_store)
    calls = [(f"203.0.113.{n}", "/test/sessions") for n in range(1, 5)]
    assert statuses(app, writer, calls) == [200, 200, 200, 429]

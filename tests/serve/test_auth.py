"""API tokens and scopes: only a hash is stored, scopes are checked, revocation takes
effect within the server's cache delay. The store runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable

import httpx
import pytest
import sqlalchemy as sa

from aigc_apps.errors import AigcError, NotFoundError
from aigc_apps.serve.app import create_app
from aigc_apps.serve.auth import ANONYMOUS, Authenticator, Principal
from aigc_apps.serve.config import ServeConfig
from aigc_apps.serve.errors import ApiError
from aigc_apps.serve.limits import RateLimiter
from aigc_apps.serve.tokens import TokenStore, known_scopes

Serve = Callable[[object], str]


def test_scopes_grant_what_they_say() -> None:
    reader = Principal("r", frozenset({"support:read", "generate"}))
    assert reader.allows("support:read") and reader.allows("generate")
    assert not reader.allows("support:write") and not reader.allows("sentiment:read")
    whole_app = Principal("w", frozenset({"recommend"}))
    assert whole_app.allows("recommend:read") and whole_app.allows("recommend:write")
    assert not whole_app.allows("generate")
    assert ANONYMOUS.allows("sentiment:write")
    assert {"admin", "generate", "support", "sentiment:read", "recommend:write"} <= set(
        known_scopes()
    )


def test_token_store_keeps_only_a_hash(db_url: str) -> None:
    store = TokenStore(db_url)
    try:
        info, token = store.create("ci-bot", ["sentiment:read", "support", "sentiment:read"])
        assert token.startswith("aigc_") and len(token) > 40
        assert info.scopes == ["sentiment:read", "support"] and info.active
        with store.db.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM aigc_tokens")).mappings().all()
        assert len(rows) == 1
        stored = " ".join(str(v) for v in rows[0].values())
        assert token not in stored and token[5:] not in stored
        assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()

        principal = store.verify(token)
        assert principal == Principal("ci-bot", frozenset({"sentiment:read", "support"}),
                                      agent="ci-bot")  # acts as its name by default
        assert store.verify(token + "x") is None and store.verify("not-a-token") is None
        with store.db.engine.begin() as conn:  # a token from before agents were stored
            conn.execute(sa.text("UPDATE aigc_tokens SET agent = NULL"))
        assert store.verify(token).agent == "ci-bot"  # type: ignore[union-attr]
        assert store.list()[0].to_dict()["agent"] == "ci-bot"
        assert store.list()[0].last_used_at is not None
        assert store.active_count() == 1

        with pytest.raises(AigcError, match="exists"):
            store.create("ci-bot", ["admin"])
        with pytest.raises(AigcError, match="unknown scope 'support:delete'"):
            store.create("other", ["support:delete"])
        with pytest.raises(AigcError, match="at least one scope"):
            store.create("other", [])
        with pytest.raises(AigcError, match="bad token name"):
            store.create("has space", ["admin"])
        with pytest.raises(AigcError, match="bad agent name"):
            store.create("other", ["support:agent"], agent=" \t ")
        assert [t.name for t in store.list()] == ["ci-bot"]  # nothing stored half-way

        revoked = store.revoke("ci-bot")
        assert revoked.revoked_at is not None and not revoked.active
        assert store.verify(token) is None and store.active_count() == 0
        assert store.revoke("ci-bot").revoked_at == revoked.revoked_at  # idempotent
        with pytest.raises(NotFoundError):
            store.revoke("nobody")
        _, other = store.create("second", ["admin"])
        assert other != token and store.verify(other) is not None
    finally:
        store.close()


class _Request:
    """Just what the authenticator reads from a request."""

    def __init__(self, token: str | None) -> None:
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.client = type("Client", (), {"host": "127.0.0.1"})()
        self.state = type("State", (), {})()



def test_any_whitespace_may_follow_bearer_and_a_malformed_header_is_named(
    token_store: TokenStore,
) -> None:
    """Issue 24: ``Bearer<TAB>token`` was answered "missing API token"."""
    _, token = token_store.create("app", ["support"])
    auth = Authenticator(token_store, cache_s=0, limiter=RateLimiter(0))

    def call(header: str) -> Principal:
        request = _Request(None)
        request.headers = {"authorization": header}
        return asyncio.run(auth(request))  # type: ignore[arg-type]

    for header in (f"Bearer\t{token}", f"Bearer  {token}", f"bearer \t {token} ",
                   f" BEARER {token}"):
        assert call(header).name == "app", repr(header)
    for header in ("Bearer", "Bearer \t ", f"Basic {token}", f"Bearer{token}", "", " "):
        with pytest.raises(ApiError) as error:
            call(header)
        assert (error.value.status, error.value.code) == (401, "malformed_authorization")
        assert "malformed Authorization header" in error.value.message, repr(header)
        assert "missing" not in error.value.message
    with pytest.raises(ApiError) as error:
        asyncio.run(auth(_Request(None)))  # type: ignore[arg-type]
    assert error.value.code == "missing_token" and "missing API token" in error.value.message


class Clock:
    """A monotonic clock that moves only when told: cache windows without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_the_cache_delays_revocation_by_at_most_its_ttl(token_store: TokenStore) -> None:
    _, token = token_store.create("app", ["support"])
    token_store.create("keeper", ["admin"])
    clock = Clock()
    auth = Authenticator(token_store, cache_s=0.5, limiter=RateLimiter(0), clock=clock)

    async def call() -> Principal:
        return await auth(_Request(token))  # type: ignore[arg-type]

    assert asyncio.run(call()).name == "app"
    token_store.revoke("app")
    clock.advance(0.49)
    assert asyncio.run(call()).name == "app"  # within the cache delay: still trusted
    clock.advance(0.01)  # the cache delay is over: the database is asked again
    with pytest.raises(ApiError) as error:
        asyncio.run(call())
    assert error.value.status == 401
    token_store.revoke("keeper")
    clock.advance(0.49)
    with pytest.raises(ApiError):  # still cached: auth is on
        asyncio.run(auth(_Request(None)))  # type: ignore[arg-type]
    clock.advance(0.01)  # no active token left: auth is off again (open on loopback)
    assert asyncio.run(auth(_Request(None))) is ANONYMOUS  # type: ignore[arg-type]


def test_a_public_server_stays_closed_once_its_last_token_is_revoked(
    token_store: TokenStore,
) -> None:
    app = create_app(ServeConfig(host="0.0.0.0", auth_cache_s=0.2), tokens=token_store)
    auth: Authenticator = app.state.authenticate
    auth.clock = clock = Clock()
    assert not auth.open_without_tokens  # only a loopback server opens with no token left
    _, token = token_store.create("ops", ["admin"])
    assert asyncio.run(auth(_Request(token))).name == "ops"  # type: ignore[arg-type]
    token_store.revoke("ops")
    clock.advance(auth.cache_s)
    for sent in (None, token):
        with pytest.raises(ApiError) as error:
            asyncio.run(auth(_Request(sent)))  # type: ignore[arg-type]
        assert error.value.status == 401


def test_a_token_created_while_serving_is_required_without_restart(
    live_server: Serve, token_store: TokenStore
) -> None:
    url = live_server(create_app(ServeConfig(auth_cache_s=0.3)))
    assert httpx.get(f"{url}/v1/models", timeout=30).status_code != 401
    _, token = token_store.create("late", ["generate"])
    deadline = time.monotonic() + 5
    while httpx.get(f"{url}/v1/models", timeout=30).status_code != 401:
        assert time.monotonic() < deadline, "the new token did not turn auth on"
        time.sleep(0.1)
    ok = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert ok.status_code == 200

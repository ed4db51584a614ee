"""README: "a revoked token stops working within 2 seconds on every worker". Two app
instances on one token database stand for two workers (or two machines); each steps an
injected clock, so the promise is checked at its bound without sleeping: a token revoked
through one instance is refused by both once 2 s have passed. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aigc_apps.serve.app import create_app, create_app_from_env
from aigc_apps.serve.config import CONFIG_ENV, ServeConfig
from aigc_apps.serve.tokens import TokenStore


class Clock:
    """A monotonic clock shared by both instances; it moves only when told."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def workers(db_url: str) -> Iterator[tuple[FastAPI, FastAPI, Clock]]:
    """Two instances of the default service (``ServeConfig()``: its 2 s cache), each with
    its own connection to one token database."""
    clock = Clock()
    apps = [create_app(ServeConfig(), tokens=TokenStore(db_url)) for _ in range(2)]
    for app in apps:
        app.state.authenticate.clock = clock
    yield apps[0], apps[1], clock
    for app in apps:
        app.state.tokens.close()


def test_the_default_cache_is_2_seconds_in_every_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServeConfig().auth_cache_s == 2.0
    monkeypatch.setenv(CONFIG_ENV, ServeConfig(workers=2).to_json())  # how workers start
    assert create_app_from_env().state.authenticate.cache_s == 2.0


def test_a_token_revoked_through_one_worker_is_refused_by_both_within_2_s(
    workers: tuple[FastAPI, FastAPI, Clock],
) -> None:
    one, other, clock = workers
    store: TokenStore = one.state.tokens
    _, token = store.create("shop", ["generate"])
    store.create("keeper", ["admin"])  # auth stays on after the revocation
    bearer = {"Authorization": f"Bearer {token}"}
    with TestClient(one) as first, TestClient(other) as second:
        for client in (first, second):  # both trust it, and cache that
            assert client.get("/v1/models", headers=bearer).status_code == 200
        one.state.tokens.revoke("shop")  # what `aigc tokens revoke` does, through one
        clock.now += 2.0
        for client in (first, second):
            refused = client.get("/v1/models", headers=bearer)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "invalid_token"

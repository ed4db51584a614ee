"""The server itself over real HTTP: every error status in OpenAI's JSON shape, the limits,
health, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from aigc_apps.errors import AigcError, CorruptDatabaseError, NotFoundError
from aigc_apps.serve.app import create_app
from aigc_apps.serve.auth import Principal, require_scope
from aigc_apps.serve.config import ServeConfig
from aigc_apps.serve.errors import ApiError
from aigc_apps.serve.tokens import TokenStore
from tests.serve.checks import assert_error

Serve = Callable[[object], str]


class Order(BaseModel):
    item: str = Field(min_length=1)
    quantity: int = Field(ge=1)


def make_app(config: ServeConfig | None = None, tokens: TokenStore | None = None) -> FastAPI:
    """The real app plus routes that fail on purpose."""
    app = create_app(config or ServeConfig(auth_cache_s=0, rate_limit=0), tokens=tokens)

    @app.post("/test/orders")
    def order(body: Order, who: Principal = Depends(require_scope("support:write"))) -> dict:
        return {"item": body.item, "by": who.name}

    @app.get("/test/read")
    def read(who: Principal = Depends(require_scope("support:read"))) -> dict:
        return {"by": who.name}

    @app.get("/test/items/{item_id}")
    def item(item_id: int) -> dict:
        if item_id == 0:
            raise NotFoundError("item 0 does not exist")
        if item_id < 0:
            raise AigcError("item ids are positive\nsecond line never shown")
        return {"id": item_id}

    @app.get("/test/boom")
    def boom() -> dict:
        raise RuntimeError("secret internals /etc/passwd")

    @app.get("/test/damaged")
    def damaged() -> dict:
        raise CorruptDatabaseError("the SQLite database /srv/secret/registry.db is damaged")

    @app.get("/test/slow")
    async def slow(seconds: float = 5.0) -> dict:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @app.get("/test/slow-sync")
    def slow_sync() -> dict:
        time.sleep(1.5)
        return {}

    @app.get("/test/stream")
    async def stream() -> StreamingResponse:
        async def pieces() -> Any:
            for i in range(4):
                await asyncio.sleep(0.15)
                yield f"piece {i}\n"

        return StreamingResponse(pieces(), media_type="text/plain")

    @app.get("/test/api-error")
    def api_error() -> dict:
        raise ApiError(409, "already there", code="conflict", headers={"X-Why": "dup"})

    return app


@pytest.fixture
def client(live_server: Serve) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server(make_app()), timeout=30) as c:
        yield c


def test_auth_off_until_a_token_exists_then_401_403(
    live_server: Serve, token_store: TokenStore
) -> None:
    url = live_server(make_app())
    c = httpx.Client(base_url=url, timeout=30)
    assert c.get("/test/read").json() == {"by": "anonymous"}  # no token defined: loopback, open
    _, writer = token_store.create("writer", ["support"])
    _, reader = token_store.create("reader", ["sentiment:read", "support:read"])

    missing = c.get("/test/read")
    assert_error(missing, 401, "authentication_error", "missing_token")
    assert missing.headers["www-authenticate"] == "Bearer"
    bad = c.get("/test/read", headers={"Authorization": "Bearer aigc_not-a-token"})
    assert_error(bad, 401, "authentication_error", "invalid_token")
    assert bad.headers["www-authenticate"] == "Bearer"
    basic = c.get("/test/read", headers={"Authorization": f"Basic {reader}"})
    assert_error(basic, 401, "authentication_error")

    as_reader = {"Authorization": f"Bearer {reader}"}
    assert c.get("/test/read", headers=as_reader).json() == {"by": "reader"}
    denied = c.post("/test/orders", json={"item": "a", "quantity": 1}, headers=as_reader)
    error = assert_error(denied, 403, "permission_error", "insufficient_scope")
    assert "support:write" in error["message"]
    as_writer = {"Authorization": f"Bearer {writer}"}
    ok = c.post("/test/orders", json={"item": "a", "quantity": 1}, headers=as_writer)
    assert ok.json() == {"item": "a", "by": "writer"}  # the bare app name grants read + write

    token_store.revoke("reader")
    assert_error(c.get("/test/read", headers=as_reader), 401, "authentication_error")
    assert c.get("/test/read", headers=as_writer).status_code == 200
    # probes stay open while auth is on
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").status_code == 200


def test_insecure_no_auth_ignores_tokens(live_server: Serve, token_store: TokenStore) -> None:
    token_store.create("someone", ["admin"])
    url = live_server(make_app(ServeConfig(insecure_no_auth=True, rate_limit=0)))
    assert httpx.get(f"{url}/test/read").json() == {"by": "anonymous"}


def test_every_error_is_openai_shaped(client: httpx.Client) -> None:
    error = assert_error(client.get("/no/such/route"), 404, "not_found_error", "not_found")
    assert "/no/such/route" in error["message"]
    assert_error(client.delete("/healthz"), 405, "invalid_request_error", "method_not_allowed")
    assert_error(client.get("/test/items/0"), 404, "not_found_error", "not_found")
    error = assert_error(client.get("/test/items/-1"), 400, "invalid_request_error")
    assert error["message"] == "item ids are positive"
    error = assert_error(client.get("/test/items/abc"), 422, "invalid_request_error")
    assert error["param"] == "item_id" and "item_id" in error["message"]

    missing = client.post("/test/orders", json={"item": "a"})
    error = assert_error(missing, 422, "invalid_request_error", "invalid_value")
    assert error["param"] == "quantity" and "quantity" in error["message"]
    negative = client.post("/test/orders", json={"item": "a", "quantity": -3})
    assert assert_error(negative, 422, "invalid_request_error")["param"] == "quantity"
    not_json = client.post("/test/orders", content=b"{item: a",
                           headers={"Content-Type": "application/json"})
    assert_error(not_json, 400, "invalid_request_error", "invalid_json")
    plain = client.post("/test/orders", content=b"item=a", headers={"Content-Type": "text/plain"})
    assert_error(plain, 400, "invalid_request_error", "invalid_json")

    conflict = client.get("/test/api-error")
    assert_error(conflict, 409, "invalid_request_error", "conflict")
    assert conflict.headers["x-why"] == "dup"


def test_a_crash_is_a_500_without_traceback_and_the_server_keeps_serving(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR", logger="aigc.serve"):
        response = client.get("/test/boom")
    error = assert_error(response, 500, "server_error", "internal_error")
    assert error["message"] == "internal error"
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert any(r.exc_info for r in caplog.records)  # the traceback went to the log
    assert client.get("/healthz").status_code == 200  # same keep-alive connection


def test_a_damaged_store_is_the_servers_fault_not_the_clients(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged SQLite file is a one-line AigcError for the CLI, but no request can fix it:
    500, with the file's path in the log only."""
    with caplog.at_level("ERROR", logger="aigc.serve"):
        response = client.get("/test/damaged")
    assert_error(response, 500, "server_error", "internal_error")
    assert "secret" not in response.text
    assert any("registry.db is damaged" in r.getMessage() for r in caplog.records)


def test_a_10_mb_body_is_refused_and_the_server_keeps_serving(client: httpx.Client) -> None:
    big = b'{"item": "' + b"x" * 10_000_000 + b'", "quantity": 1}'
    error = assert_error(client.post("/test/orders", content=big,
                                     headers={"Content-Type": "application/json"}),
                         413, "invalid_request_error", "body_too_large")
    assert "1000000" in error["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"item": "'
        for _ in range(100):
            yield b"x" * 100_000
        yield b'", "quantity": 1}'

    streamed = client.post("/test/orders", content=chunks(),
                           headers={"Content-Type": "application/json"})
    assert_error(streamed, 413, "invalid_request_error", "body_too_large")
    assert client.post("/test/orders", json={"item": "a", "quantity": 1}).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_timeout_is_504_but_a_started_stream_runs_on(live_server: Serve) -> None:
    url = live_server(make_app(ServeConfig(request_timeout_s=0.4, rate_limit=0)))
    with httpx.Client(base_url=url, timeout=30) as c:
        start = time.monotonic()
        error = assert_error(c.get("/test/slow"), 504, "server_error", "timeout")
        assert time.monotonic() - start < 3 and "0.4" in error["message"]
        assert_error(c.get("/test/slow-sync"), 504, "server_error", "timeout")
        assert c.get("/test/slow", params={"seconds": 0.05}).json() == {"slept": 0.05}
        streamed = c.get("/test/stream")  # 0.6 s in all, longer than the timeout
        assert streamed.status_code == 200
        assert streamed.text.splitlines() == [f"piece {i}" for i in range(4)]
        assert c.get("/healthz").status_code == 200


def test_rate_limit_429_with_retry_after_per_token(
    live_server: Serve, token_store: TokenStore
) -> None:
    _, first = token_store.create("first", ["support"])
    _, second = token_store.create("second", ["support"])
    url = live_server(make_app(ServeConfig(rate_limit=3, auth_cache_s=0)))
    with httpx.Client(base_url=url, timeout=30) as c:
        as_first = {"Authorization": f"Bearer {first}"}
        for _ in range(3):
            assert c.get("/test/read", headers=as_first).status_code == 200
        limited = c.get("/test/read", headers=as_first)
        assert_error(limited, 429, "rate_limit_error", "rate_limit_exceeded")
        assert 1 <= int(limited.headers["retry-after"]) <= 20
        # each token has its own bucket; probes are not limited
        assert c.get("/test/read", headers={"Authorization": f"Bearer {second}"}).status_code == 200
        assert c.get("/healthz").status_code == 200
        # bad tokens spend the client address's bucket: guessing is limited too
        codes = [c.get("/test/read", headers={"Authorization": "Bearer aigc_guess"}).status_code
                 for _ in range(5)]
        assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429]


def test_readyz_names_what_does_not_answer(live_server: Serve) -> None:
    unreachable = TokenStore(url="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    url = live_server(make_app(ServeConfig(insecure_no_auth=True), tokens=unreachable))
    response = httpx.get(f"{url}/readyz", timeout=30)
    error = assert_error(response, 503, "server_error", "not_ready")
    assert "registry" in error["message"]
    assert response.json()["checks"]["registry"].startswith("database unreachable")
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit(" ", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_by_route_template(client: httpx.Client) -> None:
    from aigc_apps.serve.metrics import record_generation

    before = client.get("/metrics").text
    for item in (1, 2, 3):
        client.get(f"/test/items/{item}")
    record_generation("tiny-test-model", 7, 5)
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    route = {"route": "/test/items/{item_id}"}
    assert _sample(text, "aigc_http_requests_total", method="GET", status="200", **route) - \
        _sample(before, "aigc_http_requests_total", method="GET", status="200", **route) == 3
    assert "/test/items/1" not in text  # never one series per id
    assert _sample(text, "aigc_http_request_duration_seconds_count", **route) >= 3
    assert _sample(text, "aigc_generated_tokens_total", model="tiny-test-model",
                   kind="completion") >= 5
    assert "aigc_generation_queue_depth" in text
    assert client.get("/healthz").headers["x-aigc-worker"].isdigit()


def test_metrics_need_admin_from_another_address(token_store: TokenStore) -> None:
    _, admin = token_store.create("ops", ["admin"])
    _, reader = token_store.create("reader", ["support:read"])
    app = make_app()

    async def scrape(headers: dict[str, str]) -> int:
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4567))
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
            return (await c.get("/metrics", headers=headers)).status_code

    assert asyncio.run(scrape({})) == 401
    assert asyncio.run(scrape({"Authorization": f"Bearer {reader}"})) == 403
    assert asyncio.run(scrape({"Authorization": f"Bearer {admin}"})) == 200


def test_openapi_declares_the_error_shape(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    assert "ErrorResponse" in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        if path.startswith(("/test/", "/healthz", "/readyz", "/metrics")):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            for status in ("400", "401", "403", "422", "429", "500"):
                assert status in responses, (method, path, status)
            schema = responses["422"]["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("/ErrorResponse"), (method, path)

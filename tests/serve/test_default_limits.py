"""README's default limits, on the service as ``aigc serve`` builds it (``ServeConfig()``):
"``max_tokens`` 512 (400 above), 600 requests per minute per token (per client address
without one; 429 with ``Retry-After``)". The rate limiter's clock is held still, so the
601st request in a minute is the one refused, however slowly the 600 went."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from aigc_apps.serve.app import create_app
from aigc_apps.serve.auth import Principal, require_scope
from aigc_apps.serve.config import ServeConfig
from aigc_apps.serve.tokens import TokenStore
from tests.serve.checks import assert_error


class Clock:
    def __init__(self) -> None:
        self.now = 1024.0  # exact in binary, as are the steps below

    def __call__(self) -> float:
        return self.now


def default_app(tokens: TokenStore | None = None) -> FastAPI:
    app = create_app(ServeConfig(), tokens=tokens)  # every limit at its default

    @app.get("/test/read")
    def read(who: Principal = Depends(require_scope("support:read"))) -> dict:
        return {"by": who.name}

    return app


def test_max_tokens_above_512_is_refused_by_default() -> None:
    with TestClient(default_app()) as client:
        for route, extra in (("/v1/chat/completions",
                              {"messages": [{"role": "user", "content": "hi"}]}),
                             ("/v1/completions", {"prompt": "hi"})):
            body = {"model": "no-such-model", **extra}
            over = client.post(route, json={**body, "max_tokens": 513})
            error = assert_error(over, 400, "invalid_request_error", "max_tokens_too_large")
            assert "cap of 512" in error["message"] and error["param"] == "max_tokens"
            at_cap = client.post(route, json={**body, "max_tokens": 512})
            assert at_cap.status_code == 404, at_cap.text  # past the cap: the unknown model


def test_600_requests_a_minute_per_token_then_429_by_default(token_store: TokenStore) -> None:
    _, token = token_store.create("shop", ["support:read"])
    _, other = token_store.create("other", ["support:read"])
    app = default_app(token_store)
    app.state.authenticate.limiter.clock = clock = Clock()
    as_shop = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        codes = [client.get("/test/read", headers=as_shop).status_code for _ in range(600)]
        assert codes == [200] * 600
        limited = client.get("/test/read", headers=as_shop)  # the 601st in the same instant
        assert_error(limited, 429, "rate_limit_error", "rate_limit_exceeded")
        assert "600 requests per minute" in limited.json()["error"]["message"]
        assert limited.headers["retry-after"] == "1"  # one request back every 0.1 s
        assert client.get("/test/read", headers={"Authorization": f"Bearer {other}"}
                          ).status_code == 200  # another token: a budget of its own
        clock.now += 0.125  # 600 a minute, one every 0.1 s: one more now, not two
        assert client.get("/test/read", headers=as_shop).status_code == 200
        assert client.get("/test/read", headers=as_shop).status_code == 429

"""The rate limit kept in Redis: one budget per caller across workers, and a worker that
limits on its own when Redis is gone. Skipped without Redis unless ``AIGC_REQUIRE_REDIS=1``."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from aigc_apps.errors import AigcError
from aigc_apps.serve.app import create_app
from aigc_apps.serve.config import ServeConfig
from aigc_apps.serve.errors import ApiError
from aigc_apps.serve.limits import RateLimiter, RedisRateLimiter, make_limiter
from aigc_apps.serve.tokens import TokenStore
from tests.serve.checks import assert_error
from tests.services import unavailable

REDIS_URL = os.environ.get("AIGC_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in a live Redis (its keys are deleted afterwards)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        unavailable("redis", f"Redis not reachable at {REDIS_URL}")
    prefix = f"aigc:test:{uuid.uuid4().hex}:"
    yield prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def _spend(limiter: RateLimiter, key: str) -> int | None:
    """One request's worth: None when allowed, else the Retry-After seconds."""

    async def request() -> None:
        try:
            await limiter.acquire(key)
        finally:
            await limiter.aclose()

    try:
        asyncio.run(request())  # a new event loop each time: the client follows it
    except ApiError as exc:
        assert exc.status == 429
        return int(exc.headers["Retry-After"])
    return None


def test_workers_spend_from_one_budget_and_the_bucket_expires(redis_prefix: str) -> None:
    import redis

    workers = [RedisRateLimiter(3, REDIS_URL, prefix=redis_prefix) for _ in range(2)]
    spent = [_spend(workers[n % 2], "token:alice") for n in range(4)]
    assert spent[:3] == [None, None, None] and spent[3] == 20  # 3 a minute: one per 20 s
    assert _spend(workers[0], "token:bob") is None  # each caller has its own bucket
    assert RateLimiter(3).capacity == workers[0].capacity
    with redis.Redis.from_url(REDIS_URL) as client:
        ttl = client.ttl(f"{redis_prefix}token:alice")
    assert 0 < ttl <= 61  # gone once it would be full again


def test_without_redis_each_worker_limits_on_its_own(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RedisRateLimiter(3, "redis://127.0.0.1:1/0", timeout_s=0.2)
    tries: list[int] = []
    script = limiter._script
    limiter._script = lambda: tries.append(1) or script()  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="aigc.serve"):
        spent = [_spend(limiter, "token:alice") for _ in range(4)]
    assert spent[:3] == [None, None, None] and spent[3] == 20
    assert len(tries) == 1  # then the cool-down: no request waits on a dead Redis
    limiter._down_until = 0.0  # the cool-down is over: Redis is tried again
    assert _spend(limiter, "token:bob") is None and len(tries) == 2
    warned = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warned) == 1 and "127.0.0.1:1" in warned[0]  # once, not per request


def test_config_refuses_a_url_that_is_not_redis() -> None:
    with pytest.raises(AigcError, match="must be a Redis URL"):
        ServeConfig(rate_limit_redis="http://127.0.0.1:6379").check()
    assert type(make_limiter(5)) is RateLimiter
    assert isinstance(make_limiter(5, REDIS_URL), RedisRateLimiter)
    assert ServeConfig.from_json(ServeConfig(rate_limit_redis=REDIS_URL).to_json()
                                 ).rate_limit_redis == REDIS_URL  # reaches every worker


def test_two_servers_share_a_token_budget(
    redis_prefix: str, live_server: Callable[[object], str], token_store: TokenStore
) -> None:
    name = f"rl-{uuid.uuid4().hex[:8]}"  # a fresh bucket in the shared Redis
    _, token = token_store.create(name, ["generate"])
    config = ServeConfig(rate_limit=3, rate_limit_redis=REDIS_URL, auth_cache_s=0)
    urls = [live_server(create_app(config, tokens=token_store)) for _ in range(2)]
    headers = {"Authorization": f"Bearer {token}"}
    codes = [httpx.get(f"{urls[n % 2]}/v1/models", headers=headers, timeout=30).status_code
             for n in range(3)]
    assert codes == [200, 200, 200]
    limited = httpx.get(f"{urls[1]}/v1/models", headers=headers, timeout=30)
    assert_error(limited, 429, "rate_limit_error", "rate_limit_exceeded")
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:
        client.delete(f"aigc:ratelimit:token:{name}")


def test_a_public_token_has_a_budget_per_address_in_redis(
    redis_prefix: str, token_store: TokenStore
) -> None:
    from tests.serve.test_public_tokens import chat_app, check_public_token_per_address

    name = f"chat-{uuid.uuid4().hex[:8]}"  # fresh buckets in the shared Redis
    _, chat = token_store.create(name, ["support:chat"])
    config = ServeConfig(rate_limit=3, rate_limit_redis=REDIS_URL, auth_cache_s=0)
    try:
        check_public_token_per_address(chat_app(config, token_store), chat)
    finally:
        import redis

        with redis.Redis.from_url(REDIS_URL) as client:
            for key in client.scan_iter(f"aigc:ratelimit:token:{name}*"):
                client.delete(key)

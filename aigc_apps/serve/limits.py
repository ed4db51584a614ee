"""Limits every request meets: body size, rate per caller, time to the first byte.

The body limit and the timeout are pure ASGI middleware (no buffering of bodies or
responses, streams pass through). The rate limit is a token bucket per caller, applied when
a route authenticates (:class:`~aigc_apps.serve.auth.Authenticator`). By default the buckets
are in process: with ``--workers N`` each worker keeps its own, so one token may get up to N
times ``rate_limit``. :class:`RedisRateLimiter` (``--rate-limit-redis URL``) keeps them in
Redis instead, one budget per caller across every worker and machine.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aigc_apps.serve.errors import ApiError, StartWatch, error_body, json_response

log = logging.getLogger("aigc.serve")


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit; FastAPI lets an
    ``HTTPException`` through its body reading, so the route never sees the body."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: at once from ``Content-Length``, else while the
    chunks stream in, so a 10 MB body is refused without being held in memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_bytes <= 0:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            # uvicorn drops the unread body
            await json_response(413, self._error())(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        watched = StartWatch(send)
        try:
            await self.app(scope, limited_receive, watched)
        except BodyTooLarge:
            if watched.started:
                raise
            await json_response(413, self._error())(scope, receive, send)

    def _error(self) -> dict[str, Any]:
        return error_body(
            f"request body larger than {self.max_bytes} bytes",
            "invalid_request_error", "body_too_large",
        )


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class TimeoutMiddleware:
    """504 when a request has not started its response after ``timeout_s``.

    Only the time to the response's start counts: a streamed reply that has begun runs to
    its end (the client stopping it frees its slot). The route is cancelled; work already
    handed to a thread finishes there and its answer is dropped, so a write that was in
    flight may still commit (each service write is one transaction: all or nothing).
    """

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app, self.timeout_s = app, timeout_s
        self._orphans: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.timeout_s or self.timeout_s <= 0:
            await self.app(scope, receive, send)
            return
        started = asyncio.Event()
        timed_out = False

        async def watched_send(message: Message) -> None:
            if timed_out:
                return  # the client has its 504 already
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, watched_send))
        waiter = asyncio.ensure_future(started.wait())
        try:
            await asyncio.wait({task, waiter}, timeout=self.timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the server is shutting down or the client left
            task.cancel()
            waiter.cancel()
            raise
        waiter.cancel()
        if task.done() or started.is_set():
            await task
            return
        timed_out = True
        task.cancel()
        self._orphans.add(task)
        task.add_done_callback(self._forget)
        await json_response(504, error_body(
            f"request timed out after {self.timeout_s:g} s", "server_error", "timeout",
        ))(scope, receive, send)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._orphans.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a timed-out request failed afterwards: %r", task.exception())


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests, refilled continuously.

    A caller may spend a whole minute's allowance at once, then one request every
    ``60 / per_minute`` seconds. Thread-safe; ``per_minute <= 0`` turns it off.
    """

    # Buckets kept at most. Idle buckets refill to full, so forgetting the least recently
    # used one loses the least: clearing them all would hand every throttled caller a new
    # minute as soon as enough other addresses came by. About 100 bytes a bucket.
    MAX_KEYS = 100_000

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        # least recently used first: a bucket moves to the end each time it is spent from
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    async def acquire(self, key: str) -> None:
        """:meth:`check`, awaitable like :meth:`RedisRateLimiter.acquire`."""
        self.check(key)

    async def aclose(self) -> None:
        """Nothing to release in process (see :meth:`RedisRateLimiter.aclose`)."""

    def check(self, key: str) -> None:
        """Spend one request of ``key``; 429 with ``Retry-After`` when none is left."""
        if self.capacity <= 0:
            return
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if key in self._buckets:
                self._buckets.move_to_end(key)
            elif len(self._buckets) >= self.MAX_KEYS:
                self._buckets.popitem(last=False)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                raise self.exceeded(tokens)
            self._buckets[key] = (tokens - 1.0, now)

    def exceeded(self, tokens: float) -> ApiError:
        wait = math.ceil((1.0 - tokens) / self.rate)
        return ApiError(
            429, f"rate limit of {int(self.capacity)} requests per minute reached; "
            f"retry in {wait} s", "rate_limit_error", "rate_limit_exceeded",
            headers={"Retry-After": str(wait)},
        )


# KEYS[1] the bucket; ARGV capacity, refill per second. Redis's clock, so that every worker
# and machine refills alike; the key expires once the bucket would be full again.
_BUCKET_LUA = """
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1]) or capacity
local at = tonumber(held[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {allowed, tostring(tokens)}
"""


class RedisRateLimiter(RateLimiter):
    """The same token bucket, kept in Redis: one budget per caller for all workers.

    Each request is one atomic script call, never retried (a retry after a timeout could
    charge twice). When Redis cannot be reached the worker limits with its own in-process
    buckets for ``cooldown_s`` before trying Redis again, and logs it at most once a
    minute: a limiter outage must not become a service outage, nor slow every request.
    """

    def __init__(self, per_minute: int, url: str, *, prefix: str = "aigc:ratelimit:",
                 timeout_s: float = 0.5, cooldown_s: float = 5.0) -> None:
        super().__init__(per_minute)
        self.url, self.prefix = url, prefix
        self.timeout_s, self.cooldown_s = timeout_s, cooldown_s
        self._client: tuple[asyncio.AbstractEventLoop, Any, Any] | None = None
        self._down_until = -math.inf
        self._warned_at = -math.inf

    def _script(self) -> Any:
        """The bucket script on a client of the running loop (a pool belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client[0] is not loop:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            client = aioredis.Redis.from_url(
                self.url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s,
                retry=Retry(NoBackoff(), 0))
            self._client = (loop, client, client.register_script(_BUCKET_LUA))
        return self._client[2]

    async def acquire(self, key: str) -> None:
        if self.capacity <= 0:
            return
        if time.monotonic() < self._down_until:
            self.check(key)
            return
        from redis.exceptions import RedisError

        try:
            allowed, tokens = await self._script()(keys=[self.prefix + key],
                                                   args=[self.capacity, self.rate])
        except (RedisError, OSError) as exc:
            now = time.monotonic()
            self._down_until = now + self.cooldown_s
            if now - self._warned_at >= 60:
                self._warned_at = now
                log.warning("rate limit: Redis at %s unreachable (%s); this worker limits "
                            "on its own", self.url, exc)
            self.check(key)
            return
        if not int(allowed):
            raise self.exceeded(float(tokens))

    async def aclose(self) -> None:
        if self._client is not None and self._client[0] is asyncio.get_running_loop():
            await self._client[1].aclose()
        self._client = None


def make_limiter(per_minute: int, redis_url: str | None = None) -> RateLimiter:
    """In-process buckets, or Redis ones when a URL is given."""
    if redis_url:
        return RedisRateLimiter(per_minute, redis_url)
    return RateLimiter(per_minute)

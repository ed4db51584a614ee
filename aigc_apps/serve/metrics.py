"""Prometheus metrics of the service: requests, latency, generated tokens, queue depth.

``/metrics`` serves them in Prometheus' text format. With ``--workers N``, ``aigc serve``
points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the workers start, each worker
writes its samples there, and any worker's ``/metrics`` sums all of them.

The generation engines report through :func:`record_generation` and
:func:`set_queue_depth`; the HTTP middleware (:class:`MetricsMiddleware`) counts every
request by method, route template (``/v1/models``, ``/support/sessions/{session_id}``...;
never the raw path, which would give one series per id) and status.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "<unmatched>"  # no route: 404s, and requests refused before routing (413)

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "aigc_http_requests", "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"], registry=REGISTRY,
)
LATENCY = Histogram(
    "aigc_http_request_duration_seconds", "Time from request to the end of the response.",
    ["route"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
TOKENS = Counter(
    "aigc_generated_tokens", "Tokens processed by generation, by model and kind "
    "(prompt or completion).", ["model", "kind"], registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "aigc_generation_queue_depth", "Generation requests waiting or running, by model.",
    ["model"], registry=REGISTRY, multiprocess_mode="livesum",
)


def record_generation(model: str, prompt_tokens: int, completion_tokens: int) -> None:
    """Count one finished generation (called by the engines / the OpenAI routes)."""
    if prompt_tokens > 0:
        TOKENS.labels(model, "prompt").inc(prompt_tokens)
    if completion_tokens > 0:
        TOKENS.labels(model, "completion").inc(completion_tokens)


def set_queue_depth(model: str, depth: int) -> None:
    """The number of generation requests waiting or running on ``model`` now."""
    QUEUE_DEPTH.labels(model).set(depth)


def render(refresh: Iterable[Callable[[], None]] = ()) -> tuple[bytes, str]:
    """The metrics page and its content type; ``refresh`` callbacks update gauges first."""
    for callback in refresh:
        callback()
    path = os.environ.get(MULTIPROC_ENV)
    if path and os.path.isdir(path):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every HTTP request; also names the worker in ``X-Aigc-Worker``
    (its process id), so a client can tell which of several workers answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.worker = str(os.getpid()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-aigc-worker", self.worker))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            REQUESTS.labels(scope.get("method", ""), route, str(status)).inc()
            LATENCY.labels(route).observe(time.perf_counter() - start)

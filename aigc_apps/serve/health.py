"""``/healthz``, ``/readyz`` and ``/metrics``: what a load balancer and Prometheus read.

``/healthz`` says the process answers; ``/readyz`` that what it depends on answers too:
the core (registry) database, the database of every app service this worker has opened,
and every generation engine it has started. Both are open (no token), so probes need no
secret. ``/metrics`` is open to local clients (a Prometheus beside the server, or an
SSH tunnel); from other addresses, and through any proxy (even one on this machine), it
needs a token with the ``admin`` scope while auth is on.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from aigc_apps.serve import metrics
from aigc_apps.serve.auth import require_scope
from aigc_apps.serve.clients import is_local
from aigc_apps.serve.errors import ErrorResponse, error_body, json_response

log = logging.getLogger("aigc.serve")
router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def readiness(app: Any) -> dict[str, str]:
    """``{"registry": "ok", "support": "ok", "engine:<model>": "...", ...}``; blocking.

    Each store says itself whether it answers: its ``ping()`` (an app's
    :class:`~aigc_apps.service.AppService`, the registry's token store)."""
    checks: dict[str, str] = {}
    stores = [("registry", app.state.tokens)] + [
        (name, service) for name, service in list(app.state.services.items())
        if callable(getattr(service, "ping", None))
    ]
    for name, store in stores:
        try:
            store.ping()  # opens its database if no request has yet
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"database unreachable: {_one_line(exc)}"
    for name, state in engine_states(app).items():
        checks[f"engine:{name}"] = state
    return checks


def engine_states(app: Any) -> dict[str, str]:
    """Each started engine: ``ready``, or why not (the catalog's ``health()`` if it has
    one, else each engine's optional ``ready`` flag). Engines not yet started are not
    checked: they load on the first request that names their model."""
    catalog = getattr(app.state, "catalog", None)
    if catalog is None:
        return {}
    try:
        health = getattr(catalog, "health", None)
        if health is not None:
            return {str(k): str(v) for k, v in health().items()}
        engines = getattr(catalog, "engines", {}) or {}
        return {
            str(key): "ready" if getattr(engine, "ready", True) else "not ready"
            for key, engine in dict(engines).items()
        }
    except Exception as exc:
        return {"catalog": f"error: {_one_line(exc)}"}


@router.get(
    "/readyz", response_model=Ready, summary="Databases and started models answer",
    responses={503: {"model": ErrorResponse, "description": "A dependency does not answer"}},
)
async def readyz(request: Request) -> Response:
    checks = await run_in_threadpool(readiness, request.app)
    failed = {k: v for k, v in checks.items() if v not in ("ok", "ready", "idle")}
    if failed:
        name, reason = next(iter(failed.items()))
        log.warning("not ready: %s", failed)
        body = error_body(f"not ready: {name}: {reason}", "server_error", "not_ready")
        return json_response(503, body | {"checks": checks})
    return json_response(200, Ready(status="ready", checks=checks).model_dump())


_admin = require_scope("admin")


@router.get(
    "/metrics", summary="Prometheus metrics (open on loopback, else the admin scope)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "Prometheus text format"}},
)
async def metrics_page(request: Request) -> Response:
    if not is_local(request):
        await _admin(request)
    refresh = getattr(request.app.state, "metrics_refresh", ())
    body, content_type = await run_in_threadpool(metrics.render, refresh)
    return Response(body, media_type=content_type)

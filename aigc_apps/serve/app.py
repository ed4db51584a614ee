"""The FastAPI application: core routes, every installed app's router, errors, limits.

Routers come from the ``aigc.routers`` entry-point group (``name = "pkg.module:router"``,
an :class:`fastapi.APIRouter`), so a third-party app plugs into the API the same way it
plugs into the CLI through ``aigc.apps``.

Layers, outermost first: the client's address (``X-Forwarded-For`` from a trusted proxy
only) > metrics (and the ``X-Aigc-Worker`` header) > errors nobody
handled (500, no traceback) > timeout (504) > body limit (413) > the routes, whose
``require_scope`` dependency authenticates (401/403) and rate-limits (429) the caller.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from typing import Any

from fastapi import APIRouter, FastAPI

from aigc_apps.serve import health
from aigc_apps.serve.auth import Authenticator
from aigc_apps.serve.clients import ForwardedMiddleware, TrustedProxies
from aigc_apps.serve.config import CONFIG_ENV, ServeConfig
from aigc_apps.serve.errors import ERROR_RESPONSES, CatchAllMiddleware, install_error_handlers
from aigc_apps.serve.limits import BodyLimitMiddleware, TimeoutMiddleware, make_limiter
from aigc_apps.serve.metrics import MetricsMiddleware
from aigc_apps.serve.tokens import TokenStore
from aigc_apps.settings import Settings, get_settings

ROUTERS_GROUP = "aigc.routers"
log = logging.getLogger("aigc.serve")


def app_routers() -> dict[str, object]:
    """Each installed app's router by entry-point name; a broken plugin is logged, skipped."""
    found: dict[str, object] = {}
    for ep in sorted(entry_points(group=ROUTERS_GROUP), key=lambda e: e.name):
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # one broken app must not take the service down
            log.warning("app router %r not loaded: %s", ep.name, exc)
    return found


async def _maybe_await(value: Any) -> None:
    if inspect.isawaitable(value):
        await value


async def _shutdown(app: FastAPI) -> None:
    """Close what this worker opened: engines, app services, the token store, the limiter's
    Redis connections."""
    catalog = getattr(app.state, "catalog", None)
    if catalog is not None:
        try:
            await _maybe_await(catalog.close())
        except Exception:
            log.exception("closing the generation engines failed")
    for service in list(app.state.services.values()):
        close = getattr(service, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("closing a service failed")
    app.state.services.clear()
    app.state.tokens.close()
    await app.state.authenticate.limiter.aclose()


def _include_generation(app: FastAPI, config: ServeConfig, settings: Settings) -> None:
    """The OpenAI-compatible routes and their engine catalog (engines load lazily)."""
    try:
        from aigc_apps.serve import openai_api
    except ImportError as exc:  # the module is part of the package; say why if it breaks
        log.warning("OpenAI-compatible routes not loaded: %s", exc)
        return
    make_catalog = getattr(openai_api, "create_catalog", None)
    if make_catalog is not None:
        app.state.catalog = catalog = make_catalog(config, settings)
        refresh = getattr(catalog, "refresh_metrics", None)
        if refresh is not None:
            app.state.metrics_refresh.append(refresh)  # queue depth, read at each scrape
    app.include_router(openai_api.router, responses=ERROR_RESPONSES)


def create_app(
    config: ServeConfig | None = None,
    *,
    tokens: TokenStore | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """The whole service for ``config`` (defaults: loopback, limits of :class:`ServeConfig`).

    ``settings`` (default: the environment's, read here once) is the workspace every part
    uses: the model catalog, each app's service (``app.state.settings``, see
    :func:`~aigc_apps.serve.deps.app_settings`) and ``tokens``, where API tokens are checked
    (default: the workspace's core database). Nothing heavy happens here: databases open and
    models load on first use.
    """
    config = (config or ServeConfig()).check()
    settings = settings or get_settings()
    tokens = tokens or TokenStore(settings=settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await _shutdown(app)

    app = FastAPI(
        title="aigc-apps",
        version="0.1.0",
        summary="OpenAI-compatible generation plus the support, sentiment and recommend apps.",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.settings = settings
    app.state.services = {}
    app.state.tokens = tokens
    app.state.catalog = None
    app.state.metrics_refresh = []
    app.state.authenticate = Authenticator(
        tokens,
        insecure_no_auth=config.insecure_no_auth,
        cache_s=config.auth_cache_s,
        limiter=make_limiter(config.rate_limit, config.rate_limit_redis),
        open_without_tokens=config.loopback,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    _include_generation(app, config, settings)
    for name, router in app_routers().items():
        if isinstance(router, APIRouter):
            app.include_router(router, responses=ERROR_RESPONSES)
        else:
            log.warning("app router %r is not an APIRouter; skipped", name)
    # add_middleware puts each new layer outside the previous ones
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(TimeoutMiddleware, timeout_s=config.request_timeout_s)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(MetricsMiddleware)
    trusted = config.forwarded_allow_ips
    app.add_middleware(ForwardedMiddleware,
                       trusted=TrustedProxies(trusted) if trusted is not None else None)
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn's factory for ``--workers N``: the config comes from ``AIGC_SERVE_CONFIG``."""
    return create_app(ServeConfig.from_json(os.environ.get(CONFIG_ENV, "{}")))

"""The FastAPI application: core routes, every installed app's router, errors, limits.

Routers come from the ``aigc.routers`` entry-point group (``name = "pkg.module:router"``,
an :class:`fastapi.APIRouter`), so a third-party app plugs into the API the same way it
plugs into the CLI through ``aigc.apps``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points

from fastapi import FastAPI

from aigc_apps.serve.config import ServeConfig

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


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The whole service for ``config`` (defaults: loopback, limits of :class:`ServeConfig`)."""
    config = config or ServeConfig()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for service in list(app.state.services.values()):
            close = getattr(service, "close", None)
            if close is not None:
                close()
        app.state.services.clear()

    app = FastAPI(
        title="aigc-apps",
        version="0.1.0",
        summary="OpenAI-compatible generation plus the support, sentiment and recommend apps.",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.services = {}
    for router in app_routers().values():
        app.include_router(router)  # type: ignore[arg-type]
    return app

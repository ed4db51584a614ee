"""Per-process service objects shared by every request of an app's router."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request

from aigc_apps.settings import Settings

T = TypeVar("T")
_lock = threading.Lock()


def app_settings(request: Request) -> Settings:
    """The settings :func:`~aigc_apps.serve.app.create_app` resolved for this app, once;
    a route takes them with ``Annotated[Settings, Depends(app_settings)]``."""
    settings: Settings = request.app.state.settings
    return settings


def app_service(request: Request, name: str, factory: Callable[..., T]) -> T:
    """The process's one ``name`` service, built on first use by ``factory(settings=...)``
    with the app's settings (:func:`app_settings`): an ``AppService`` subclass or its
    ``from_settings``.

    Services do no I/O when built and load models lazily and thread-safely, so routes may
    call them from FastAPI's thread pool. The app closes every service (``close()``) at
    shutdown.
    """
    services: dict[str, Any] = request.app.state.services
    service = services.get(name)
    if service is None:
        settings = app_settings(request)
        with _lock:
            service = services.get(name)
            if service is None:
                service = services[name] = factory(settings=settings)
    return service

"""Per-process service objects shared by every request of an app's router."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request

T = TypeVar("T")
_lock = threading.Lock()


def app_service(request: Request, name: str, factory: Callable[[], T]) -> T:
    """The process's one ``name`` service, built by ``factory`` on first use.

    Services do no I/O when built and load models lazily and thread-safely, so routes may
    call them from FastAPI's thread pool. The app closes every service (``close()``) at
    shutdown.
    """
    services: dict[str, Any] = request.app.state.services
    service = services.get(name)
    if service is None:
        with _lock:
            service = services.get(name)
            if service is None:
                service = services[name] = factory()
    return service

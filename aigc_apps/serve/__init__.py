"""The HTTP service (``aigc serve``): an OpenAI-compatible API plus every app's routes.

The core builds the FastAPI app; each installed app contributes a router through the
``aigc.routers`` entry-point group, the same way it contributes its Typer app through
``aigc.apps``. Generation goes through one :class:`~aigc_apps.engines.base.BaseEngine`
interface, so a GPU deployment can plug in another engine without touching the routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aigc_apps.lazy import lazy_exports

_EXPORTS = {
    "ServeConfig": "aigc_apps.serve.config",
    "create_app": "aigc_apps.serve.app",
    "ApiError": "aigc_apps.serve.errors",
    "Principal": "aigc_apps.serve.auth",
    "require_scope": "aigc_apps.serve.auth",
    "BaseEngine": "aigc_apps.engines.base",
    "GenerationRequest": "aigc_apps.engines.base",
    "GenerationResult": "aigc_apps.engines.base",
    "GenerationChunk": "aigc_apps.engines.base",
}
__all__ = [
    "ApiError",
    "BaseEngine",
    "GenerationChunk",
    "GenerationRequest",
    "GenerationResult",
    "Principal",
    "ServeConfig",
    "create_app",
    "require_scope",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from aigc_apps.engines.base import (
        BaseEngine,
        GenerationChunk,
        GenerationRequest,
        GenerationResult,
    )
    from aigc_apps.serve.app import create_app
    from aigc_apps.serve.auth import Principal, require_scope
    from aigc_apps.serve.config import ServeConfig
    from aigc_apps.serve.errors import ApiError

"""Generation engines: how many concurrent requests share one copy of a model's weights.

The core owns them so that the SDK, the apps and the HTTP service reach generation the same
way (the server imports this package; this package never imports the server):

- :mod:`.base`: :class:`BaseEngine` and its request, result and chunk types;
- :mod:`.decoder`: :class:`BatchDecoder`, step-wise batched decoding (rows join and leave);
- :mod:`.batcher`: :class:`BatchingEngine`, the micro-batcher (the default engine);
- :mod:`.continuous`: :class:`ContinuousEngine`, transformers' continuous batching;
- :mod:`.pool`: :class:`EnginePool`, one engine per base model per process;
- :mod:`.chat_model`: :class:`ChatModel`, the front door (sync and async calls).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aigc_apps.lazy import lazy_exports

_EXPORTS = {
    "BaseEngine": "aigc_apps.engines.base",
    "EngineError": "aigc_apps.engines.base",
    "GenerationRequest": "aigc_apps.engines.base",
    "GenerationResult": "aigc_apps.engines.base",
    "GenerationChunk": "aigc_apps.engines.base",
    "UnsupportedRequest": "aigc_apps.engines.base",
    "BatchingEngine": "aigc_apps.engines.batcher",
    "ContinuousEngine": "aigc_apps.engines.continuous",
    "EngineOptions": "aigc_apps.engines.pool",
    "EnginePool": "aigc_apps.engines.pool",
    "engine_pool": "aigc_apps.engines.pool",
    "ChatModel": "aigc_apps.engines.chat_model",
    "EngineGenerator": "aigc_apps.engines.chat_model",
}
__all__ = [
    "BaseEngine",
    "BatchingEngine",
    "ChatModel",
    "ContinuousEngine",
    "EngineError",
    "EngineGenerator",
    "EngineOptions",
    "EnginePool",
    "GenerationChunk",
    "GenerationRequest",
    "GenerationResult",
    "UnsupportedRequest",
    "engine_pool",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from aigc_apps.engines.base import (
        BaseEngine,
        EngineError,
        GenerationChunk,
        GenerationRequest,
        GenerationResult,
        UnsupportedRequest,
    )
    from aigc_apps.engines.batcher import BatchingEngine
    from aigc_apps.engines.chat_model import ChatModel, EngineGenerator
    from aigc_apps.engines.continuous import ContinuousEngine
    from aigc_apps.engines.pool import EngineOptions, EnginePool, engine_pool

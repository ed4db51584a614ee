"""Customer-service bot: answers from templates, grounded generation with sources, or handoff.

>>> from apps.support import SupportService
>>> service = SupportService()                      # opens nothing yet
>>> service.ingest(["data/support"])                # doctest: +SKIP
>>> service.ask("Where is my order?").answer        # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aigc_apps.lazy import lazy_exports

_EXPORTS = {
    "HANDOFF_REPLY": ".answers",
    "BotReply": ".answers",
    "Decision": ".answers",
    "SupportBot": ".bot",
    "SupportService": ".service",
    "SupportModels": ".active_models",
    "Calibration": ".calibration",
    "calibrate": ".calibration",
    "Chunk": ".chunking",
    "chunk_text": ".chunking",
    "EvalReport": ".evaluation",
    "evaluate": ".evaluation",
    "SourceItems": ".ingest",
    "load_dialogues": ".ingest",
    "load_document": ".ingest",
    "load_templates": ".ingest",
    "templates_from_records": ".ingest",
    "Finding": ".injection",
    "find_injection": ".injection",
    "mask_pii": ".pii",
    "ScreenedIngestReport": ".quarantine",
    "CorruptIndexError": ".retrieval",
    "IngestReport": ".retrieval",
    "KnowledgeIndex": ".retrieval",
    "RetrievalConfig": ".retrieval",
}

__all__ = [
    "HANDOFF_REPLY",
    "BotReply",
    "Calibration",
    "Chunk",
    "CorruptIndexError",
    "Decision",
    "EvalReport",
    "Finding",
    "IngestReport",
    "KnowledgeIndex",
    "RetrievalConfig",
    "ScreenedIngestReport",
    "SourceItems",
    "SupportBot",
    "SupportModels",
    "SupportService",
    "calibrate",
    "chunk_text",
    "evaluate",
    "find_injection",
    "load_dialogues",
    "load_document",
    "load_templates",
    "mask_pii",
    "templates_from_records",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .active_models import SupportModels
    from .answers import HANDOFF_REPLY, BotReply, Decision
    from .bot import SupportBot
    from .calibration import Calibration, calibrate
    from .chunking import Chunk, chunk_text
    from .evaluation import EvalReport, evaluate
    from .ingest import (
        SourceItems,
        load_dialogues,
        load_document,
        load_templates,
        templates_from_records,
    )
    from .injection import Finding, find_injection
    from .pii import mask_pii
    from .quarantine import ScreenedIngestReport
    from .retrieval import CorruptIndexError, IngestReport, KnowledgeIndex, RetrievalConfig
    from .service import SupportService

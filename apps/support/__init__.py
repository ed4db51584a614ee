"""Customer-service bot: answers from templates, grounded generation with sources, or handoff.

>>> from apps.support import SupportService
>>> service = SupportService()                      # opens nothing yet
>>> service.ingest(["data/support"])                # doctest: +SKIP
>>> service.ask("Where is my order?").answer        # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aigc_apps.lazy import lazy_exports
from aigc_apps.moved import moved_modules

_EXPORTS = {
    "HANDOFF_REPLY": ".answers.reply",
    "BotReply": ".answers.reply",
    "Decision": ".answers.reply",
    "SupportBot": ".answers.bot",
    "SupportService": ".service",
    "SupportModels": ".active_models",
    "Calibration": ".answers.calibration",
    "calibrate": ".answers.calibration",
    "Chunk": ".knowledge.chunking",
    "chunk_text": ".knowledge.chunking",
    "EvalReport": ".quality.evaluation",
    "evaluate": ".quality.evaluation",
    "SourceItems": ".knowledge.ingest",
    "load_dialogues": ".knowledge.ingest",
    "load_document": ".knowledge.ingest",
    "load_templates": ".knowledge.ingest",
    "templates_from_records": ".knowledge.ingest",
    "Finding": ".knowledge.injection",
    "find_injection": ".knowledge.injection",
    "mask_pii": ".answers.pii",
    "ScreenedIngestReport": ".knowledge.quarantine",
    "CorruptIndexError": ".knowledge.retrieval",
    "IngestReport": ".knowledge.retrieval",
    "KnowledgeIndex": ".knowledge.retrieval",
    "RetrievalConfig": ".knowledge.retrieval",
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
# 0.2's flat modules (apps.support.handoff, ...) moved into sub-packages: one release of
# warnings before the old paths go (apps.support.answers and .knowledge, now packages, find
# their old modules' names themselves).
moved_modules(__name__, {
    "agent_api": "edges.agent_api",
    "agent_cli": "edges.agent_cli",
    "answer_vectors": "knowledge.answer_vectors",
    "answerer": "answers.answerer",
    "answering": "answers.answering",
    "api": "edges.api",
    "bot": "answers.bot",
    "calibration": "answers.calibration",
    "chunking": "knowledge.chunking",
    "cli": "edges.cli",
    "conversation": "people.conversation",
    "evaluation": "quality.evaluation",
    "facts": "answers.facts",
    "generation": "knowledge.generation",
    "grounding": "answers.grounding",
    "handoff": "people.handoff",
    "handoff_stats": "people.handoff_stats",
    "index_types": "knowledge.index_types",
    "ingest": "knowledge.ingest",
    "injection": "knowledge.injection",
    "intent_head": "knowledge.intent_head",
    "lexical": "knowledge.lexical",
    "live": "people.live",
    "outcomes": "quality.outcomes",
    "pages": "edges.pages",
    "pii": "answers.pii",
    "quarantine": "knowledge.quarantine",
    "quarantine_cli": "edges.quarantine_cli",
    "records": "people.records",
    "retrieval": "knowledge.retrieval",
    "routers": "edges.routers",
    "schemas": "edges.schemas",
    "sessions": "people.sessions",
    "suggestions": "people.suggestions",
    "tuning": "quality.tuning",
    "webhooks": "people.webhooks",
})

if TYPE_CHECKING:
    from .active_models import SupportModels
    from .answers.bot import SupportBot
    from .answers.calibration import Calibration, calibrate
    from .answers.pii import mask_pii
    from .answers.reply import HANDOFF_REPLY, BotReply, Decision
    from .knowledge.chunking import Chunk, chunk_text
    from .knowledge.ingest import (
        SourceItems,
        load_dialogues,
        load_document,
        load_templates,
        templates_from_records,
    )
    from .knowledge.injection import Finding, find_injection
    from .knowledge.quarantine import ScreenedIngestReport
    from .knowledge.retrieval import (
        CorruptIndexError,
        IngestReport,
        KnowledgeIndex,
        RetrievalConfig,
    )
    from .quality.evaluation import EvalReport, evaluate
    from .service import SupportService

"""Customer-service bot: answers from templates, grounded generation with sources, or handoff.

>>> from apps.support import SupportBot
>>> bot = SupportBot()                              # doctest: +SKIP
>>> bot.ingest(["data/support"])                    # doctest: +SKIP
>>> bot.ask("Where is my order?").answer            # doctest: +SKIP
"""

from .bot import HANDOFF_REPLY, BotReply, Decision, SupportBot
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
from .pii import mask_pii
from .retrieval import IngestReport, KnowledgeIndex, RetrievalConfig

__all__ = [
    "HANDOFF_REPLY",
    "BotReply",
    "Calibration",
    "Chunk",
    "Decision",
    "EvalReport",
    "IngestReport",
    "KnowledgeIndex",
    "RetrievalConfig",
    "SourceItems",
    "SupportBot",
    "calibrate",
    "chunk_text",
    "evaluate",
    "load_dialogues",
    "load_document",
    "load_templates",
    "mask_pii",
    "templates_from_records",
]

"""The answerer: what the support bot answers one question from, and the decision it makes.

An :class:`Answerer` holds the question encoder, the knowledge index, its calibration and
the bar a document passes, all of one knowledge generation, and decides a question's path
(a template, a generated answer, or nobody) without writing anything. The
:class:`~apps.support.service.SupportService` owns the current one (``service.answerer``:
reloaded first when another worker changed the knowledge) and answers through it; offline evaluation
(:mod:`~apps.support.quality.evaluation`, :mod:`~apps.support.quality.outcomes`) and tuning
(:mod:`~apps.support.quality.tuning`) receive it. So the service imports those modules and none of
them imports the service.

Functions that used to take the service still do: :func:`answerer_of` accepts an
:class:`Answerer` or anything that has one (:class:`HasAnswerer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from aigc_apps.encode_queue import encode_queue

from .pii import strip_placeholders
from .reply import Decision, is_follow_up, route

if TYPE_CHECKING:
    from aigc_apps.embeddings import Encoder

    from ..knowledge.retrieval import KnowledgeIndex
    from .calibration import Calibration


def embed_question(encoder: Encoder, text: str) -> np.ndarray:
    """One question's embedding, with mask placeholders ("[EMAIL]") left out; questions
    asked at the same time share an encoder pass (:mod:`aigc_apps.encode_queue`)."""
    return encode_queue(encoder).embed(strip_placeholders(text))


class Answerer:
    """``kb``, ``calibration`` and ``doc_threshold`` of one knowledge generation, and the
    ``encoder`` that embeds questions for them (see the module's text)."""

    __slots__ = ("calibration", "doc_threshold", "encoder", "kb")

    def __init__(self, kb: KnowledgeIndex, calibration: Calibration, doc_threshold: float,
                 encoder: Encoder) -> None:
        self.kb, self.calibration, self.doc_threshold = kb, calibration, doc_threshold
        self.encoder = encoder

    def embed(self, text: str) -> np.ndarray:
        return embed_question(self.encoder, text)

    def decide(
        self,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        vec: np.ndarray | None = None,
    ) -> Decision:
        """Choose the answer path for an (already masked) question; no text is generated.

        ``vec`` is the question's embedding when the caller has batch-encoded it already.
        A follow-up the knowledge cannot answer alone ("What about Canada?") is read with
        the previous question of ``history``.
        """
        if vec is None:
            vec = self.embed(question)
        decision = route(self.kb, self.calibration, self.doc_threshold, vec, question)
        if decision.path == "handoff" and history and is_follow_up(question):
            both = f"{history[-1][0]} {question}"
            ctx = route(self.kb, self.calibration, self.doc_threshold, self.embed(both), both)
            if ctx.path != "handoff":
                ctx.context_used = True
                return ctx
        return decision


class HasAnswerer(Protocol):
    """Anything that answers through an :class:`Answerer` (the support service)."""

    @property
    def answerer(self) -> Answerer: ...


def answerer_of(bot: Answerer | HasAnswerer) -> Answerer:
    """``bot`` itself when it is an :class:`Answerer`, else its current one."""
    return bot if isinstance(bot, Answerer) else bot.answerer

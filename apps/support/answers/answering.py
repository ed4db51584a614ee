"""How the support bot answers one message: the route (template, generated, or nobody),
the reply, and when a person takes over instead (see :mod:`~apps.support.people.handoff`).

:class:`AnswerDesk` is a part of :class:`~apps.support.service.SupportService`: it answers from the
:class:`~apps.support.knowledge.changes.Knowledge` part and the service's models, and reaches the
database, the conversations and the turn locks through callables (the service opens them on first
use, and again after it was closed), never through the service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from aigc_apps.errors import ConflictError

from ..knowledge.injection import find_injection
from ..people import sessions
from ..people.conversation import WITH_HUMAN, asks_for_human
from ..people.handoff import PERSON_REQUESTED_REPLY, UNSURE_IN_A_ROW, UNSURE_REPLY
from .answerer import embed_question
from .reply import (
    HANDOFF_REPLY,
    BotReply,
    Decision,
    clean_question,
    generated_reply,
    grounded_prompt,
    source_ref,
)

if TYPE_CHECKING:
    from aigc_apps.keylock import KeyLocks
    from aigc_apps.store import Database

    from ..active_models import SupportModels
    from ..knowledge.changes import Knowledge
    from ..knowledge.retrieval import EntryMeta
    from ..people.handoff import Conversations

log = logging.getLogger("apps.support.service")


class AnswerDesk:
    """``ask`` and what it is made of: ``knowledge`` to answer from, ``models`` for the
    encoder and the generator, and the opened ``db``, ``conversations`` and ``turn_locks``
    (called when a turn needs them). ``max_new_tokens`` caps a generated answer."""

    def __init__(
        self,
        knowledge: Knowledge,
        models: SupportModels,
        *,
        db: Callable[[], Database],
        conversations: Callable[[], Conversations],
        turn_locks: Callable[[], KeyLocks],
        max_new_tokens: int = 80,
    ) -> None:
        self.knowledge, self.models = knowledge, models
        self._db, self._conversations, self._turn_locks = db, conversations, turn_locks
        self.max_new_tokens = max_new_tokens

    def embed_query(self, text: str) -> np.ndarray:
        """One question's embedding, with mask placeholders ("[EMAIL]") left out (the
        encoder only: no knowledge is read or reloaded for it)."""
        return embed_question(self.models.encoder, text)

    def decide(
        self,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        vec: np.ndarray | None = None,
    ) -> Decision:
        """The current answerer's :meth:`~apps.support.answers.answerer.Answerer.decide`
        (the knowledge part swaps answerers when the knowledge changes)."""
        return self.knowledge.answerer.decide(question, history, vec)

    def ask(
        self,
        question: str,
        session_id: str | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> BotReply:
        """Answer ``question`` in a session (a new one if ``None``) and store the turn;
        ``on_token`` receives the answer as it is produced (streamed when generated).

        A conversation waiting for or with a person gets no bot answer: the message is
        stored for the agent. Asking for a person, an answer held back, or a second
        question in a row the bot cannot answer puts the conversation in the queue.
        A resolved conversation takes no more messages (ConflictError: open a new one).

        The turns of one conversation are taken one at a time, by every thread and worker
        process (the turn locks): a message that arrives while an earlier one is being
        answered waits for that answer, which is then in its history, and takes the next
        turn number. A new conversation (no ``session_id``) has nobody to wait for.
        """
        started = time.perf_counter()
        clean = clean_question(question)
        if not session_id:
            return self._turn(clean, None, started, on_token)
        with self._turn_locks().hold(session_id):
            return self._turn(clean, session_id, started, on_token)

    def _turn(
        self,
        clean: str,
        session_id: str | None,
        started: float,
        on_token: Callable[[str], None] | None,
    ) -> BotReply:
        """:meth:`ask` once no other turn of the conversation is under way."""
        state, unsure = ("bot", 0)
        if session_id:
            state, unsure = sessions.conversation_state(self._db(), session_id)
        if state == "resolved":
            raise ConflictError(
                f"session {session_id!r} is resolved; open a new session",
                "conversation_resolved",
            )
        if state in WITH_HUMAN or asks_for_human(clean):
            return self._for_a_person(clean, session_id, state, started, on_token)
        reply, retrieved, blocked = self._bot_answer(clean, session_id, started, on_token)
        escalate = None
        if reply.handoff_reason is not None:
            escalate = ("bot", f"answer held back: {reply.handoff_reason}")
        elif reply.path == "handoff" and unsure + 1 >= UNSURE_IN_A_ROW:
            escalate = ("bot", f"{UNSURE_IN_A_ROW} questions in a row without an answer")
        elif reply.path == "handoff":
            reply.answer = UNSURE_REPLY
        if on_token and reply.path == "handoff" and blocked is None:
            on_token(reply.answer)
        sessions.record_turn(self._db(), reply, session_id, retrieved, escalate)
        if blocked is not None:
            from ..knowledge.quarantine import record_blocked

            record_blocked(self._db(), reply, *blocked)
        if escalate is not None:
            self._conversations().notify()
        reply.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return reply

    def _for_a_person(
        self,
        clean: str,
        session_id: str | None,
        state: str,
        started: float,
        on_token: Callable[[str], None] | None,
    ) -> BotReply:
        """Store a message for the agent (or the request for one); the bot says only who
        will answer."""
        asked = state == "bot"
        reply = BotReply(
            session_id="", turn=0, question=clean,
            answer=PERSON_REQUESTED_REPLY if asked else "",
            path="handoff" if asked else "human", intent=None, confidence=0.0,
            handoff=True, sources=[], latency_ms=0.0,
            handoff_reason="customer asked for a person" if asked else None,
        )
        escalate = ("customer", "customer asked for a person") if asked else None
        sessions.record_turn(self._db(), reply, session_id, [], escalate)
        if not asked:
            reply.answer = self._conversations().notice(reply.session_id)
        if on_token:
            on_token(reply.answer)
        if asked:
            self._conversations().notify()
        reply.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return reply

    def _bot_answer(
        self,
        clean: str,
        session_id: str | None,
        started: float,
        on_token: Callable[[str], None] | None,
    ) -> tuple[BotReply, list[int], tuple[str, str, list[int]] | None]:
        """The bot's reply (not yet stored), the entries retrieved, and what to record if
        the answer was held back: (path it would have taken, its text, entries used)."""
        history = self.history(session_id) if session_id else []
        knowledge = self.knowledge.answerer
        d = knowledge.decide(clean, history)
        sources: list[dict[str, Any]] = []
        answer, streamed = HANDOFF_REPLY, False
        if d.path == "template" and d.entry is not None:
            pair = d.entry.kind == "pair"
            answer = (d.entry.answer if pair else knowledge.kb.answers[d.entry.key]) or ""
            sources = [source_ref(d.entry, d.ranking.scores[0])]
        elif d.path == "generated":
            messages = self.prompt(clean, d.chunks[:2], history)
            cited = d.chunks[:2]
            generated = generated_reply(
                self.models.generator, messages, self.max_new_tokens, on_token,
                unsafe=find_injection, passages=[m.text for m, _ in cited], question=clean,
                known=[self.knowledge.company, *(m.title or "" for m, _ in cited)], nothing_left="",
            )
            answer = generated.text or HANDOFF_REPLY
            sources = [source_ref(m, s, n) for n, (m, s) in enumerate(d.chunks, start=1)]
            streamed = on_token is not None
            if generated.how == "none":  # every fact unsupported: the bot could not answer
                d = replace(d, path="handoff")
                streamed, sources = False, []
        # The last check before anything is sent: retrieved text never gives the orders.
        held = find_injection(answer) if d.path != "handoff" else None
        blocked = None
        if held is not None:
            log.warning("support answer held back and handed off (%s)", held)
            used = [m.id for m, _ in d.chunks] or ([d.entry.id] if d.entry else [])
            blocked = (d.path, answer, used)
            answer, sources = HANDOFF_REPLY, []
        if on_token and d.path != "handoff" and (held is not None or not streamed):
            on_token((" " if streamed else "") + answer)
        path = "handoff" if held is not None else d.path
        reply = BotReply(
            session_id="",
            turn=0,
            question=clean,
            answer=answer,
            path=path,
            intent=d.intent,
            confidence=round(d.confidence, 4),
            handoff=path == "handoff",
            sources=sources,
            latency_ms=(time.perf_counter() - started) * 1000,
            context_used=d.context_used,
            handoff_reason=str(held) if held is not None else None,
        )
        retrieved = d.ranking.neighbour_ids[:5] + [m.id for m, _ in d.chunks]
        return reply, retrieved, blocked

    def prompt(
        self,
        question: str,
        chunks: Sequence[tuple[EntryMeta, float]],
        history: Sequence[tuple[str, str]] = (),
    ) -> list[dict[str, str]]:
        """Chat messages for a grounded answer: excerpts quoted as data, then the question."""
        return grounded_prompt(self.knowledge.company, question, chunks, history)

    def history(self, session_id: str) -> list[tuple[str, str]]:
        return sessions.history(self._db(), session_id)

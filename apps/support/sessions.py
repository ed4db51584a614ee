"""Conversation history, handoff flags and feedback: database only, no models needed."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select

from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.store import Database, utcnow

from .answers import BotReply
from .pii import mask_pii
from .store import ChatSession, Feedback, Turn


def _session(s: Any, session_id: str) -> ChatSession:
    sess = s.get(ChatSession, session_id)
    if sess is None:
        raise NotFoundError(f"session {session_id!r} not found")
    return sess


def history(db: Database, session_id: str) -> list[tuple[str, str]]:
    """(question, answer) of each earlier turn; NotFoundError for an unknown session."""
    with db.session() as s:
        return [(t.question, t.answer) for t in _session(s, session_id).turns]


def turns(db: Database, session_id: str) -> list[dict[str, Any]]:
    with db.session() as s:
        return [
            {
                "turn": t.number,
                "question": t.question,
                "answer": t.answer,
                "path": t.path,
                "intent": t.intent,
                "confidence": t.confidence,
                "latency_ms": t.latency_ms,
                "retrieved_ids": json.loads(t.retrieved_ids),
                "at": t.created_at.isoformat(),
            }
            for t in _session(s, session_id).turns
        ]


def handoffs(db: Database) -> list[str]:
    """Sessions flagged for a human, most recently active first."""
    with db.session() as s:
        return list(
            s.scalars(
                select(ChatSession.id)
                .where(ChatSession.handoff.is_(True))
                .order_by(ChatSession.updated_at.desc())
            )
        )


def record_feedback(
    db: Database, session_id: str, turn: int, good: bool, correct_answer: str | None = None
) -> int:
    """Rate a turn; a corrected answer is stored (masked) as training data. Returns its id."""
    if correct_answer is not None and not correct_answer.strip():
        raise DataError("--correct-answer is empty")
    with db.session() as s:
        _session(s, session_id)
        row = s.scalar(select(Turn).where(Turn.session_id == session_id, Turn.number == turn))
        if row is None:
            raise NotFoundError(f"session {session_id!r} has no turn {turn}")
        fb = Feedback(
            turn_id=row.id,
            good=good,
            correct_answer=mask_pii(correct_answer.strip()) if correct_answer else None,
        )
        s.add(fb)
        s.flush()
        return fb.id


def record_turn(
    db: Database, reply: BotReply, session_id: str | None, retrieved_ids: list[int]
) -> None:
    """Store ``reply`` as the next turn of ``session_id`` (a new session if None) and set
    its ``session_id`` and ``turn``; a handoff flags the session for a human."""
    with db.session() as s:
        sess = _session(s, session_id) if session_id else None
        if sess is None:
            sess = ChatSession(id=uuid.uuid4().hex[:12])
            s.add(sess)
            number = 1
        else:
            number = 1 + len(sess.turns)
        sess.updated_at = utcnow()
        sess.handoff = sess.handoff or reply.handoff
        s.add(
            Turn(
                session_id=sess.id,
                number=number,
                question=reply.question,
                answer=mask_pii(reply.answer),
                path=reply.path,
                intent=reply.intent,
                confidence=reply.confidence,
                retrieved_ids=json.dumps(retrieved_ids),
                latency_ms=reply.latency_ms,
            )
        )
        reply.session_id, reply.turn = sess.id, number

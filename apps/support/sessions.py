"""Conversation history, handoff flags and feedback: database only, no models needed."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select

from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.rowparser import clean_text
from aigc_apps.store import Database, as_utc, utcnow

from .answers import BotReply
from .pii import mask_pii
from .store import ChatSession, Feedback, Turn


def _session(s: Any, session_id: str) -> ChatSession:
    # no stored id holds a NUL (PostgreSQL could not even compare it)
    sess = None if "\x00" in session_id else s.get(ChatSession, session_id)
    if sess is None:
        raise NotFoundError(f"session {session_id!r} not found")
    return sess


def history(db: Database, session_id: str) -> list[tuple[str, str]]:
    """(question, answer) of each earlier turn; NotFoundError for an unknown session."""
    with db.session() as s:
        return [(t.question, t.answer) for t in _session(s, session_id).turns]


def turns(db: Database, session_id: str) -> list[dict[str, Any]]:
    with db.session() as s:
        return [_turn(t) for t in _session(s, session_id).turns]


def _turn(t: Turn) -> dict[str, Any]:
    return {
        "turn": t.number,
        "question": t.question,
        "answer": t.answer,
        "path": t.path,
        "intent": t.intent,
        "confidence": t.confidence,
        "latency_ms": t.latency_ms,
        "retrieved_ids": json.loads(t.retrieved_ids),
        "at": as_utc(t.created_at).isoformat(),
    }


def create(db: Database) -> dict[str, Any]:
    """A new, empty session (its first question may also open one)."""
    with db.session() as s:
        sess = ChatSession(id=new_id())
        s.add(sess)
        s.flush()
        return _info(sess, [])


def info(db: Database, session_id: str) -> dict[str, Any]:
    """A session's state (times, handoff flag) and its turns; NotFoundError if unknown."""
    with db.session() as s:
        sess = _session(s, session_id)
        return _info(sess, [_turn(t) for t in sess.turns])


def _info(sess: ChatSession, turns: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "session_id": sess.id,
        "created_at": as_utc(sess.created_at).isoformat(),
        "updated_at": as_utc(sess.updated_at).isoformat(),
        "handoff": bool(sess.handoff),
        "turns": turns,
    }


def new_id() -> str:
    return uuid.uuid4().hex[:12]


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
    if correct_answer is not None and not clean_text(correct_answer).strip():
        raise DataError("--correct-answer is empty")
    with db.session() as s:
        _session(s, session_id)
        row = s.scalar(select(Turn).where(Turn.session_id == session_id, Turn.number == turn))
        if row is None:
            raise NotFoundError(f"session {session_id!r} has no turn {turn}")
        fb = Feedback(
            turn_id=row.id,
            good=good,
            correct_answer=mask_pii(clean_text(correct_answer).strip()) if correct_answer else None,
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
            sess = ChatSession(id=new_id())
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

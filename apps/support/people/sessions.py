"""Conversation history, handoff flags and feedback: database only, no models needed."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select

from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.rowparser import clean_text
from aigc_apps.store import Database, as_utc, utcnow

from ..answers.pii import mask_pii
from ..answers.reply import BotReply
from ..store import ChatSession, Feedback, Message, Turn
from .conversation import WITH_HUMAN, add_message, message_dict, state_info
from .conversation import get_session as _session
from .handoff import transition


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
        sess = ChatSession(id=new_id(), state="bot", unsure_streak=0)
        s.add(sess)
        s.flush()
        return _info(sess, [])


def info(db: Database, session_id: str) -> dict[str, Any]:
    """A session's times, state, turns and message log; NotFoundError if unknown."""
    with db.session() as s:
        sess = _session(s, session_id)
        log = s.scalars(select(Message).where(Message.session_id == session_id)
                        .order_by(Message.id))
        return {**_info(sess, [_turn(t) for t in sess.turns]), **state_info(s, sess),
                "messages": [message_dict(m) for m in log]}


def _info(sess: ChatSession, turns: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "session_id": sess.id,
        "created_at": as_utc(sess.created_at).isoformat(),
        "updated_at": as_utc(sess.updated_at).isoformat(),
        "handoff": bool(sess.handoff),
        "state": sess.state or "bot",
        "turns": turns,
    }


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def handoffs(db: Database) -> list[str]:
    """Sessions waiting for or with a person, most recently active first."""
    with db.session() as s:
        return list(
            s.scalars(
                select(ChatSession.id)
                .where(ChatSession.state.in_(WITH_HUMAN))
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


def conversation_state(db: Database, session_id: str) -> tuple[str, int]:
    """(state, unanswered questions in a row) of a session; NotFoundError if unknown."""
    with db.session() as s:
        sess = _session(s, session_id)
        return sess.state, sess.unsure_streak


def record_turn(
    db: Database,
    reply: BotReply,
    session_id: str | None,
    retrieved_ids: list[int],
    escalate: tuple[str, str] | None = None,
) -> None:
    """Store ``reply`` as the next turn of ``session_id`` (a new session if None), and as
    messages in the conversation's log; set the reply's ``session_id``, ``turn``, ``state``
    and ``queue_position``. ``escalate`` = (actor, reason) puts a conversation the bot
    holds in the queue for a person, in the same transaction."""
    with db.session() as s:
        sess = _session(s, session_id) if session_id else None
        if sess is None:
            sess = ChatSession(id=new_id(), state="bot", unsure_streak=0)
            s.add(sess)
            number = 1
        else:
            number = 1 + len(sess.turns)
        sess.updated_at = utcnow()
        if reply.path != "human":  # a person answers those: the bot's streak is unchanged
            sess.unsure_streak = sess.unsure_streak + 1 if reply.path == "handoff" else 0
        if reply.intent is not None:
            sess.intent_guess = reply.intent
        answer = mask_pii(clean_text(reply.answer))  # a generator can emit NUL
        s.add(
            Turn(
                session_id=sess.id,
                number=number,
                question=reply.question,
                answer=answer,
                path=reply.path,
                intent=reply.intent,
                confidence=reply.confidence,
                retrieved_ids=json.dumps(retrieved_ids),
                latency_ms=reply.latency_ms,
            )
        )
        s.flush()
        add_message(s, sess.id, "customer", reply.question)
        if reply.path != "human":
            add_message(s, sess.id, "bot", answer, sources=reply.sources)
        if escalate is not None and sess.state == "bot":
            transition(s, sess, "pending_human", escalate[0], reason=escalate[1])
        info = state_info(s, sess)
        reply.session_id, reply.turn = sess.id, number
        reply.state, reply.queue_position = info["state"], info["queue_position"]
        reply.handoff = reply.state in WITH_HUMAN

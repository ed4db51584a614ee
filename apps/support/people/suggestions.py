"""Agents' answers proposed for the knowledge base; nothing enters it without approval.

When a conversation is resolved, each agent reply becomes a suggestion: the customer's
messages it answered (since the previous reply of the bot or an agent) and the reply. An
approved suggestion is ingested as a one-question answer template (source
``suggestion:<id>``), so it is indexed, screened and cited like any other template.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aigc_apps.data import content_hash
from aigc_apps.errors import ConflictError, DataError, NotFoundError
from aigc_apps.rowparser import clean_text
from aigc_apps.store import Database, as_utc, utcnow

from ..knowledge.ingest import NewEntry, SourceItems
from ..store import Message, Suggestion
from .conversation import asks_for_human, check_text

STATUSES = ("pending", "approved", "rejected")
SOURCE_PREFIX = "suggestion:"


def collect(s: Session, session_id: str) -> int:
    """Add the conversation's agent replies not yet proposed; returns how many were new.

    A reply answers the customer's messages since the previous agent reply, leaving out
    requests for a person (the question the bot could not settle is usually among them; a
    reviewer may give the question in other words when approving).
    """
    messages = s.scalars(
        select(Message).where(Message.session_id == session_id).order_by(Message.id)
    ).all()
    known = set(s.scalars(select(Suggestion.reply_id).where(Suggestion.session_id == session_id)))
    asked: list[str] = []
    added = 0
    for m in messages:
        if m.role == "customer" and not asks_for_human(m.text):
            asked.append(m.text)
        elif m.role == "agent":
            if asked and m.id not in known:
                s.add(Suggestion(session_id=session_id, reply_id=m.id, question=" ".join(asked),
                                 answer=m.text, agent=m.author, created_at=utcnow()))
                added += 1
            asked = []
    s.flush()
    return added


def suggestion_dict(g: Suggestion) -> dict[str, Any]:
    return {
        "id": g.id,
        "session_id": g.session_id,
        "question": g.question,
        "answer": g.answer,
        "agent": g.agent,
        "status": g.status,
        "intent": g.intent,
        "created_at": as_utc(g.created_at).isoformat(),
    }


def listing(db: Database, status: str | None = "pending") -> list[dict[str, Any]]:
    """Suggestions with ``status`` (None: all), oldest first."""
    if status is not None and status not in STATUSES:
        raise DataError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    with db.session() as s:
        q = select(Suggestion).order_by(Suggestion.id)
        if status is not None:
            q = q.where(Suggestion.status == status)
        return [suggestion_dict(g) for g in s.scalars(q)]


def _pending(s: Session, suggestion_id: int) -> Suggestion:
    g = s.get(Suggestion, suggestion_id)
    if g is None:
        raise NotFoundError(f"suggestion {suggestion_id} not found")
    if g.status != "pending":
        raise ConflictError(f"suggestion {suggestion_id} is already {g.status}",
                            f"suggestion_{g.status}")
    return g


def as_template(
    db: Database, suggestion_id: int, intent: str | None = None, question: str | None = None
) -> SourceItems:
    """The source an approval ingests (``question``: the reviewer's wording of what was
    asked, default the customer's); ConflictError unless the suggestion is pending."""
    name = clean_text(intent or "").strip() or f"agent-answer-{suggestion_id}"
    if len(name) > 200:
        raise DataError("intent name is longer than 200 characters")
    with db.session() as s:
        g = _pending(s, suggestion_id)
        if question is not None:
            g.question = check_text(question, "question")
        entry = NewEntry("example", g.question, intent=name)
        return SourceItems(
            "templates", f"{SOURCE_PREFIX}{suggestion_id}",
            content_hash([g.question, g.answer, name]), "Agent answer",
            [entry], {name: g.answer},
        )


def decide(db: Database, suggestion_id: int, status: str,
           intent: str | None = None) -> dict[str, Any]:
    with db.session() as s:
        g = _pending(s, suggestion_id)
        g.status, g.intent, g.reviewed_at = status, intent, utcnow()
        s.flush()
        return suggestion_dict(g)

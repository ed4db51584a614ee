"""Tables of the support bot: knowledge (sources, intents, entries), sessions and feedback.

Every indexed text is one :class:`Entry`; its primary key is also its id in the FAISS index, so the
index can always be rebuilt from the database (``aigc support reindex``). A :class:`Source` is one
ingested file (or record batch); its ``content_hash`` makes re-ingest idempotent and a changed hash
replaces the entries it owns. An entry is identified by its content, never by its file's path: the
same content in two sources is a row in each (what each file holds) and one entry of knowledge, the
oldest row (see :mod:`~apps.support.knowledge.retrieval`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from aigc_apps.migrations import StoreSchema
from aigc_apps.store import Database, app_metadata, utcnow

APP = "support"


class SupportBase(DeclarativeBase):
    metadata = app_metadata()


class Source(SupportBase):
    """One ingested file: templates, a document or a dialogue log."""

    __tablename__ = "support_sources"
    __table_args__ = (UniqueConstraint("kind", "uri"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # templates | document | dialogues
    uri: Mapped[str] = mapped_column(String(1000))
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    entries: Mapped[list[Entry]] = relationship(
        back_populates="source", cascade="all, delete-orphan", passive_deletes=True
    )


class Intent(SupportBase):
    """An answer template: an intent name and (optionally) the answer text."""

    __tablename__ = "support_intents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Entry(SupportBase):
    """One indexed text: an example question, a document chunk or a dialogue question."""

    __tablename__ = "support_entries"
    __table_args__ = (UniqueConstraint("source_id", "content_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("support_sources.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # example | chunk | pair
    intent_id: Mapped[int | None] = mapped_column(
        ForeignKey("support_intents.id", ondelete="SET NULL"), nullable=True, index=True
    )
    text: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)  # dialogue pairs
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[Source] = relationship(back_populates="entries")
    intent: Mapped[Intent | None] = relationship()


class ChatSession(SupportBase):
    """A conversation; ``handoff`` marks it for a human agent."""

    __tablename__ = "support_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    handoff: Mapped[bool] = mapped_column(Boolean, default=False)
    # bot -> pending_human -> human -> resolved, human -> bot (see apps.support.people.handoff)
    state: Mapped[str] = mapped_column(String(16), default="bot", index=True)
    agent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    handoff_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    intent_guess: Mapped[str | None] = mapped_column(String(200), nullable=True)
    unsure_streak: Mapped[int] = mapped_column(Integer, default=0)  # unanswered in a row
    turns: Mapped[list[Turn]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="Turn.number"
    )


class Turn(SupportBase):
    """One question and reply; text is stored with personal data masked."""

    __tablename__ = "support_turns"
    __table_args__ = (UniqueConstraint("session_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("support_sessions.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(String(16))  # template | generated | handoff
    intent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    confidence: Mapped[float] = mapped_column(Float)
    retrieved_ids: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of entry ids
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    session: Mapped[ChatSession] = relationship(back_populates="turns")
    feedback: Mapped[list[Feedback]] = relationship(
        back_populates="turn", cascade="all, delete-orphan"
    )


class Feedback(SupportBase):
    """A rating of one turn; a corrected answer becomes SFT training data."""

    __tablename__ = "support_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("support_turns.id", ondelete="CASCADE"))
    good: Mapped[bool] = mapped_column(Boolean)
    correct_answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    turn: Mapped[Turn] = relationship(back_populates="feedback")


class Setting(SupportBase):
    """Key/value state: calibration, retrieval weights, thresholds, the index's encoder.

    The active encoder and generator adapter live in the model registry (0.1.0 kept them
    here; :func:`apps.support.active_models.import_legacy_models` moves them).
    """

    __tablename__ = "support_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class QuarantinedPassage(SupportBase):
    """A passage held back at ingest because it reads like an instruction to the assistant.

    It is not knowledge (no entry, no vector, no intent head) until an admin approves it;
    ``kind`` is the entry kind it would have been, or ``answer`` for a template's answer.
    Rows name their source by kind and uri, as :class:`Source` does, and are written
    before the source itself exists.
    """

    __tablename__ = "support_quarantine"
    __table_args__ = (UniqueConstraint("source_kind", "source_uri", "content_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_kind: Mapped[str] = mapped_column(String(16))
    source_uri: Mapped[str] = mapped_column(String(1000))
    kind: Mapped[str] = mapped_column(String(16))  # example | chunk | pair | answer
    intent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class BlockedAnswer(SupportBase):
    """An answer that was not sent (it asked for a secret or repeated an instruction): the
    turn was handed off instead, and this row says why."""

    __tablename__ = "support_blocked_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    turn_id: Mapped[int] = mapped_column(
        ForeignKey("support_turns.id", ondelete="CASCADE"), unique=True
    )
    path: Mapped[str] = mapped_column(String(16))  # the path it would have taken
    reason: Mapped[str] = mapped_column(String(500))
    answer: Mapped[str] = mapped_column(Text)  # the blocked text, personal data masked
    entry_ids: Mapped[str] = mapped_column(Text, default="[]")  # JSON: the entries it used
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Message(SupportBase):
    """One line of a conversation as both sides see it: the customer's, the bot's, an
    agent's, or a system notice of a transition. Ids increase, so a page can ask for what
    came after the last one it showed. Text is stored with personal data masked."""

    __tablename__ = "support_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("support_sessions.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))  # customer | bot | agent | system
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the agent
    sources: Mapped[str] = mapped_column(Text, default="[]")  # JSON: a bot answer's citations
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Transition(SupportBase):
    """A change of a conversation's state, who made it and when; also the webhook outbox
    (written in the transition's own transaction, delivered later, retried with back-off)."""

    __tablename__ = "support_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("support_sessions.id", ondelete="CASCADE"), index=True
    )
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))  # customer | bot | agent:NAME
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class Suggestion(SupportBase):
    """A question an agent answered in a resolved conversation, proposed for the knowledge
    base; it becomes a template only when approved."""

    __tablename__ = "support_suggestions"
    __table_args__ = (UniqueConstraint("reply_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("support_sessions.id", ondelete="CASCADE"), index=True
    )
    reply_id: Mapped[int] = mapped_column(ForeignKey("support_messages.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    agent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    intent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


SCHEMA = StoreSchema.beside(
    __file__, APP, SupportBase.metadata, ("support_sources", "support_sessions")
)


def open_db(url: str | None = None) -> Database:
    """The app's database (``--db URL`` or the workspace default), schema up to date."""
    return Database.open(SCHEMA, url)


def get_setting(s: Session, key: str, default: Any = None) -> Any:
    row = s.get(Setting, key)
    return json.loads(row.value) if row is not None else default


def load_settings(db: Database) -> dict[str, Any]:
    with db.session() as s:
        return {r.key: json.loads(r.value) for r in s.scalars(select(Setting))}

"""What the support bot answers, one pydantic model per output, shared by the HTTP API and
the CLI's ``--json``: a field has one name and one meaning wherever it is printed. Where the
API wraps a list in an object (``{"conversations": [...]}``), the CLI prints the list of the
same items.

The names say what a value is. A turn is numbered within its session (1 = first), so
``turn_number``, never an id; a message has an ``id`` of its own (increasing, what the event
stream resumes after); a source names the knowledge entry it quotes by ``entry_id``.

Renamed in this release, kept for one release beside the new names and marked deprecated
in the OpenAPI schema: ``turn_id`` (HTTP; now ``turn_number``) and a source's ``id`` (HTTP;
now ``entry_id``). The CLI also prints its old ``turn`` key (see :func:`with_old_cli_keys`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, Field, computed_field

if TYPE_CHECKING:
    from ..answers.reply import BotReply

AnswerPath = Literal["template", "generated", "handoff", "human"]
State = Literal["bot", "pending_human", "human", "resolved"]
LOW_CONFIDENCE = "no answer in the knowledge base is confident enough"
TURN_NUMBER = "The turn's number in its session (1 = first); rate it by this."


def _old_name(new: str) -> dict[str, Any]:
    """How a field renamed in this release shows in the schema: deprecated, read-only."""
    return {
        "description": f"Deprecated: the old name of `{new}`, dropped in the next release.",
        "json_schema_extra": {"deprecated": True},
    }


class _OldTurnId(BaseModel):
    """A reply with a ``turn_number`` that still shows it under its old name, ``turn_id``."""

    if TYPE_CHECKING:
        turn_number: int

    @computed_field(**_old_name("turn_number"))  # type: ignore[prop-decorator]
    @property
    def turn_id(self) -> int:
        return self.turn_number


class SourceOut(BaseModel):
    """A knowledge entry the answer used."""

    entry_id: int = Field(description="The entry's id in the knowledge base.")
    kind: str = Field(
        description="example (a templated question), chunk (a document "
        "passage) or pair (a past dialogue)."
    )
    title: str | None
    source: str = Field(description="The file the entry came from.")
    excerpt: str
    score: float = Field(description="Similarity to the question.")
    ref: int | None = Field(None, description="The excerpt's number in a generated answer.")

    @computed_field(**_old_name("entry_id"))  # type: ignore[prop-decorator]
    @property
    def id(self) -> int:
        return self.entry_id


class ReplyOut(_OldTurnId):
    """The bot's reply to one message (``POST .../messages``, ``/ask``, ``aigc support ask``)."""

    session_id: str
    turn_number: int = Field(description=TURN_NUMBER)
    question: str = Field(description="The question as stored (personal data masked).")
    answer: str
    path: AnswerPath = Field(
        description="template: a stored answer; generated: written from document excerpts; "
        "handoff: the bot could not answer (or the customer asked for a person); human: a "
        "person answers this conversation, the message is stored for them."
    )
    intent: str | None
    confidence: float
    handoff: bool = Field(description="A person, not the bot, answers from now on.")
    handoff_reason: str | None
    state: State = Field(description="The conversation's state after this message.")
    queue_position: int | None = Field(
        description="While waiting for a person: 1 = next to be taken."
    )
    sources: list[SourceOut]
    context_used: bool = Field(description="The previous question was read with this one.")
    latency_ms: float


class SessionCreated(BaseModel):
    session_id: str
    created_at: datetime
    state: State


class MessageOut(BaseModel):
    """One line of the conversation as both sides see it."""

    id: int = Field(description="Increasing; ask the event stream for what came after it.")
    role: Literal["customer", "bot", "agent", "system"]
    text: str = Field(description="Plain text (personal data masked): never render as HTML.")
    author: str | None = Field(description="The agent who wrote it.")
    at: datetime
    sources: list[SourceOut] = Field(description="A bot answer's citations.")


class TurnOut(_OldTurnId):
    """One question and the bot's answer to it (``aigc support session`` lists these)."""

    turn_number: int = Field(description=TURN_NUMBER)
    question: str
    answer: str
    path: str
    intent: str | None
    confidence: float
    latency_ms: float
    created_at: datetime


class SessionOut(BaseModel):
    session_id: str
    created_at: datetime
    updated_at: datetime
    handoff: bool = Field(description="The conversation was handed to a person at some point.")
    state: State
    agent: str | None = Field(description="The agent who holds (or resolved) it.")
    queue_position: int | None
    turns: list[TurnOut]
    messages: list[MessageOut]


class FeedbackOut(_OldTurnId):
    feedback_id: int
    session_id: str
    turn_number: int = Field(description="The turn rated.")


class StateOut(BaseModel):
    """Where a conversation stands (what take, release and resolve answer)."""

    session_id: str
    state: State
    agent: str | None
    queue_position: int | None


class QueuedOut(StateOut):
    """A conversation in the agents' queue (``GET /queue``, ``aigc support queue --json``)."""

    waiting_since: datetime = Field(description="When the conversation entered its state.")
    waiting_seconds: float
    intent: str | None = Field(description="The bot's best guess of what the customer wants.")
    reason: str | None = Field(description="Why it was handed off.")
    last_messages: list[MessageOut]


class QueueOut(BaseModel):
    conversations: list[QueuedOut]


class SuggestionOut(BaseModel):
    """An agent's answer proposed for the knowledge base (``aigc support suggestions``)."""

    id: int = Field(description="The suggestion's id (approve or reject it by this).")
    session_id: str
    question: str
    answer: str
    agent: str | None
    status: Literal["pending", "approved", "rejected"]
    intent: str | None
    created_at: datetime


class SuggestionsOut(BaseModel):
    suggestions: list[SuggestionOut]


class IntentStats(BaseModel):
    intent: str
    conversations: int
    handoffs: int
    handoff_rate: float | None
    taken: int
    median_wait_s: float | None
    p90_wait_s: float | None
    resolved: int
    resolution_rate: float | None


class HandoffStatsOut(BaseModel):
    """Handoff figures (``GET /handoff-stats``, ``aigc support stats --json``)."""

    conversations: int = Field(description="Sessions with at least one message.")
    handoffs: int
    handoff_rate: float | None
    taken: int
    median_wait_s: float | None = Field(description="Queue to take-over, seconds.")
    p90_wait_s: float | None
    resolved: int
    resolution_rate: float | None = Field(description="Resolved among handed-off sessions.")
    sessions: int
    per_intent: list[IntentStats]


def sources_out(refs: list[dict[str, Any]]) -> list[SourceOut]:
    return [SourceOut(**s) for s in refs]


def reply_out(r: BotReply) -> ReplyOut:
    """The reply as both edges print it; a handoff always says why."""
    reason = r.handoff_reason or (LOW_CONFIDENCE if r.path == "handoff" else None)
    return ReplyOut(
        session_id=r.session_id,
        turn_number=r.turn,
        question=r.question,
        answer=r.answer,
        path=cast(AnswerPath, r.path),
        intent=r.intent,
        confidence=r.confidence,
        handoff=r.handoff,
        handoff_reason=reason,
        state=cast(State, r.state),
        queue_position=r.queue_position,
        sources=sources_out(r.sources),
        context_used=r.context_used,
        latency_ms=r.latency_ms,
    )


def turn_out(t: dict[str, Any]) -> TurnOut:
    """A stored turn (:func:`apps.support.people.sessions.turns`) in the shared shape."""
    return TurnOut(
        turn_number=t["turn"],
        created_at=t["at"],
        **{k: t[k] for k in ("question", "answer", "path", "intent", "confidence", "latency_ms")},
    )


def message_out(m: dict[str, Any]) -> MessageOut:
    return MessageOut(**{**m, "sources": sources_out(m["sources"])})


def queued_out(row: dict[str, Any]) -> QueuedOut:
    """A row of :meth:`apps.support.people.handoff.Conversations.queue` in the shared shape."""
    return QueuedOut(**{**row, "last_messages": [message_out(m) for m in row["last_messages"]]})


def session_out(info: dict[str, Any]) -> SessionOut:
    turns = [turn_out(t) for t in info["turns"]]
    messages = [message_out(m) for m in info["messages"]]
    return SessionOut(**{**info, "turns": turns, "messages": messages})


def with_old_cli_keys(dumped: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON with the CLI's 0.1.0 keys beside the new ones, for one release."""
    return {**dumped, **old}

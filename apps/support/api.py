"""``/v1/support``: the support bot over HTTP (sessions, messages, history, feedback, ask).

The routes call the same :class:`~apps.support.service.SupportService` as the CLI; every
session, turn and rating lives in the support store, so any worker can continue any session.
Questions are stored with personal data masked, and that is what the history returns. An
answer cites its sources (the knowledge entries it used, with an excerpt); ``handoff`` true
means a human takes over (the session is flagged for one) and ``handoff_reason`` says why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from aigc_apps.serve import sse
from aigc_apps.serve.auth import require_scope
from aigc_apps.serve.deps import app_service
from aigc_apps.serve.errors import bad_request
from aigc_apps.serve.sse import EventStream

from .answers import MAX_QUESTION_CHARS

if TYPE_CHECKING:
    from .answers import BotReply
    from .handoff import Conversations
    from .service import SupportService

APP = "support"
AnswerPath = Literal["template", "generated", "handoff", "human"]
State = Literal["bot", "pending_human", "human", "resolved"]
EXTRA_SCOPES = [f"{APP}:chat", f"{APP}:agent"]  # customer pages; agents (see agent_api)
PING_S = 15.0  # event stream: a keep-alive comment after this long without news
LOW_CONFIDENCE = "no answer in the knowledge base is confident enough"

routes = APIRouter(prefix="/v1/support", tags=[APP])
# a customer's page holds a token that can chat and nothing else
READ = [Depends(require_scope(f"{APP}:read", f"{APP}:chat"))]
WRITE = [Depends(require_scope(f"{APP}:write", f"{APP}:chat"))]

SessionId = Annotated[str, Path(min_length=1, max_length=32, description="The session's id.")]
MAX_ID = 2**31 - 1  # the stores' integer ids; larger ones are 422, not a database error
TurnId = Annotated[
    int, Path(ge=1, le=MAX_ID, description="The turn's number in its session (1 = first).")
]


class MessageIn(BaseModel):
    message: str = Field(
        min_length=1, max_length=MAX_QUESTION_CHARS, description="The customer's question."
    )


class SourceOut(BaseModel):
    """A knowledge entry the answer used."""

    id: int = Field(description="The entry's id in the knowledge base.")
    kind: str = Field(
        description="example (a templated question), chunk (a document "
        "passage) or pair (a past dialogue)."
    )
    title: str | None
    source: str = Field(description="The file the entry came from.")
    excerpt: str
    score: float = Field(description="Similarity to the question.")
    ref: int | None = Field(None, description="The excerpt's number in a generated answer.")


class ReplyOut(BaseModel):
    session_id: str
    turn_id: int = Field(description="The turn's number in the session; rate it by this.")
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


class TurnOut(BaseModel):
    turn_id: int
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


class FeedbackIn(BaseModel):
    helpful: bool = Field(description="Was the answer right?")
    correct_answer: str | None = Field(
        None,
        max_length=MAX_QUESTION_CHARS,
        description="What the answer should have been; kept (masked) as training data.",
    )


class FeedbackOut(BaseModel):
    feedback_id: int
    session_id: str
    turn_id: int


def support_service(request: Request) -> SupportService:
    from .service import SupportService

    return app_service(request, APP, SupportService.from_settings)


def _reply(r: BotReply) -> ReplyOut:
    reason = r.handoff_reason or (LOW_CONFIDENCE if r.path == "handoff" else None)
    sources = _sources(r.sources)
    return ReplyOut(
        session_id=r.session_id,
        turn_id=r.turn,
        question=r.question,
        answer=r.answer,
        path=cast(AnswerPath, r.path),
        intent=r.intent,
        confidence=r.confidence,
        handoff=r.handoff,
        handoff_reason=reason,
        state=cast(State, r.state),
        queue_position=r.queue_position,
        sources=sources,
        context_used=r.context_used,
        latency_ms=r.latency_ms,
    )


def _sources(refs: list[dict[str, Any]]) -> list[SourceOut]:
    return [
        SourceOut(id=s["entry_id"], **{k: v for k, v in s.items() if k != "entry_id"})
        for s in refs
    ]


def message_out(m: dict[str, Any]) -> MessageOut:
    return MessageOut(**{**m, "sources": _sources(m["sources"])})


def session_out(info: dict[str, Any]) -> SessionOut:
    turns = [
        TurnOut(
            turn_id=t["turn"],
            created_at=t["at"],
            **{
                k: t[k]
                for k in ("question", "answer", "path", "intent", "confidence", "latency_ms")
            },
        )
        for t in info["turns"]
    ]
    messages = [message_out(m) for m in info["messages"]]
    return SessionOut(**{**info, "turns": turns, "messages": messages})


@routes.post(
    "/sessions",
    status_code=201,
    response_model=SessionCreated,
    dependencies=WRITE,
    summary="Open a session",
    description="An empty conversation; post messages to it to keep their context.",
)
def create_session(request: Request) -> SessionCreated:
    return SessionCreated(**support_service(request).create_session())


@routes.post(
    "/sessions/{session_id}/messages",
    response_model=ReplyOut,
    dependencies=WRITE,
    summary="Ask in a session",
    description="Answers the message with the session's previous turns as context and "
    "stores the turn. Unknown session: 404; a blank message: 400.",
)
def post_message(request: Request, session_id: SessionId, body: MessageIn) -> ReplyOut:
    return _reply(support_service(request).ask(body.message, session_id))


@routes.get(
    "/sessions/{session_id}",
    response_model=SessionOut,
    dependencies=READ,
    summary="A session's history",
    description="Every turn of the session, oldest first, questions as stored (personal data "
    "masked), and whether it was handed off.",
)
def get_session(request: Request, session_id: SessionId) -> SessionOut:
    return session_out(support_service(request).session(session_id))


@routes.post(
    "/sessions/{session_id}/messages/{turn_id}/feedback",
    status_code=201,
    response_model=FeedbackOut,
    dependencies=WRITE,
    summary="Rate an answer",
    description="Whether turn `turn_id` was helpful, and optionally the correct answer, "
    "which `aigc support finetune` uses as training data. Unknown session or turn: 404.",
)
def post_feedback(
    request: Request, session_id: SessionId, turn_id: TurnId, body: FeedbackIn
) -> FeedbackOut:
    correct = body.correct_answer
    if correct is not None and not correct.strip():
        raise bad_request("correct_answer is empty", "empty_correct_answer", "correct_answer")
    fid = support_service(request).feedback(session_id, turn_id, body.helpful, correct)
    return FeedbackOut(feedback_id=fid, session_id=session_id, turn_id=turn_id)


@routes.post(
    "/ask",
    response_model=ReplyOut,
    dependencies=WRITE,
    summary="Ask one question",
    description="Answers without earlier context; the turn is stored in a new session "
    "(its id is in the reply), so it can be rated or continued.",
)
def ask(request: Request, body: MessageIn) -> ReplyOut:
    return _reply(support_service(request).ask(body.message))


EVENTS_DESCRIPTION = (
    "Server-sent events: first the conversation's state, then every message with an id "
    "above `after` as it is stored (by any worker), and the state again whenever it changes "
    "(a person takes over, releases, resolves). `data:` lines hold JSON: "
    '`{"type": "message", "message": {...}}` or `{"type": "state", "state": ..., "agent": '
    '..., "queue_position": ...}`. Unknown session: 404.'
)
EVENTS_ROUTE: dict[str, Any] = {
    "response_class": EventStream,
    "status_code": 200,
    "responses": {200: {"content": {sse.MEDIA_TYPE: {}}}},
    "description": EVENTS_DESCRIPTION,
}
AfterId = Annotated[
    int, Query(ge=0, le=MAX_ID, description="The last message id the client has.")
]


@routes.get("/sessions/{session_id}/events", dependencies=READ,
            summary="Follow a session live", **EVENTS_ROUTE)
async def session_events(request: Request, session_id: SessionId, after: AfterId = 0
                         ) -> EventStream:
    return await event_stream(request, session_id, after)


async def event_stream(request: Request, session_id: str, after: int) -> EventStream:
    """The stream of one conversation (404 before streaming if it does not exist); a
    comment keeps it open while quiet, and it ends when the page goes."""
    conversations = support_service(request).conversations
    state = await run_in_threadpool(conversations.state, session_id)
    events = _follow(conversations, session_id, after, state)
    return EventStream(events, ping_s=PING_S, request=request)


async def _follow(
    conversations: Conversations, session_id: str, after: int, state: dict[str, Any]
) -> AsyncIterator[str]:
    """Send what is new whenever the worker's live watch says the conversation changed (it
    reads the store, so every worker's writes show)."""
    yield sse.data({"type": "state", **state})
    async with conversations.live.follow(session_id) as changed:
        while True:
            await changed.wait()
            changed.clear()
            new, now = await run_in_threadpool(conversations.updates, session_id, after)
            for m in new:
                after = m["id"]
                yield sse.data({"type": "message",
                                "message": message_out(m).model_dump(mode="json")})
            if now != state:
                state = now
                yield sse.data({"type": "state", **state})

"""``/v1/support``: the support bot over HTTP (sessions, messages, history, feedback, ask).

The routes call the same :class:`~apps.support.service.SupportService` as the CLI; every
session, turn and rating lives in the support store, so any worker can continue any session.
Questions are stored with personal data masked, and that is what the history returns. An
answer cites its sources (the knowledge entries it used, with an excerpt); ``handoff`` true
means a human takes over (the session is flagged for one) and ``handoff_reason`` says why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from aigc_apps.serve import sse
from aigc_apps.serve.auth import require_scope
from aigc_apps.serve.deps import app_service
from aigc_apps.serve.errors import bad_request
from aigc_apps.serve.sse import EventStream

from ..answers.reply import MAX_QUESTION_CHARS
from .schemas import (
    FeedbackOut,
    ReplyOut,
    SessionCreated,
    SessionOut,
    message_out,
    reply_out,
    session_out,
)

if TYPE_CHECKING:
    from ..people.handoff import Conversations
    from ..service import SupportService

APP = "support"
EXTRA_SCOPES = [f"{APP}:chat", f"{APP}:agent"]  # customer pages; agents (see agent_api)
PING_S = 15.0  # event stream: a keep-alive comment after this long without news

routes = APIRouter(prefix="/v1/support", tags=[APP])
# a customer's page holds a token that can chat and nothing else
READ = [Depends(require_scope(f"{APP}:read", f"{APP}:chat"))]
WRITE = [Depends(require_scope(f"{APP}:write", f"{APP}:chat"))]

SessionId = Annotated[str, Path(min_length=1, max_length=32, description="The session's id.")]
MAX_ID = 2**31 - 1  # the stores' integer ids; larger ones are 422, not a database error
TurnNumber = Annotated[
    int, Path(ge=1, le=MAX_ID, description="The turn's number in its session (1 = first).")
]


class MessageIn(BaseModel):
    message: str = Field(
        min_length=1, max_length=MAX_QUESTION_CHARS, description="The customer's question."
    )


class FeedbackIn(BaseModel):
    helpful: bool = Field(description="Was the answer right?")
    correct_answer: str | None = Field(
        None,
        max_length=MAX_QUESTION_CHARS,
        description="What the answer should have been; kept (masked) as training data.",
    )


def support_service(request: Request) -> SupportService:
    from ..service import SupportService

    return app_service(request, APP, SupportService.from_settings)


SupportDep = Annotated["SupportService", Depends(support_service)]


@routes.post(
    "/sessions",
    status_code=201,
    response_model=SessionCreated,
    dependencies=WRITE,
    summary="Open a session",
    description="An empty conversation; post messages to it to keep their context.",
)
def create_session(service: SupportDep) -> SessionCreated:
    return SessionCreated(**service.create_session())


@routes.post(
    "/sessions/{session_id}/messages",
    response_model=ReplyOut,
    dependencies=WRITE,
    summary="Ask in a session",
    description="Answers the message with the session's previous turns as context and "
    "stores the turn. Unknown session: 404; a blank message: 400.",
)
def post_message(service: SupportDep, session_id: SessionId, body: MessageIn) -> ReplyOut:
    return reply_out(service.ask(body.message, session_id))


@routes.get(
    "/sessions/{session_id}",
    response_model=SessionOut,
    dependencies=READ,
    summary="A session's history",
    description="Every turn of the session, oldest first, questions as stored (personal data "
    "masked), and whether it was handed off.",
)
def get_session(service: SupportDep, session_id: SessionId) -> SessionOut:
    return session_out(service.session(session_id))


@routes.post(
    "/sessions/{session_id}/messages/{turn_number}/feedback",
    status_code=201,
    response_model=FeedbackOut,
    dependencies=WRITE,
    summary="Rate an answer",
    description="Whether turn `turn_number` was helpful, and optionally the correct answer, "
    "which `aigc support finetune` uses as training data. Unknown session or turn: 404.",
)
def post_feedback(
    service: SupportDep, session_id: SessionId, turn_number: TurnNumber, body: FeedbackIn
) -> FeedbackOut:
    correct = body.correct_answer
    if correct is not None and not correct.strip():
        raise bad_request("correct_answer is empty", "empty_correct_answer", "correct_answer")
    fid = service.feedback(session_id, turn_number, body.helpful, correct)
    return FeedbackOut(feedback_id=fid, session_id=session_id, turn_number=turn_number)


@routes.post(
    "/ask",
    response_model=ReplyOut,
    dependencies=WRITE,
    summary="Ask one question",
    description="Answers without earlier context; the turn is stored in a new session "
    "(its id is in the reply), so it can be rated or continued.",
)
def ask(service: SupportDep, body: MessageIn) -> ReplyOut:
    return reply_out(service.ask(body.message))


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
async def session_events(request: Request, service: SupportDep, session_id: SessionId,
                         after: AfterId = 0) -> EventStream:
    return await event_stream(request, service, session_id, after)


async def event_stream(
    request: Request, service: SupportService, session_id: str, after: int
) -> EventStream:
    """The stream of one conversation (404 before streaming if it does not exist); a
    comment keeps it open while quiet, and it ends when the page goes."""
    conversations = service.conversations
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

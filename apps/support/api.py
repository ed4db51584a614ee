"""``/v1/support``: the support bot over HTTP (sessions, messages, history, feedback, ask).

The routes call the same :class:`~apps.support.service.SupportService` as the CLI; every
session, turn and rating lives in the support store, so any worker can continue any session.
Questions are stored with personal data masked, and that is what the history returns. An
answer cites its sources (the knowledge entries it used, with an excerpt); ``handoff`` true
means a human takes over (the session is flagged for one) and ``handoff_reason`` says why.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from aigc_apps.serve.auth import require_scope
from aigc_apps.serve.deps import app_service
from aigc_apps.serve.errors import bad_request

from .answers import MAX_QUESTION_CHARS

if TYPE_CHECKING:
    from .answers import BotReply
    from .service import SupportService

APP = "support"
AnswerPath = Literal["template", "generated", "handoff"]
LOW_CONFIDENCE = "no answer in the knowledge base is confident enough"

router = APIRouter(prefix="/v1/support", tags=[APP])
READ = [Depends(require_scope(f"{APP}:read"))]
WRITE = [Depends(require_scope(f"{APP}:write"))]

SessionId = Annotated[str, Path(min_length=1, max_length=32, description="The session's id.")]
TurnId = Annotated[int, Path(ge=1, description="The turn's number in its session (1 = first).")]


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
        "handoff: passed to a human."
    )
    intent: str | None
    confidence: float
    handoff: bool
    handoff_reason: str | None
    sources: list[SourceOut]
    context_used: bool = Field(description="The previous question was read with this one.")
    latency_ms: float


class SessionCreated(BaseModel):
    session_id: str
    created_at: datetime


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
    handoff: bool = Field(description="Some turn was handed off: a human should follow up.")
    turns: list[TurnOut]


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


def _service(request: Request) -> SupportService:
    from .service import SupportService

    return app_service(request, APP, SupportService.from_settings)


def _reply(r: BotReply) -> ReplyOut:
    reason = r.handoff_reason or (LOW_CONFIDENCE if r.handoff else None)
    sources = [
        SourceOut(id=s["entry_id"], **{k: v for k, v in s.items() if k != "entry_id"})
        for s in r.sources
    ]
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
        sources=sources,
        context_used=r.context_used,
        latency_ms=r.latency_ms,
    )


def _session(info: dict[str, Any]) -> SessionOut:
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
    return SessionOut(**{**info, "turns": turns})


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionCreated,
    dependencies=WRITE,
    summary="Open a session",
    description="An empty conversation; post messages to it to keep their context.",
)
def create_session(request: Request) -> SessionCreated:
    return SessionCreated(**_service(request).create_session())


@router.post(
    "/sessions/{session_id}/messages",
    response_model=ReplyOut,
    dependencies=WRITE,
    summary="Ask in a session",
    description="Answers the message with the session's previous turns as context and "
    "stores the turn. Unknown session: 404; a blank message: 400.",
)
def post_message(request: Request, session_id: SessionId, body: MessageIn) -> ReplyOut:
    return _reply(_service(request).ask(body.message, session_id))


@router.get(
    "/sessions/{session_id}",
    response_model=SessionOut,
    dependencies=READ,
    summary="A session's history",
    description="Every turn of the session, oldest first, questions as stored (personal data "
    "masked), and whether it was handed off.",
)
def get_session(request: Request, session_id: SessionId) -> SessionOut:
    return _session(_service(request).session(session_id))


@router.post(
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
    fid = _service(request).feedback(session_id, turn_id, body.helpful, correct)
    return FeedbackOut(feedback_id=fid, session_id=session_id, turn_id=turn_id)


@router.post(
    "/ask",
    response_model=ReplyOut,
    dependencies=WRITE,
    summary="Ask one question",
    description="Answers without earlier context; the turn is stored in a new session "
    "(its id is in the reply), so it can be rated or continued.",
)
def ask(request: Request, body: MessageIn) -> ReplyOut:
    return _reply(_service(request).ask(body.message))

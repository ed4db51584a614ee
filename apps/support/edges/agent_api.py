"""``/v1/support`` routes for agents: the queue, take-over, replies, suggestions, stats.

Every route needs the ``support:agent`` scope. The acting agent is the token's (``aigc
tokens create --agent NAME``, the token's name by default): a body's ``agent`` may be left
out, and one that names someone else is 403 ``agent_mismatch``, so a token cannot act as the
holder of another agent's conversation. An admin token may act for the agent its body
names, and the transition records it (``admin:<token> for <agent>``). Without tokens (auth
off, loopback) the body names the agent, as the local CLI does. Taking is exclusive (409 for
the agent who lost the race), and only the agent holding a conversation may reply, release
or resolve it (409 otherwise).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from aigc_apps.errors import DataError
from aigc_apps.serve.auth import ADMIN, Principal, require_scope
from aigc_apps.serve.errors import ApiError
from aigc_apps.serve.sse import EventStream

from ..people.conversation import check_agent
from ..people.handoff import admin_actor, agent_actor
from .api import APP, EVENTS_ROUTE, MAX_ID, AfterId, SessionId, SupportDep, event_stream
from .schemas import (
    HandoffStatsOut,
    MessageOut,
    QueueOut,
    SessionOut,
    StateOut,
    SuggestionOut,
    SuggestionsOut,
    message_out,
    queued_out,
    session_out,
)

router = APIRouter(prefix="/v1/support", tags=[APP])
_require_agent = require_scope(f"{APP}:agent")
AGENT = [Depends(_require_agent)]
Caller = Annotated[Principal, Depends(_require_agent)]
SuggestionId = Annotated[int, Path(ge=1, le=MAX_ID, description="The suggestion's id.")]
AgentName = Field(
    None, min_length=1, max_length=200,
    description="The agent who acts: the token's own (may be left out); another name "
    "needs an admin token (403 `agent_mismatch` otherwise). Required without tokens.",
)


class AgentIn(BaseModel):
    agent: str | None = AgentName


class ReplyIn(BaseModel):
    agent: str | None = AgentName
    text: str = Field(min_length=1, max_length=4000, description="The answer to the customer.")


class MeOut(BaseModel):
    agent: str | None = Field(description="Who this token acts as (null without tokens).")
    token: str
    acts_for_others: bool = Field(
        description="Whether requests may name another agent (admin token, or no tokens).")


def acting(caller: Principal, named: str | None) -> tuple[str, str]:
    """The agent a request acts as and the actor its transition records.

    The token's agent, whatever the body says, except for an admin token, which may act
    for the agent it names (recorded as such); with auth off there is no token, and the
    body names the agent as the local CLI's ``--agent`` does.
    """
    try:
        named = None if named is None else check_agent(named)
    except DataError as exc:
        raise ApiError(422, str(exc), code="bad_agent", param="agent") from None
    own = caller.agent
    if own is None:  # no token: nobody to bind the agent to
        if named is None:
            raise ApiError(422, "name the agent in the body ('agent'): this server has no "
                           "tokens to tell who you are", code="agent_required", param="agent")
        return named, agent_actor(named)
    if named is None or named == own:
        return own, agent_actor(own)
    if ADMIN in caller.scopes:
        return named, admin_actor(caller.name, named)
    raise ApiError(
        403, f"token '{caller.name}' acts as agent '{own}', not '{named}': leave 'agent' "
        "out, or use that agent's token (`aigc tokens create --agent NAME`)",
        "permission_error", "agent_mismatch", param="agent",
    )


class ApproveIn(BaseModel):
    intent: str | None = Field(
        None, max_length=200, description="The template's name (default agent-answer-ID)."
    )
    question: str | None = Field(
        None, min_length=1, max_length=4000,
        description="The question as the template should hold it (default: as asked).",
    )


@router.get("/queue", response_model=QueueOut, dependencies=AGENT, summary="The agents' queue",
            description="Conversations waiting for a person (`pending_human`, the default), "
            "held by one (`human`) or both (`all`), longest waiting first, with their last "
            "messages and the bot's guess of the intent.")
def queue(
    service: SupportDep,
    state: Annotated[Literal["pending_human", "human", "all"], Query()] = "pending_human",
) -> QueueOut:
    rows = service.conversations.queue(state)
    return QueueOut(conversations=[queued_out(r) for r in rows])


@router.get("/me", response_model=MeOut, summary="Who this token acts as",
            description="The agent the token acts as (set by `aigc tokens create --agent`, "
            "its name by default) and whether it may act for others (admin).")
def me(caller: Caller) -> MeOut:
    return MeOut(agent=caller.agent, token=caller.name,
                 acts_for_others=caller.agent is None or ADMIN in caller.scopes)


@router.get("/conversations/{session_id}", response_model=SessionOut, dependencies=AGENT,
            summary="A conversation, for an agent",
            description="State, turns and the whole message log. Unknown id: 404.")
def conversation(service: SupportDep, session_id: SessionId) -> SessionOut:
    return session_out(service.session(session_id))


@router.get("/conversations/{session_id}/events", dependencies=AGENT,
            summary="Follow a conversation live, for an agent", **EVENTS_ROUTE)
async def conversation_events(request: Request, service: SupportDep, session_id: SessionId,
                              after: AfterId = 0) -> EventStream:
    return await event_stream(request, service, session_id, after)


@router.post("/conversations/{session_id}/take", response_model=StateOut, dependencies=AGENT,
             summary="Take a conversation",
             description="The agent holds it from now on (from the queue, or pulled in from "
             "the bot). Of agents racing for one, exactly one wins; the others get 409 "
             "`conversation_taken`. Resolved: 409 `conversation_resolved`.")
def take(service: SupportDep, session_id: SessionId, caller: Caller,
         body: AgentIn | None = None) -> StateOut:
    agent, actor = acting(caller, body.agent if body else None)
    return StateOut(**service.conversations.take(session_id, agent, actor))


@router.post("/conversations/{session_id}/reply", status_code=201, response_model=MessageOut,
             dependencies=AGENT, summary="Answer the customer",
             description="Only the agent holding the conversation may reply (409 "
             "`not_holder`). Stored with personal data masked; the customer's page shows it "
             "live.")
def reply(service: SupportDep, session_id: SessionId, body: ReplyIn, caller: Caller
          ) -> MessageOut:
    agent, _actor = acting(caller, body.agent)
    return message_out(service.conversations.reply(session_id, agent, body.text))


@router.post("/conversations/{session_id}/release", response_model=StateOut,
             dependencies=AGENT, summary="Hand back to the bot",
             description="The bot answers the next message. Only the holder may release "
             "(409 otherwise, also for a resolved conversation).")
def release(service: SupportDep, session_id: SessionId, caller: Caller,
            body: AgentIn | None = None) -> StateOut:
    agent, actor = acting(caller, body.agent if body else None)
    return StateOut(**service.conversations.release(session_id, agent, actor))


@router.post("/conversations/{session_id}/resolve", response_model=StateOut,
             dependencies=AGENT, summary="Resolve a conversation",
             description="Closes it (the customer opens a new one to continue); the agent's "
             "answers become suggestions for the knowledge base. Only the holder (409).")
def resolve(service: SupportDep, session_id: SessionId, caller: Caller,
            body: AgentIn | None = None) -> StateOut:
    agent, actor = acting(caller, body.agent if body else None)
    return StateOut(**service.conversations.resolve(session_id, agent, actor))


@router.get("/suggestions", response_model=SuggestionsOut, dependencies=AGENT,
            summary="Answers proposed for the knowledge base",
            description="Question/answer pairs from resolved conversations, oldest first.")
def suggestions(
    service: SupportDep,
    status: Annotated[Literal["pending", "approved", "rejected", "all"], Query()] = "pending",
) -> SuggestionsOut:
    rows = service.suggestions(None if status == "all" else status)
    return SuggestionsOut(suggestions=[SuggestionOut(**r) for r in rows])


@router.post("/suggestions/{suggestion_id}/approve", response_model=SuggestionOut,
             dependencies=AGENT, summary="Add a suggestion to the knowledge base",
             description="Ingested as an answer template (indexed, citable). Already decided: "
             "409; unknown: 404.")
def approve(service: SupportDep, suggestion_id: SuggestionId,
            body: ApproveIn | None = None) -> SuggestionOut:
    body = body or ApproveIn(intent=None, question=None)
    return SuggestionOut(
        **service.approve_suggestion(suggestion_id, body.intent, body.question)
    )


@router.post("/suggestions/{suggestion_id}/reject", response_model=SuggestionOut,
             dependencies=AGENT, summary="Keep a suggestion out",
             description="Already decided: 409; unknown: 404.")
def reject(service: SupportDep, suggestion_id: SuggestionId) -> SuggestionOut:
    return SuggestionOut(**service.reject_suggestion(suggestion_id))


@router.get("/handoff-stats", response_model=HandoffStatsOut, dependencies=AGENT,
            summary="Handoff figures",
            description="Handoff rate, median and p90 wait before take-over, resolution "
            "rate, overall and per intent.")
def handoff_stats(service: SupportDep) -> HandoffStatsOut:
    return HandoffStatsOut(**service.handoff_stats())

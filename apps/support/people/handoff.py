"""Human handoff: the changes of a conversation's state, and the agents' actions.

``bot`` -> ``pending_human`` -> ``human`` -> ``resolved``, and ``human`` -> ``bot`` (released).
An agent may also take a conversation the bot still holds (pull it in). Every change is a
compare-and-set ``UPDATE ... WHERE state = <what was read>``: of two agents racing to take
one conversation exactly one row is updated, on SQLite and PostgreSQL alike, and the loser
gets a :class:`~aigc_apps.errors.ConflictError` (HTTP 409). Each transition writes a
:class:`~.store.Transition` (the webhook outbox, see :mod:`.webhooks`) and a system message
in the same transaction, so no event is lost and pages see it in the log.

Database only: nothing here loads a model. What a conversation is as rows (its states,
messages, place in the queue, the checks on stored text) is :mod:`.conversation`, which the
live pages and the suggestions read too; its names can still be imported from here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aigc_apps.errors import ConflictError, DataError
from aigc_apps.store import Database, as_utc, utcnow

from ..store import ChatSession, Message, Transition
from .conversation import (
    WITH_HUMAN,
    add_message,
    check_agent,
    check_text,
    get_session,
    message_dict,
    position_among,
    state_dict,
    state_info,
    waiting_order,
)

if TYPE_CHECKING:
    from .live import LiveWatch


QUEUE_STATES = ("pending_human", "human", "all")
UNSURE_IN_A_ROW = 2  # questions the bot cannot answer before a person is asked for
UNSURE_REPLY = (
    "I'm not sure I can answer that correctly. Could you rephrase it? If you prefer, ask "
    "to talk to a person."
)
PERSON_REQUESTED_REPLY = (
    "I've passed this conversation to a colleague from our support team, who will answer "
    "here shortly."
)

NOTICES = {
    "pending_human": "A colleague from our support team will answer here shortly.",
    "human": "{agent} will answer here.",
    "resolved": "This conversation is resolved.",
}
SYSTEM_TEXT = {
    "pending_human": "Waiting for a person from our support team.",
    "human": "{agent} joined the conversation.",
    "bot": "You are back with the assistant.",
    "resolved": "{agent} marked the conversation as resolved.",
}


def agent_actor(agent: str) -> str:
    return f"agent:{agent}"


def admin_actor(admin: str, agent: str) -> str:
    """The actor of a transition an admin made in an agent's name (``actor`` is 200 long)."""
    return f"admin:{admin} for {agent}"[:200]


def transition(
    s: Session,
    sess: ChatSession,
    to_state: str,
    actor: str,
    *,
    reason: str | None = None,
    agent: str | None = None,
    expect_agent: str | None = None,
) -> Transition:
    """Move ``sess`` from the state read to ``to_state`` if nobody changed it meanwhile
    (and, given ``expect_agent``, only while that agent holds it); ConflictError if not."""
    from_state, now = sess.state, utcnow()
    guard = [ChatSession.id == sess.id, ChatSession.state == from_state]
    if expect_agent is not None:
        guard.append(ChatSession.agent == expect_agent)
    values: dict[str, Any] = {"state": to_state, "agent": agent, "state_since": now,
                              "updated_at": now}
    if to_state == "pending_human":
        values.update(handoff=True, handoff_reason=reason, unsure_streak=0)
    done = s.execute(
        update(ChatSession).where(*guard).values(**values).execution_options(
            synchronize_session=False
        )
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(
            f"conversation {sess.id!r} changed meanwhile; reload it", "conversation_changed"
        )
    s.expire(sess)
    event = Transition(
        session_id=sess.id, from_state=from_state, to_state=to_state, actor=actor,
        reason=reason, created_at=now, next_attempt_at=now,
    )
    s.add(event)
    name = agent or expect_agent or "An agent"
    add_message(s, sess.id, "system", SYSTEM_TEXT[to_state].format(agent=name))
    return event


def _last_messages(s: Session, session_ids: list[str], last: int) -> dict[str, list[Message]]:
    """The ``last`` messages of each conversation, oldest first, in one query."""
    if not session_ids or last <= 0:
        return {}
    rank = func.row_number().over(partition_by=Message.session_id,
                                  order_by=Message.id.desc()).label("rank")
    ranked = (select(Message.id, rank).where(Message.session_id.in_(session_ids))
              .subquery())
    rows = s.scalars(
        select(Message).join(ranked, Message.id == ranked.c.id)
        .where(ranked.c.rank <= last).order_by(Message.session_id, Message.id)
    )
    found: dict[str, list[Message]] = {}
    for message in rows:
        found.setdefault(message.session_id, []).append(message)
    return found


def notice(sess: ChatSession) -> str:
    """What the customer reads when a person, not the bot, will answer."""
    return NOTICES[sess.state].format(agent=sess.agent or "A colleague")


def _held_by(sess: ChatSession, agent: str) -> None:
    if sess.state == "resolved":
        raise ConflictError(f"conversation {sess.id!r} is resolved", "conversation_resolved")
    if sess.state != "human" or sess.agent != agent:
        holder = f"{sess.agent} holds it" if sess.state == "human" else f"it is {sess.state}"
        raise ConflictError(
            f"agent {agent!r} does not hold conversation {sess.id!r} ({holder})", "not_holder"
        )


class Conversations:
    """Conversations and agents' actions on one support database (``service.conversations``)."""

    def __init__(self, db: Database, on_transition: Callable[[], None] | None = None) -> None:
        self.db = db
        self.on_transition = on_transition  # after each committed transition (webhooks)

    @cached_property
    def live(self) -> LiveWatch:
        """What wakes this worker's live pages (one store poll for all of them)."""
        from .live import LiveWatch

        return LiveWatch(self.db)

    def notify(self) -> None:
        """Tell the listener (webhook delivery) that a transition was committed."""
        if self.on_transition is not None:
            self.on_transition()

    def notice(self, session_id: str) -> str:
        with self.db.session() as s:
            return notice(get_session(s, session_id))

    def request_human(
        self, session_id: str, actor: str = "customer", reason: str = "customer asked"
    ) -> dict[str, Any]:
        """Put a conversation in the queue (no change if a person has it already)."""
        with self.db.session() as s:
            sess = get_session(s, session_id)
            if sess.state == "resolved":
                raise ConflictError(f"conversation {session_id!r} is resolved",
                                    "conversation_resolved")
            moved = sess.state == "bot"
            if moved:
                transition(s, sess, "pending_human", actor, reason=reason)
            info = state_info(s, sess)
        if moved:
            self.notify()
        return info

    def take(self, session_id: str, agent: str, actor: str | None = None) -> dict[str, Any]:
        """The agent holds the conversation from now on; exactly one of racing agents wins.
        ``actor`` is who the transition records (default ``agent:<agent>``; an admin who
        acts for the agent is recorded as such)."""
        agent = check_agent(agent)
        with self.db.session() as s:
            sess = get_session(s, session_id)
            if sess.state not in ("bot", "pending_human"):
                if sess.state == "human" and sess.agent == agent:
                    return state_info(s, sess)  # taking it twice changes nothing
                code = "conversation_resolved" if sess.state == "resolved" else "conversation_taken"
                who = f"held by {sess.agent}" if sess.state == "human" else sess.state
                raise ConflictError(f"conversation {session_id!r} is {who}", code)
            transition(s, sess, "human", actor or agent_actor(agent), agent=agent,
                       reason="taken" if sess.state == "pending_human" else "pulled in")
            info = state_info(s, sess)
        self.notify()
        return info

    def reply(self, session_id: str, agent: str, text: str) -> dict[str, Any]:
        """The holder's answer to the customer (masked like everything stored)."""
        agent, text = check_agent(agent), check_text(text, "reply")
        with self.db.session() as s:
            sess = get_session(s, session_id)
            _held_by(sess, agent)
            held = s.execute(
                update(ChatSession)
                .where(ChatSession.id == session_id, ChatSession.state == "human",
                       ChatSession.agent == agent)
                .values(updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if held.rowcount != 1:  # type: ignore[attr-defined]
                raise ConflictError(f"conversation {session_id!r} changed meanwhile",
                                    "not_holder")
            return message_dict(add_message(s, session_id, "agent", text, author=agent))

    def release(self, session_id: str, agent: str, actor: str | None = None) -> dict[str, Any]:
        """Back to the bot; only the holder may release (``actor``: see :meth:`take`)."""
        return self._leave(session_id, agent, "bot", actor)

    def resolve(self, session_id: str, agent: str, actor: str | None = None) -> dict[str, Any]:
        """Done; the agent's answers become suggestions for the knowledge base."""
        return self._leave(session_id, agent, "resolved", actor)

    def _leave(self, session_id: str, agent: str, to_state: str,
               actor: str | None = None) -> dict[str, Any]:
        from .suggestions import collect

        agent = check_agent(agent)
        with self.db.session() as s:
            sess = get_session(s, session_id)
            _held_by(sess, agent)
            transition(s, sess, to_state, actor or agent_actor(agent), expect_agent=agent,
                       agent=agent if to_state == "resolved" else None)
            if to_state == "resolved":
                collect(s, session_id)  # in the same transaction: none is lost
            info = state_info(s, sess)
        self.notify()
        return info

    def queue(self, state: str = "pending_human", last: int = 3) -> list[dict[str, Any]]:
        """Conversations waiting for (or with) a person, longest waiting first, each with
        its last messages and the bot's best guess of the intent."""
        if state not in QUEUE_STATES:
            raise DataError(f"state must be one of {', '.join(QUEUE_STATES)}, not {state!r}")
        states = WITH_HUMAN if state == "all" else (state,)
        now = utcnow()
        with self.db.session() as s:
            rows = s.scalars(
                select(ChatSession).where(ChatSession.state.in_(states))
                .order_by(ChatSession.state_since, ChatSession.id)
            ).all()
            recent = _last_messages(s, [sess.id for sess in rows], last)
            # every pending conversation is in ``rows`` when pending ones are asked for
            waiting = waiting_order(r.state_since for r in rows if r.state == "pending_human")
            out = []
            for sess in rows:
                since = as_utc(sess.state_since or sess.updated_at)
                out.append({
                    **state_dict(sess, position_among(waiting, sess)),
                    "waiting_since": since.isoformat(),
                    "waiting_seconds": round((now - since).total_seconds(), 1),
                    "intent": sess.intent_guess,
                    "reason": sess.handoff_reason,
                    "last_messages": [message_dict(m) for m in recent.get(sess.id, [])],
                })
            return out

    def messages(self, session_id: str, after: int = 0) -> list[dict[str, Any]]:
        """The conversation's messages with an id above ``after``, oldest first."""
        return self.updates(session_id, after)[0]

    def state(self, session_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            return state_info(s, get_session(s, session_id))

    def updates(self, session_id: str, after: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Messages above ``after`` and the state, read together: what a live page polls."""
        with self.db.session() as s:
            sess = get_session(s, session_id)
            rows = s.scalars(
                select(Message).where(Message.session_id == session_id, Message.id > after)
                .order_by(Message.id)
            )
            return [message_dict(m) for m in rows], state_info(s, sess)

    def transitions(self, session_id: str | None = None) -> list[dict[str, Any]]:
        """Stored transitions (all, or one conversation's), oldest first."""
        with self.db.session() as s:
            q = select(Transition).order_by(Transition.id)
            if session_id is not None:
                get_session(s, session_id)
                q = q.where(Transition.session_id == session_id)
            return [transition_dict(t) for t in s.scalars(q)]


def transition_dict(t: Transition) -> dict[str, Any]:
    return {
        "id": t.id,
        "session_id": t.session_id,
        "from_state": t.from_state,
        "to_state": t.to_state,
        "actor": t.actor,
        "reason": t.reason,
        "at": as_utc(t.created_at).isoformat(),
        "delivered": t.delivered_at is not None,
        "attempts": t.attempts,
    }

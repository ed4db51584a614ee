"""A conversation as its pages and the agents' queue read it: the states, the checks every
stored text passes, its messages, and where a waiting one stands in the queue.

Database rows and plain functions, below everything that changes a conversation: the
handoff's transitions (:mod:`.handoff`), the live pages (:mod:`.live`) and the suggestions
collected from agents' replies (:mod:`.suggestions`) all read them, and none of those
three needs another for it.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.rowparser import clean_text
from aigc_apps.store import as_utc, utcnow

from ..answers.pii import mask_pii
from ..store import ChatSession, Message

STATES = ("bot", "pending_human", "human", "resolved")
WITH_HUMAN = ("pending_human", "human")  # the bot does not answer
MAX_MESSAGE_CHARS = 4000

_HUMAN = r"(human|person|agent|operator|representative|rep|someone|somebody|people|staff)"
HUMAN_REQUEST = re.compile(
    rf"\b(talk|speak|chat|connect|transfer|put)\w*\b.{{0,30}}\b(to|with|me)\b.{{0,20}}{_HUMAN}s?\b"
    rf"|\b(real|live|actual)\s+{_HUMAN}s?\b"
    rf"|\b{_HUMAN}s?\s*(please|pls|now)\b"
    rf"|\b(want|need|get)\s+(a|an|some)\s+{_HUMAN}\b"
    r"|\bhuman\b",
    re.IGNORECASE,
)


def asks_for_human(text: str) -> bool:
    """The customer asks for a person ("talk to a human", "agent please", "a real person")."""
    return bool(HUMAN_REQUEST.search(text))


def check_agent(agent: str) -> str:
    agent = clean_text(agent or "").strip()
    if not agent or len(agent) > 200:
        raise DataError("agent name must be 1 to 200 characters")
    return agent


def check_text(text: str, what: str = "message") -> str:
    """One message, whitespace kept, masked for personal data; DataError when unusable."""
    text = clean_text(text or "").strip() if isinstance(text, str) else ""
    if not text:
        raise DataError(f"{what} is empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise DataError(f"{what} is {len(text)} characters; the limit is {MAX_MESSAGE_CHARS}")
    return mask_pii(text)


def get_session(s: Session, session_id: str) -> ChatSession:
    sess = None if "\x00" in session_id else s.get(ChatSession, session_id)
    if sess is None:
        raise NotFoundError(f"session {session_id!r} not found")
    return sess


def add_message(
    s: Session,
    session_id: str,
    role: str,
    text: str,
    author: str | None = None,
    sources: list[dict[str, Any]] | None = None,
) -> Message:
    msg = Message(
        session_id=session_id, role=role, text=text, author=author,
        sources=json.dumps(sources or []), created_at=utcnow(),
    )
    s.add(msg)
    s.flush()
    return msg


def message_dict(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "role": m.role,
        "text": m.text,
        "author": m.author,
        "at": as_utc(m.created_at).isoformat(),
        "sources": json.loads(m.sources),
    }


def queue_position(s: Session, sess: ChatSession) -> int | None:
    """1 for the longest-waiting pending conversation; None unless pending."""
    if sess.state != "pending_human" or sess.state_since is None:
        return None
    ahead = s.scalar(
        select(func.count()).select_from(ChatSession).where(
            ChatSession.state == "pending_human", ChatSession.state_since < sess.state_since
        )
    )
    return int(ahead or 0) + 1


def state_info(s: Session, sess: ChatSession) -> dict[str, Any]:
    return state_dict(sess, queue_position(s, sess))


def state_dict(sess: ChatSession, position: int | None) -> dict[str, Any]:
    """What a page shows of a conversation's state (``position`` from the queue)."""
    return {"session_id": sess.id, "state": sess.state, "agent": sess.agent,
            "queue_position": position}


def position_among(waiting: list[datetime], sess: ChatSession) -> int | None:
    """:func:`queue_position` from the sorted ``state_since`` of every pending conversation."""
    if sess.state != "pending_human" or sess.state_since is None:
        return None
    return bisect_left(waiting, as_utc(sess.state_since)) + 1


def pending_since(s: Session) -> list[datetime]:
    """When each pending conversation started waiting, sorted: the whole queue, one query."""
    return waiting_order(s.scalars(select(ChatSession.state_since).where(
        ChatSession.state == "pending_human")))


def waiting_order(since: Iterable[datetime | None]) -> list[datetime]:
    """Pending conversations' ``state_since``, sorted: what :func:`position_among` places a
    conversation in."""
    return sorted(as_utc(t) for t in since if t is not None)

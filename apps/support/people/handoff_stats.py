"""How handoffs go: rate, wait before a person takes over, resolution, per intent.

Read from the stored transitions, so the figures cover every worker and every restart.
A wait is the time from entering the queue to the next take-over; conversations an agent
pulled in from the bot never waited.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import func, select

from aigc_apps.store import Database, as_utc

from ..store import ChatSession, Transition, Turn

NO_INTENT = "(none)"


def _figures(conversations: int, handed: set[str], resolved: set[str],
             waits: list[float]) -> dict[str, Any]:
    return {
        "conversations": conversations,
        "handoffs": len(handed),
        "handoff_rate": round(len(handed) / conversations, 4) if conversations else None,
        "taken": len(waits),
        "median_wait_s": round(float(np.median(waits)), 1) if waits else None,
        "p90_wait_s": round(float(np.percentile(waits, 90)), 1) if waits else None,
        "resolved": len(resolved & handed),
        "resolution_rate": round(len(resolved & handed) / len(handed), 4) if handed else None,
    }


def handoff_stats(db: Database) -> dict[str, Any]:
    """Overall figures and the same per intent (the bot's guess when it handed off)."""
    with db.session() as s:
        talked = dict(
            s.execute(
                select(ChatSession.id, ChatSession.intent_guess)
                .join(Turn, Turn.session_id == ChatSession.id).group_by(ChatSession.id)
            ).all()
        )
        events = s.execute(
            select(Transition.session_id, Transition.to_state, Transition.created_at)
            .order_by(Transition.session_id, Transition.id)
        ).all()
        total = s.scalar(select(func.count()).select_from(ChatSession)) or 0
    handed: set[str] = set()
    resolved: set[str] = set()
    waits: dict[str, list[float]] = defaultdict(list)
    queued_at: dict[str, Any] = {}
    for sid, to_state, at in events:
        talked.setdefault(sid, None)
        if to_state == "pending_human":
            handed.add(sid)
            queued_at[sid] = as_utc(at)
        elif to_state == "human" and sid in queued_at:
            waits[sid].append((as_utc(at) - queued_at.pop(sid)).total_seconds())
        elif to_state == "resolved":
            resolved.add(sid)
        if to_state in ("human", "resolved"):
            handed.add(sid)
    by_intent: dict[str, list[str]] = defaultdict(list)
    for sid, intent in talked.items():
        by_intent[intent or NO_INTENT].append(sid)
    overall = _figures(len(talked), handed, resolved, [w for ws in waits.values() for w in ws])
    per_intent = []
    for intent, sids in sorted(by_intent.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        mine = set(sids)
        row = _figures(len(sids), handed & mine, resolved & mine,
                       [w for sid in sids for w in waits.get(sid, [])])
        if row["handoffs"]:
            per_intent.append({"intent": intent, **row})
    return {**overall, "sessions": total, "per_intent": per_intent}

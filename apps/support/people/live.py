"""Live conversation pages: one store poll per worker, however many pages are open.

A customer's or an agent's page follows its conversation through an event stream. Polling
the store per page would cost two queries every half second for each open page; instead a
worker's :class:`LiveWatch` reads, once per tick, the state and the last message id of every
conversation a page of that worker follows (three queries in all, whatever their number)
and wakes only the pages whose conversation changed, which then read their new messages.
The store stays the one shared state, so a write made through any worker shows within a tick.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, select

from aigc_apps.store import Database

from ..store import ChatSession, Message
from .conversation import pending_since, position_among, state_dict

log = logging.getLogger("aigc.support")

Snapshot = tuple[int, dict[str, Any]]  # (last message id, state as the page shows it)


def snapshot(db: Database, session_ids: Collection[str]) -> dict[str, Snapshot]:
    """Each existing conversation's last message id and state, in at most three queries."""
    ids = list(session_ids)
    if not ids:
        return {}
    with db.session() as s:
        sessions = s.scalars(select(ChatSession).where(ChatSession.id.in_(ids))).all()
        last = dict(s.execute(
            select(Message.session_id, func.max(Message.id))
            .where(Message.session_id.in_(ids)).group_by(Message.session_id)
        ).all())
        waiting = (pending_since(s) if any(x.state == "pending_human" for x in sessions)
                   else [])
        return {x.id: (int(last.get(x.id) or 0), state_dict(x, position_among(waiting, x)))
                for x in sessions}


class LiveWatch:
    """Wakes the pages of a worker whose conversation changed (see the module's text)."""

    def __init__(self, db: Database, poll_s: float = 0.5) -> None:
        self.db, self.poll_s = db, poll_s
        self._pages: dict[str, set[asyncio.Event]] = {}
        self._seen: dict[str, Snapshot | None] = {}
        self._task: asyncio.Task[None] | None = None
        self._warned_at = -math.inf

    @asynccontextmanager
    async def follow(self, session_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever ``session_id`` changes (the caller clears it). It starts
        set: what was written before the page subscribed is read at once, not at the next
        change (another page of the same conversation may have seen that one already)."""
        changed = asyncio.Event()
        changed.set()
        self._pages.setdefault(session_id, set()).add(changed)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self.close()  # a task left on another loop (tests run several) stops
            self._task = loop.create_task(self._run())
        try:
            yield changed
        finally:
            pages = self._pages.get(session_id)
            if pages is not None:
                pages.discard(changed)
                if not pages:
                    del self._pages[session_id]
                    self._seen.pop(session_id, None)

    async def _run(self) -> None:
        from starlette.concurrency import run_in_threadpool

        while self._pages:
            await asyncio.sleep(self.poll_s)
            ids = list(self._pages)
            try:
                found = await run_in_threadpool(snapshot, self.db, ids)
            except Exception as exc:  # the store is away: pages keep their keep-alives
                at = time.monotonic()
                if at - self._warned_at >= 60:
                    self._warned_at = at
                    log.warning("live pages: could not read the store (%r)", exc)
                continue
            for session_id in ids:
                now = found.get(session_id)
                if session_id in self._pages and now != self._seen.get(session_id):
                    self._seen[session_id] = now
                    for changed in self._pages[session_id]:
                        changed.set()

    def close(self) -> None:
        """Stop polling (the service is closing); callable from any thread."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            loop = task.get_loop()
            if not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)

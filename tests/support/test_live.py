"""Live pages: one store poll per worker wakes only the pages whose conversation changed
(SQLite and PostgreSQL; the event-stream route itself is tested in tests/serve)."""

from __future__ import annotations

import asyncio

from sqlalchemy import event

from apps.support import SupportService
from apps.support.people.live import LiveWatch, snapshot


def test_snapshot_says_what_each_page_shows(bot: SupportService) -> None:
    waiting = [bot.ask("agent please").session_id for _ in range(2)]
    chatting = bot.ask("Where can I track my package?").session_id
    found = snapshot(bot.db, [*waiting, chatting, "nosuchid"])
    assert set(found) == {*waiting, chatting}  # an unknown id is simply absent
    c = bot.conversations
    for sid in (*waiting, chatting):
        last, state = found[sid]
        assert state == c.state(sid) and last == c.messages(sid)[-1]["id"]
    assert [found[sid][1]["queue_position"] for sid in waiting] == [1, 2]


def test_many_pages_cost_one_poll_and_only_the_changed_conversation_wakes(
    bot: SupportService,
) -> None:
    sids = [bot.ask("agent please").session_id for _ in range(3)]
    watch = LiveWatch(bot.db, poll_s=0.05)
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    async def scenario() -> tuple[list[bool], int, list[list[bool]]]:
        async with (watch.follow(sids[0]) as a, watch.follow(sids[0]) as a2,
                    watch.follow(sids[1]) as b, watch.follow(sids[2]) as c):
            pages = [a, a2, b, c]

            async def woken(change: object, wait_for: asyncio.Event) -> list[bool]:
                for p in pages:
                    p.clear()
                await asyncio.to_thread(change)  # type: ignore[arg-type]
                await asyncio.wait_for(wait_for.wait(), 5)
                await asyncio.sleep(0.25)  # several more ticks: would others wake?
                return [p.is_set() for p in pages]

            assert all(p.is_set() for p in pages)  # a new page reads what is there
            for p in pages:
                p.clear()
            await asyncio.sleep(0.3)  # the watch's first look wakes every page once
            first = [p.is_set() for p in pages]
            for p in pages:
                p.clear()
            event.listen(bot.db.engine, "before_cursor_execute", count)
            await asyncio.sleep(0.5)  # ~10 ticks with nothing new
            event.remove(bot.db.engine, "before_cursor_execute", count)
            c_ = bot.conversations
            return first, len(statements), [
                # the last in the queue is taken: nobody before it moves
                await woken(lambda: c_.take(sids[2], "alice"), c),
                await woken(lambda: bot.ask("still there?", sids[1]), b),  # a new message
                # the first is taken: its pages see it, the next one moves up
                await woken(lambda: c_.take(sids[0], "bob"), a),
            ]

    first, quiet, woke = asyncio.run(scenario())
    assert first == [True, True, True, True]
    assert 0 < quiet <= 3 * 12  # at most three queries a tick, however many pages
    assert woke == [[False, False, False, True], [False, False, True, False],
                    [True, True, True, False]]
    assert not watch._pages  # pages that left are forgotten
    watch.close()

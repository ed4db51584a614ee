"""Human handoff: states and transitions, the queue, the race to take, suggestions, stats,
webhooks (SQLite and PostgreSQL, through the service; the HTTP routes are in tests/serve)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import event

from aigc_apps.errors import ConflictError, DataError, NotFoundError
from apps.support import SupportService
from apps.support.people.conversation import asks_for_human
from apps.support.people.handoff import UNSURE_REPLY
from apps.support.people.webhooks import backoff_s, deliver_due, set_webhook_url
from tests.hooks import WebhookReceiver

FAQ = "Where can I track my package?"
OFF_TOPIC = "What's the weather going to be in Paris tomorrow?"


@pytest.mark.parametrize(
    "text",
    ["talk to a human", "Agent please", "I want a real person", "can I speak with someone?",
     "connect me to an agent", "I need a human now", "let me talk to a representative"],
)
def test_requests_for_a_person_are_recognised(text: str) -> None:
    assert asks_for_human(text)


@pytest.mark.parametrize(
    "text", [FAQ, "How do I return an item?", "Is the agent's fee refundable",
             "Do you sell personal flotation devices?", "My package is late"],
)
def test_ordinary_questions_are_not_requests(text: str) -> None:
    assert not asks_for_human(text)


def _states(bot: SupportService, sid: str) -> list[tuple[str, str, str]]:
    return [(t["from_state"], t["to_state"], t["actor"])
            for t in bot.conversations.transitions(sid)]


def test_asking_for_a_person_queues_and_the_bot_stays_silent(bot: SupportService) -> None:
    first = bot.ask(FAQ)
    assert first.state == "bot" and first.path == "template" and not first.handoff
    sid = first.session_id
    asked = bot.ask("I want to talk to a human", sid)
    assert asked.state == "pending_human" and asked.handoff and asked.queue_position == 1
    assert asked.session_id == sid  # the conversation keeps its id
    held = bot.ask("Hello? My order 123 is missing", sid)
    assert held.path == "human" and held.state == "pending_human" and held.sources == []
    assert "colleague" in held.answer
    log = bot.session(sid)["messages"]
    roles = ["customer", "bot", "customer", "bot", "system", "customer"]
    assert [m["role"] for m in log] == roles
    assert log[-1]["text"] == "Hello? My order 123 is missing"
    assert _states(bot, sid) == [("bot", "pending_human", "customer")]
    assert bot.conversations.queue()[0]["session_id"] == sid


def test_the_queue_reads_each_conversation_as_its_own_pages_do_in_a_fixed_number_of_queries(
    bot: SupportService,
) -> None:
    sids = [bot.ask(f"agent please, order {n}").session_id for n in range(4)]
    bot.ask("still waiting", sids[1])
    c = bot.conversations
    c.take(sids[2], "alice")

    def read(last: int) -> tuple[list[dict], int]:
        statements: list[str] = []

        def count(*args: object) -> None:
            statements.append(str(args[2]))

        event.listen(c.db.engine, "before_cursor_execute", count)
        try:
            return c.queue("all", last=last), len(statements)
        finally:
            event.remove(c.db.engine, "before_cursor_execute", count)

    queued, few = read(2)
    assert [q["session_id"] for q in queued] == [sids[0], sids[1], sids[3], sids[2]]
    for q in queued:  # as the per-conversation reads say
        state = c.state(q["session_id"])
        assert (q["state"], q["agent"], q["queue_position"]) == (
            state["state"], state["agent"], state["queue_position"])
        assert q["last_messages"] == c.messages(q["session_id"])[-2:]
    assert [q["queue_position"] for q in queued] == [1, 2, 3, None]
    assert queued[1]["last_messages"][-1]["text"] == "still waiting"
    more = [bot.ask("agent please").session_id for _ in range(5)]
    assert len(read(2)[0]) == 4 + len(more) and read(2)[1] == few  # no query per row
    assert all(q["last_messages"] == [] for q in read(0)[0])


def test_two_unanswerable_questions_in_a_row_hand_off(bot: SupportService) -> None:
    one = bot.ask(OFF_TOPIC)
    assert one.path == "handoff" and one.state == "bot" and one.answer == UNSURE_REPLY
    assert not one.handoff
    answered = bot.ask(FAQ, one.session_id)  # an answer in between resets the count
    again = bot.ask(OFF_TOPIC, answered.session_id)
    assert again.state == "bot"
    last = bot.ask("Who won the football match yesterday?", one.session_id)
    assert last.state == "pending_human" and last.handoff
    queued = bot.conversations.queue()[0]
    assert queued["reason"] and "in a row" in queued["reason"]


def test_take_reply_release_resolve(bot: SupportService) -> None:
    sid = bot.ask("agent please").session_id
    c = bot.conversations
    assert c.take(sid, "alice")["state"] == "human"
    assert c.take(sid, "alice")["agent"] == "alice"  # taking twice changes nothing
    with pytest.raises(ConflictError) as lost:
        c.take(sid, "bob")
    assert lost.value.code == "conversation_taken"
    with pytest.raises(ConflictError) as not_holder:
        c.reply(sid, "bob", "hi")
    assert not_holder.value.code == "not_holder"
    sent = c.reply(sid, "alice", "Hi, I'm Alice. Mail me at alice.smith@example.com")
    assert sent["role"] == "agent" and "[EMAIL]" in sent["text"]  # agents' text is masked
    waiting = bot.ask("Thanks, where is it?", sid)
    assert waiting.path == "human" and "alice" in waiting.answer
    assert c.release(sid, "alice")["state"] == "bot"
    with pytest.raises(ConflictError):
        c.release(sid, "alice")  # not held any more
    back = bot.ask(FAQ, sid)
    assert back.path == "template" and back.state == "bot"
    c.take(sid, "bob")  # an agent may pull a conversation in from the bot
    assert c.resolve(sid, "bob")["state"] == "resolved"
    for act in (c.release, c.resolve):
        with pytest.raises(ConflictError) as closed:
            act(sid, "bob")
        assert closed.value.code == "conversation_resolved"
    with pytest.raises(ConflictError):
        bot.ask("one more thing", sid)
    assert _states(bot, sid) == [
        ("bot", "pending_human", "customer"), ("pending_human", "human", "agent:alice"),
        ("human", "bot", "agent:alice"), ("bot", "human", "agent:bob"),
        ("human", "resolved", "agent:bob"),
    ]


def test_unknown_ids_and_bad_input(bot: SupportService) -> None:
    c = bot.conversations
    for act in (c.take, c.release, c.resolve):
        with pytest.raises(NotFoundError):
            act("nosuchid", "alice")
    sid = bot.ask("agent please").session_id
    with pytest.raises(DataError):
        c.take(sid, " ")
    c.take(sid, "alice")
    with pytest.raises(DataError):
        c.reply(sid, "alice", "x" * 5000)
    with pytest.raises(DataError):
        c.reply(sid, "alice", "  ")
    with pytest.raises(DataError):
        c.queue("everything")
    assert [m["role"] for m in c.messages(sid)][-1] == "system"  # nothing half-written


def test_exactly_one_of_racing_agents_takes(bot: SupportService) -> None:
    """Eight agents at once, on threads with their own connections: one wins. A barrier
    lets all eight go together, so they really race (a pool alone may run them in turn)."""
    sids = [bot.ask("talk to a human").session_id for _ in range(3)]
    barrier = threading.Barrier(8)

    def take(args: tuple[str, str]) -> str:
        sid, agent = args
        barrier.wait(timeout=60)
        try:
            bot.conversations.take(sid, agent)
            return agent
        except ConflictError:
            return ""

    for sid in sids:
        with ThreadPoolExecutor(8) as pool:
            winners = [w for w in pool.map(take, [(sid, f"agent{i}") for i in range(8)]) if w]
        barrier.reset()
        assert len(winners) == 1
        assert bot.conversations.state(sid)["agent"] == winners[0]
        assert [t[1] for t in _states(bot, sid)].count("human") == 1


def test_resolved_answers_become_suggestions_only_approved_ones_are_knowledge(
    bot: SupportService,
) -> None:
    question = "Can I pay for my order with a gift card from another store?"
    sid = bot.ask(question).session_id
    bot.ask("talk to a person", sid)
    bot.conversations.take(sid, "alice")
    answer = "No, we only accept Northwind Outfitters gift cards, in store and online."
    bot.conversations.reply(sid, "alice", answer)
    before = bot.ask(question)
    assert before.path != "template" or before.sources[0]["source"] != "suggestion:1"
    bot.conversations.resolve(sid, "alice")
    pending = bot.suggestions()
    assert len(pending) == 1 and pending[0]["answer"] == answer
    assert pending[0]["question"] == question  # what it answered, as asked
    approved = bot.approve_suggestion(pending[0]["id"], "gift-cards")
    assert approved["status"] == "approved" and approved["intent"] == "gift-cards"
    with pytest.raises(ConflictError):
        bot.approve_suggestion(pending[0]["id"])
    after = bot.ask(question)
    assert after.path == "template" and after.answer == answer
    assert after.sources[0]["source"] == f"suggestion:{pending[0]['id']}"
    assert bot.suggestions() == []


def test_rejected_suggestions_stay_out(bot: SupportService) -> None:
    sid = bot.ask("Do you price match other stores?").session_id
    bot.ask("talk to a person", sid)
    bot.conversations.take(sid, "alice")
    bot.conversations.reply(sid, "alice", "Let me check that for you.")
    bot.conversations.resolve(sid, "alice")
    examples = bot.stats()["examples"]
    (only,) = bot.suggestions()
    assert bot.reject_suggestion(only["id"])["status"] == "rejected"
    assert bot.suggestions("rejected")[0]["id"] == only["id"]
    assert bot.stats()["examples"] == examples
    with pytest.raises(NotFoundError):
        bot.reject_suggestion(9999)


def test_handoff_stats(bot: SupportService) -> None:
    bot.ask(FAQ)  # a conversation the bot handled alone
    taken = bot.ask("agent please").session_id
    bot.conversations.take(taken, "alice")
    bot.conversations.resolve(taken, "alice")
    bot.ask("I want a real person")  # still waiting
    stats = bot.handoff_stats()
    assert stats["conversations"] == 3 and stats["handoffs"] == 2
    assert stats["handoff_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert stats["taken"] == 1 and stats["median_wait_s"] is not None
    assert stats["resolution_rate"] == 0.5
    assert sum(row["handoffs"] for row in stats["per_intent"]) == 2


def test_handoff_stats_median_and_p90_wait_on_known_waits(bot: SupportService) -> None:
    """Ten handoffs taken after 10, 20, ... 100 s (stored times set by hand). By linear
    interpolation between closest ranks (numpy's default): the median is (50 + 60) / 2 = 55
    and the p90 lies at rank 0.9 * 9 = 8.1 of the sorted waits, 90 + 0.1 * (100 - 90) = 91."""
    from sqlalchemy import select

    from aigc_apps.store import utcnow
    from apps.support.store import Transition

    sids = [bot.ask("agent please").session_id for _ in range(10)]
    for sid in sids:
        bot.conversations.take(sid, "alice")
    t0 = utcnow() - timedelta(hours=1)
    with bot.db.session() as s:
        for n, sid in enumerate(sids, start=1):
            rows = s.scalars(select(Transition).where(Transition.session_id == sid)
                             .order_by(Transition.id)).all()
            assert [r.to_state for r in rows] == ["pending_human", "human"]
            rows[0].created_at = t0
            rows[1].created_at = t0 + timedelta(seconds=10 * n)
    stats = bot.handoff_stats()
    assert stats["taken"] == 10
    assert stats["median_wait_s"] == 55.0
    assert stats["p90_wait_s"] == 91.0
    (row,) = stats["per_intent"]
    assert (row["median_wait_s"], row["p90_wait_s"]) == (55.0, 91.0)


def test_webhooks_retry_with_backoff_and_lose_nothing(
    bot: SupportService, local_webhooks: None
) -> None:
    with WebhookReceiver(503) as hook:
        url = hook.url("/hook")
        sid = bot.ask("agent please").session_id
        bot.conversations.take(sid, "alice")
        set_webhook_url(bot.db, url)
        failed = deliver_due(bot.db)
        assert failed.failed == 2 and failed.delivered == 0 and failed.waiting == 2
        assert deliver_due(bot.db).failed == 0  # not due again before the back-off
        assert backoff_s(1) == 5 and backoff_s(2) == 10 and backoff_s(40) == 3600
        from sqlalchemy import update

        from apps.support.store import Transition

        with bot.db.session() as s:  # let the back-off pass
            s.execute(update(Transition).values(next_attempt_at=Transition.created_at))
        hook.status = 204
        done = deliver_due(bot.db)
        assert done.delivered == 2 and done.waiting == 0
        in_order = sorted(hook.delivered, key=lambda e: e["id"])  # posted at once
        assert [(e["from_state"], e["to_state"]) for e in in_order] == [
            ("bot", "pending_human"), ("pending_human", "human")]
        assert hook.delivered[0]["event"] == "support.conversation.transition"
        assert set(hook.delivered[0]) == {"event", "id", "session_id", "from_state",
                                          "to_state", "actor", "reason", "at"}
        assert all(t["delivered"] for t in bot.conversations.transitions(sid))


def test_webhook_url_is_checked(bot: SupportService) -> None:
    with pytest.raises(DataError):
        set_webhook_url(bot.db, "ftp://example.com/hook")


def test_a_service_posts_its_transitions_on_its_own(
    bot: SupportService, local_webhooks: None
) -> None:
    """The service's delivery thread posts what a transition stored; close() posts the rest."""
    import time

    with WebhookReceiver(204) as hook:
        set_webhook_url(bot.db, hook.url("/hook"))
        sid = bot.ask("agent please").session_id
        bot.conversations.take(sid, "alice")
        deadline = time.monotonic() + 20
        while len(hook.delivered) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        in_order = sorted(hook.delivered, key=lambda e: e["id"])  # may be posted at once
        assert [e["to_state"] for e in in_order] == ["pending_human", "human"]
        bot.conversations.release(sid, "alice")
        bot.close()  # a short-lived process: the last event goes out before it ends
        assert [e["to_state"] for e in hook.delivered][-1] == "bot"
        assert len({e["id"] for e in hook.delivered}) == len(hook.delivered) == 3

"""``aigc support queue | take | reply | release | resolve | suggestions | stats | webhook``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from aigc_apps.errors import ConflictError, DataError, NotFoundError
from apps.support.edges.cli import app
from apps.support.people.handoff import Conversations
from apps.support.people.webhooks import set_webhook_url
from apps.support.store import ChatSession, Transition, open_db
from tests.hooks import SlowReceiver, WebhookReceiver
from tests.support.test_support_cli import run, runner


def test_agent_round_trip(env: None, db_url: str, kb_dir: Path, local_webhooks: None) -> None:
    db = ("--db", db_url)
    run("ingest", str(kb_dir), *db)
    question = "Can I pay with a gift card from another store?"
    first = run("ask", question, *db, "--json")
    assert first["state"] == "bot"
    sid = first["session_id"]
    with WebhookReceiver() as receiver:
        run("webhook", receiver.url(), *db)
        asked = run("ask", "I want to talk to a human", "--session", sid, *db, "--json")
        # `ask` closes its service: the handoff it queued is posted before the command ends
        assert [b["to_state"] for b in receiver.delivered] == ["pending_human"]
        run("webhook", "--clear", *db)
    assert asked["state"] == "pending_human" and asked["queue_position"] == 1
    (queued,) = run("queue", *db, "--json")
    assert queued["session_id"] == sid and queued["last_messages"][-1]["role"] == "system"
    assert sid in run("queue", *db)["out"]

    assert "held by alice" in run("take", sid, "--agent", "alice", *db)["out"]
    with pytest.raises(ConflictError):
        run("take", sid, "--agent", "bob", *db)
    with pytest.raises(ConflictError):
        run("reply", sid, "hello", "--agent", "bob", *db)
    answer = "Only Northwind Outfitters gift cards are accepted."
    run("reply", sid, answer, "--agent", "alice", *db)
    held = run("ask", "ok, thanks", "--session", sid, *db, "--json")
    assert held["path"] == "human" and held["state"] == "human"
    assert "bot" in run("release", sid, "--agent", "alice", *db)["out"]
    assert run("queue", "--state", "all", *db, "--json") == []
    run("take", sid, "--agent", "alice", *db)
    out = run("resolve", sid, "--agent", "alice", *db)["out"]
    assert "resolved" in out and "1 suggestion(s)" in out

    (suggestion,) = run("suggestions", *db, "--json")
    assert suggestion["answer"] == answer and question in suggestion["question"]
    run("suggestions", "approve", str(suggestion["id"]), "--intent", "gift-cards", *db)
    assert run("suggestions", "--status", "approved", *db, "--json")[0]["intent"] == "gift-cards"
    again = run("ask", question, *db, "--json")
    assert again["path"] == "template" and again["answer"] == answer

    stats = run("stats", *db, "--json")
    assert stats["handoffs"] == 1 and stats["resolution_rate"] == 1.0
    assert "(all)" in run("stats", *db)["out"]
    with pytest.raises(NotFoundError):
        run("take", "nosuchid", "--agent", "alice", *db)


def test_webhook_setting(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "none" in run("webhook", "--db", db_url)["out"]
    with pytest.raises(DataError, match=r"loopback address 127\.0\.0\.1; allow it with"):
        run("webhook", "http://127.0.0.1:9/hook", "--db", db_url)
    assert "none" in run("webhook", "--db", db_url)["out"]
    monkeypatch.setenv("AIGC_WEBHOOK_ALLOW", "127.0.0.1")
    assert "http://127.0.0.1:9/hook" in run("webhook", "http://127.0.0.1:9/hook",
                                            "--db", db_url)["out"]
    assert "none" in run("webhook", "--clear", "--db", db_url)["out"]


def test_chat_shows_what_the_agent_wrote(db_url: str) -> None:
    from apps.support import SupportService

    with SupportService(db_url) as service:
        sid = service.create_session()["session_id"]
        service.conversations.request_human(sid)
        service.conversations.take(sid, "alice")
        service.conversations.reply(sid, "alice", "Hi, Alice here. How can I help?")
    result = runner.invoke(app, ["chat", "--session", sid, "--db", db_url],
                           input="My tent zip broke\n\n", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "alice> Hi, Alice here. How can I help?" in out
    assert "(alice joined the conversation.)" in out
    assert "alice will answer here." in out and "state human" in out  # the bot stays silent


def test_a_command_does_not_wait_long_on_a_hanging_webhook(
    db_url: str, local_webhooks: None
) -> None:
    """Nine events for a receiver that never answers: the command gives them a few seconds
    at exit, says how many are still queued, and leaves them in the outbox."""
    db = open_db(db_url)
    try:
        with db.session() as s:
            s.add_all([ChatSession(id=f"s{i}") for i in range(9)])
        for i in range(8):  # events an earlier process could not post
            Conversations(db).take(f"s{i}", "alice")
        with SlowReceiver() as hanging:
            set_webhook_url(db, hanging.url())
            start = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "aigc_apps.cli", "support", "take", "s8", "--agent",
                 "alice", "--db", db_url],
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True, text=True,
                timeout=300)
            took = time.monotonic() - start
            assert hanging.connections >= 1
        assert done.returncode == 0, done.stderr
        assert took < 15, done.stderr  # about 2 s to start, 3 s for webhooks; was 45 s
        assert "held by alice" in done.stdout
        assert "9 webhook events are still queued" in done.stderr
        with db.session() as s:
            undelivered = s.scalars(select(Transition.id)
                                    .where(Transition.delivered_at.is_(None))).all()
        assert len(undelivered) == 9
    finally:
        db.dispose()


def test_webhook_deliver_posts_what_is_due(db_url: str, local_webhooks: None) -> None:
    """``webhook --deliver`` posts the events an earlier process left, once, from here."""
    db = open_db(db_url)
    try:
        with db.session() as s:
            s.add_all([ChatSession(id=f"s{i}") for i in range(2)])
        for i in range(2):  # stored with no URL set: nothing posted them yet
            Conversations(db).take(f"s{i}", "alice")
    finally:
        db.dispose()
    with WebhookReceiver() as receiver:
        out = run("webhook", receiver.url(), "--deliver", "--db", db_url)["out"]
        assert f"webhook: {receiver.url()}" in out
        assert "delivered 2, failed 0 (retried later), 0 waiting, 0 given up" in out
        assert len(receiver.delivered) == 2

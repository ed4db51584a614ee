"""Messages that arrive at once in one conversation (issue 24 item 1): five concurrent posts
to one session stored one of five (``[200, 500, 500, 500, 500]``), in ``bot`` and in
``pending_human`` state alike. Every message must be stored, in order, and answered or
queued, by threads of one worker and by separate worker processes (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from apps.support import Calibration, SupportService
from tests.support.conftest import BowEncoder

FAQ = "Where can I track my package?"  # a template answer: the bot keeps the conversation
N = 6


def _at_once(bot: SupportService, sid: str | None, texts: list[str]) -> list[Any]:
    """``texts`` posted to ``sid`` by one thread each, released together."""
    barrier = threading.Barrier(len(texts), timeout=30)

    def post(text: str) -> Any:
        barrier.wait()
        return bot.ask(text, sid)

    with ThreadPoolExecutor(len(texts)) as pool:
        return list(pool.map(post, texts))  # re-raises the first failure


def _numbers(bot: SupportService, sid: str) -> list[int]:
    return [t["turn"] for t in bot.session(sid)["turns"]]


def test_messages_at_once_in_a_bot_conversation_are_all_answered_in_turn(
    bot: SupportService,
) -> None:
    sid = bot.create_session()["session_id"]
    texts = [f"{FAQ} (order {n})" for n in range(N)]
    replies = _at_once(bot, sid, texts)
    assert sorted(r.turn for r in replies) == list(range(1, N + 1))
    assert all(r.path == "template" and r.state == "bot" for r in replies)
    info = bot.session(sid)
    assert [t["turn"] for t in info["turns"]] == list(range(1, N + 1))
    assert sorted(t["question"] for t in info["turns"]) == sorted(texts)
    # each answer follows its own question: turns did not interleave
    roles = [m["role"] for m in info["messages"]]
    assert roles == ["customer", "bot"] * N
    questions = [m["text"] for m in info["messages"] if m["role"] == "customer"]
    assert questions == [t["question"] for t in info["turns"]]
    # new conversations have nobody to wait for
    fresh = _at_once(bot, None, [FAQ] * 4)
    assert len({r.session_id for r in fresh}) == 4 and {r.turn for r in fresh} == {1}


def test_messages_at_once_while_waiting_for_a_person_are_all_stored(
    bot: SupportService,
) -> None:
    sid = bot.ask("I want to talk to a human").session_id
    texts = [f"hello? order {n} is missing" for n in range(N)]
    replies = _at_once(bot, sid, texts)
    assert all(r.path == "human" and r.state == "pending_human" for r in replies)
    assert _numbers(bot, sid) == list(range(1, N + 2))
    log = bot.session(sid)["messages"]
    customer = [m["text"] for m in log if m["role"] == "customer"]
    assert sorted(customer[1:]) == sorted(texts)
    bot.conversations.take(sid, "alice")  # with a person: the same again
    more = [f"still there? {n}" for n in range(N)]
    assert all(r.state == "human" for r in _at_once(bot, sid, more))
    assert _numbers(bot, sid) == list(range(1, 2 * N + 2))


def _worker(db_url: str, sid: str, ready: Any, go: Any, failures: Any) -> None:
    """One worker process: its own service on the same store (and workspace, inherited),
    three messages at once."""
    try:
        bot = SupportService(db_url, encoder=BowEncoder())  # type: ignore[arg-type]
        bot.calibration = Calibration(w_score=40.0, w_margin=0.0, bias=-30.0, threshold=0.5)
        bot.kb  # noqa: B018 - loaded before the start, so the posts really race
        ready.wait()
        go.wait()
        pid = multiprocessing.current_process().pid
        _at_once(bot, sid, [f"{FAQ} (worker {pid}, {n})" for n in range(3)])
        bot.close()
    except BaseException as exc:
        failures.put(f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from None


def test_worker_processes_posting_to_one_conversation_store_every_message(
    bot: SupportService,
) -> None:
    sid = bot.create_session()["session_id"]
    bot.close()  # the children open their own connections
    context = multiprocessing.get_context("fork")
    ready, go, failures = context.Barrier(3, timeout=60), context.Event(), context.Queue()
    workers = [context.Process(target=_worker,
                               args=(bot.db_url, sid, ready, go, failures))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    ready.wait()
    go.set()
    for worker in workers:
        worker.join(60)
    errors = [failures.get(timeout=5) for w in workers if w.exitcode != 0]
    assert errors == []
    info = bot.session(sid)
    assert [t["turn"] for t in info["turns"]] == list(range(1, 7))
    questions = [m["text"] for m in info["messages"] if m["role"] == "customer"]
    assert questions == [t["question"] for t in info["turns"]]


@pytest.fixture(autouse=True)
def _quick(bot: SupportService) -> None:
    bot.ask(FAQ)  # models and index loaded before the threads start

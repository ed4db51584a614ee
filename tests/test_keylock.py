"""KeyLocks: one holder per key across threads (first come, first served) and across
processes (PostgreSQL advisory locks, SQLite lock files), on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

from aigc_apps.keylock import KeyLocks
from aigc_apps.store import Database


def _wait_for(check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_threads_of_one_key_go_in_the_order_they_came_and_other_keys_do_not_wait(
    db_url: str,
) -> None:
    db = Database(db_url)
    locks = KeyLocks(db, "test")
    order: list[int] = []

    def one(n: int) -> None:
        with locks.hold("k"):
            order.append(n)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(5)]
    with locks.hold("k"):
        for n, thread in enumerate(threads):
            thread.start()
            _wait_for(lambda n=n: len(locks._queues["k"].waiting) == n + 1)
        with locks.hold("other"):  # another key: no wait
            pass
        assert order == []
    for thread in threads:
        thread.join(10)
    assert order == list(range(5)) and locks._queues == {}
    locks.close()
    db.dispose()


def _count(db_url: str, counter: str, go: Any, failures: Any) -> None:
    """Increment a number in a file five times, reading and writing it apart."""
    try:
        db = Database(db_url)
        locks = KeyLocks(db, "test")
        go.wait()
        for _ in range(5):
            with locks.hold("conversation"):
                value = int(Path(counter).read_text())
                time.sleep(0.01)  # another holder would read the same value meanwhile
                Path(counter).write_text(str(value + 1))
        locks.close()
        db.dispose()
    except BaseException as exc:
        failures.put(f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from None


def test_processes_holding_one_key_take_turns(db_url: str, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    context = multiprocessing.get_context("fork")
    go, failures = context.Event(), context.Queue()
    workers = [context.Process(target=_count, args=(db_url, str(counter), go, failures))
               for _ in range(3)]
    for worker in workers:
        worker.start()
    go.set()
    for worker in workers:
        worker.join(60)
    assert [failures.get(timeout=5) for w in workers if w.exitcode != 0] == []
    assert counter.read_text() == "15"
    if db_url.startswith("sqlite"):  # every holder removed its lock file
        assert list((tmp_path / "test.db.locks").iterdir()) == []

"""Generation stamps (:mod:`aigc_apps.stamps`) on SQLite and PostgreSQL: a bump commits with
its transaction, two writers both count, and the registry bumps its app's stamp on every
write, so a :class:`Freshness` of one process sees another's change."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from aigc_apps.registry import ModelRegistry, models_stamp
from aigc_apps.stamps import Freshness, bump, current


def test_bump_commits_with_its_transaction_and_every_writer_counts(db_url: str) -> None:
    registry = ModelRegistry(db_url)
    db = registry.db
    assert current(db, "k") == 0
    with pytest.raises(RuntimeError), db.session() as s:
        bump(s, "k")
        raise RuntimeError("the change failed")
    assert current(db, "k") == 0  # rolled back with the change it described

    def writer() -> None:
        for _ in range(5):
            with db.session() as s:
                bump(s, "k")

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert current(db, "k") == 20 and current(db, "other") == 0
    registry.close()


def test_freshness_says_reload_first_and_after_each_change_elsewhere(
    db_url: str, tmp_path: Path
) -> None:
    mine, theirs = ModelRegistry(db_url), ModelRegistry(db_url)
    fresh = mine.freshness("sentiment")
    assert fresh.key == models_stamp("sentiment")
    assert fresh.check() and not fresh.check()  # nothing loaded yet, then loaded
    theirs.register("a", tmp_path / "a", app="sentiment", role="sentiment", base="b")
    assert fresh.check() and not fresh.check()
    theirs.register("x", tmp_path / "x", app="support", role="encoder", base="b")
    assert not fresh.check()  # another app's model
    for change in (lambda: theirs.activate("a"),
                   lambda: theirs.delete("a", force=True, remove_files=False),
                   lambda: theirs.register("x", tmp_path / "x", app="sentiment",
                                           role="topic", base="b"),  # moved in
                   lambda: theirs.register("x", tmp_path / "x", app="support",
                                           role="encoder", base="b")):  # and away
        change()
        assert fresh.check() and not fresh.check()
    assert Freshness(mine.db, "never-bumped").check()
    mine.close()
    theirs.close()


"""Workers that keep the served model in memory agree (issue 24, item 5): two services on
one database (two ``aigc serve --workers`` processes); what one writes (a model trained or
activated, items added or changed) the other serves from its next answer on, told by
generation stamps (one primary-key SELECT each per request); on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from aigc_apps.registry import ModelRegistry
from aigc_apps.stamps import Freshness, bump, current
from aigc_apps.store import utcnow
from apps.recommender.recommender import RecommenderConfig
from apps.recommender.runtime import NewItem
from apps.recommender.service import RecommenderService
from apps.recommender.store import STAMPS, open_db


def fast(l2: float = 100.0) -> RecommenderConfig:
    return RecommenderConfig(encoder="hashing", interest=None, l2=l2)


@pytest.fixture
def workers(db_url: str, sample_dir: Path) -> Iterator[tuple[RecommenderService, ...]]:
    """Two services (store and registry in one database), the sample shop trained by the
    first; the second has served one request."""
    a, b = (RecommenderService(db_url, registry=ModelRegistry(db_url)) for _ in range(2))
    a.ingest(sample_dir / "items.csv", sample_dir / "events.csv")
    a.train(fast())
    assert b.for_user("u01", k=3).items
    yield a, b
    for service in (a, b):
        service.close()
        service.registry.close()


def statements(service: RecommenderService, call: Any) -> list[str]:
    """The SQL ``call`` sends through the service's store and registry."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(sql)

    engines = {id(e): e for e in (service.db.engine, service.registry.db.engine)}.values()
    for engine in engines:
        event.listen(engine, "before_cursor_execute", note)
    try:
        call()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", note)
    return seen


def test_a_model_trained_or_activated_by_one_worker_is_served_by_the_other(
    workers: tuple[RecommenderService, RecommenderService],
) -> None:
    a, b = workers
    served = b.model()
    assert b.model() is served and served.config.l2 == 100.0
    a.train(fast(l2=10.0))  # recommend-2, active
    assert b.model().config.l2 == 10.0
    a.activate("recommend-1")  # a rollback
    assert b.model().config.l2 == 100.0
    assert b.model() is b.model()  # loaded once per change


def test_items_changed_by_one_worker_are_served_by_the_other_whatever_its_clock(
    workers: tuple[RecommenderService, RecommenderService], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old check compared the item count and the latest ``updated_at``: a change
    written by a process whose clock is behind (another machine) moved neither."""
    a, b = workers
    assert "spa-01" in {r.item_id for r in b.similar("spa-02", k=10)}
    behind = utcnow() - timedelta(hours=1)
    ingest_module = importlib.import_module("apps.recommender.ingest")  # the package's
    monkeypatch.setattr(ingest_module, "utcnow", lambda: behind)  # `ingest` is a function
    dragons = "an epic fantasy novel of kingdoms, magic and dragons"
    a.add_items([NewItem("spa-01", "Dragons of the Red Planet", f"A book: {dragons}.",
                         ["fantasy", "novel", "dragons", "magic", "book"])])  # fmt: skip
    catalog = b.model().catalog
    assert catalog.titles[catalog.index["spa-01"]] == "Dragons of the Red Planet"
    near = [r.item_id for r in b.similar("spa-01", k=5)]
    assert any(i.startswith("fan-") for i in near), near  # embedded again: by its new text
    a.add_items([NewItem("fan-new", "The Ember Crown Returns", f"A book: {dragons}.")])
    assert "fan-new" in b.model().catalog.index


def test_an_unchanged_worker_checks_with_one_primary_key_select_per_stamp(
    workers: tuple[RecommenderService, RecommenderService],
) -> None:
    _, b = workers
    b.model()
    sql = statements(b, b.model)
    assert len(sql) == 2 and all("_stamps" in q for q in sql), sql
    assert {"aigc_stamps", "rec_stamps"} == {
        name for name in ("aigc_stamps", "rec_stamps") for q in sql if name in q
    }


def test_a_store_keeps_its_stamps_in_its_own_table_and_a_failed_reload_is_retried(
    db_url: str,
) -> None:
    """An app's store names its table (``rec_stamps``): stores sharing one PostgreSQL
    database each create their own; ``forget`` after a failed reload makes the next check
    ask again."""
    db = open_db(db_url)
    fresh = Freshness(db, "catalog", table=STAMPS)
    assert fresh.check() and not fresh.check()
    with db.session() as s:
        assert bump(s, "catalog", table=STAMPS) == 1
    assert current(db, "catalog", table=STAMPS) == 1 and fresh.check()
    fresh.forget()
    assert fresh.check() and not fresh.check()
    db.dispose()

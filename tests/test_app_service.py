"""The service shell every app shares (:class:`aigc_apps.service.AppService`)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from aigc_apps.lazy import lazy
from aigc_apps.registry import ModelRegistry
from aigc_apps.service import AppService
from aigc_apps.settings import Settings
from aigc_apps.store import Database


class NotesService(AppService):
    """The minimal app service of docs/architecture.md, counting what it opens."""

    app = "notes"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened_dbs: list[Database] = []
        self.loads = 0

    def open_db(self, url: str) -> Database:
        db = Database(url)
        self.opened_dbs.append(db)
        return db

    @lazy
    def model(self) -> object:
        self.loads += 1
        return object()


def test_nothing_is_opened_until_used(tmp_path: Path) -> None:
    service = NotesService(settings=Settings(home=tmp_path))
    assert not service.opened("db") and not service.opened("registry")
    assert service.store_url() == f"sqlite:///{(tmp_path / 'notes.db').resolve()}"
    service.ping()  # opens the database
    assert service.opened("db") and len(service.opened_dbs) == 1
    service.close()


def test_settings_given_or_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = Settings(home=tmp_path)
    assert NotesService(settings=given).settings is given
    monkeypatch.setenv("AIGC_HOME", str(tmp_path / "a"))
    service = NotesService()
    first = service.settings
    monkeypatch.setenv("AIGC_HOME", str(tmp_path / "b"))
    assert service.settings is first and first.home == tmp_path / "a"


def test_lazy_attributes_load_once_across_threads() -> None:
    service = NotesService("sqlite:///:memory:")
    barrier = threading.Barrier(8)
    seen: list[object] = []

    def read() -> None:
        barrier.wait()
        seen.append(service.model)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert service.loads == 1 and len({id(m) for m in seen}) == 1


def test_close_is_idempotent_and_reopens_on_use(tmp_path: Path) -> None:
    with NotesService.from_url(f"sqlite:///{tmp_path / 'n.db'}",
                               settings=Settings(home=tmp_path)) as service:
        service.ping()
        first = service.db
    assert not service.opened("db")
    service.close()  # again: nothing to do
    service.ping()
    assert service.db is not first and len(service.opened_dbs) == 2
    service.close()


def test_close_releases_only_what_the_service_opened(tmp_path: Path) -> None:
    registry = ModelRegistry(url=f"sqlite:///{tmp_path / 'registry.db'}")
    registry.list()  # opened by its owner
    db = Database(f"sqlite:///{tmp_path / 'given.db'}")
    service = NotesService.for_database(db, registry=registry)
    service.ping()
    service.close()
    assert "db" in registry.__dict__  # the given registry: still open
    with db.engine.connect() as conn:  # still usable by its owner
        conn.exec_driver_sql("SELECT 1")
    assert service.opened_dbs == []  # the given database was used, none opened

    owned = NotesService(f"sqlite:///{tmp_path / 'own.db'}",
                         settings=Settings(home=tmp_path))
    owned.registry.list()
    owned.close()
    assert "db" not in owned.registry.__dict__  # its own registry: closed


def test_from_settings_and_a_store_name_is_required(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert NotesService.from_settings(settings).settings is settings
    with pytest.raises(TypeError, match="names no store"):
        AppService(settings=settings).store_url()
    with pytest.raises(NotImplementedError):
        AppService("sqlite:///:memory:").db  # noqa: B018


def test_the_app_services_share_the_shell() -> None:
    from apps.recommender.service import RecommenderService
    from apps.sentiment.service import SentimentService
    from apps.support.service import SupportService

    for cls in (SentimentService, RecommenderService, SupportService):
        assert issubclass(cls, AppService) and cls.app
        service = cls("sqlite:///:memory:")
        assert service.db_url == "sqlite:///:memory:"
        service.ping()
        service.close()
        service.close()


def test_readyz_asks_each_store_to_ping(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from aigc_apps.serve.health import readiness

    class Down(NotesService):
        def ping(self) -> None:
            raise ConnectionError("refused\nmore")

    up = NotesService(f"sqlite:///{tmp_path / 'up.db'}", settings=Settings(home=tmp_path))
    tokens = ModelRegistry(url=f"sqlite:///{tmp_path / 'registry.db'}")
    state = SimpleNamespace(tokens=tokens, services={"up": up, "down": Down(), "other": 1})
    checks = readiness(SimpleNamespace(state=state))
    assert checks == {"registry": "ok", "up": "ok", "down": "database unreachable: refused"}
    up.close()
    tokens.close()


def test_settings_built_by_hand_read_no_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIGC_NOTES_DB_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("AIGC_DATABASE_URL", "sqlite:///shared.db")
    by_hand = Settings(home=tmp_path)
    assert by_hand.db_url("notes") == f"sqlite:///{(tmp_path / 'notes.db').resolve()}"
    assert Settings(store_urls={"notes": "sqlite:///mine.db"}).db_url("notes") == (
        "sqlite:///mine.db")
    from_env = Settings.from_env()
    assert from_env.db_url("notes") == "sqlite:///from-env.db"
    assert from_env.db_url("support") == "sqlite:///shared.db"
    hash(from_env)  # still usable as a key

"""RecommenderService: lazy opening, models as registry entries (train registers and
activates, serving follows the active entry), 0.1.0's ``rec_models`` imported once, and the
deprecated module functions; on SQLite and PostgreSQL (store and registry in one database)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigc_apps.errors import AigcError, ModelNotFoundError
from aigc_apps.registry import ModelRegistry
from aigc_apps.store import utcnow
from apps.recommender import service as service_module
from apps.recommender.recommender import RecommenderConfig
from apps.recommender.service import RecommenderService
from apps.recommender.store import RecModel


def fast(l2: float = 100.0) -> RecommenderConfig:
    """No model to load: the hashing encoder and no interest model."""
    return RecommenderConfig(encoder="hashing", interest=None, l2=l2)


@pytest.fixture
def shop(db_url: str, sample_dir: Path) -> Iterator[RecommenderService]:
    """A service on the sample shop, with its registry in the same database."""
    service = RecommenderService(db_url, registry=ModelRegistry(db_url))
    service.ingest(sample_dir / "items.csv", sample_dir / "events.csv")
    yield service
    service.close()
    service.registry.close()


def test_construction_opens_nothing(tmp_path: Path, workspace: Path) -> None:
    store = tmp_path / "deep" / "shop.db"
    service = RecommenderService(f"sqlite:///{store}")
    assert not store.parent.exists() and not workspace.exists()
    assert service.counts() == {"items": 0, "events": 0, "users": 0}  # opens on first use
    assert store.is_file() and not workspace.exists()  # the store needs no registry
    assert service.status()["model"] is None
    assert (workspace / "registry.db").is_file()
    service.close()


def test_train_registers_activates_and_serving_follows_the_active_entry(
    shop: RecommenderService,
) -> None:
    assert shop.active_entry() is None
    with pytest.raises(ModelNotFoundError, match="aigc recommend train"):
        shop.for_user("u01")

    first = shop.train(fast())
    entry = first.entry
    assert (entry.name, entry.app, entry.role, entry.base) == (
        "recommend-1",
        "recommend",
        "recommender",
        "hashing",
    )
    assert entry.active and entry.path == Path(first.report["path"]).resolve()
    assert entry.info["n_items"] == 122 and entry.info["n_events"] == first.report["events"]
    assert entry.info["interest"] is None and entry.info["train_seconds"] >= 0
    assert "candidate_recall" in entry.metrics
    assert (first.report["name"], first.report["version"]) == ("recommend-1", 1)
    assert shop.model() is first.model  # the fitted model is served without a reload

    second = shop.train(fast(l2=10.0))
    assert second.entry.name == "recommend-2" and shop.model() is second.model
    assert not shop.registry.get("recommend-1").active

    ModelRegistry(shop.registry.url).activate("recommend-1")  # e.g. `aigc models activate`
    served = shop.model()
    assert served is not second.model and served.config.l2 == 100.0
    assert shop.model() is served  # loaded once
    assert shop.status()["model"]["name"] == "recommend-1"
    assert [(e.name, e.active) for e in shop.models()] == [
        ("recommend-2", False),
        ("recommend-1", True),
    ]
    assert shop.activate("recommend-2").active and shop.model().config.l2 == 10.0
    shop.registry.register("faq", "/tmp/faq", app="core", role="sft", base="x")
    with pytest.raises(AigcError, match="'faq' is a core sft model, not a recommender"):
        shop.activate("faq")


def test_serving_validates_k_and_never_returns_the_item_itself(
    shop: RecommenderService,
) -> None:
    shop.train(fast())
    for bad in (0, -3):
        with pytest.raises(AigcError, match="k must be at least 1"):
            shop.for_user("u01", k=bad)
        with pytest.raises(AigcError, match="k must be at least 1"):
            shop.similar("spa-01", k=bad)
    everything = shop.similar("spa-01", k=500)
    assert len(everything) == 121 and "spa-01" not in {r.item_id for r in everything}
    recs = shop.for_user("u01", k=3, explain=True)
    assert len(recs.items) == 3 and all(r.reasons for r in recs.items)
    typed = shop.for_user(None, events=[("coo-02", 1.0), ("coo-08", 2.0)], k=3)
    assert typed.note is None and len(typed.items) == 3


def test_a_missing_model_folder_is_a_one_line_error(shop: RecommenderService) -> None:
    trained = shop.train(fast())
    fresh = RecommenderService(shop.url, registry=ModelRegistry(shop.registry.url))
    shutil.rmtree(trained.entry.path)
    with pytest.raises(ModelNotFoundError, match=r"recommend-1.*missing.*aigc models activate"):
        fresh.model()
    fresh.close()
    fresh.registry.close()


def _legacy_rows(service: RecommenderService, paths: list[Path]) -> None:
    """What 0.1.0's `train` left: one rec_models row per version, newest last."""
    with service.db.session() as s:
        for n, path in enumerate(paths):
            report = {"items": 122, "users": 30, "events": 384, "candidate_recall": 0.5 + n / 10}
            s.add(
                RecModel(
                    path=str(path),
                    created_at=utcnow(),
                    n_items=122,
                    n_users=30,
                    n_events=384,
                    train_seconds=1.5,
                    info=json.dumps(report),
                )
            )


def test_rec_models_rows_are_imported_once_the_newest_active(
    shop: RecommenderService, tmp_path: Path
) -> None:
    saved = shop.train(fast()).entry.path
    shop.registry.delete("recommend-1", force=True, remove_files=False)  # a 0.1.0 workspace
    _legacy_rows(shop, [tmp_path / "gone", saved])

    service = RecommenderService(shop.url, registry=ModelRegistry(shop.registry.url))
    entry = service.active_entry()
    assert entry is not None and entry.name == "recommend-2" and entry.path == saved
    assert entry.base == "hashing" and entry.metrics == {"candidate_recall": 0.6}
    assert entry.info["rec_models_id"] == 2 and entry.info["n_events"] == 384
    old = service.registry.get("recommend-1")
    assert not old.active and old.path == (tmp_path / "gone").resolve() and old.base == ""
    assert service.for_user("u01", k=2).items  # serves the imported model
    with service.db.session() as s:
        assert [r.registry_name for r in s.query(RecModel).order_by(RecModel.id)] == [
            "recommend-1",
            "recommend-2",
        ]

    service.registry.delete("recommend-1", remove_files=False)
    again = RecommenderService(shop.url, registry=ModelRegistry(shop.registry.url))
    assert again.active_entry() == entry  # nothing imported twice, the deleted one stays gone
    assert [e.name for e in again.registry.list(app="recommend")] == ["recommend-2"]
    assert again.train(fast()).entry.name == "recommend-3"  # ids continue
    for opened in (service, again):
        opened.close()
        opened.registry.close()


def test_an_imported_row_never_takes_a_name_or_the_active_slot_from_another_model(
    shop: RecommenderService, tmp_path: Path
) -> None:
    trained = shop.train(fast()).entry  # recommend-1, active
    _legacy_rows(shop, [tmp_path / "other-store-v1"])
    service = RecommenderService(shop.url, registry=ModelRegistry(shop.registry.url))
    assert service.active_entry() == service.registry.get(trained.name)
    imported = service.registry.get("recommend-1-2")
    assert imported.path == (tmp_path / "other-store-v1").resolve() and not imported.active
    service.close()
    service.registry.close()


def test_deprecated_module_functions_still_work(shop: RecommenderService) -> None:
    db = shop.db
    with pytest.warns(DeprecationWarning, match="RecommenderService.train"):
        model, report = service_module.train(db, fast())
    assert report["version"] == 1 and model.info["items"] == 122
    with pytest.warns(DeprecationWarning, match="RecommenderService.model"):
        loaded = service_module.load_active(db)
    assert loaded is model
    with pytest.warns(DeprecationWarning):
        assert service_module.load_active(db) is loaded  # still cached per store
    assert service_module.user_events(db, "u01")[0][0].startswith("spa-")

"""ModelRegistry on SQLite and PostgreSQL: one active model per (app, role), safe deletes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from aigc_apps.errors import AigcError, NotFoundError
from aigc_apps.registry import ModelRegistry, ModelRow


def _folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    return folder


def test_one_active_model_per_app_and_role(db_url: str, tmp_path: Path) -> None:
    reg = ModelRegistry(db_url)
    assert reg.active("sentiment", "sentiment") is None
    reg.register("fin-1", _folder(tmp_path, "fin-1"), app="sentiment", role="sentiment",
                 base="minilm-l6", labels=["negative", "positive"], metrics={"f1": 0.7})
    reg.register("fin-2", _folder(tmp_path, "fin-2"), app="sentiment", role="sentiment",
                 base="minilm-l6")
    reg.register("enc", _folder(tmp_path, "enc"), app="support", role="encoder", base="minilm-l6")
    reg.register("draft", tmp_path / "draft", app="support", role="encoder", base="minilm-l6",
                 activate=False)

    assert reg.active("sentiment", "sentiment").name == "fin-2"  # the newest trained is used
    assert reg.active("support", "encoder").name == "enc"  # an inactive one changes nothing
    assert [e.name for e in reg.list(app="sentiment")] == ["fin-2", "fin-1"]
    first = reg.get("fin-1")
    assert first.labels == ["negative", "positive"] and first.metrics == {"f1": 0.7}

    reg.activate("fin-1")
    assert reg.active("sentiment", "sentiment").name == "fin-1"
    assert not reg.get("fin-2").active

    with pytest.raises(AigcError, match=r"active sentiment sentiment model.*--force"):
        reg.delete("fin-1")
    assert (tmp_path / "fin-1").is_dir()
    reg.delete("fin-2")
    assert not (tmp_path / "fin-2").exists()
    reg.delete("fin-1", force=True, remove_files=False)
    assert (tmp_path / "fin-1").is_dir() and reg.active("sentiment", "sentiment") is None
    with pytest.raises(NotFoundError, match="'fin-1' is not registered"):
        reg.get("fin-1")
    reg.close()


def test_the_database_refuses_two_active_models_for_one_role(db_url: str, tmp_path: Path) -> None:
    reg = ModelRegistry(db_url)
    reg.register("a", tmp_path / "a", app="recommend", role="recommender", base="x")
    with pytest.raises(IntegrityError), reg.db.session() as s:
        s.add(ModelRow(name="b", app="recommend", role="recommender", base="x", path="/b",
                       active=True))
    reg.register("b", tmp_path / "b", app="recommend", role="recommender", base="x")
    assert [e.name for e in reg.list() if e.active] == ["b"]
    reg.close()


def test_reregistering_under_another_role_steps_down(db_url: str, tmp_path: Path) -> None:
    reg = ModelRegistry(db_url)
    reg.register("m", tmp_path / "m", app="core", role="sft", base="x")
    entry = reg.register("m", tmp_path / "m", app="core", role="classify", base="x",
                         activate=False)
    assert not entry.active and reg.active("core", "sft") is None
    reg.close()


def test_construction_touches_no_database(tmp_path: Path) -> None:
    ModelRegistry(f"sqlite:///{tmp_path / 'nowhere' / 'r.db'}")
    assert not (tmp_path / "nowhere").exists()


def test_register_without_replace_refuses_a_taken_name(db_url: str, tmp_path: Path) -> None:
    from aigc_apps.registry import NameTakenError

    reg = ModelRegistry(db_url)
    reg.register("recommend-1", tmp_path / "a", app="recommend", role="recommender", base="x")
    with pytest.raises(NameTakenError, match="already registered"):
        reg.register("recommend-1", tmp_path / "b", app="recommend", role="recommender",
                     base="x", replace=False)
    assert reg.get("recommend-1").path == (tmp_path / "a").resolve()
    reg.close()

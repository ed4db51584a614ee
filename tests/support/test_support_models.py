"""0.1.0 kept the support bot's tuned encoder and generator adapter in its settings table;
the first open moves them into the model registry, once, and they keep serving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aigc_apps.registry import ModelRegistry
from apps.support import SupportService
from apps.support.active_models import import_legacy_models, register_model
from apps.support.store import Setting, load_settings, open_db

LEGACY = ("active_encoder", "base_encoder", "generator_adapter", "generator_base")


def write_legacy_keys(db_url: str, folders: dict[str, Path | str]) -> None:
    db = open_db(db_url)
    with db.session() as s:
        for key, value in folders.items():
            s.merge(Setting(key=key, value=json.dumps(str(value))))
        s.merge(Setting(key="doc_threshold", value="0.4"))
    db.dispose()


@pytest.fixture
def legacy(tmp_path: Path) -> dict[str, Path | str]:
    encoder, adapter = tmp_path / "encoder-20261101-120000", tmp_path / "generator-20261101-1300"
    encoder.mkdir()
    adapter.mkdir()
    return {
        "active_encoder": encoder,
        "base_encoder": "minilm-l6",
        "generator_adapter": adapter,
        "generator_base": "smollm2-135m-instruct",
    }


def test_first_open_imports_the_legacy_keys_once(
    db_url: str, legacy: dict[str, Path | str]
) -> None:
    write_legacy_keys(db_url, legacy)
    service = SupportService(db_url)
    assert service.encoder_name == str(legacy["active_encoder"])
    assert service.adapter == str(legacy["generator_adapter"])
    assert service.llm == "smollm2-135m-instruct" and service.doc_threshold == 0.4
    registry = ModelRegistry()
    entries = {e.role: e for e in registry.list(app="support")}
    assert set(entries) == {"encoder", "generator"} and all(e.active for e in entries.values())
    assert entries["encoder"].name == "support-encoder-20261101-120000"
    assert entries["encoder"].base == "minilm-l6"
    assert entries["generator"].base == "smollm2-135m-instruct"
    stored = load_settings(service.db)
    assert not set(LEGACY) & set(stored) and stored["doc_threshold"] == 0.4  # others stay
    service.close()

    # a crash between the registry write and the key deletion: importing again adds nothing
    write_legacy_keys(db_url, legacy)
    again = SupportService(db_url)
    assert again.encoder_name == str(legacy["active_encoder"])
    assert len(registry.list(app="support")) == 2
    assert not set(LEGACY) & set(load_settings(again.db))
    again.close()
    registry.close()


def test_an_import_does_not_unseat_an_active_model(
    db_url: str, legacy: dict[str, Path | str], tmp_path: Path
) -> None:
    registry = ModelRegistry()
    newer = tmp_path / "encoder-newer"
    newer.mkdir()
    register_model(registry, "encoder", newer, base="minilm-l6")
    write_legacy_keys(db_url, legacy)
    db = open_db(db_url)
    imported = import_legacy_models(db, registry, registry.settings)
    assert {e.role: e.active for e in imported} == {"encoder": False, "generator": True}
    active = registry.active("support", "encoder")
    assert active is not None and active.path == newer.resolve()
    assert import_legacy_models(db, registry, registry.settings) == []  # the keys are gone
    db.dispose()
    registry.close()


def test_a_name_taken_by_another_folder_gets_a_suffix(tmp_path: Path) -> None:
    registry = ModelRegistry()
    first, second = tmp_path / "a" / "encoder-x", tmp_path / "b" / "encoder-x"
    names = [register_model(registry, "encoder", p, base="minilm-l6").name for p in (first, second)]
    assert names == ["support-encoder-x", "support-encoder-x-2"]
    assert register_model(registry, "encoder", first, base="minilm-l6").name == names[0]
    registry.close()

"""AdapterRegistry on SQLite and PostgreSQL: upsert, list, get, delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigc_apps.errors import NotFoundError
from aigc_apps.finetune import AdapterRegistry

# The deprecated view over the model registry, kept for callers of the earlier release: what
# it still promises is tested here (tests/test_deprecations.py checks that it warns).
pytestmark = pytest.mark.filterwarnings("ignore:AdapterRegistry is deprecated:DeprecationWarning")


def test_register_list_get_delete(db_url: str, tmp_path: Path) -> None:
    reg = AdapterRegistry(url=db_url)
    folder = tmp_path / "support-bot"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    reg.register(
        "support-bot",
        folder,
        base_model="tiny",
        task="sft",
        data_hash="abc",
        metrics={"eval_loss": 1.5},
    )
    reg.register("triage", tmp_path / "triage", base_model="minilm-l6", task="classify")
    assert {a.name for a in reg.list()} == {"support-bot", "triage"}
    assert [a.name for a in reg.list(task="classify")] == ["triage"]

    info = reg.get("support-bot")
    assert info.path == folder.resolve() and info.metrics == {"eval_loss": 1.5}
    assert info.base_model == "tiny" and info.data_hash == "abc"

    # re-registering a name replaces the row instead of failing on the unique name
    reg.register("support-bot", folder, base_model="tiny", task="sft", metrics={"eval_loss": 0.9})
    assert reg.get("support-bot").metrics == {"eval_loss": 0.9}
    assert len(reg.list()) == 2
    assert reg.list()[0].name == "support-bot"  # newest first

    reg.delete("triage")
    reg.delete("support-bot", remove_files=True)
    assert not folder.exists() and reg.list() == []
    with pytest.raises(NotFoundError, match="'support-bot' is not registered"):
        reg.get("support-bot")
    with pytest.raises(NotFoundError):
        reg.delete("support-bot")
    reg.close()

    # a second registry on the same store sees nothing left behind, and the schema is reused
    again = AdapterRegistry(url=db_url)
    assert again.list() == []
    again.close()


def test_default_store_is_in_the_workspace(workspace: Path) -> None:
    reg = AdapterRegistry()
    reg.register("a", workspace / "a", base_model="b", task="sft")
    assert (workspace / "registry.db").exists()
    assert AdapterRegistry().get("a").task == "sft"

"""The `aigc demo` step runs through the service on its own store and registry."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from apps.recommender import demo as demo_module
from apps.recommender.recommender import RecommenderConfig


def test_demo_keeps_its_model_out_of_the_workspace_registry(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fast(**_: Any) -> RecommenderConfig:  # no MiniLM: the demo's steps, not its model
        return RecommenderConfig(encoder="hashing", interest=None)

    monkeypatch.setattr(demo_module, "RecommenderConfig", fast)
    out = io.StringIO()
    demo_module.demo(Console(file=out, width=200))
    text = out.getvalue()
    assert "Trained recommend-1" in text and "For u01" in text and "Voyager" in text
    assert (workspace / "demo" / "registry.db").is_file()
    assert not (workspace / "registry.db").exists()  # the workspace's active model is untouched

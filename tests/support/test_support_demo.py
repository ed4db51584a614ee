"""The `aigc demo` step runs through SupportService on its own database and default models."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from aigc_apps.registry import ModelRegistry
from apps.support.demo import demo


def test_demo_answers_three_ways_with_the_default_models(
    workspace: Path,
    tmp_path: Path,
    tiny_encoder_dir: Path,
    tiny_llm_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIGC_ENCODER", str(tiny_encoder_dir))
    monkeypatch.setenv("AIGC_LLM", str(tiny_llm_dir))
    registry = ModelRegistry()  # a tuned support encoder the demo must not pick up
    registry.register(
        "support-broken", tmp_path / "missing", app="support", role="encoder", base="x"
    )
    registry.close()
    out = io.StringIO()
    demo(Console(file=out, width=200))
    text = out.getvalue()
    assert "example questions for 42 answer templates" in text
    assert "template answer" in text and "handoff" in text and "flagged for a human" in text
    assert (workspace / "support-demo.db").is_file()

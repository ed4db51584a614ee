"""The `aigc demo` step runs through SupportService on its own database and default models."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from aigc_apps.registry import ModelRegistry
from apps.support.demo import demo


def test_demo_answers_three_ways_and_hands_off_with_the_default_models(
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
    assert "template answer" in text and "handoff" in text
    assert "state pending_human, number 1 in the queue" in text
    assert "held by dana" in text and "(no bot answer:" in text
    assert "pending_human->human (agent:dana), human->bot (agent:dana)" in text
    assert "state bot | path template" in text
    assert (workspace / "support-demo.db").is_file()

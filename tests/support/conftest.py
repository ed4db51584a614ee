"""Support-bot fixtures: a bag-of-words test encoder (fast, and similar texts really are
similar, so answer paths can be tested for meaning) and a bot on the sample knowledge base."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.support import Calibration, SupportService
from tests.support.bow import KB, BowEncoder
from tests.support.sample_kb import SampleKnowledge

__all__ = ["KB", "BowEncoder"]  # where other test packages import them from


@pytest.fixture
def bow() -> BowEncoder:
    return BowEncoder()


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    """A private copy of the sample knowledge base (tests may edit it)."""
    return Path(shutil.copytree(KB, tmp_path / "kb"))


@pytest.fixture
def bot(
    db_url: str, kb_dir: Path, tiny_llm_dir: Path, sample_knowledge: SampleKnowledge
) -> Iterator[SupportService]:
    """Bot on the sample knowledge base (``kb_dir`` ingested: a copy of the session's ingest,
    see :mod:`tests.support.sample_kb`); its threshold means 'nearly the same words'.

    The generator is the tiny test LM, so no test loads the bundled SmolLM2 by accident.
    """
    b = SupportService(db_url, encoder=BowEncoder(), llm=str(tiny_llm_dir), max_new_tokens=8)  # type: ignore[arg-type]
    sample_knowledge.ingest_into(b, kb_dir)
    b.calibration = Calibration(w_score=40.0, w_margin=0.0, bias=-30.0, threshold=0.5)
    b.doc_threshold = 0.3
    yield b
    b.close()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tiny_encoder_dir: Path, tiny_llm_dir: Path) -> None:
    """The CLI's default models are the tiny test ones."""
    monkeypatch.setenv("AIGC_ENCODER", str(tiny_encoder_dir))
    monkeypatch.setenv("AIGC_LLM", str(tiny_llm_dir))

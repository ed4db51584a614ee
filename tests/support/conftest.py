"""Support-bot fixtures: a bag-of-words test encoder (fast, and similar texts really are
similar, so answer paths can be tested for meaning) and a bot on the sample knowledge base."""

from __future__ import annotations

import re
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from apps.support import Calibration, SupportService

KB = Path(__file__).resolve().parents[2] / "data" / "support" / "kb"
STOP = {
    "the",
    "a",
    "an",
    "is",
    "are",
    "i",
    "my",
    "me",
    "do",
    "you",
    "your",
    "can",
    "to",
    "of",
    "it",
    "on",
    "in",
    "for",
    "how",
    "what",
    "and",
    "or",
    "with",
    "we",
    "our",
    "this",
    "be",
}


class BowEncoder:
    """Hashed bag of words, L2-normalised: a deterministic stand-in for a sentence encoder."""

    name = "bow-test"
    dim = 256

    def encode(self, texts: str | list[str], batch_size: int = 64) -> np.ndarray:
        items = [texts] if isinstance(texts, str) else list(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for row, text in enumerate(items):
            out[row, 0] = 0.05  # never a zero vector
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                if word not in STOP:
                    out[row, 1 + zlib.crc32(word.encode()) % (self.dim - 1)] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture
def bow() -> BowEncoder:
    return BowEncoder()


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    """A private copy of the sample knowledge base (tests may edit it)."""
    return Path(shutil.copytree(KB, tmp_path / "kb"))


@pytest.fixture
def bot(db_url: str, kb_dir: Path, tiny_llm_dir: Path) -> Iterator[SupportService]:
    """Bot on the sample knowledge base; its threshold means 'nearly the same words'.

    The generator is the tiny test LM, so no test loads the bundled SmolLM2 by accident.
    """
    b = SupportService(db_url, encoder=BowEncoder(), llm=str(tiny_llm_dir), max_new_tokens=8)  # type: ignore[arg-type]
    b.ingest([kb_dir])
    b.calibration = Calibration(w_score=40.0, w_margin=0.0, bias=-30.0, threshold=0.5)
    b.doc_threshold = 0.3
    yield b
    b.close()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tiny_encoder_dir: Path, tiny_llm_dir: Path) -> None:
    """The CLI's default models are the tiny test ones."""
    monkeypatch.setenv("AIGC_ENCODER", str(tiny_encoder_dir))
    monkeypatch.setenv("AIGC_LLM", str(tiny_llm_dir))

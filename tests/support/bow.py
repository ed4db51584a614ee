"""A bag-of-words test encoder (fast, and similar texts really are similar, so answer paths
can be tested for meaning) and the sample knowledge base's folder."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np

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

"""Fixtures for the sentiment app: a migrated store, a deterministic scorer and encoder."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from aigc_apps.store import Database
from apps.sentiment.scoring import LexiconScorer
from apps.sentiment.store import open_db


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_db(db_url)
    yield database
    database.dispose()


@pytest.fixture
def scorer() -> LexiconScorer:
    return LexiconScorer()


class HashEncoder:
    """Bag-of-words hashed into 64 dims: texts sharing words get similar unit vectors."""

    dim = 64

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
            out[i] /= np.linalg.norm(out[i]) or 1.0
        return out


@pytest.fixture
def hash_encoder() -> HashEncoder:
    return HashEncoder()

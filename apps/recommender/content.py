"""Content model: item texts embedded into a FAISS index, user profiles from recent items.

It is what makes cold start work: a new item has a text vector the moment it is indexed,
and a new user's free-text interest is embedded with the same encoder.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path
from typing import Protocol

import numpy as np

from aigc_apps.index import VectorIndex

from .dataset import Catalog


class TextEncoder(Protocol):
    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...


class HashingEncoder:
    """Bag of words and word pairs hashed into ``dim`` buckets, L2-normalised.

    No model, no download, deterministic: used by tests and as ``encoder="hashing"`` when a
    catalogue is too large or the machine too small for a neural encoder.
    """

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim

    def _bucket(self, token: str) -> tuple[int, float]:
        h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
        return h % self.dim, 1.0 if (h >> 40) & 1 else -1.0

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [
                w[:-1] if len(w) > 3 and w.endswith("s") else w
                for w in re.findall(r"[a-z0-9]+", text.lower())
            ]
            for token in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
                col, sign = self._bucket(token)
                out[row, col] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def load_encoder(name: str) -> TextEncoder:
    """``hashing`` or any name the core Encoder accepts (alias, folder)."""
    if name == "hashing":
        return HashingEncoder()
    from aigc_apps.embeddings import Encoder

    return Encoder.from_pretrained(name)


def recency_weights(n: int, half_life: float) -> np.ndarray:
    """Weight 1 for the latest of ``n`` events, halving every ``half_life`` events back."""
    return (0.5 ** (np.arange(n)[::-1] / half_life)).astype(np.float32)


class ContentModel:
    """Item text vectors (``V``, one row per catalogue item) plus a VectorIndex over them."""

    def __init__(self, encoder: TextEncoder, recent: int = 30, half_life: float = 5.0) -> None:
        self.encoder = encoder
        self.recent = recent
        self.half_life = half_life

    def fit(self, catalog: Catalog, vectors: np.ndarray | None = None) -> ContentModel:
        self.V = (
            vectors
            if vectors is not None
            else np.asarray(self.encoder.encode(catalog.texts(), batch_size=64), dtype=np.float32)
        )
        self.index = VectorIndex(self.V.shape[1])
        self.index.add(np.arange(len(self.V), dtype=np.int64), self.V)
        return self

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.encoder.encode(texts), dtype=np.float32)

    def profile(self, history: np.ndarray) -> np.ndarray:
        """Recency-weighted mean of the last ``recent`` items' vectors, normalised."""
        recent = np.asarray(history, dtype=np.int64)[-self.recent :]
        if len(recent) == 0:
            return np.zeros(self.V.shape[1], dtype=np.float32)
        vec = recency_weights(len(recent), self.half_life) @ self.V[recent]
        return vec / max(float(np.linalg.norm(vec)), 1e-12)

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.index.search(vector[None, :].astype(np.float32), min(k, len(self.V)))
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def save(self, folder: Path) -> None:
        np.save(folder / "content_vectors.npy", self.V)
        self.index.save(folder / "content.faiss")

    @classmethod
    def load(cls, folder: Path, encoder: TextEncoder) -> ContentModel:
        model = cls(encoder)
        model.V = np.load(folder / "content_vectors.npy")
        model.index = VectorIndex.load(folder / "content.faiss")
        return model

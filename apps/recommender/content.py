"""Content model: item text vectors in a vector store, user profiles from recent items.

It is what makes cold start work: a new item has a text vector the moment it is indexed,
and a new user's free-text interest is embedded with the same encoder.

The store (text candidates: :meth:`ContentModel.search`) is built on first use on the
configured backend (``AIGC_VECTOR_BACKEND``): a FAISS index in memory (saved beside the
model as ``content.faiss``), or a pgvector table in the recommender's PostgreSQL database.
That table is named after a hash of the vectors, so every worker serving the same model
shares one table, filled once; a retrained or grown model gets its own.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from aigc_apps.errors import DataError
from aigc_apps.settings import Settings, get_settings
from aigc_apps.store import Database
from aigc_apps.vectorstore import FaissStore, PgVectorStore, VectorStore

from .dataset import Catalog

APPROX_THRESHOLD = 20000  # exact search below this many items, on either backend
_databases: dict[str, Database] = {}
_lock = threading.Lock()


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


def load_encoder(name: str, settings: Settings | None = None) -> TextEncoder:
    """``hashing`` or any name the core Encoder accepts (alias, folder; ``settings`` say
    where aliases live)."""
    if name == "hashing":
        return HashingEncoder()
    from aigc_apps.embeddings import Encoder

    return Encoder.from_pretrained(name, settings=settings)


def recency_weights(n: int, half_life: float) -> np.ndarray:
    """Weight 1 for the latest of ``n`` events, halving every ``half_life`` events back."""
    return (0.5 ** (np.arange(n)[::-1] / half_life)).astype(np.float32)


def content_store(
    vectors: np.ndarray, settings: Settings, path: Path | None = None
) -> VectorStore:
    """A store holding ``vectors`` under their row numbers, on ``settings``' backend.

    FAISS: read from ``path`` when that file exists, else built in memory. pgvector: the
    table ``aigc_vec_recommend_content_<hash of the vectors>`` in the recommender's
    database, filled (in one transaction) unless another worker already has.
    """
    dim = int(vectors.shape[1])
    rows = np.arange(len(vectors), dtype=np.int64)
    if settings.vector_backend == "pgvector":
        url = settings.db_url("recommend")
        settings.check_vector_backend(url)
        with _lock:
            db = _databases.get(url) or _databases.setdefault(url, Database(url))
        key = hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
        pg = PgVectorStore(
            db, f"recommend_content_{key.hexdigest()[:16]}", dim, approx_threshold=APPROX_THRESHOLD
        )
        if len(pg) != len(vectors):
            with db.session() as s:
                pg.clear(session=s)
                pg.add(rows, vectors, session=s)
        return pg
    try:
        store = FaissStore(dim, path, approx_threshold=APPROX_THRESHOLD)
    except DataError:  # unreadable: the index is derived from the saved vectors anyway
        store = FaissStore(dim, approx_threshold=APPROX_THRESHOLD)
    if len(store) != len(vectors):  # no file (or one of another catalogue): build it
        store = FaissStore(dim, approx_threshold=APPROX_THRESHOLD)
        store.add(rows, vectors)
    return store


class ContentModel:
    """Item text vectors (``V``, one row per catalogue item) plus a vector store over them."""

    def __init__(
        self, encoder: TextEncoder, recent: int = 30, half_life: float = 5.0,
        *, settings: Settings | None = None,
    ) -> None:
        self.encoder = encoder
        self.settings = settings or get_settings()  # the vector store's backend
        self.recent = recent
        self.half_life = half_life
        self._store: VectorStore | None = None
        self._path: Path | None = None  # a saved content.faiss to read

    def fit(self, catalog: Catalog, vectors: np.ndarray | None = None) -> ContentModel:
        self.V = (
            vectors
            if vectors is not None
            else np.asarray(self.encoder.encode(catalog.texts(), batch_size=64), dtype=np.float32)
        )
        self._store, self._path = None, None
        return self

    @property
    def index(self) -> VectorStore:
        """The item vectors' store (ids are catalogue rows), built on first use."""
        if self._store is None:
            self._store = content_store(self.V, self.settings, self._path)
        return self._store

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
        """Text candidates: the ``k`` items nearest ``vector`` (rows, similarities)."""
        scores, ids = self.index.search(vector[None, :].astype(np.float32), min(k, len(self.V)))
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def save(self, folder: Path) -> None:
        np.save(folder / "content_vectors.npy", self.V)
        store = self.index if isinstance(self.index, FaissStore) else None
        if store is None:  # a FAISS copy beside the model, for a workspace without pgvector
            store = FaissStore(self.V.shape[1], approx_threshold=APPROX_THRESHOLD)
            store.add(np.arange(len(self.V), dtype=np.int64), self.V)
        store.index.save(folder / "content.faiss")

    @classmethod
    def load(
        cls, folder: Path, encoder: TextEncoder, settings: Settings | None = None
    ) -> ContentModel:
        model = cls(encoder, settings=settings)
        model.V = np.load(folder / "content_vectors.npy")
        model._path = folder / "content.faiss"
        return model

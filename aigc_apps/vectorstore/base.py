"""What every vector store shares: the protocol, input checks and the filter columns.

Checks run before anything is written, so a bad call (a vector of the wrong dimension, a
negative id, an unknown filter) raises one :class:`~aigc_apps.errors.DataError` line and
leaves the store as it was, on either backend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sqlalchemy.orm import Session

from aigc_apps.errors import AigcError, DataError

# Filter columns a store keeps beside each vector, usable in ``search(where=...)``. A fixed
# set, so PostgreSQL gets real columns and FAISS the same semantics.
FILTER_COLUMNS = ("app", "kind", "source")
COLLECTION_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")

PGVECTOR_HINT = (
    "CREATE EXTENSION vector needs pgvector on the server: apt install "
    "postgresql-<version>-pgvector, or a managed PostgreSQL with pgvector"
)


class PgVectorMissingError(AigcError):
    """The PostgreSQL server has no ``vector`` extension (or it cannot be created)."""


@runtime_checkable
class VectorStore(Protocol):
    """Cosine-similarity search over L2-normalised float32 vectors keyed by int64 ids."""

    dim: int
    created: bool  # whether the store started empty (no file, a new table)

    def add(
        self,
        ids: Sequence[int] | np.ndarray,
        vectors: np.ndarray,
        *,
        session: Session | None = None,
        **filters: str,
    ) -> None:
        """Insert or replace ``ids``; ``filters`` (app, kind, source) apply to all of them."""
        ...

    def remove(self, ids: Sequence[int] | np.ndarray, *, session: Session | None = None) -> int:
        """Remove ``ids`` (unknown ones are ignored); returns how many were removed."""
        ...

    def search(
        self, queries: np.ndarray, k: int, *, where: Mapping[str, str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` shaped ``[n, k]``, best first; missing results are id -1."""
        ...

    def vectors(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The stored (normalised) vectors of ``ids``; KeyError for an unknown id."""
        ...

    def ids(self) -> np.ndarray: ...

    def clear(self, *, session: Session | None = None) -> None:
        """Remove every vector (a rebuild starts from here)."""
        ...

    def flush(self) -> None:
        """Make added vectors durable (FAISS writes its file; PostgreSQL has committed)."""
        ...

    def __len__(self) -> int: ...

    def __contains__(self, item: object) -> bool: ...


def check_vectors(vectors: Any, dim: int, what: str = "vectors") -> np.ndarray:
    """``vectors`` as a C-contiguous ``[n, dim]`` float32 copy, each row L2-normalised."""
    arr = np.asarray(vectors)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        got = arr.shape[-1] if arr.ndim else 0
        raise DataError(
            f"{what} have dimension {got} (shape {tuple(np.shape(vectors))}), expected {dim}"
        )
    if arr.size and not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{what} must be numbers, got dtype {arr.dtype}")
    arr = np.array(arr, dtype=np.float32, order="C", copy=True)
    if not np.isfinite(arr).all():
        raise DataError(f"{what} contain NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    arr /= np.where(norms > 0, norms, 1.0)
    return arr


class BadIdsError(DataError, ValueError):
    """Ids that no index can take: a one-line error for the CLI, a ValueError for code
    that hands arrays to :class:`~aigc_apps.index.VectorIndex` directly."""


def check_ids(ids: Any) -> np.ndarray:
    """``ids`` as a one-dimensional int64 array of non-negative integers."""
    arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
    if arr.ndim != 1:
        raise BadIdsError(f"ids must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise BadIdsError(f"ids must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise BadIdsError("ids must be non-negative (-1 marks a missing search result)")
    return arr


def check_pairs(ids: Any, vectors: Any, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Checked ids and vectors; within one call the last occurrence of an id wins."""
    id_arr, vecs = check_ids(ids), check_vectors(vectors, dim)
    if len(id_arr) != len(vecs):
        raise DataError(f"got {len(id_arr)} ids for {len(vecs)} vectors")
    _, last = np.unique(id_arr[::-1], return_index=True)
    keep = np.sort(len(id_arr) - 1 - last)
    return id_arr[keep], vecs[keep]


def check_filters(filters: Mapping[str, Any] | None) -> dict[str, str]:
    out = {}
    for key, value in (filters or {}).items():
        if key not in FILTER_COLUMNS:
            raise DataError(f"unknown vector filter {key!r}; known: {', '.join(FILTER_COLUMNS)}")
        if value is not None:
            out[key] = str(value)
    return out


def check_collection(name: str) -> str:
    if not COLLECTION_RE.match(name):
        raise DataError(
            f"collection {name!r}: use lowercase letters, digits and _ (at most 48, "
            "starting with a letter)"
        )
    return name


def check_k(k: int) -> int:
    if k < 1:
        raise DataError(f"k must be >= 1, got {k}")
    return int(k)

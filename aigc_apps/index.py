"""A FAISS vector index with stable external ids, that grows from exact to approximate search.

Vectors are L2-normalised float32 and compared by inner product (cosine similarity). Small
collections use an exact ``IndexFlatIP``; at ``approx_threshold`` vectors and beyond the index
is rebuilt as HNSW (``IndexHNSWFlat``, M=32), which keeps search fast on large catalogues.
Both sit inside an ``IndexIDMap2`` so callers only ever see their own int64 ids.
HNSW cannot delete, so removing or replacing vectors there rebuilds the graph from the stored
vectors; that is rare in the apps (catalogues are re-indexed in bulk) and keeps the code simple.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from aigc_apps.errors import DataError
from aigc_apps.fileio import atomic_write

FORMAT_VERSION = 1
HNSW_M = 32

_threads_set = False


def _configure_threads() -> None:
    """Use the CPUs this process may run on, unless OMP_NUM_THREADS already says otherwise."""
    global _threads_set
    if _threads_set or os.environ.get("OMP_NUM_THREADS"):
        return
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    faiss.omp_set_num_threads(max(1, n))
    _threads_set = True


def sidecar_path(path: str | Path) -> Path:
    """The JSON metadata file that accompanies the FAISS file ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


class VectorIndex:
    """Cosine-similarity search over vectors keyed by int64 ids.

    ``approx_threshold``: from this many vectors on, search is approximate (HNSW).
    ``ef_search``: HNSW search breadth; higher is more exact and slower.
    """

    def __init__(self, dim: int, approx_threshold: int = 20000, ef_search: int = 64) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if approx_threshold < 1:
            raise ValueError(f"approx_threshold must be >= 1, got {approx_threshold}")
        _configure_threads()
        self.dim = int(dim)
        self.approx_threshold = int(approx_threshold)
        self.ef_search = int(ef_search)
        self._ids: set[int] = set()
        self._index = self._new_index(0)

    # -- construction -------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"flat"`` (exact) or ``"hnsw"`` (approximate)."""
        return "hnsw" if isinstance(self._inner(), faiss.IndexHNSW) else "flat"

    def _inner(self) -> Any:
        return faiss.downcast_index(self._index.index)

    def _new_index(self, count: int) -> Any:
        inner: Any
        if count >= self.approx_threshold:
            inner = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efSearch = self.ef_search
        else:
            inner = faiss.IndexFlatIP(self.dim)
        return faiss.IndexIDMap2(inner)

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        """All (ids, vectors) currently held, in insertion order."""
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        vecs = self._index.index.reconstruct_n(0, self._index.ntotal) if len(ids) else (
            np.zeros((0, self.dim), dtype=np.float32)
        )
        return ids, vecs

    def _rebuild(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Build a fresh index of the right kind for ``len(ids)`` vectors."""
        self._index = self._new_index(len(ids))
        if len(ids):
            self._index.add_with_ids(vecs, ids)
        self._ids = set(ids.tolist())

    def rebuild(self) -> None:
        """Rebuild from the stored vectors, choosing exact or HNSW by the current size."""
        self._rebuild(*self._stored())

    # -- validation ---------------------------------------------------------------------
    def _check_vectors(self, vectors: Any, what: str = "vectors") -> np.ndarray:
        arr = np.asarray(vectors)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"{what} must have shape [n, {self.dim}], got {np.shape(vectors)}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"{what} must be floating point, got dtype {arr.dtype}")
        arr = np.array(arr, dtype=np.float32, order="C", copy=True)
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} contain NaN or infinite values")
        faiss.normalize_L2(arr)
        return arr

    @staticmethod
    def _check_ids(ids: Iterable[int] | np.ndarray) -> np.ndarray:
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        if arr.ndim != 1:
            raise ValueError(f"ids must be one-dimensional, got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"ids must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        if arr.size and arr.min() < 0:
            raise ValueError("ids must be non-negative (-1 marks a missing search result)")
        return arr

    # -- mutation -----------------------------------------------------------------------
    def add(self, ids: Iterable[int] | np.ndarray, vectors: Any) -> None:
        """Add vectors under ``ids``; an id already present gets the new vector."""
        id_arr = self._check_ids(ids)
        vecs = self._check_vectors(vectors)
        if len(id_arr) != len(vecs):
            raise ValueError(f"got {len(id_arr)} ids for {len(vecs)} vectors")
        if not len(id_arr):
            return
        # Within one call the last occurrence of an id wins.
        _, last = np.unique(id_arr[::-1], return_index=True)
        keep = np.sort(len(id_arr) - 1 - last)
        id_arr, vecs = id_arr[keep], vecs[keep]
        replaced = [i for i in id_arr.tolist() if i in self._ids]
        new_total = len(self._ids) - len(replaced) + len(id_arr)
        needs_rebuild = (self.kind == "hnsw" and replaced) or (
            self.kind == "flat" and new_total >= self.approx_threshold
        )
        if needs_rebuild:
            old_ids, old_vecs = self._stored()
            mask = ~np.isin(old_ids, id_arr)
            self._rebuild(
                np.concatenate([old_ids[mask], id_arr]),
                np.concatenate([old_vecs[mask], vecs]),
            )
            return
        if replaced:
            self._index.remove_ids(np.asarray(replaced, dtype=np.int64))
        self._index.add_with_ids(vecs, id_arr)
        self._ids.update(id_arr.tolist())

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Remove ``ids`` (unknown ids are ignored); returns how many were removed."""
        id_arr = self._check_ids(ids)
        gone = np.unique(id_arr[np.isin(id_arr, list(self._ids))]) if self._ids else id_arr[:0]
        if not len(gone):
            return 0
        if self.kind == "flat":
            self._index.remove_ids(gone)
            self._ids.difference_update(gone.tolist())
        else:
            old_ids, old_vecs = self._stored()
            mask = ~np.isin(old_ids, gone)
            self._rebuild(old_ids[mask], old_vecs[mask])
        return len(gone)

    # -- queries ------------------------------------------------------------------------
    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar stored vectors for each query.

        Returns ``(scores, ids)``, both shaped ``[n, k]`` (a single 1-D query gives n=1), best
        first. Missing results (fewer than ``k`` vectors) have id -1 and score ``-inf``.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = self._check_vectors(queries, "queries")
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        kk = min(k, self._index.ntotal)
        if kk and len(q):
            if self.kind == "hnsw":
                self._inner().hnsw.efSearch = max(self.ef_search, kk)
            s, i = self._index.search(q, kk)
            found = i >= 0
            scores[:, :kk] = np.where(found, s, -np.inf)
            ids[:, :kk] = i
        return scores, ids

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: object) -> bool:
        return isinstance(item, (int, np.integer)) and int(item) in self._ids

    def ids(self) -> np.ndarray:
        """Stored ids (int64), in insertion order."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def vectors(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """The stored (normalised) vectors of ``ids``; KeyError for an unknown id."""
        id_arr = self._check_ids(ids)
        missing = [i for i in id_arr.tolist() if i not in self._ids]
        if missing:
            raise KeyError(f"ids not in index: {missing[:5]}")
        out = np.zeros((len(id_arr), self.dim), dtype=np.float32)
        for row, i in enumerate(id_arr.tolist()):
            out[row] = self._index.reconstruct(i)
        return out

    def __repr__(self) -> str:
        return f"VectorIndex(dim={self.dim}, n={len(self)}, kind={self.kind!r})"

    # -- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the FAISS file ``path`` and its ``<path>.json`` sidecar, each atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "dim": self.dim,
            "kind": self.kind,
            "approx_threshold": self.approx_threshold,
            "ef_search": self.ef_search,
            "count": len(self),
        }
        atomic_write(path, faiss.serialize_index(self._index).tobytes())
        atomic_write(sidecar_path(path), json.dumps(meta, indent=2).encode())
        return path

    @classmethod
    def load(cls, path: str | Path, dim: int | None = None) -> VectorIndex:
        """Read an index written by :meth:`save`; ``dim`` (if given) must match the file."""
        path, side = Path(path), sidecar_path(path)
        for p in (path, side):
            if not p.is_file():
                raise DataError(f"{p}: index file not found")
        try:
            meta = json.loads(side.read_text())
            stored_dim, count = int(meta["dim"]), int(meta["count"])
            version = int(meta["format_version"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{side}: corrupt index metadata ({exc})") from exc
        if version > FORMAT_VERSION:
            raise DataError(f"{side}: index format {version} is newer than this SDK supports")
        try:
            raw = faiss.deserialize_index(np.frombuffer(path.read_bytes(), dtype=np.uint8))
        except (RuntimeError, ValueError) as exc:
            raise DataError(f"{path}: corrupt FAISS index ({str(exc).splitlines()[0]})") from exc
        if not isinstance(raw, faiss.IndexIDMap2) or raw.d != stored_dim:
            raise DataError(f"{path}: not an index written by VectorIndex.save")
        if raw.ntotal != count:
            raise DataError(f"{path}: holds {raw.ntotal} vectors but {side} says {count}")
        if dim is not None and dim != stored_dim:
            raise DataError(f"{path}: index has dimension {stored_dim}, expected {dim}")
        self = cls(
            stored_dim,
            approx_threshold=int(meta.get("approx_threshold", 20000)),
            ef_search=int(meta.get("ef_search", 64)),
        )
        self._index = raw
        self._ids = set(self.ids().tolist())
        return self

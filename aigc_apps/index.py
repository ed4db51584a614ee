"""A FAISS vector index with stable external ids, exact when small and HNSW when large.

Vectors are L2-normalised float32 and compared by inner product (cosine similarity). Below
``approx_threshold`` vectors the index is an exact ``IndexFlatIP``; when a collection first
reaches the threshold it is converted once to HNSW (``IndexHNSWFlat``, M=32), which then
grows incrementally: HNSW inserts into its graph natively, so adding 1,000 vectors to a
100k index costs 1,000 insertions, not a rebuild. Both sit inside an ``IndexIDMap2`` so
callers only ever see their own int64 ids.

HNSW was chosen over IVF because it needs no training (IVF's clusters go stale as a
collection grows and must be retrained) and its recall does not depend on how far the
data has drifted from a training sample. HNSW cannot delete, so removing or replacing a
vector *tombstones* its slot: the slot's id becomes a negative sentinel (``-2 - slot``),
and searches pass FAISS an ``IDSelector`` that skips negative ids while still walking
through them in the graph. When tombstones exceed ``COMPACT_FRACTION`` of the slots the
index is rebuilt from the live vectors, choosing exact or HNSW by the live count.
``ef_search`` defaults to 64: on ``benchmarks/retrieval_scale.py``'s validation queries
(MiniLM vectors) recall@10 reached 0.95 at ef 16 for 10k and 32 for 100k, so 64 leaves a
margin; its 1M set of perturbed copies needed 768 (raise it for such collections).
``rebuilds`` counts whole-index rebuilds.
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
from aigc_apps.vectorstore.base import check_ids

FORMAT_VERSION = 2  # 2: HNSW files may hold tombstoned slots (negative ids)
HNSW_M = 32
COMPACT_FRACTION = 0.25
SMALL_BATCH = 8  # fewer queries than this are searched single-threaded
_MAX_ID = 2**63 - 1

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
        if ef_search < 1:
            raise ValueError(f"ef_search must be >= 1, got {ef_search}")
        _configure_threads()
        self.dim = int(dim)
        self.approx_threshold = int(approx_threshold)
        self.ef_search = int(ef_search)
        self.rebuilds = 0
        self._ids: set[int] = set()
        self._dead = 0  # tombstoned HNSW slots
        self._index = self._new_index(0)

    # -- construction -------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"flat"`` (exact) or ``"hnsw"`` (approximate)."""
        return "hnsw" if isinstance(self._inner(), faiss.IndexHNSW) else "flat"

    @property
    def tombstones(self) -> int:
        """Removed or replaced vectors still in the HNSW graph (skipped by searches)."""
        return self._dead

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

    def _slot_ids(self) -> np.ndarray:
        """The id of every slot (negative for a tombstone), in insertion order."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        """All live (ids, vectors), in insertion order."""
        ids = self._slot_ids()
        if not len(ids):
            return ids, np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._index.index.reconstruct_n(0, self._index.ntotal)
        live = ids >= 0
        return ids[live], vecs[live]

    def _rebuild(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Build a fresh index of the right kind for ``len(ids)`` vectors."""
        self._index = self._new_index(len(ids))
        if len(ids):
            self._index.add_with_ids(vecs, ids)
        self._ids = set(ids.tolist())
        self._dead = 0
        self.rebuilds += 1

    def rebuild(self) -> None:
        """Rebuild from the live vectors, choosing exact or HNSW by their count."""
        self._rebuild(*self._stored())

    def _tombstone(self, gone: np.ndarray) -> None:
        """Mark the slots of ``gone`` (present ids) dead without touching the HNSW graph."""
        slot_ids = self._slot_ids()
        slots = np.flatnonzero(np.isin(slot_ids, gone))
        slot_ids[slots] = -2 - slots
        faiss.copy_array_to_vector(slot_ids, self._index.id_map)
        self._index.construct_rev_map()
        self._dead += len(slots)
        self._ids.difference_update(gone.tolist())

    def _maybe_compact(self) -> None:
        if self._dead and self._dead > COMPACT_FRACTION * self._index.ntotal:
            self.rebuild()

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

    def _present(self, ids: np.ndarray) -> np.ndarray:
        return np.unique(np.fromiter((i for i in ids.tolist() if i in self._ids), np.int64))

    # -- mutation -----------------------------------------------------------------------
    def add(self, ids: Iterable[int] | np.ndarray, vectors: Any) -> None:
        """Add vectors under ``ids``; an id already present gets the new vector."""
        id_arr = check_ids(ids)
        vecs = self._check_vectors(vectors)
        if len(id_arr) != len(vecs):
            raise ValueError(f"got {len(id_arr)} ids for {len(vecs)} vectors")
        if not len(id_arr):
            return
        # Within one call the last occurrence of an id wins.
        _, last = np.unique(id_arr[::-1], return_index=True)
        keep = np.sort(len(id_arr) - 1 - last)
        id_arr, vecs = id_arr[keep], vecs[keep]
        replaced = self._present(id_arr)
        new_total = len(self._ids) - len(replaced) + len(id_arr)
        if self.kind == "flat" and new_total >= self.approx_threshold:
            old_ids, old_vecs = self._stored()  # the one conversion from exact to HNSW
            mask = ~np.isin(old_ids, id_arr)
            self._rebuild(
                np.concatenate([old_ids[mask], id_arr]),
                np.concatenate([old_vecs[mask], vecs]),
            )
            return
        if len(replaced):
            if self.kind == "flat":
                self._index.remove_ids(replaced)
            else:
                self._tombstone(replaced)
        self._index.add_with_ids(vecs, id_arr)
        self._ids.update(id_arr.tolist())
        self._maybe_compact()

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Remove ``ids`` (unknown ids are ignored); returns how many were removed."""
        gone = self._present(check_ids(ids))
        if not len(gone):
            return 0
        if self.kind == "flat":
            self._index.remove_ids(gone)
            self._ids.difference_update(gone.tolist())
        else:
            self._tombstone(gone)
            self._maybe_compact()
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
        kk = min(k, len(self._ids))
        if kk and len(q):
            params = None
            if self.kind == "hnsw":
                params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
                params.efSearch = max(self.ef_search, kk)
                if self._dead:
                    params.sel = faiss.IDSelectorRange(0, _MAX_ID)  # skip tombstones
            s, i = self._search(q, kk, params)
            found = i >= 0
            scores[:, :kk] = np.where(found, s, -np.inf)
            ids[:, :kk] = np.where(found, i, -1)
        return scores, ids

    def _search(self, q: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        """A few queries run on this thread alone: OpenMP's workers gain nothing on one query
        and, when the cores are busy, waiting for them costs 10-50x the search itself."""
        if len(q) >= SMALL_BATCH:
            return self._index.search(q, k, params=params)
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # per calling thread in OpenMP
        try:
            return self._index.search(q, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: object) -> bool:
        return isinstance(item, (int, np.integer)) and int(item) in self._ids

    def ids(self) -> np.ndarray:
        """Stored ids (int64), in insertion order (a replaced id moves to the end)."""
        slot_ids = self._slot_ids()
        return slot_ids[slot_ids >= 0] if self._dead else slot_ids

    def vectors(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """The stored (normalised) vectors of ``ids``; KeyError for an unknown id."""
        id_arr = check_ids(ids)
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
    def save(self, path: str | Path, *, encoder: str | None = None) -> Path:
        """Write the FAISS file ``path`` and its ``<path>.json`` sidecar, each atomically;
        ``encoder`` (a name or tag) is recorded so :meth:`load` can refuse another one's."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "dim": self.dim,
            "kind": self.kind,
            "approx_threshold": self.approx_threshold,
            "ef_search": self.ef_search,
            "count": len(self),
            "tombstones": self._dead,
            "encoder": encoder,
        }
        atomic_write(path, faiss.serialize_index(self._index).tobytes())
        atomic_write(sidecar_path(path), json.dumps(meta, indent=2).encode())
        return path

    @classmethod
    def load(
        cls, path: str | Path, dim: int | None = None, *, encoder: str | None = None
    ) -> VectorIndex:
        """Read an index written by :meth:`save` (format 1 or 2); ``dim`` and ``encoder`` (if
        given) must match the file's, else :class:`DataError` (the file is left as it is)."""
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
        if dim is not None and dim != stored_dim:
            raise DataError(f"{path}: index has dimension {stored_dim}, expected {dim}")
        stored_encoder = meta.get("encoder")
        if encoder is not None and stored_encoder is not None and encoder != stored_encoder:
            raise DataError(
                f"{path}: index built by encoder {stored_encoder}, not {encoder}: rebuild it"
            )
        try:
            raw = faiss.deserialize_index(np.frombuffer(path.read_bytes(), dtype=np.uint8))
        except (RuntimeError, ValueError) as exc:
            raise DataError(f"{path}: corrupt FAISS index ({str(exc).splitlines()[0]})") from exc
        if not isinstance(raw, faiss.IndexIDMap2) or raw.d != stored_dim:
            raise DataError(f"{path}: not an index written by VectorIndex.save")
        self = cls(
            stored_dim,
            approx_threshold=int(meta.get("approx_threshold", 20000)),
            ef_search=int(meta.get("ef_search", 64)),
        )
        self._index = raw
        slot_ids = self._slot_ids()
        live = slot_ids[slot_ids >= 0]
        if len(live) != count:
            raise DataError(f"{path}: holds {len(live)} vectors but {side} says {count}")
        self._ids = set(live.tolist())
        self._dead = len(slot_ids) - len(live)
        if self._dead and self.kind != "hnsw":
            raise DataError(f"{path}: not an index written by VectorIndex.save")
        return self

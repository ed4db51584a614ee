"""The FAISS backend: a :class:`~aigc_apps.index.VectorIndex` in this process, optionally
kept in a file under ``AIGC_HOME``.

Filter values are kept per id in a JSON sidecar (``<path>.store.json``, with the encoder
tag); a filtered search over-fetches and post-filters until it has ``k`` matches or has
seen every vector, so it returns exactly what an exact SQL ``WHERE`` would. FAISS has no
transactions: a ``session`` passed to :meth:`FaissStore.add` is ignored, and callers save
(:meth:`FaissStore.flush`) after their transaction commits and reload after a rollback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.orm import Session

from aigc_apps.errors import DataError
from aigc_apps.fileio import atomic_write

from .base import FILTER_COLUMNS, check_filters, check_ids, check_k, check_pairs, check_vectors

if TYPE_CHECKING:
    from aigc_apps.index import VectorIndex

STORE_FORMAT = 1


def store_sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".store.json")


class FaissStore:
    """The :class:`VectorStore` API over a FAISS index (exact, then HNSW from
    ``approx_threshold`` vectors on). ``path``: the index file, read if it exists and
    written by :meth:`flush`; ``None`` keeps the store in memory. ``replace=True``: the
    caller rebuilds the collection, so an existing file is not read (the next flush
    overwrites it). ``created``: whether the store started empty, with no file to read."""

    def __init__(
        self,
        dim: int,
        path: str | Path | None = None,
        *,
        approx_threshold: int = 20000,
        ef_search: int = 64,
        tag: str | None = None,
        replace: bool = False,
    ) -> None:
        from aigc_apps.index import VectorIndex, sidecar_path

        if dim <= 0:
            raise DataError(f"dim must be positive, got {dim}")
        self.dim = int(dim)
        self.path = Path(path) if path is not None else None
        self.tag = tag
        self.filters: dict[str, dict[int, str]] = {c: {} for c in FILTER_COLUMNS}
        self.index: VectorIndex = VectorIndex(
            self.dim, approx_threshold=approx_threshold, ef_search=ef_search
        )
        # half a pair of files is damage, which VectorIndex.load reports, not a first use
        found = self.path is not None and (self.path.exists() or sidecar_path(self.path).exists())
        self.created = replace or not found
        if not self.created and self.path is not None:
            self._read(self.path)

    def __repr__(self) -> str:
        return f"FaissStore({str(self.path) if self.path else 'memory'!r}, dim={self.dim})"

    def _read(self, path: Path) -> None:
        from aigc_apps.index import VectorIndex

        side = store_sidecar(path)
        meta = json.loads(side.read_text()) if side.is_file() else {}
        stored_tag = meta.get("tag")
        if self.tag is not None and stored_tag is not None and stored_tag != self.tag:
            raise DataError(
                f"{path}: index built by encoder {stored_tag}, not {self.tag}: rebuild it "
                "for the new encoder"
            )
        index = VectorIndex.load(path)
        if index.dim != self.dim:
            raise DataError(
                f"{path}: index holds {index.dim}-dimensional vectors (built by "
                f"{stored_tag or 'another encoder'}), expected {self.dim}: rebuild it"
            )
        self.index = index
        self.tag = self.tag or stored_tag
        self.filters = {
            c: {int(i): v for i, v in meta.get("filters", {}).get(c, {}).items()}
            for c in FILTER_COLUMNS
        }

    # -- mutation -----------------------------------------------------------------------
    def add(
        self,
        ids: Sequence[int] | np.ndarray,
        vectors: np.ndarray,
        *,
        session: Session | None = None,
        **filters: str,
    ) -> None:
        """Insert or replace ``ids`` in memory (``session`` is ignored: see the module)."""
        id_arr, vecs = check_pairs(ids, vectors, self.dim)
        values = check_filters(filters)
        if not len(id_arr):
            return
        self.index.add(id_arr, vecs)
        for col, per_id in self.filters.items():
            for i in id_arr.tolist():
                if col in values:
                    per_id[i] = values[col]
                else:
                    per_id.pop(i, None)

    def remove(self, ids: Sequence[int] | np.ndarray, *, session: Session | None = None) -> int:
        id_arr = check_ids(ids)
        for per_id in self.filters.values():
            for i in id_arr.tolist():
                per_id.pop(i, None)
        return self.index.remove(id_arr)

    def clear(self, *, session: Session | None = None) -> None:
        self.remove(self.index.ids())

    def flush(self) -> None:
        """Write the index file and its sidecar (each atomically), if the store has a path."""
        if self.path is None:
            return
        self.index.save(self.path, encoder=self.tag)
        meta = {
            "format_version": STORE_FORMAT,
            "tag": self.tag,
            "filters": {c: {str(i): v for i, v in d.items()} for c, d in self.filters.items() if d},
        }
        atomic_write(store_sidecar(self.path), json.dumps(meta).encode())

    # -- queries ------------------------------------------------------------------------
    def _matches(self, ids: np.ndarray, conds: Mapping[str, str]) -> np.ndarray:
        keep = ids >= 0
        for col, value in conds.items():
            per_id = self.filters[col]
            keep &= np.array([per_id.get(i) == value for i in ids.tolist()], dtype=bool)
        return keep

    def search(
        self, queries: np.ndarray, k: int, *, where: Mapping[str, str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest vectors per query (cosine similarity), best first; ``where``
        keeps only vectors added with those filter values."""
        k = check_k(k)
        q = check_vectors(queries, self.dim, "queries")
        conds = check_filters(where)
        if not conds:
            return self.index.search(q, k)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        total = len(self.index)
        for row in range(len(q)):
            fetch = min(total, 4 * k)
            while fetch:
                s, i = self.index.search(q[row], fetch)
                keep = self._matches(i[0], conds)
                if keep.sum() >= k or fetch >= total:
                    n = min(k, int(keep.sum()))
                    scores[row, :n], ids[row, :n] = s[0][keep][:n], i[0][keep][:n]
                    break
                fetch = min(total, fetch * 4)
        return scores, ids

    def vectors(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        return self.index.vectors(check_ids(ids))

    def ids(self) -> np.ndarray:
        return self.index.ids()

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, item: object) -> bool:
        return item in self.index

"""VectorIndex past the exact threshold: incremental HNSW growth, tombstones, recall, files."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from aigc_apps.errors import DataError
from aigc_apps.index import COMPACT_FRACTION, VectorIndex, sidecar_path


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want, strict=True)]))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_adding_1000_to_a_100k_index_inserts_them_without_a_rebuild(
    rng: np.random.Generator,
) -> None:
    data = _unit(rng, 101_000, 8)
    index = VectorIndex(8)  # default threshold 20,000
    index.add(np.arange(100_000), data[:100_000])
    assert index.kind == "hnsw" and index.rebuilds == 1  # the one flat -> HNSW conversion
    wrapper, inner = index._index, index._index.index
    index.add(np.arange(100_000, 101_000), data[100_000:])
    assert index.rebuilds == 1
    assert index._index is wrapper and index._index.index.this == inner.this  # same graph
    assert index._index.ntotal == 101_000 and len(index) == 101_000
    _, ids = index.search(data[100_000:100_100], 1)
    assert (ids[:, 0] == np.arange(100_000, 100_100)).mean() >= 0.95


def test_growing_in_batches_converts_once(rng: np.random.Generator) -> None:
    data = _unit(rng, 3000, 16)
    index = VectorIndex(16, approx_threshold=1000)
    for start in range(0, 3000, 250):
        index.add(np.arange(start, start + 250), data[start : start + 250])
    assert index.kind == "hnsw" and index.rebuilds == 1 and len(index) == 3000
    assert index.ids().tolist() == list(range(3000))


def test_hnsw_recall_at_10_against_exact(rng: np.random.Generator) -> None:
    data, queries = _unit(rng, 5000, 32), _unit(rng, 200, 32)
    exact = VectorIndex(32, approx_threshold=10**9)
    approx = VectorIndex(32, approx_threshold=1000)
    exact.add(range(5000), data)
    approx.add(range(5000), data)
    assert exact.kind == "flat" and approx.kind == "hnsw"
    _, want = exact.search(queries, 10)
    _, got = approx.search(queries, 10)
    assert _recall(got, want) >= 0.95


def test_remove_and_replace_tombstone_without_rebuilding(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    data = _unit(rng, 2000, 16)
    index = VectorIndex(16, approx_threshold=500)
    index.add(range(2000), data)
    assert index.rebuilds == 1
    gone = np.arange(0, 200, 2)
    assert index.remove(gone) == 100 and index.remove(gone) == 0
    index.add([1, 3], data[[1000, 1001]])  # replaced: old slots become tombstones
    assert index.rebuilds == 1 and index.tombstones == 102 and len(index) == 1900
    assert 0 not in index and 1 in index
    np.testing.assert_allclose(index.vectors([1]), data[[1000]], atol=1e-6)
    _, ids = index.search(data[:200], 10)
    assert not np.isin(ids, gone).any() and (ids >= 0).all()
    assert 3 not in ids[3]  # 3's old vector is gone
    _, ids = index.search(data[1000], 2)
    assert sorted(ids[0].tolist()) == [1, 1000]  # 1 now holds 1000's vector
    assert sorted(index.ids().tolist()) == sorted(set(range(2000)) - set(gone.tolist()))
    assert index.ids()[-2:].tolist() == [1, 3]

    path = index.save(tmp_path / "t.faiss", encoder="enc-a")
    loaded = VectorIndex.load(path, dim=16, encoder="enc-a")
    assert loaded.tombstones == 102 and len(loaded) == 1900
    for got, want in zip(loaded.search(data[:50], 10), index.search(data[:50], 10), strict=True):
        np.testing.assert_array_equal(got, want)


def test_tombstones_past_the_fraction_compact(rng: np.random.Generator) -> None:
    data = _unit(rng, 1000, 16)
    index = VectorIndex(16, approx_threshold=100)
    index.add(range(1000), data)
    limit = int(COMPACT_FRACTION * 1000)
    index.remove(range(limit))
    assert index.rebuilds == 1 and index.tombstones == limit
    index.remove([limit])  # one past the fraction
    assert index.rebuilds == 2 and index.tombstones == 0 and index._index.ntotal == len(index)
    _, ids = index.search(data[limit + 1 :], 1)
    assert (ids[:, 0] == np.arange(limit + 1, 1000)).mean() >= 0.95


def test_k_beyond_the_live_vectors_pads(rng: np.random.Generator) -> None:
    data = _unit(rng, 40, 8)
    index = VectorIndex(8, approx_threshold=10)
    index.add(range(40), data)
    index.remove(range(5))
    scores, ids = index.search(data[10], 50)
    assert sorted(ids[0, :35].tolist()) == list(range(5, 40))
    assert (ids[0, 35:] == -1).all() and np.isneginf(scores[0, 35:]).all()


def test_another_dim_or_encoder_is_refused_and_the_file_kept(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    index = VectorIndex(8)
    index.add([1, 2], _unit(rng, 2, 8))
    path = index.save(tmp_path / "i.faiss", encoder="minilm-l6|384")
    before = (path.read_bytes(), sidecar_path(path).read_bytes())
    with pytest.raises(DataError, match="dimension 8, expected 384"):
        VectorIndex.load(path, dim=384)
    with pytest.raises(DataError, match="encoder minilm-l6\\|384, not other\\|8"):
        VectorIndex.load(path, encoder="other|8")
    assert (path.read_bytes(), sidecar_path(path).read_bytes()) == before


def test_a_format_1_file_still_loads(tmp_path: Path, rng: np.random.Generator) -> None:
    data = _unit(rng, 300, 8)
    raw = faiss.IndexIDMap2(faiss.IndexHNSWFlat(8, 32, faiss.METRIC_INNER_PRODUCT))
    raw.add_with_ids(data, np.arange(300, dtype=np.int64))
    path = tmp_path / "old.faiss"
    path.write_bytes(faiss.serialize_index(raw).tobytes())
    meta = {"format_version": 1, "dim": 8, "kind": "hnsw", "approx_threshold": 100,
            "ef_search": 64, "count": 300}  # fmt: skip
    sidecar_path(path).write_text(json.dumps(meta))
    index = VectorIndex.load(path)
    assert index.kind == "hnsw" and len(index) == 300 and index.tombstones == 0
    index.remove([7])
    _, ids = index.search(data[7], 1)
    assert ids[0, 0] != 7
    meta["format_version"] = 3
    sidecar_path(path).write_text(json.dumps(meta))
    with pytest.raises(DataError, match="format 3 is newer"):
        VectorIndex.load(path)

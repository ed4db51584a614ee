from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aigc_apps.errors import AigcError
from aigc_apps.index import VectorIndex, sidecar_path


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_add_search_finds_itself_with_external_ids(rng: np.random.Generator) -> None:
    vecs = _unit(rng, 50, 16)
    ids = np.arange(1000, 1050)
    index = VectorIndex(16)
    index.add(ids, vecs)
    scores, found = index.search(vecs[:5], k=3)
    assert scores.shape == found.shape == (5, 3)
    assert found[:, 0].tolist() == [1000, 1001, 1002, 1003, 1004]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    assert len(index) == 50 and 1010 in index and 10 not in index
    assert index.ids().tolist() == ids.tolist()
    assert index.kind == "flat"


def test_vectors_are_normalised_and_single_query_works() -> None:
    index = VectorIndex(2)
    index.add([7, 8], np.array([[3.0, 0.0], [0.0, 0.5]]))  # float64, not unit length
    scores, ids = index.search(np.array([2.0, 0.1]), k=1)
    assert ids.tolist() == [[7]]
    assert scores[0, 0] == pytest.approx(2.0 / np.hypot(2.0, 0.1), abs=1e-5)
    np.testing.assert_allclose(index.vectors([7]), [[1.0, 0.0]], atol=1e-6)


def test_padding_when_fewer_than_k(rng: np.random.Generator) -> None:
    index = VectorIndex(8)
    scores, ids = index.search(_unit(rng, 2, 8), k=4)  # empty index
    assert (ids == -1).all() and np.isneginf(scores).all()
    index.add([1, 2], _unit(rng, 2, 8))
    scores, ids = index.search(_unit(rng, 1, 8), k=4)
    assert sorted(ids[0, :2].tolist()) == [1, 2]
    assert ids[0, 2:].tolist() == [-1, -1]
    assert np.isfinite(scores[0, :2]).all() and np.isneginf(scores[0, 2:]).all()


def test_readding_an_id_replaces_its_vector(rng: np.random.Generator) -> None:
    a, b = _unit(rng, 2, 8)
    index = VectorIndex(8)
    index.add([5, 6], np.stack([a, b]))
    index.add([5], b[None])
    assert len(index) == 2
    np.testing.assert_allclose(index.vectors([5])[0], b, atol=1e-6)
    _, ids = index.search(a, k=2)
    assert set(ids[0].tolist()) == {5, 6}
    index.add([9, 9], np.stack([a, b]))  # duplicates within one call: last wins
    np.testing.assert_allclose(index.vectors([9])[0], b, atol=1e-6)
    assert len(index) == 3


def test_remove(rng: np.random.Generator) -> None:
    vecs = _unit(rng, 10, 8)
    index = VectorIndex(8)
    index.add(range(10), vecs)
    assert index.remove([3, 4, 99]) == 2
    assert len(index) == 8 and 3 not in index
    _, ids = index.search(vecs[3], k=10)
    assert 3 not in ids and 4 not in ids
    assert (ids[0, 8:] == -1).all()


@pytest.mark.parametrize(
    ("ids", "vectors", "match"),
    [
        ([1, 2], np.zeros((3, 4), np.float32), "2 ids for 3 vectors"),
        ([1], np.zeros((1, 5), np.float32), r"shape \[n, 4\]"),
        ([1], np.zeros((1, 4), np.int64), "floating point"),
        ([1.5], np.ones((1, 4), np.float32), "integers"),
        ([-1], np.ones((1, 4), np.float32), "non-negative"),
        ([1], np.full((1, 4), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_input_is_a_value_error(ids: list, vectors: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VectorIndex(4).add(ids, vectors)


def test_save_load_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    index = VectorIndex(16, approx_threshold=500)
    index.add(np.arange(0, 200, 2), _unit(rng, 100, 16))
    index.remove([4, 6])
    queries = _unit(rng, 7, 16)
    path = index.save(tmp_path / "sub" / "items.faiss")
    meta_file = sidecar_path(path)
    assert meta_file.is_file()
    loaded = VectorIndex.load(path, dim=16)
    assert len(loaded) == 98 and loaded.approx_threshold == 500 and 4 not in loaded
    for got, want in zip(loaded.search(queries, 5), index.search(queries, 5), strict=True):
        np.testing.assert_array_equal(got, want)
    assert not list(path.parent.glob("*.tmp"))


def test_load_errors_name_the_file(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "x.faiss"
    with pytest.raises(AigcError, match=r"x\.faiss"):
        VectorIndex.load(path)
    index = VectorIndex(4)
    index.add([1], _unit(rng, 1, 4))
    index.save(path)
    with pytest.raises(AigcError, match="dimension 4, expected 8"):
        VectorIndex.load(path, dim=8)
    path.write_bytes(b"not a faiss index at all")
    with pytest.raises(AigcError, match=r"x\.faiss: corrupt"):
        VectorIndex.load(path)
    index.save(path)
    sidecar_path(path).write_text("{broken")
    with pytest.raises(AigcError, match=r"x\.faiss\.json: corrupt"):
        VectorIndex.load(path)


def test_hnsw_recall_against_exact(rng: np.random.Generator) -> None:
    data, queries = _unit(rng, 2000, 32), _unit(rng, 100, 32)
    exact, approx = VectorIndex(32), VectorIndex(32, approx_threshold=100, ef_search=64)
    exact.add(range(2000), data)
    approx.add(range(2000), data)
    assert exact.kind == "flat" and approx.kind == "hnsw"
    _, want = exact.search(queries, 10)
    _, got = approx.search(queries, 10)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want, strict=True)])
    assert recall >= 0.9


def test_switches_kind_across_threshold_and_back(tmp_path: Path, rng: np.random.Generator) -> None:
    vecs = _unit(rng, 30, 8)
    index = VectorIndex(8, approx_threshold=20)
    index.add(range(15), vecs[:15])
    assert index.kind == "flat"
    index.add(range(15, 30), vecs[15:])
    assert index.kind == "hnsw" and len(index) == 30
    _, ids = index.search(vecs, 1)
    assert ids[:, 0].tolist() == list(range(30))
    index.add([0], vecs[1][None])  # replacement in HNSW rebuilds
    np.testing.assert_allclose(index.vectors([0])[0], vecs[1], atol=1e-6)
    loaded = VectorIndex.load(index.save(tmp_path / "h.faiss"))
    assert loaded.kind == "hnsw" and len(loaded) == 30
    assert index.remove(range(15)) == 15
    assert index.kind == "flat" and len(index) == 15
    _, ids = index.search(vecs[15:], 1)
    assert ids[:, 0].tolist() == list(range(15, 30))

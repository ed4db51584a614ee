"""Both vector-store backends behave the same: upsert, remove, filters, errors; pgvector
writes join the caller's transaction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from aigc_apps.errors import AigcError, DataError
from aigc_apps.store import Database
from aigc_apps.vectorstore import (
    FaissStore,
    PgVectorMissingError,
    PgVectorStore,
    VectorStore,
    open_vector_store,
)
from tests.conftest import PG_URL

DIM = 16


@pytest.fixture(params=["faiss", "pgvector"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A factory of empty stores (same collection, same file) on each backend."""
    if request.param == "faiss":
        yield lambda dim=DIM, **kw: FaissStore(dim, tmp_path / "c.faiss", **kw)
        return
    db = Database(request.getfixturevalue("pgvector_url"))
    yield lambda dim=DIM, **kw: PgVectorStore(db, "things", dim, **kw)
    db.dispose()


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def exact_top(vecs: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-(vecs @ q), kind="stable")[:k]
    return ids[order]


def test_round_trip(make_store) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    store: VectorStore = make_store()
    assert isinstance(store, VectorStore) and store.dim == DIM and len(store) == 0
    vecs = unit(rng, 50)
    ids = np.arange(100, 150, dtype=np.int64)
    store.add(ids[:30], vecs[:30] * 3.0, kind="example")  # normalised on the way in
    store.add(ids[30:], vecs[30:], kind="chunk", app="support")
    store.flush()
    assert len(store) == 50 and sorted(store.ids().tolist()) == ids.tolist()
    assert 120 in store and 7 not in store
    np.testing.assert_allclose(store.vectors([101, 140]), vecs[[1, 40]], atol=1e-6)

    q = unit(rng, 3)
    scores, got = store.search(q, 5)
    assert got.shape == scores.shape == (3, 5) and got.dtype == np.int64
    for row in range(3):
        assert got[row].tolist() == exact_top(vecs, ids, q[row], 5).tolist()
        np.testing.assert_allclose(scores[row], np.sort(vecs @ q[row])[::-1][:5], atol=1e-5)

    # filters: only vectors added with that value, exactly
    _, chunk_ids = store.search(q, 5, where={"kind": "chunk", "app": "support"})
    for row in range(3):
        assert chunk_ids[row].tolist() == exact_top(vecs[30:], ids[30:], q[row], 5).tolist()
    _, none = store.search(q[:1], 3, where={"app": "sentiment"})
    assert none.tolist() == [[-1, -1, -1]]

    # upsert: a replaced id moves to its new vector, the count stays
    store.add([100], q[:1], kind="chunk")
    scores, got = store.search(q[0], 1)
    assert got[0, 0] == 100 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert len(store) == 50
    # more than stored: padded with -1
    scores, got = store.search(q[0], 60)
    assert (got[0, 50:] == -1).all() and np.isneginf(scores[0, 50:]).all()

    assert store.remove([100, 101, 999]) == 2
    assert len(store) == 48 and 100 not in store
    store.flush()
    again = make_store()  # reopened from the file / table
    assert sorted(again.ids().tolist()) == sorted(store.ids().tolist())
    _, got = again.search(q, 5, where={"kind": "chunk"})
    assert 100 not in got


def test_bad_input_writes_nothing(make_store) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    store = make_store()
    store.add([1, 2], unit(rng, 2))
    with pytest.raises(DataError, match=r"dimension 8 .*expected 16"):
        store.add([3, 4], unit(rng, 2, dim=8))
    with pytest.raises(DataError, match=r"dimension 8 .*expected 16"):
        store.search(unit(rng, 1, dim=8), 3)
    with pytest.raises(DataError, match="2 ids for 3 vectors"):
        store.add([5, 6], unit(rng, 3))
    with pytest.raises(DataError, match="non-negative"):
        store.add([-1], unit(rng, 1))
    with pytest.raises(DataError, match="NaN"):
        store.add([7], np.full((1, DIM), np.nan))
    with pytest.raises(DataError, match="unknown vector filter 'colour'"):
        store.add([8], unit(rng, 1), colour="red")
    assert sorted(store.ids().tolist()) == [1, 2]


def test_other_encoder_is_a_clear_error(make_store) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    store = make_store(tag="minilm|16")
    store.add([1], unit(rng, 1))
    store.flush()
    with pytest.raises(DataError, match=r"16-dimensional .* expected 8"):
        make_store(dim=8)
    with pytest.raises(DataError, match=r"built by encoder minilm\|16, not bow\|16"):
        make_store(tag="bow|16")
    assert len(make_store(tag="minilm|16")) == 1


def test_pgvector_writes_join_the_transaction(pgvector_url: str) -> None:
    rng = np.random.default_rng(3)
    db = Database(pgvector_url)
    with db.session() as s:
        s.execute(sa.text("CREATE TABLE notes (id bigint PRIMARY KEY, body text)"))
    store = PgVectorStore(db, "notes", DIM)
    store.add([1], unit(rng, 1))
    with pytest.raises(RuntimeError), db.session() as s:
        s.execute(sa.text("INSERT INTO notes VALUES (2, 'two')"))
        store.add([2], unit(rng, 1), session=s)
        assert store.remove([1], session=s) == 1
        raise RuntimeError("the request failed after writing")
    assert store.ids().tolist() == [1]  # rolled back: no vector added, none removed
    with db.session() as s:
        s.execute(sa.text("INSERT INTO notes VALUES (2, 'two')"))
        store.add([2], unit(rng, 1), session=s)
    assert store.ids().tolist() == [1, 2]
    db.dispose()


def test_pgvector_bulk_load_uses_hnsw(pgvector_url: str) -> None:
    """A large first load builds the HNSW graph after the copy; searches use it."""
    rng = np.random.default_rng(4)
    db = Database(pgvector_url)
    store = PgVectorStore(db, "bulk", DIM, ef_search=100)
    vecs = unit(rng, 12000)
    store.add(np.arange(12000), vecs)
    with db.engine.connect() as conn:
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                sa.text(
                    "EXPLAIN SELECT id FROM aigc_vec_bulk "
                    "ORDER BY embedding <=> CAST(:q AS vector) LIMIT 10"
                ),
                {"q": "[" + ",".join(["0.25"] * DIM) + "]"},
            )
        )
    assert "aigc_vec_bulk_hnsw" in plan
    q = unit(rng, 20)
    _, got = store.search(q, 10)
    truth = np.argsort(-(q @ vecs.T), axis=1)[:, :10]
    recall = np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth, strict=True)])
    assert recall >= 0.9
    db.dispose()


def test_missing_extension_says_how_to_install(pg_available: bool) -> None:
    """The machine's PostgreSQL 15 has no pgvector."""
    if not pg_available:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    db = Database(PG_URL)
    try:
        with db.engine.connect() as conn:
            if conn.execute(
                sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            ).first():
                pytest.skip("this PostgreSQL has pgvector")
        with pytest.raises(PgVectorMissingError, match=r"apt install postgresql-1[0-9]-pgvector"):
            PgVectorStore(db, "things", DIM)
        with pytest.raises(PgVectorMissingError):
            open_vector_store(db, "things", DIM, backend="pgvector")
    finally:
        db.dispose()


def test_backend_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    assert isinstance(open_vector_store(db, "things", DIM), FaissStore)
    monkeypatch.setenv("AIGC_VECTOR_BACKEND", "pgvector")
    with pytest.raises(AigcError, match="needs the app's database on PostgreSQL, not sqlite"):
        open_vector_store(db, "things", DIM)
    monkeypatch.setenv("AIGC_VECTOR_BACKEND", "annoy")
    with pytest.raises(AigcError, match="expected one of faiss, pgvector"):
        open_vector_store(db, "things", DIM)
    with pytest.raises(DataError, match="collection 'Bad-Name'"):
        PgVectorStore(db, "Bad-Name", DIM)


def test_pgvector_filtered_hnsw_search_returns_k_when_k_rows_match(pgvector_url: str) -> None:
    """HNSW keeps only the filter's matches among its ef_search candidates, so a value held
    by few rows comes back short; the exact re-run on the matching rows finds them all."""
    rng = np.random.default_rng(5)
    db = Database(pgvector_url)
    store = PgVectorStore(db, "rare", DIM, approx_threshold=1, ef_search=8)
    vecs = unit(rng, 12000)
    store.add(np.arange(11000), vecs[:11000], kind="chunk")  # a bulk load: HNSW, analysed
    store.add(np.arange(11000, 12000), vecs[11000:], kind="pair")  # 1 row in 12
    with db.engine.connect() as conn:
        conn.execute(sa.text("ANALYZE aigc_vec_rare"))  # as autovacuum would, in time
        conn.commit()
        plan = "\n".join(r[0] for r in conn.execute(sa.text(
            "EXPLAIN SELECT id FROM aigc_vec_rare WHERE kind = 'pair' "
            "ORDER BY embedding <=> CAST(:q AS vector) LIMIT 5"),
            {"q": "[" + ",".join(["0.25"] * DIM) + "]"}))
        indexes = {r[0] for r in conn.execute(sa.text(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'aigc_vec_rare'"))}
    assert "aigc_vec_rare_hnsw" in plan  # the case that comes back short
    assert {"aigc_vec_rare_kind", "aigc_vec_rare_app", "aigc_vec_rare_source"} <= indexes
    q = unit(rng, 5)
    truth = (11000 + np.argsort(-(q @ vecs[11000:].T), axis=1)[:, :5]).tolist()
    _, got = store.search(q, 5, where={"kind": "pair"})
    assert got.tolist() == truth
    _, plain = store.search(q, 10)  # unfiltered: HNSW, no re-run needed
    assert (plain >= 0).all()
    with db.session() as s:  # a table made before the filter indexes gets them on opening
        s.execute(sa.text("DROP INDEX aigc_vec_rare_kind"))
    PgVectorStore(db, "rare", DIM)
    with db.engine.connect() as conn:
        assert "aigc_vec_rare_kind" in {r[0] for r in conn.execute(sa.text(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'aigc_vec_rare'"))}
    db.dispose()

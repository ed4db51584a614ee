"""The support bot and the recommender's text candidates on pgvector: the same top-10 as on
FAISS for the sample data (real MiniLM embeddings), knowledge shared by workers without
index files, and embeddings that change in the ingest's transaction."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aigc_apps.errors import DataError
from aigc_apps.settings import sample_data_dir
from aigc_apps.store import Database
from aigc_apps.vectorstore import FaissStore, PgVectorStore
from apps.recommender.content import ContentModel
from apps.recommender.dataset import Catalog
from apps.support import SupportService

pytestmark = pytest.mark.slow  # loads the bundled MiniLM (about 5 s)
DATA = sample_data_dir()


@pytest.fixture(scope="module")
def minilm() -> Any:
    from aigc_apps.embeddings import Encoder

    return Encoder.from_pretrained("minilm-l6", device="cpu")


def assert_same_top(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> None:
    """Same neighbours in the same order and the same similarities; only vectors whose
    similarities tie (within float32 rounding) may swap places."""
    (a_sc, a_ids), (b_sc, b_ids) = a, b
    np.testing.assert_allclose(a_sc, b_sc, atol=1e-5)
    for row in range(len(a_ids)):
        for j, (x, y) in enumerate(zip(a_ids[row], b_ids[row], strict=True)):
            if x != y:
                tied = b_ids[row][np.abs(b_sc[row] - a_sc[row][j]) <= 1e-5]
                assert x in tied, f"query {row} rank {j}: {x} on one backend, {y} on the other"


@pytest.fixture
def bots(
    pgvector_url: str,
    tmp_path: Path,
    tiny_llm_dir: Path,
    minilm: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, SupportService]]:
    """The sample knowledge base ingested twice: SQLite + FAISS and PostgreSQL + pgvector."""
    out = {}
    for backend, url in (("faiss", f"sqlite:///{tmp_path / 'kb.db'}"), ("pgvector", pgvector_url)):
        monkeypatch.setenv("AIGC_VECTOR_BACKEND", backend)
        bot = SupportService(
            url, encoder=minilm, llm=str(tiny_llm_dir), index_dir=tmp_path / backend
        )
        bot.ingest([DATA / "support" / "kb"])
        out[backend] = bot
    yield out
    for bot in out.values():
        bot.close()


def test_support_top10_is_the_same_on_both_backends(
    bots: dict[str, SupportService], monkeypatch: pytest.MonkeyPatch
) -> None:
    faiss_kb, pg_kb = bots["faiss"].kb, bots["pgvector"].kb
    assert isinstance(faiss_kb.questions, FaissStore)
    assert isinstance(pg_kb.questions, PgVectorStore)
    assert {m.text for m in faiss_kb.meta.values()} == {m.text for m in pg_kb.meta.values()}
    with open(DATA / "support" / "eval.csv", newline="") as fh:
        questions = [row["text"] for row in csv.DictReader(fh)]
    vecs = faiss_kb.encoder.encode(questions)
    for store in ("questions", "chunks"):
        runs = []
        for kb in (faiss_kb, pg_kb):
            scores, ids = getattr(kb, store).search(vecs, 10)
            texts = np.array([[kb.meta[i].text if i >= 0 else "" for i in row] for row in ids])
            runs.append((scores, texts))
        assert (runs[0][1] != "").all()  # ten real neighbours per question
        assert_same_top(runs[0], runs[1])
    for q in questions:
        monkeypatch.setenv("AIGC_VECTOR_BACKEND", "faiss")
        a = bots["faiss"].decide(q)
        monkeypatch.setenv("AIGC_VECTOR_BACKEND", "pgvector")
        b = bots["pgvector"].decide(q)
        assert a.ranking.keys[:10] == b.ranking.keys[:10]
        assert [m.text for m, _ in a.chunks] == [m.text for m, _ in b.chunks]


class FailingEncoder:
    """MiniLM that fails while embedding, as a crash in the middle of an ingest would."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.dim, self.fail = inner, inner.name, inner.dim, False

    def encode(self, texts: Any, batch_size: int = 64) -> np.ndarray:
        if self.fail:
            raise RuntimeError("embedding failed")
        return np.asarray(self.inner.encode(texts, batch_size=batch_size))


def test_pgvector_embeddings_change_with_the_rows(
    pgvector_url: str,
    tmp_path: Path,
    tiny_llm_dir: Path,
    minilm: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIGC_VECTOR_BACKEND", "pgvector")
    kb_dir = Path(shutil.copytree(DATA / "support" / "kb", tmp_path / "kb"))
    enc = FailingEncoder(minilm)
    bot = SupportService(pgvector_url, encoder=enc, llm=str(tiny_llm_dir), index_dir=tmp_path / "a")
    bot.ingest([kb_dir])
    before = set(bot.kb.questions.ids().tolist())
    assert before and not list((tmp_path / "a").glob("*.faiss"))  # nothing on local disk

    # a second worker on another machine: same knowledge, no files, no rebuild
    other = SupportService(
        pgvector_url, encoder=minilm, llm=str(tiny_llm_dir), index_dir=tmp_path / "b"
    )
    assert set(other.kb.questions.ids().tolist()) == before
    question = "Where is my parcel right now?"
    assert other.decide(question).intent == bot.decide(question).intent is not None
    assert not list((tmp_path / "b").glob("*.faiss"))

    # an edit whose embedding fails: rows and vectors roll back together
    templates = kb_dir / "templates.csv"
    templates.write_text(templates.read_text() + "order_status,Has my parcel left yet?,\n")
    enc.fail = True
    with pytest.raises(RuntimeError, match="embedding failed"):
        bot.ingest([templates])
    enc.fail = False
    assert set(other.kb.questions.ids().tolist()) == before
    assert set(bot.kb.meta) == set(other.kb.meta)
    report = bot.ingest([templates])
    assert report.entries_added > 0
    after = set(other.kb.questions.ids().tolist())  # the other worker sees the commit
    assert after - before and after == {
        i for i, m in bot.kb.meta.items() if m.kind in ("example", "pair")
    }
    bot.close()
    other.close()


def read_catalog() -> tuple[Catalog, list[np.ndarray]]:
    with open(DATA / "recommender" / "items.csv", newline="") as fh:
        items = list(csv.DictReader(fh))
    catalog = Catalog(
        [r["id"] for r in items],
        [r["title"] for r in items],
        [r["description"] for r in items],
        [r["tags"].split("|") for r in items],
    )
    histories: dict[str, list[tuple[str, int]]] = {}
    with open(DATA / "recommender" / "events.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["item"] in catalog.index:
                histories.setdefault(r["user"], []).append(
                    (r["timestamp"], catalog.index[r["item"]])
                )
    return catalog, [np.array([i for _, i in sorted(h)]) for _, h in sorted(histories.items())]


def test_recommender_text_candidates_are_the_same_on_both_backends(
    pgvector_url: str, minilm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog, histories = read_catalog()
    vectors = np.asarray(minilm.encode(catalog.texts()), dtype=np.float32)
    queries = [ContentModel(minilm).fit(catalog, vectors).profile(h) for h in histories]
    queries += list(minilm.encode(["space documentaries", "jazz records", "a cookbook"]))
    assert len(queries) > 20
    results = {}
    for backend in ("faiss", "pgvector"):
        monkeypatch.setenv("AIGC_VECTOR_BACKEND", backend)
        monkeypatch.setenv("AIGC_RECOMMEND_DB_URL", pgvector_url)
        model = ContentModel(minilm).fit(catalog, vectors)
        assert type(model.index) is {"faiss": FaissStore, "pgvector": PgVectorStore}[backend]
        rows = [model.search(q, 10) for q in queries]
        assert all(len(ids) == 10 for ids, _ in rows)
        results[backend] = (np.stack([s for _, s in rows]), np.stack([i for i, _ in rows]))
    assert_same_top(results["faiss"], results["pgvector"])
    # a second worker serving the same model shares the filled table
    again = ContentModel(minilm).fit(catalog, vectors).index
    assert isinstance(again, PgVectorStore) and not again.created and len(again) == len(catalog)


def test_another_encoder_rebuilds_the_support_tables(
    pgvector_url: str,
    tmp_path: Path,
    tiny_llm_dir: Path,
    minilm: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tables built for one encoder are a clear error to open for another; the bot, which
    knows its encoder changed, rebuilds them."""
    from tests.support.conftest import BowEncoder

    monkeypatch.setenv("AIGC_VECTOR_BACKEND", "pgvector")
    bot = SupportService(pgvector_url, encoder=minilm, llm=str(tiny_llm_dir), index_dir=tmp_path)
    bot.ingest([DATA / "support" / "kb"])
    n = len(bot.kb.meta)
    db = Database(pgvector_url)
    with pytest.raises(DataError, match=r"384-dimensional vectors \(built by minilm-l6\|384\)"):
        PgVectorStore(db, "support_questions", 256)
    other = SupportService(
        pgvector_url, encoder=BowEncoder(), llm=str(tiny_llm_dir), index_dir=tmp_path
    )
    assert len(other.kb.questions) + len(other.kb.chunks) == n
    assert PgVectorStore(db, "support_questions", 256, tag="bow-test|256").dim == 256
    with pytest.raises(DataError, match=r"built by encoder bow-test\|256, not minilm-l6\|384"):
        PgVectorStore(db, "support_chunks", 256, tag="minilm-l6|384")
    db.dispose()
    bot.close()
    other.close()

"""The knowledge index: encoder + two vector stores (questions, document chunks) + entry metadata.

Vector ids are database entry ids, and the database is the source of truth. The stores are
FAISS files under ``AIGC_HOME`` (the default), written only after the transaction that
changed the entries has committed, or pgvector tables in the support database
(``AIGC_VECTOR_BACKEND=pgvector``), changed in that same transaction and shared by every
worker. An index that does not exist yet here (a new database, workspace, machine or
backend) or that another encoder built is built from the database. One that cannot be read,
or whose ids disagree with the database (a crash between commit and save, a copied or
damaged file), is a :class:`CorruptIndexError` naming ``aigc support reindex``: rebuilding
silently would hide the damage and stall a request for minutes on a large knowledge base.

Knowledge is identified by content, not by the file it came from: rows with the same
``content_hash`` (the same template in two files, a folder ingested again from another
path) are one entry here, the oldest row, so copies neither double the index nor skew the
calibration. Each source keeps its own rows, so a copy still counts when the original file
changes or drops it.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections import defaultdict
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from aigc_apps.errors import AigcError, DataError
from aigc_apps.settings import Settings, get_settings
from aigc_apps.store import Database
from aigc_apps.vectorstore import FaissStore, VectorStore, open_vector_store

from ..store import Entry, Intent, Source, get_setting
from .answer_vectors import AnswerVectors
from .generation import bump, bump_now, set_setting
from .index_types import EntryMeta, IngestReport, Ranking, RetrievalConfig
from .ingest import SourceItems, apply_source
from .intent_head import IntentHead, fit_intent_head
from .lexical import LexicalHead, fit_lexical_head

if TYPE_CHECKING:  # faiss and torch load with the index, not with this module
    from aigc_apps.embeddings import Encoder

QUESTION_KINDS = ("example", "pair")
HEAD_FLOOR = -20.0  # log probability for a key the head does not know (dialogue pairs)
REINDEX_HINT = "run `aigc support reindex` to rebuild it from the database"


class CorruptIndexError(AigcError):
    """The support index on disk is unreadable or disagrees with the database."""


class EncoderChangedError(AigcError):
    """Another process rebuilt the index with another encoder than this one's."""


def index_key(url: str) -> str:
    """The name of one database's index folder (several databases must not share one)."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def index_dir_for(url: str) -> Path:
    """FAISS folder of one database in the environment's workspace."""
    return get_settings().indexes_dir / "support" / index_key(url)


# Collections of the support database (pgvector tables aigc_vec_<name>).
COLLECTIONS = ("support_questions", "support_chunks")


def _knowledge(s: Session) -> tuple[dict[int, EntryMeta], set[int]]:
    """One entry per distinct content (the oldest row that holds it), and the ids of the
    other rows: the same content stored for another source."""
    rows = s.execute(
        select(Entry, Intent.name, Source.uri)
        .join(Source, Entry.source_id == Source.id)
        .outerjoin(Intent, Entry.intent_id == Intent.id)
        .order_by(Entry.id)
    ).all()
    meta: dict[int, EntryMeta] = {}
    oldest: dict[str, int] = {}
    copies: set[int] = set()
    for e, name, uri in rows:
        if oldest.setdefault(e.content_hash, e.id) != e.id:
            copies.add(e.id)
        else:
            meta[e.id] = EntryMeta(e.id, e.kind, name, e.text, e.answer, e.title, uri)
    return meta, copies


class KnowledgeIndex:
    """Encoder, vector stores and entry metadata for one support database.

    Opening reads the index files (see :meth:`load`); ``rebuild=True`` re-embeds everything
    from the database instead, which is how a damaged index is repaired.
    """

    def __init__(
        self,
        db: Database,
        encoder: Encoder,
        index_dir: Path,
        config: RetrievalConfig | None = None,
        *,
        rebuild: bool = False,
        settings: Settings | None = None,
    ) -> None:
        self.db = db
        self.encoder = encoder
        self.index_dir = Path(index_dir)
        self.config = config or RetrievalConfig()
        self.settings = settings  # the vector backend's (None: the environment's)
        self.meta: dict[int, EntryMeta] = {}
        self.copies: set[int] = set()  # rows whose content an older row holds
        self.answers: dict[str, str | None] = {}
        self.example_of: dict[str, EntryMeta] = {}  # one question entry per key
        self._answer_vectors: AnswerVectors | None = None
        self._answers_changed = True
        self.encoder_changed = False  # re-embedded on open: another encoder made the index
        self.head: IntentHead | None = None
        self.lexical: LexicalHead | None = None
        self.questions: VectorStore
        self.chunks: VectorStore
        if rebuild:
            self.rebuild()
        else:
            self.load()

    # -- persistence ------------------------------------------------------------------
    def _paths(self) -> tuple[Path, Path]:
        return self.index_dir / "questions.faiss", self.index_dir / "chunks.faiss"

    def _refresh_meta(self) -> None:
        with self.db.session() as s:
            self.meta, self.copies = _knowledge(s)
            self.answers = {i.name: i.answer for i in s.scalars(select(Intent))}
        self._answers_changed = True
        self.example_of = {}
        for m in self.meta.values():
            if m.kind in QUESTION_KINDS:
                self.example_of.setdefault(m.key, m)

    def _encoder_tag(self) -> str:
        return f"{self.encoder.name}|{self.encoder.dim}"

    def _open(self, *, replace: bool = False) -> tuple[VectorStore, VectorStore]:
        """The question and chunk stores on the configured backend; ``replace`` for a
        rebuild (a FAISS file is not read, a table of another encoder is recreated)."""
        try:
            questions, chunks = (
                open_vector_store(
                    self.db,
                    name,
                    self.encoder.dim,
                    path=path,
                    tag=self._encoder_tag(),
                    replace=replace,
                    settings=self.settings,
                )
                for name, path in zip(COLLECTIONS, self._paths(), strict=True)
            )
        except DataError as exc:
            raise CorruptIndexError(f"{exc}; {REINDEX_HINT}") from exc
        return questions, chunks

    def load(self) -> None:
        """Open the stores: built from the database when they do not exist yet (or another
        encoder made them), a :class:`CorruptIndexError` when they are damaged."""
        self._refresh_meta()
        with self.db.session() as s:
            tag = get_setting(s, "index_encoder")
        if tag != self._encoder_tag():
            self.encoder_changed = tag is not None
            self.rebuild()
            return
        self.questions, self.chunks = self._open()
        if self.questions.created and self.chunks.created:
            self.rebuild()
            return
        want_q = {i for i, m in self.meta.items() if m.kind in QUESTION_KINDS}
        for index, want, path in zip(
            (self.questions, self.chunks), (want_q, set(self.meta) - want_q), self._paths(),
            strict=True,
        ):
            found = set(index.ids().tolist())
            # vectors an older release gave to copies are skipped until the next ingest
            if want - found or found - want - self.copies:
                raise CorruptIndexError(
                    f"{_where(index, path)}: {len(found - want)} vectors for entries the "
                    f"database does not have and {len(want - found)} entries without a "
                    f"vector; {REINDEX_HINT}"
                )
        self._load_heads()
        if self._heads_stale():  # no head files here (another machine on pgvector): fit them
            self.fit_head(persist=False)

    def _load_heads(self) -> None:
        """The intent heads saved beside the index (one fitted on another encoder's vectors
        is left out: it would score vectors it has never seen)."""
        try:
            head = IntentHead.load(self._head_path())
            self.lexical = LexicalHead.load(self._lexical_path())
        except Exception as exc:  # numpy / pickle raise many types on a damaged file
            raise CorruptIndexError(
                f"{self.index_dir}: unreadable intent head ({type(exc).__name__}); {REINDEX_HINT}"
            ) from exc
        self.head = head if head is not None and head.encoder_tag == self._encoder_tag() else None

    def refreshed(self, config: RetrievalConfig) -> KnowledgeIndex:
        """A new index over what the database holds now, for a worker that another process's
        change left behind (see :mod:`.generation`); this one serves until the caller swaps.

        It writes nothing. pgvector tables are shared and read as they are; FAISS files are
        read again (another worker on this machine saves them after its commit) and what
        they lack or hold extra (read before that worker saved, or another machine's folder)
        is embedded or removed in memory. :class:`EncoderChangedError` when another encoder
        built the index, :class:`CorruptIndexError` when the files cannot be read.
        """
        fresh = copy.copy(self)
        fresh.config = config
        fresh._answer_vectors = None  # its own copy (read from the cache file) when needed
        fresh._refresh_meta()
        with self.db.session() as s:
            tag = get_setting(s, "index_encoder")
        if tag is not None and tag != self._encoder_tag():
            raise EncoderChangedError(
                f"the support index was rebuilt with encoder {tag}; this worker has "
                f"{self._encoder_tag()}: restart it to answer from the new index"
            )
        if isinstance(self.questions, FaissStore):
            fresh.questions, fresh.chunks = fresh._open()
            want_q = {i for i, m in fresh.meta.items() if m.kind in QUESTION_KINDS}
            want_c = set(fresh.meta) - want_q
            for store, want in ((fresh.questions, want_q), (fresh.chunks, want_c)):
                found = set(store.ids().tolist())
                store.remove(sorted(found - want))
                fresh._add([fresh.meta[i] for i in sorted(want - found)])
        fresh._load_heads()
        if fresh._heads_stale():  # another machine's change: its head files are not here
            fresh.fit_head(persist=False)
        return fresh

    def _heads_stale(self) -> bool:
        """The scoring weighs intent heads that miss some of the intents (or are absent)."""
        cfg = self.config
        keys = {m.key for m in self.meta.values() if m.kind == "example"}
        if len(keys) < 2:
            return False
        lexical_stale = cfg.lexical_weight and (
            self.lexical is None or set(self.lexical.labels) != keys
        )
        head_stale = cfg.head_weight and (self.head is None or set(self.head.labels) != keys)
        return bool(lexical_stale or head_stale)

    def rebuild(self) -> int:
        """Re-embed every entry from the database into the stores; returns the count.

        On pgvector the old vectors stay visible to other workers until the new ones
        commit. The intent heads are derived from the vectors too: refitted when the
        retrieval config weighs them, removed otherwise.
        """
        self._refresh_meta()
        self.questions, self.chunks = self._open(replace=True)
        if getattr(self.db, "read_only", False):  # a read-only workspace: serve from memory
            self._add(list(self.meta.values()))
            return len(self.meta)
        with self.db.session() as s:
            self.questions.clear(session=s)
            self.chunks.clear(session=s)
            self._add(list(self.meta.values()), session=s)
            bump(s)
        self._save()  # the encoder tag follows the vectors: a crash before it means rebuild
        self._drop_head()
        if self.config.head_weight or self.config.lexical_weight:
            self.fit_head()  # bumps once the heads are saved
        else:
            bump_now(self.db)  # the files are in place: workers that reloaded read them again
        return len(self.meta)

    def _save(self) -> None:
        """Write the FAISS files (after the commit they describe; pgvector has nothing to do)."""
        self.questions.flush()
        self.chunks.flush()
        with self.db.session() as s:
            set_setting(s, "index_encoder", self._encoder_tag())

    def _embed_text(self, m: EntryMeta) -> str:
        return f"{m.title}: {m.text}" if m.kind == "chunk" and m.title else m.text

    def _add(self, metas: Sequence[EntryMeta], session: Session | None = None) -> None:
        if not metas:
            return
        vecs = self.encoder.encode([self._embed_text(m) for m in metas])
        is_q = np.array([m.kind in QUESTION_KINDS for m in metas])
        ids = np.array([m.id for m in metas], dtype=np.int64)
        if is_q.any():
            self.questions.add(ids[is_q], vecs[is_q], session=session)
        if (~is_q).any():
            self.chunks.add(ids[~is_q], vecs[~is_q], session=session)

    def _head_path(self) -> Path:
        return self.index_dir / "intent_head.npz"

    def answer_texts(self) -> dict[str, str]:
        """What each key answers with: an intent's answer text, a dialogue pair's answer."""
        texts = {k: a for k, a in self.answers.items() if a}
        texts.update({m.key: m.answer for m in self.meta.values() if m.kind == "pair" and m.answer})
        return texts

    def answer_similarities(self, vec: np.ndarray) -> dict[str, float]:
        """The question's similarity to each answer text (embedded once, then cached)."""
        vectors = self._answer_vectors
        if vectors is None or vectors.encoder_tag != self._encoder_tag():
            vectors = AnswerVectors(self.index_dir / "answers.npz", self._encoder_tag())
            self._answers_changed = True
        if self._answers_changed:  # embeds only the answers that are new or changed
            vectors.update(self.answer_texts(), self.encoder)
            self._answers_changed = False
        self._answer_vectors = vectors
        return vectors.similarities(vec)

    def set_answers(self, answers: dict[str, str]) -> None:
        """Replace intents' answer texts in memory (the caller has stored them)."""
        self.answers.update(answers)
        self._answers_changed = True

    def _lexical_path(self) -> Path:
        return self.index_dir / "lexical_head.pkl"

    def fit_head(
        self, exclude: Collection[int] = (), c: float = 10.0, *, persist: bool = True
    ) -> IntentHead | None:
        """Fit the linear and the lexical intent heads on example questions not in
        ``exclude``; saved beside the index (unless ``persist`` is false: a worker catching
        up in memory) and refitted whenever the knowledge changes. Returns the linear head."""
        ids = [i for i, m in self.meta.items() if m.kind == "example" and i not in exclude]
        vecs = self.questions.vectors(ids) if ids else np.zeros((0, self.encoder.dim))
        labels = [self.meta[i].key for i in ids]
        self.head = fit_intent_head(vecs, labels, c, self._encoder_tag())
        # The lexical head reads the answers too: their words are the intent's vocabulary.
        answers = {k: a for k, a in self.answers.items() if a and k in set(labels)}
        self.lexical = fit_lexical_head(
            [self.meta[i].text for i in ids] + list(answers.values()), labels + list(answers)
        )
        if not persist:
            return self.head
        for head, path in ((self.head, self._head_path()), (self.lexical, self._lexical_path())):
            if head is not None:
                head.save(path)
        bump_now(self.db)  # other workers load the new heads
        return self.head

    def _drop_head(self) -> None:
        self.head = self.lexical = None
        self._head_path().unlink(missing_ok=True)
        self._lexical_path().unlink(missing_ok=True)

    # -- ingest -------------------------------------------------------------------------
    def ingest(self, items: Sequence[SourceItems]) -> IngestReport:
        """Write all sources in one transaction, with the pgvector stores' changes; FAISS
        files follow only after commit.

        The index then holds exactly the distinct knowledge in the database: entries new to
        it are embedded, and entries no source has any more (or copies indexed by an older
        release) are removed.
        """
        report = IngestReport(files=[i.uri for i in items])
        try:
            with self.db.session() as s:
                for item in items:
                    status = apply_source(s, item).status
                    report.skipped += [f"{Path(item.uri).name}: {sk}" for sk in item.skipped]
                    setattr(report, f"{status}_sources", getattr(report, f"{status}_sources") + 1)
                knowledge, _ = _knowledge(s)
                indexed = set(self.questions.ids().tolist()) | set(self.chunks.ids().tolist())
                removed = sorted(indexed - set(knowledge))
                added = [m for i, m in knowledge.items() if i not in indexed]
                self.questions.remove(removed, session=s)
                self.chunks.remove(removed, session=s)
                self._add(added, s)  # embedding inside the transaction: a failure rolls back
                if report.added_sources or report.replaced_sources or added or removed:
                    bump(s)  # entries or answers changed
        except BaseException:
            self.load()  # the database rolled back; reload (or rebuild) the stores to match
            raise
        report.entries_added, report.entries_removed = len(added), len(removed)
        self._refresh_meta()
        if added or removed:
            self._save()
            self._drop_head()  # trained on other knowledge: refit when the scoring weighs it
            if self.config.head_weight or self.config.lexical_weight:
                self.fit_head()  # bumps once the heads are saved
            else:
                bump_now(self.db)  # the files changed after the commit
        return report

    # -- search -------------------------------------------------------------------------
    def rank(
        self, vec: np.ndarray, exclude: int | None = None, text: str | None = None
    ) -> Ranking:
        """Intents and dialogue pairs for one query vector (and its ``text``, for the lexical
        head), best first."""
        cfg = self.config
        k = cfg.k + (1 if exclude is not None else 0)
        scores, ids = self.questions.search(vec[None, :], k)
        best: dict[str, float] = {}
        votes: dict[str, float] = defaultdict(float)
        top: dict[str, EntryMeta] = {}
        neighbours = []
        for sc, i in zip(scores[0].tolist(), ids[0].tolist(), strict=True):
            if i < 0 or i == exclude or i not in self.meta:
                continue
            m = self.meta[i]
            neighbours.append(i)
            if m.key not in best:
                best[m.key], top[m.key] = sc, m
            votes[m.key] += math.exp(cfg.vote_temperature * (sc - 1.0))
        answer_sim = self.answer_similarities(vec) if cfg.answer_weight else {}
        if answer_sim and best:
            # Keys whose answer is among the k closest join the candidates; their nearest
            # question was not retrieved, so it is at most the k-th neighbour's similarity.
            floor = min(best.values())
            for key in sorted(answer_sim, key=lambda key: -answer_sim[key])[: cfg.k]:
                if key not in best and key in self.example_of:
                    best[key], top[key] = floor, self.example_of[key]
        head_lp = self.head.log_proba(vec) if self.head is not None and cfg.head_weight else None
        lex_lp = (
            self.lexical.log_proba(text)
            if self.lexical is not None and cfg.lexical_weight and text
            else None
        )
        final = {}
        for key, sc in best.items():
            value = sc
            if cfg.vote_weight:
                # a key that joined through its answer has no votes among the neighbours
                value += cfg.vote_weight * math.log(max(votes[key], 1e-12)) / cfg.vote_temperature
            if answer_sim:
                value += cfg.answer_weight * answer_sim.get(key, 0.0)
            if cfg.head_weight and head_lp is not None:
                value += cfg.head_weight * head_lp.get(key, HEAD_FLOOR)
            if lex_lp is not None:
                value += cfg.lexical_weight * lex_lp.get(key, HEAD_FLOOR)
            final[key] = value
        order = sorted(final, key=lambda key: -final[key])
        return Ranking(order, [final[k_] for k_ in order], top, neighbours)

    def search_chunks(self, vec: np.ndarray, k: int = 3) -> list[tuple[EntryMeta, float]]:
        if not len(self.chunks):
            return []
        scores, ids = self.chunks.search(vec[None, :], k)
        return [
            (self.meta[i], float(s))
            for s, i in zip(scores[0].tolist(), ids[0].tolist(), strict=True)
            if i >= 0 and i in self.meta
        ]

    def stats(self) -> dict[str, Any]:
        kinds: dict[str, int] = defaultdict(int)
        for m in self.meta.values():
            kinds[m.kind] += 1
        return {
            "entries": len(self.meta),
            "intents": len(self.answers),
            "intents_with_answer": sum(1 for a in self.answers.values() if a),
            **{f"{k}s": v for k, v in sorted(kinds.items())},
            "encoder": self.encoder.name,
        }


def _where(store: VectorStore, path: Path) -> str:
    """What to name in an error about ``store``: its FAISS file or its table."""
    return str(path) if isinstance(store, FaissStore) else f"table {getattr(store, 'table', store)}"

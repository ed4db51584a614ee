"""The knowledge part of the support service: what the bot answers from (the index,
its calibration, the retrieval weights and the stored settings), the changes made to it
(ingest, answers, calibration, reindex, quarantine decisions) and following the changes
other processes make.

Every worker answers from the same knowledge: before answering, a service compares the
database's knowledge generation with the one it loaded (one small SELECT, see
:mod:`.generation`) and, when another process changed the knowledge, loads the new index,
heads and stored settings beside the old ones and swaps them in; the encoder stays loaded.
Every writer here runs inside :meth:`Knowledge.changing_knowledge`.

:class:`Knowledge` is a part of :class:`~apps.support.service.SupportService`: it receives
the database and the encoder as callables (both open on first use, and the database opens
again after the service is closed), never the service.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigc_apps.errors import AigcError
from aigc_apps.lazy import lazy

from ..answers.answerer import Answerer
from ..answers.calibration import CALIBRATE_ON_MARGIN, Calibration, calibrate
from ..store import get_setting, load_settings
from .generation import Freshness, set_setting
from .ingest import SourceItems, load_sources
from .quarantine import ScreenedIngestReport
from .retrieval import KnowledgeIndex, RetrievalConfig

if TYPE_CHECKING:
    from aigc_apps.embeddings import Encoder
    from aigc_apps.settings import Settings
    from aigc_apps.store import Database

    from ..quality.outcomes import Shares

DEFAULT_COMPANY = "Northwind Outfitters"

log = logging.getLogger("apps.support.service")


class Knowledge:
    """The knowledge index, calibration, retrieval weights and stored settings of one
    support database (each loaded on first use), the writers that change them, and the
    per-request reload that follows other processes' changes.

    ``db`` and ``encoder`` return the opened database and the question encoder (called
    when first needed); ``index_dir`` holds the vector stores. ``retrieval``, ``company``
    and ``doc_threshold`` override what the database stores. ``lock`` guards the lazy
    loads (the service's, so loading the index may load the encoder under it).
    """

    def __init__(
        self,
        db: Callable[[], Database],
        encoder: Callable[[], Encoder],
        index_dir: Path,
        *,
        retrieval: RetrievalConfig | None = None,
        company: str | None = None,
        doc_threshold: float | None = None,
        lock: threading.RLock | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._db, self._encoder, self.index_dir = db, encoder, index_dir
        self.settings = settings  # the vector backend's (None: the environment's)
        self._retrieval = retrieval
        self._company = company
        self._doc_threshold = doc_threshold
        self._lock = lock or threading.RLock()
        self._swap = threading.Lock()  # a request's snapshot never mixes two generations
        self.freshness = Freshness(db, self._reload_knowledge)

    @property
    def db(self) -> Database:
        return self._db()

    # -- what is loaded, on first use -----------------------------------------------------
    @lazy
    def stored_settings(self) -> dict[str, Any]:
        """The database's stored settings (calibration, retrieval weights, thresholds)."""
        return load_settings(self.db)

    @lazy
    def kb(self) -> KnowledgeIndex:
        kb = KnowledgeIndex(
            self.db, self._encoder(), self.index_dir, self._retrieval_config(),
            settings=self.settings,
        )
        if kb.encoder_changed and kb.meta:
            # Re-embedded by another encoder (AIGC_SUPPORT_ENCODER changed, or an upgrade):
            # the stored confidence was fitted on the old encoder's similarities.
            self.calibration = self._calibrated(kb)
        return kb

    @lazy
    def calibration(self) -> Calibration:
        return Calibration.from_dict(self.stored_settings.get("calibration"))

    @lazy
    def company(self) -> str:
        return self._company or self.stored_settings.get("company") or DEFAULT_COMPANY

    @lazy
    def doc_threshold(self) -> float:
        if self._doc_threshold is not None:
            return self._doc_threshold
        return float(self.stored_settings.get("doc_threshold", 0.35))

    def _retrieval_config(self, settings: dict[str, Any] | None = None) -> RetrievalConfig:
        if self._retrieval is not None:
            return self._retrieval
        known = set(RetrievalConfig.__dataclass_fields__)
        stored = (self.stored_settings if settings is None else settings).get("retrieval") or {}
        return RetrievalConfig(**{k: v for k, v in stored.items() if k in known})

    def forget_index(self) -> None:
        """Drop the loaded index (the encoder changed): the next use embeds with the new
        encoder; the retrieval weights in use stay."""
        with self._lock:
            kb = self.__dict__.pop("kb", None)
            if kb is not None:
                self._retrieval = kb.config

    # -- the same knowledge as every other worker -----------------------------------------
    @property
    def answerer(self) -> Answerer:
        """What a question is answered from now: index, calibration, document bar and
        encoder of one knowledge generation (see :mod:`~apps.support.answers.answerer`), reloaded
        first if another process changed the knowledge; evaluation and tuning take it."""
        self.freshness.check()
        self.kb, self.calibration, self.doc_threshold  # noqa: B018 - load outside the swap lock
        encoder = self._encoder()
        with self._swap:
            return Answerer(self.kb, self.calibration, self.doc_threshold, encoder)

    def _reload_knowledge(self, generation: int) -> None:
        """Load what the database holds (at least ``generation``) beside the loaded state,
        then swap; what is not loaded yet loads on first use. When the index cannot be
        reloaded, the worker keeps answering from what it has and says so."""
        settings = load_settings(self.db)
        kb = self.__dict__.get("kb")
        try:
            fresh = kb.refreshed(self._retrieval_config(settings)) if kb is not None else None
        except AigcError as exc:
            log.warning("support knowledge generation %d not loaded: %s", generation, exc)
            return
        with self._swap, self._lock:
            self.stored_settings = settings
            for name in ("calibration", "doc_threshold", "company"):
                self.__dict__.pop(name, None)
            if fresh is not None:
                self.kb = fresh

    @contextmanager
    def changing_knowledge(self) -> Iterator[None]:
        """Around a change of what the bot answers from (every writer here uses it): catch
        up with the database first, hold off this process's reloads, and note the change's
        own generations so this process does not reload what it already holds."""
        with self.freshness.writing():
            yield

    # -- knowledge ----------------------------------------------------------------------
    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        kind: str = "auto",
        text_col: str = "text",
        intent_col: str = "intent",
        answer_col: str | None = "answer",
        recalibrate: bool = True,
    ) -> ScreenedIngestReport:
        """Ingest files/folders in one transaction, then recalibrate the handoff threshold.

        What is read, and which unusable files are skipped or fatal: :func:`load_sources`;
        what is held in quarantine: :meth:`ingest_items`.
        """
        items, file_skips = load_sources(paths, kind, text_col, intent_col, answer_col)
        report = self.ingest_items(items, recalibrate=recalibrate)
        report.skipped = file_skips + report.skipped
        return report

    def ingest_items(
        self, items: Sequence[SourceItems], recalibrate: bool = True
    ) -> ScreenedIngestReport:
        """Ingest parsed sources; passages that read like instructions to the assistant are
        held in quarantine instead (counted in ``quarantined``, see :meth:`quarantine`)."""
        from .quarantine import screen

        with self.changing_knowledge():
            screened, held = screen(self.db, items)
            report = ScreenedIngestReport(**vars(self.kb.ingest(screened)), quarantined=held)
            if recalibrate and (report.entries_added or report.entries_removed):
                self.recalibrate()
        return report

    def recalibrate(
        self,
        ids: Sequence[int] | None = None,
        target_false_handoff: float = 0.05,
        margin: bool = CALIBRATE_ON_MARGIN,
    ) -> Calibration:
        """Refit confidence on held-out examples (the stored calibration split, if any);
        ``margin``: the lead over the runner-up counts too."""
        with self.changing_knowledge():
            self.calibration = self._calibrated(self.kb, ids, target_false_handoff, margin)
            return self.calibration

    def _calibrated(
        self,
        kb: KnowledgeIndex,
        ids: Sequence[int] | None = None,
        target_false_handoff: float = 0.05,
        margin: bool = CALIBRATE_ON_MARGIN,
    ) -> Calibration:
        """A calibration of ``kb`` on held-out examples, stored (see :meth:`recalibrate`)."""
        with self.db.session() as s:
            stored = get_setting(s, "calibration_ids")
        if ids is None and stored:
            ids = [i for i in stored if i in kb.meta]
        cal = calibrate(kb, ids, target_false_handoff, margin=margin)
        with self.db.session() as s:
            set_setting(s, "calibration", cal.to_dict())  # bumps
        return cal

    def calibrate_on(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        max_wrong: float = 0.03,
        refit: bool = True,
    ) -> Shares:
        """Calibrate on labelled customer questions (label ``oos`` for ones the bot should
        not answer): with ``refit`` the confidence is fitted on them (top score and margin),
        then the handoff threshold is the one with the most right answers and at most
        ``max_wrong`` of the in-scope ones answered wrongly. Returns the shares there.

        Questions in customers' own words are what the bot meets; the knowledge base's own
        examples (the default calibration, leave-one-out) are easier than they are. The next
        change of knowledge recalibrates from the knowledge base: calibrate again after it.
        """
        from ..quality.outcomes import choose_threshold, refit_confidence, score_questions

        with self.changing_knowledge():
            cal = self.calibration
            scored = score_questions(self.answerer, texts, labels)
            if refit:
                scored = refit_confidence(scored, cal)
            chosen = choose_threshold(scored, max_wrong)
            cal.threshold = chosen.threshold
            how = "confidence and threshold" if refit else "threshold"
            cal.method = (
                f"{how} on {chosen.n_in_scope + chosen.n_oos} labelled questions "
                f"(<= {max_wrong:.0%} wrong)"
            )
            with self.db.session() as s:
                set_setting(s, "calibration", cal.to_dict())  # bumps
        return chosen

    def set_retrieval(self, config: RetrievalConfig) -> None:
        """Score questions with ``config`` from now on, in every worker (it is stored, and
        replaces one given to the constructor); the intent heads are fitted when it weighs
        them."""
        from dataclasses import asdict

        with self.changing_knowledge():
            if self._retrieval is not None:
                self._retrieval = config
            self.kb.config = config
            if config.head_weight or config.lexical_weight:
                self.kb.fit_head()
            with self.db.session() as s:
                set_setting(s, "retrieval", asdict(config))  # bumps

    def set_answers(self, answers: dict[str, str]) -> None:
        """Set (or replace) the answer text of intents, e.g. for an ingested query log."""
        from .generation import bump
        from .ingest import intents_by_name

        with self.changing_knowledge():
            with self.db.session() as s:
                for name, intent in intents_by_name(s, set(answers)).items():
                    intent.answer = answers[name]
                bump(s)
            self.kb.set_answers(answers)

    def reindex(self) -> int:
        """Rebuild the vector stores (FAISS files or pgvector tables) and intent heads from
        the database; returns the number of entries. This is the repair for a
        :class:`CorruptIndexError`."""
        with self.changing_knowledge(), self._lock:
            if "kb" in self.__dict__:
                return self.kb.rebuild()
            self.kb = KnowledgeIndex(
                self.db, self._encoder(), self.index_dir, self._retrieval_config(), rebuild=True,
                settings=self.settings,
            )
            return len(self.kb.meta)

    # -- quarantine (database only, except that a change of knowledge reindexes) -----------
    def quarantine(self, status: str | None = "pending") -> list[dict[str, Any]]:
        """Passages held back at ingest (``status`` pending, approved, rejected or None for
        all), newest first, with the reason each was held."""
        from .quarantine import listing

        return listing(self.db, status)

    def approve(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Release quarantined passages (false positives) into the knowledge base; the index
        is rebuilt when any was released. Returns the passages released."""
        return self._decide(ids, "approved")

    def reject(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Keep passages out for good (one approved before is withdrawn again). Returns the
        passages withdrawn."""
        return self._decide(ids, "rejected")

    def _decide(self, ids: Sequence[int], status: str) -> list[dict[str, Any]]:
        from .quarantine import decide

        with self.changing_knowledge():
            changed = decide(self.db, ids, status)
            if changed:
                self._knowledge_changed(changed)
        return changed

    def scan_knowledge(self) -> list[dict[str, Any]]:
        """Quarantine stored knowledge that reads like instructions (a knowledge base
        ingested before the guard); returns the passages moved."""
        from .quarantine import scan

        with self.changing_knowledge():
            moved = scan(self.db)
            if moved:
                self._knowledge_changed(moved)
        return moved

    def _knowledge_changed(self, passages: Sequence[dict[str, Any]]) -> None:
        self.reindex()
        if any(p["kind"] in ("example", "pair") for p in passages):
            self.recalibrate()

    def blocked_answers(self, limit: int = 100) -> list[dict[str, Any]]:
        """Answers held back at answer time and handed off instead, newest first."""
        from .quarantine import blocked_answers

        return blocked_answers(self.db, limit)

"""SupportService: the support bot behind the CLI, Python code and the HTTP routes.

Construction does no I/O. The database opens on first use (moving 0.1.0's model settings
into the registry then); the encoder, the knowledge index and the generator load when a call
first needs them, once, and later calls share them (so can other services, given
``encoder=service.encoder``). A template answer then costs one embedding, one FAISS search
and one database write. Questions are masked for personal data before anything else.

The service is composed of parts, each built on first use and handed only what it needs (the
database and the conversations as callables, since the service opens them lazily and again after
``close``): :class:`~apps.support.knowledge.changes.Knowledge` (the index, calibration, stored
settings and every change of them, following other workers' changes),
:class:`~apps.support.answers.answering.AnswerDesk` (``ask``: a turn, its answer and its handoff)
and :class:`~apps.support.people.records.ConversationRecords` (sessions, feedback, suggestions).
What a question is answered from is the knowledge part's :attr:`answerer`
(:mod:`~apps.support.answers.answerer`): evaluation and tuning receive it (tuning with the stores
behind it, :class:`~apps.support.quality.tuning.Tunable`, which the service satisfies) and never
import this module.

Torch's thread count is the process's decision, not a request's: a latency-sensitive server
sets ``torch.set_num_threads`` (or ``OMP_NUM_THREADS``) once at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigc_apps.keylock import KeyLocks
from aigc_apps.lazy import lazy
from aigc_apps.registry import ModelRegistry
from aigc_apps.service import AppService
from aigc_apps.settings import Settings
from aigc_apps.store import Database

from .active_models import ENCODER_ROLE, MODEL_ROLES, SupportModels, import_legacy_models
from .answers.answering import AnswerDesk
from .knowledge.changes import Knowledge
from .knowledge.retrieval import index_key
from .parts import PartAttribute, delegate
from .people.handoff import Conversations
from .people.records import ConversationRecords
from .store import APP, open_db

if TYPE_CHECKING:
    from aigc_apps.embeddings import Encoder

    from .answers.answerer import Answerer
    from .answers.calibration import Calibration
    from .answers.reply import TextGenerator
    from .knowledge.retrieval import KnowledgeIndex, RetrievalConfig
    from .people.webhooks import DeliveryReport, WebhookDeliverer
    from .quality.evaluation import EvalReport
    from .quality.tuning import TuningReport


class SupportService(AppService):
    """A company's support bot over one database; ``ask`` answers and records a turn.

    ``db_url`` defaults to the support database of the workspace ``settings`` names (default:
    the environment's). ``encoder`` (a name or a loaded
    :class:`~aigc_apps.embeddings.Encoder`) and ``llm`` override the models the registry has
    active for app ``support`` (see :class:`SupportModels`). ``doc_threshold`` is the least
    chunk similarity for a generated answer; ``registry`` defaults to the workspace's. The
    shell (settings, database, registry, ``close``, ``ping``) is
    :class:`~aigc_apps.service.AppService`'s.

    Who owns what (the methods here delegate to them):

    * :attr:`models` (:class:`SupportModels`): the encoder and the generator; * :attr:`knowledge`
    (:class:`~apps.support.knowledge.changes.Knowledge`): ``kb``, ``calibration``,
      ``doc_threshold``, ``company``, the retrieval weights and the knowledge generation,
      ``answerer``, ``ingest``/``ingest_items``, ``recalibrate``, ``calibrate_on``,
      ``set_retrieval``, ``set_answers``, ``reindex``, ``changing_knowledge``, the
      quarantine (``quarantine``, ``approve``, ``reject``, ``scan_knowledge``,
      ``blocked_answers``);
    * :attr:`desk` (:class:`~apps.support.answers.answering.AnswerDesk`): ``ask``, ``decide``,
    ``prompt``,
      ``history``, ``embed_query``;
    * :attr:`records` (:class:`~apps.support.people.records.ConversationRecords`): ``turns``,
    sessions,
      ``handoffs``, ``feedback``, suggestions, ``handoff_stats``;
    * the service itself: the database, :attr:`conversations`, the turn locks, webhooks,
      ``stats``, ``evaluate``, ``tune`` and ``reload_models``.

    >>> service = SupportService("sqlite:///:memory:")  # nothing opened yet
    """

    app = APP

    def __init__(
        self,
        db_url: str | None = None,
        *,
        encoder: str | Encoder | None = None,
        llm: str | None = None,
        company: str | None = None,
        retrieval: RetrievalConfig | None = None,
        max_new_tokens: int = 80,
        doc_threshold: float | None = None,
        index_dir: str | Path | None = None,
        registry: ModelRegistry | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(db_url, registry=registry, settings=settings)
        self._max_new_tokens = max_new_tokens
        self._company = company
        self._retrieval = retrieval
        self._doc_threshold = doc_threshold
        self._index_dir = Path(index_dir) if index_dir is not None else None
        self.webhooks_queued = 0  # events left to deliver when close() stopped waiting
        self.models = SupportModels(
            self._opened_registry, encoder=encoder, llm=llm, settings=self.settings,
            lock=self._lock,
        )

    def close(self) -> None:
        """Deliver due webhook events (for a few seconds at most: ``webhooks_queued`` says
        how many are left for the next deliverer), release database connections (reopened
        if the service is used again)."""
        webhooks = self.__dict__.pop("webhooks", None)
        if webhooks is not None:
            self.webhooks_queued = webhooks.close()
        turn_locks = self.__dict__.pop("turn_locks", None)
        if turn_locks is not None:
            turn_locks.close()
        conversations = self.__dict__.pop("conversations", None)
        if conversations is not None and "live" in conversations.__dict__:
            conversations.live.close()
        self.models.close()  # the generator's engine: closed once nobody else holds it
        super().close()  # the database and the registry, where this service opened them

    # -- the parts, built on first use (building one opens nothing) -----------------------
    @lazy
    def knowledge(self) -> Knowledge:
        models = self.models
        index_dir = self._index_dir or (
            self.settings.indexes_dir / "support" / index_key(self.store_url())
        )
        return Knowledge(
            self._opened_db, lambda: models.encoder, index_dir, retrieval=self._retrieval,
            company=self._company, doc_threshold=self._doc_threshold, lock=self._lock,
            settings=self.settings,
        )

    @lazy
    def desk(self) -> AnswerDesk:
        return AnswerDesk(
            self.knowledge, self.models, db=self._opened_db,
            conversations=self._opened_conversations, turn_locks=self._opened_turn_locks,
            max_new_tokens=self._max_new_tokens,
        )

    @lazy
    def records(self) -> ConversationRecords:
        return ConversationRecords(self._opened_db, self.knowledge.ingest_items)

    # -- lazily opened state ------------------------------------------------------------
    def open_db(self, url: str) -> Database:
        """The support store; opening it moves a 0.1.0 workspace's models to the registry."""
        db = open_db(url)
        import_legacy_models(db, self.registry, self.settings)
        self.knowledge.freshness.opened(db)
        return db

    @lazy
    def conversations(self) -> Conversations:
        """States, the agents' queue and their actions (database only). Opening it starts
        webhook delivery when a URL is set, so events a stopped process left are retried."""
        conversations = Conversations(self.db, on_transition=self._transitioned)
        self._transitioned()
        return conversations

    @lazy
    def turn_locks(self) -> KeyLocks:
        """One turn at a time per conversation, across this worker's threads and every
        other worker (see :meth:`ask`)."""
        return KeyLocks(self.db, "support-turns")

    @lazy
    def webhooks(self) -> WebhookDeliverer:
        from .people.webhooks import WebhookDeliverer

        return WebhookDeliverer(self.db)

    def _transitioned(self) -> None:
        from .people.webhooks import webhook_url

        if webhook_url(self.db):
            self.webhooks.kick()

    # What the parts call for state this service opens on first use (and after close).
    def _opened_db(self) -> Database:
        return self.db

    def _opened_conversations(self) -> Conversations:
        return self.conversations

    def _opened_turn_locks(self) -> KeyLocks:
        return self.turn_locks

    def _opened_registry(self) -> ModelRegistry:
        self.db  # noqa: B018 - opening the database imports a 0.1.0 workspace's models first
        return self.registry

    # -- the models ---------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        return self.models.encoder

    @property
    def encoder_name(self) -> str:
        return self.models.encoder_name

    @property
    def llm(self) -> str:
        return self.models.llm

    @property
    def adapter(self) -> str | None:
        return self.models.adapter

    @property
    def generator(self) -> TextGenerator:
        """The answer generator: the process's shared engine of :attr:`llm` (and the active
        adapter), shaped like a :class:`~aigc_apps.generation.Generator`."""
        return self.models.generator

    def reload_models(self, *roles: str) -> None:
        """Forget the loaded models of ``roles`` (default: both) and the overrides given to
        the constructor: the next call uses what the registry has active (after tuning, or
        ``aigc models activate`` under a long-running service)."""
        with self._lock:
            if ENCODER_ROLE in (roles or MODEL_ROLES) and self.opened("knowledge"):
                self.knowledge.forget_index()  # its weights stay
            self.models.reload(*roles)

    # -- the knowledge part's (see Knowledge) --------------------------------------------
    answerer: PartAttribute[Answerer] = PartAttribute("knowledge")
    kb: PartAttribute[KnowledgeIndex] = PartAttribute("knowledge")
    calibration: PartAttribute[Calibration] = PartAttribute("knowledge")
    doc_threshold: PartAttribute[float] = PartAttribute("knowledge")
    company: PartAttribute[str] = PartAttribute("knowledge")
    stored_settings: PartAttribute[dict[str, Any]] = PartAttribute("knowledge")
    index_dir: PartAttribute[Path] = PartAttribute("knowledge")

    changing_knowledge = delegate("knowledge", Knowledge.changing_knowledge)
    reindex = delegate("knowledge", Knowledge.reindex)
    recalibrate = delegate("knowledge", Knowledge.recalibrate)
    ingest = delegate("knowledge", Knowledge.ingest)
    ingest_items = delegate("knowledge", Knowledge.ingest_items)
    calibrate_on = delegate("knowledge", Knowledge.calibrate_on)
    set_retrieval = delegate("knowledge", Knowledge.set_retrieval)
    set_answers = delegate("knowledge", Knowledge.set_answers)
    quarantine = delegate("knowledge", Knowledge.quarantine)
    approve = delegate("knowledge", Knowledge.approve)
    reject = delegate("knowledge", Knowledge.reject)
    scan_knowledge = delegate("knowledge", Knowledge.scan_knowledge)
    blocked_answers = delegate("knowledge", Knowledge.blocked_answers)

    # -- the answer desk's (see AnswerDesk) -----------------------------------------------
    @property
    def max_new_tokens(self) -> int:
        return self.desk.max_new_tokens if self.opened("desk") else self._max_new_tokens

    @max_new_tokens.setter
    def max_new_tokens(self, value: int) -> None:
        self._max_new_tokens = value
        if self.opened("desk"):
            self.desk.max_new_tokens = value

    ask = delegate("desk", AnswerDesk.ask)
    decide = delegate("desk", AnswerDesk.decide)
    prompt = delegate("desk", AnswerDesk.prompt)
    history = delegate("desk", AnswerDesk.history)
    embed_query = delegate("desk", AnswerDesk.embed_query)

    # -- the conversation records' (see ConversationRecords) -----------------------------
    turns = delegate("records", ConversationRecords.turns)
    create_session = delegate("records", ConversationRecords.create_session)
    session = delegate("records", ConversationRecords.session)
    handoffs = delegate("records", ConversationRecords.handoffs)
    feedback = delegate("records", ConversationRecords.feedback)
    suggestions = delegate("records", ConversationRecords.suggestions)
    approve_suggestion = delegate("records", ConversationRecords.approve_suggestion)
    reject_suggestion = delegate("records", ConversationRecords.reject_suggestion)
    handoff_stats = delegate("records", ConversationRecords.handoff_stats)

    # -- reports and tuning -------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        self.knowledge.freshness.check()
        return {
            **self.kb.stats(),
            "threshold": round(self.calibration.threshold, 4),
            "calibration": self.calibration.method,
            "generator_adapter": self.adapter,
            "retrieval": asdict(self.kb.config),
            "intent_head": self.kb.head is not None,
            "quarantined": len(self.quarantine("pending")),
        }

    def evaluate(
        self, texts: Sequence[str], labels: Sequence[str], oos_label: str | None = None
    ) -> EvalReport:
        """Top-1, recall@5, MRR, handoff rates and decision latency on labelled queries."""
        from .quality.evaluation import evaluate

        return evaluate(self.answerer, texts, labels, oos_label)

    def evaluate_file(
        self,
        path: str | Path,
        *,
        text_col: str = "text",
        intent_col: str = "intent",
        oos_label: str | None = None,
    ) -> EvalReport:
        """:meth:`evaluate` on a CSV/TSV/JSONL/JSON file; unusable rows are in ``skipped``."""
        from .quality.evaluation import read_labelled_queries

        texts, labels, skipped = read_labelled_queries(Path(path), text_col, intent_col)
        report = self.evaluate(texts, labels, oos_label)
        report.skipped = skipped
        return report

    def tune(
        self,
        *,
        retriever: bool = True,
        generator: bool = True,
        epochs: int = 1,
        batch_size: int = 64,
        lora: bool = False,
        max_steps: int = 30,
        lora_r: int | None = None,
        lora_alpha: int | None = None,
        lora_dropout: float | None = None,
        target_modules: str | list[str] | None = None,
    ) -> TuningReport:
        """Tune the retriever's encoder (``epochs``, ``batch_size``, ``lora``) and/or LoRA-tune
        the generator (``max_steps``) on this knowledge base and its feedback; each result is
        registered and becomes active. The LoRA shape applies to every LoRA trained here
        (``target_modules`` to the generator's; the encoder's adapts all linear layers)."""
        from .quality.tuning import TuningReport, tune_generator, tune_retriever

        report = TuningReport()
        if retriever:
            report = tune_retriever(
                self,
                epochs=epochs,
                batch_size=batch_size,
                lora=lora,
                lora_r=lora_r,
                lora_alpha=lora_alpha,
                lora_dropout=lora_dropout,
            )
        if generator:
            report.add_generator(
                tune_generator(
                    self,
                    max_steps=max_steps,
                    lora_r=lora_r,
                    lora_alpha=lora_alpha,
                    lora_dropout=lora_dropout,
                    target_modules=target_modules,
                )
            )
        return report

    # -- the conversation webhook ---------------------------------------------------------
    def webhook_url(self) -> str | None:
        """Where every conversation transition is posted (None: nowhere). Read from the
        store each time, so a URL set by another process or worker shows at once."""
        from .people.webhooks import webhook_url

        return webhook_url(self.db)

    def set_webhook_url(self, url: str | None) -> None:
        """Post every transition to ``url`` from now on (None: stop posting). Events stored
        meanwhile wait for it; a URL whose host is an inner address is refused unless
        ``AIGC_WEBHOOK_ALLOW`` lets it through. Starts no delivery thread: a server's own
        deliverer reads the URL before each attempt."""
        from .people.webhooks import set_webhook_url

        set_webhook_url(self.db, url)

    def deliver_due_webhooks(self) -> DeliveryReport:
        """Post the transitions that are due, once, here and now: what a running server's
        deliverer does on its own, for a terminal with no server (failures are retried
        later, with back-off, by whoever delivers next)."""
        from .people.webhooks import deliver_due

        return deliver_due(self.db)


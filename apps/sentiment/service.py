"""``SentimentService``: the one object that the CLI (and next the HTTP API) calls.

Construction does no I/O. The database, the scoring model, the encoder and the topic
matcher load on first use, once, and are shared by every later call, so a long-running
server pays for them once. Which model scores texts is the registry's active sentiment
model unless a call names another. Each call first reads the registry's generation stamp of
the app's models (one primary-key SELECT, :meth:`ModelRegistry.freshness`): when another
process or worker trained, activated or deleted a model since, the loaded models are
dropped and the next use loads what the registry says now, so every worker of ``aigc serve
--workers N`` answers alike. ``close()`` (or ``with``) releases the connections.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.lazy import lazy
from aigc_apps.registry import ModelEntry, ModelRegistry
from aigc_apps.service import AppService
from aigc_apps.settings import Settings
from aigc_apps.store import Database

from .alert_schedule import AlertSchedule
from .alerts import AlertEngine, AlertRule, list_alerts
from .classifier import FitOptions, SentimentModel, TrainReport, evaluate_model, train_sentiment
from .constants import APP, SENTIMENT_ROLE
from .documents import (
    StoreActivity,
    StoredDocument,
    alert_documents,
    list_documents,
    store_activity,
)
from .evaluation import EvalReport, LabelledData, load_labelled
from .ingest import Ingester, IngestReport
from .reader import MAX_TEXT_CHARS
from .scoring import Prediction, Scorer, predictions
from .sources import SourceSpec
from .store import Alert, as_utc, open_db
from .topics import (
    TextEncoder,
    TopicHit,
    TopicMatcher,
    WatchTopic,
    list_topics,
    load_topics_file,
    remove_topic,
    save_topics,
)
from .trends import Bucket, check_topic, parse_since
from .trends import trends as trend_series

AlertCallback = Callable[[dict[str, Any]], None]
_SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}


@dataclass
class IngestOptions:
    """How records are ingested; ``source`` names records that carry none (default: the
    file's name, ``stdin`` or ``api``); ``model`` None is the active sentiment model."""

    source: str | None = None
    text_col: str | None = None
    model: str | None = None
    batch_size: int = 256
    alerts: bool = True
    webhook: str | None = None


@dataclass
class ScoredText:
    """One scored text: what the model says and which topics it is about."""

    text: str
    truncated: bool
    prediction: Prediction
    topics: list[TopicHit] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "truncated": self.truncated,
            **self.prediction.to_dict(),
            "topics": [{"topic": h.topic, "method": h.method, "similarity": round(h.similarity, 3)}
                       for h in self.topics],
        }


@dataclass
class Evaluation:
    """A model's metrics on a labelled file, and how many of its rows were unusable."""

    model: str
    skipped: int
    report: EvalReport

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "skipped": self.skipped, **self.report.to_dict()}


class SentimentService(AppService):
    """Train, evaluate, score, ingest, trends, alerts, topics and models of the sentiment app.

    ``db_url`` None is the workspace's sentiment store; ``encoder`` replaces the workspace
    encoder for embedding topic matches (``embeddings=False`` matches by keyword and topic
    model only; ``similarity`` is the embedding match threshold). The shell (settings,
    database, registry, ``close``, ``ping``) is :class:`~aigc_apps.service.AppService`'s;
    what is the app's own (the scoring models, the encoder, the topic matcher) is here.

    >>> service = SentimentService("sqlite:///:memory:")  # nothing opened yet
    """

    app = APP

    def __init__(
        self,
        db_url: str | None = None,
        *,
        registry: ModelRegistry | None = None,
        settings: Settings | None = None,
        encoder: TextEncoder | None = None,
        embeddings: bool = True,
        similarity: float = 0.4,
    ) -> None:
        super().__init__(db_url, registry=registry, settings=settings)
        self.embeddings = embeddings
        self.similarity = similarity
        if encoder is not None:
            self.encoder = encoder
        self._models: dict[str, Scorer] = {}
        self._active: Scorer | None = None
        self._fresh = self.registry.freshness(APP)
        self._matcher: tuple[list[WatchTopic], Any, TopicMatcher] | None = None

    def open_db(self, url: str) -> Database:
        return open_db(url)

    # -- the app's own models, loaded once on first use ------------------------------------
    def model(self, name: str | None = None) -> Scorer:
        """Model ``name``, or the active sentiment model; each loaded once and kept until
        the registry's stamp of the app's models moves (a model trained, activated or
        deleted here or elsewhere), so a change made by another process is seen at once.
        """
        with self._lock:
            if self._fresh.check():
                self._models.clear()
                self._active = None
            if name is not None:
                if name not in self._models:
                    self._models[name] = SentimentModel.load(
                        name, registry=self.registry, settings=self.settings
                    )
                return self._models[name]
            if self._active is None:
                # by name, so that what is loaded is what was looked up
                entry = self.registry.active(APP, SENTIMENT_ROLE)
                self._active = SentimentModel.load(entry.name if entry else None,
                                                   registry=self.registry,
                                                   settings=self.settings)
            return self._active

    @lazy
    def encoder(self) -> TextEncoder:
        """The encoder given, else the workspace's default encoder (loaded once)."""
        from aigc_apps.embeddings import Encoder

        return Encoder.cached(self.settings.default_encoder, settings=self.settings)

    def _scorer(self, model: str | Scorer | None) -> Scorer:
        """A name or None is looked up; a model already in hand saves the registry query."""
        return self.model(model) if model is None or isinstance(model, str) else model

    def matcher(self, model: str | Scorer | None = None) -> TopicMatcher:
        """Topic matcher over the stored watch list, rebuilt only when the list changes."""
        topics = list_topics(self.db)
        topic_model = getattr(self._scorer(model), "topic_classifier", None)
        with self._lock:
            cached = self._matcher
            if cached is None or cached[0] != topics or cached[1] is not topic_model:
                encoder = self.encoder if self.embeddings and topics else None
                built = TopicMatcher(topics, encoder=encoder, threshold=self.similarity,
                                     topic_model=topic_model)
                self._matcher = cached = (topics, topic_model, built)
            return cached[2]

    # -- models ---------------------------------------------------------------------------
    def models(self) -> list[ModelEntry]:
        """Registered sentiment models, newest first."""
        return self.registry.list(app=APP, role=SENTIMENT_ROLE)

    def activate(self, name: str) -> ModelEntry:
        """Make ``name`` the model that scores texts from now on."""
        entry = self.registry.get(name)
        if (entry.app, entry.role) != (APP, SENTIMENT_ROLE):
            raise NotFoundError(f"model {name!r} is a {entry.app} {entry.role} model, "
                                "not a sentiment model (see `aigc sentiment models`)")
        return self.registry.activate(name)

    def read_labelled(
        self,
        path: str | Path,
        *,
        text_col: str = "text",
        label_col: str = "label",
        topic_col: str | None = None,
        split_col: str | None = None,
        seed: int = 42,
        label_map: Mapping[str, str] | None = None,
        name: str = "",
    ) -> LabelledData:
        """Train/validation/test rows of a labelled file (``split_col`` None: the file's
        ``split`` column when it has one, else a seeded stratified split); ``label_map``
        maps the file's own label spellings, ``name`` names it as a training source."""
        return load_labelled(path, text_col=text_col, label_col=label_col, topic_col=topic_col,
                             split_col=split_col or "split", require_split=bool(split_col),
                             seed=seed, label_map=label_map, name=name)

    def read_sources(self, sources: Sequence[str | SourceSpec], *, seed: int = 42,
                     **defaults: Any) -> list[LabelledData]:
        """Several labelled sources for one training run, each a :class:`SourceSpec` or its
        ``PATH[:key=value,...]`` spelling; ``defaults`` (``text_col=...``) fill the columns
        a spec leaves out. A source without validation rows gets some carved (seeded) from
        its training rows (``validation_carved``)."""
        specs = [s if isinstance(s, SourceSpec) else SourceSpec.parse(s, **defaults)
                 for s in sources]
        return [self.read_labelled(s.path, text_col=s.text_col, label_col=s.label_col,
                                   topic_col=s.topic_col, split_col=s.split_col, seed=seed,
                                   label_map=s.label_map, name=s.name) for s in specs]

    def train(self, data: LabelledData | Sequence[LabelledData], name: str,
              options: FitOptions | None = None, *, topics: bool = False) -> TrainReport:
        """Fine-tune, register and activate a classifier (and a topic classifier) on one
        labelled source or several (mixed, selected on and reported per source)."""
        return train_sentiment(data, name, options, topics=topics, registry=self.registry,
                               settings=self.settings)

    def evaluate(
        self,
        path: str | Path,
        model: str | None = None,
        *,
        text_col: str = "text",
        label_col: str = "label",
        split: str | None = None,
        split_col: str = "split",
    ) -> Evaluation:
        """Metrics of ``model`` on a labelled file, or on one split of it."""
        labelled = load_labelled(path, text_col=text_col, label_col=label_col,
                                 split_col=split_col if split else None)
        if split:
            key = _SPLIT_ALIASES.get(split, split)
            if key not in labelled.splits:
                raise DataError(f"unknown --split {split!r} (use train, validation or test)")
            rows = labelled.splits[key]
            if not rows or not labelled.split_from_column:
                raise DataError(f"{path}: no rows with {split_col}={split!r}")
        else:
            rows = [r for part in labelled.splits.values() for r in part]
        scorer = self.model(model)
        report = evaluate_model(scorer, rows)
        return Evaluation(scorer.name, len(labelled.skipped), report)

    # -- scoring and ingest -----------------------------------------------------------------
    def score(self, texts: Sequence[str], model: str | Scorer | None = None
              ) -> list[ScoredText]:
        """Label, probabilities, score and topics of each text; nothing is stored.

        ``model``: a registered name, a model from :meth:`model`, or None (the active one).
        Texts longer than :data:`MAX_TEXT_CHARS` are cut (and flagged), as ingest does.
        """
        cleaned = [t.strip() for t in texts]
        if not cleaned:
            raise DataError("no text to score")
        empty = [i for i, t in enumerate(cleaned, start=1) if not t]
        if empty:  # a label for nothing would look like a real prediction
            raise DataError(f"text {empty[0]} is empty: nothing to score")
        cut = [t[:MAX_TEXT_CHARS] for t in cleaned]
        scorer = self._scorer(model)
        probs = scorer.predict_proba(cut)
        hits = self.matcher(scorer).match(cut)
        return [ScoredText(t, len(full) > MAX_TEXT_CHARS, p, found)
                for t, full, p, found in zip(cut, cleaned, predictions(probs), hits, strict=True)]

    def ingester(self, options: IngestOptions | None = None, *, default_source: str = "",
                 on_alert: AlertCallback | None = None,
                 alerts: AlertEngine | AlertSchedule | None = None) -> Ingester:
        """An :class:`Ingester` on this service's store, model and topics; ``alerts``
        replaces the engine ``options`` describe (a live feed's :class:`AlertSchedule`)."""
        opts = options or IngestOptions()
        engine = (alerts or AlertEngine(webhook=opts.webhook)) if opts.alerts else None
        scorer = self.model(opts.model)
        return Ingester(self.db, scorer, self.matcher(scorer),
                        source=opts.source or default_source, text_col=opts.text_col,
                        batch_size=opts.batch_size, alerts=engine, on_alert=on_alert)

    def ingest_file(self, path: str | Path, options: IngestOptions | None = None, *,
                    fmt: str | None = None, on_alert: AlertCallback | None = None
                    ) -> IngestReport:
        """Score and store a CSV/TSV/JSONL file (deduplicated), then run the alert rules."""
        ingester = self.ingester(options, default_source=Path(path).name, on_alert=on_alert)
        return ingester.ingest_file(path, fmt=fmt)

    def ingest_stream(self, stream: IO[bytes], options: IngestOptions | None = None, *,
                      fmt: str | None = None, on_alert: AlertCallback | None = None
                      ) -> IngestReport:
        ingester = self.ingester(options, default_source="stdin", on_alert=on_alert)
        return ingester.ingest_stream(stream, fmt=fmt)

    def ingest_records(self, records: Iterable[object],
                       options: IngestOptions | None = None, *,
                       on_alert: AlertCallback | None = None) -> IngestReport:
        """Records already parsed (a JSON request body), one dict each."""
        ingester = self.ingester(options, default_source="api", on_alert=on_alert)
        return ingester.ingest_records(records)

    def follow(self, path: str | Path | None, options: IngestOptions | None = None, *,
               fmt: str | None = None, stop: threading.Event | None = None,
               idle_timeout: float | None = None, on_alert: AlertCallback | None = None
               ) -> IngestReport:
        """Tail a growing file (or stdin when ``path`` is None) until ``stop`` is set; each
        batch is scored by the model (and matched to the topics) of that moment."""
        source = "stdin" if path is None else Path(path).name
        opts = options or IngestOptions()
        schedule = AlertSchedule(AlertEngine(webhook=opts.webhook))
        ingester = self.ingester(opts, default_source=source, on_alert=on_alert,
                                 alerts=schedule)

        def current() -> tuple[Scorer, TopicMatcher]:  # a stamp read and a topics read
            scorer = self.model(opts.model)
            return scorer, self.matcher(scorer)

        ingester.refresh = current  # a feed followed for days follows the registry too
        return ingester.follow(path, fmt=fmt, stop=stop, idle_timeout=idle_timeout)

    # -- reports -----------------------------------------------------------------------------
    def trends(self, topic: str | None = None, bucket: str = "1h",
               since: str | datetime | None = None, until: str | datetime | None = None
               ) -> dict[str, list[Bucket]]:
        """Counts, negative share and mean score per topic and time bucket."""
        return trend_series(self.db, topic=topic, bucket=bucket, since=since, until=until)

    def plot(self, series: Mapping[str, Sequence[Bucket]], out: str | Path, *,
             title: str = "Sentiment share per topic") -> Path:
        """Chart ``series`` to ``out`` with every stored alert marked."""
        from .plot import plot_trends

        fired: dict[str, list[datetime]] = {}
        for alert in list_alerts(self.db, limit=10_000):
            fired.setdefault(alert.topic, []).append(as_utc(alert.bucket_start))
        return plot_trends(series, out, alerts=fired, title=title)

    def alerts(self, topic: str | None = None, since: str | datetime | None = None,
               limit: int = 50) -> list[Alert]:
        """Stored alerts, newest first."""
        if topic:
            check_topic(self.db, topic)
        start = parse_since(since) if isinstance(since, str) else since
        return list_alerts(self.db, topic, start, limit)

    def documents(self, topic: str | None = None, label: str | None = None,
                  since: str | datetime | None = None, until: str | datetime | None = None,
                  limit: int = 20) -> list[StoredDocument]:
        """Stored documents (of a topic, a label, a period), newest first."""
        start = parse_since(since) if isinstance(since, str) else since
        end = parse_since(until, what="until") if isinstance(until, str) else until
        return list_documents(self.db, topic=topic, label=label, since=start, until=end,
                              limit=limit)

    def alert_documents(self, alert_id: int, limit: int = 20) -> list[StoredDocument]:
        """The documents that drove alert ``alert_id``: negatives first, then newest."""
        return alert_documents(self.db, alert_id, limit)

    def check_alerts(self, topic: str | None = None, webhook: str | None = None
                     ) -> list[dict[str, Any]]:
        """Run the alert rules over the stored records; returns the alerts that are new."""
        if topic:
            check_topic(self.db, topic)
        return AlertEngine(webhook=webhook).evaluate(self.db, [topic] if topic else None)

    # -- topics ------------------------------------------------------------------------------
    def topics(self) -> list[WatchTopic]:
        return list_topics(self.db)

    def add_topic(self, name: str, keywords: str | Sequence[str],
                  rule: Mapping[str, object] | None = None) -> WatchTopic:
        """Add or replace a topic; ``keywords`` comma-separated or a list, ``rule`` overrides
        of :class:`AlertRule` (checked here, so a bad one is never stored)."""
        words = keywords.split(",") if isinstance(keywords, str) else list(keywords)
        topic = WatchTopic(name, words, AlertRule.overrides(rule or {}))
        save_topics(self.db, [topic])
        return topic

    def save_topics(self, topics: Sequence[WatchTopic]) -> None:
        save_topics(self.db, topics)

    def load_topics(self, path: str | Path) -> list[WatchTopic]:
        """Add or replace the topics of a file (``name: kw, kw`` lines or JSON)."""
        loaded = load_topics_file(path)
        save_topics(self.db, loaded)
        return loaded

    def remove_topic(self, name: str) -> None:
        remove_topic(self.db, name)

    # -- the HTTP documents route and the live pipeline's status ---------------------------
    def ingest_all_or_none(self, records: Iterable[Mapping[str, Any]],
                           options: IngestOptions | None = None) -> IngestReport:
        """Score and store parsed records only if every one of them can be stored: one that
        cannot raises :class:`~.ingest.RefusedRecord` naming it and nothing is stored, so a
        client that fixes it and sends the batch again never finds half of it stored (where
        :meth:`ingest_records` counts it as a skip and stores the rest). Re-sent records are
        duplicates, not stored twice (a record is identified by source and id)."""
        ingester = self.ingester(options, default_source="api")
        return ingester.ingest_all_or_none(records)

    def store_activity(self, window: timedelta = timedelta(minutes=1)) -> StoreActivity:
        """Documents stored in all and during the last ``window``: how fast a live pipeline
        stores, counted in the store, so every worker's writes count whatever fed them."""
        return store_activity(self.db, window)


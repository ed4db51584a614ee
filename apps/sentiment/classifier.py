"""Training, registering and loading the sentiment (and optional topic) classifier.

Training goes through the core :class:`~aigc_apps.finetune.LoraTrainer` (``task="classify"``,
class-weighted loss, best epoch chosen on the validation split by macro-F1). A trained run
is an entry of the core :class:`~aigc_apps.registry.ModelRegistry` (app ``sentiment``, role
``sentiment``) holding its label set and validation/test metrics, and becomes the active
sentiment model; a topic classifier trained alongside is registered as ``<name>-topic``
(role ``topic``) and linked from the sentiment entry's ``info["topic_model"]``.

Training may read several labelled sources at once (news and posts): they are mixed by
per-source sampling weights, selected on by per-source validation macro-F1 and reported per
source (:mod:`apps.sentiment.sources`). The text normalisation of ``FitOptions.normalize``
is applied to every training row and saved in the model folder, and the loaded model
applies it itself (:mod:`apps.sentiment.normalize`).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aigc_apps.errors import AigcError, DataError
from aigc_apps.settings import Settings, get_settings

from .constants import APP
from .evaluation import EvalReport, LabelledData, evaluate_predictions
from .int8 import decide_int8, load_int8, read_decision, save_int8, wanted_precision
from .normalize import DEFAULT_NORMALIZE, NormalizeConfig
from .registry import (
    INFO_FILE,
    register_trained,
    sentiment_entry,
    sentiment_models,
    topic_dir_of,
)
from .reports import TopicRun, TrainReport
from .scoring import LABELS, Scorer, normalize_label, predictions
from .sources import (
    SourceMix,
    SourceReport,
    check_label_sets,
    evaluate_sources,
    mix_sources,
    pooled,
    selection_callback,
)

if TYPE_CHECKING:
    from aigc_apps.registry import ModelRegistry

__all__ = [
    "APP_TAG", "INFO_FILE", "FitOptions", "SentimentModel", "SourceReport", "TopicRun",
    "TrainReport",
    "default_learning_rate", "default_targets", "evaluate_model", "sentiment_models",
    "train_sentiment",
]

APP_TAG = APP  # 0.1.0 name of the app's registry tag


def _is_decoder(base: str) -> bool:
    """Whether ``base`` generates text, read from its config (never guessed from its name)."""
    from aigc_apps.models import model_kind

    return model_kind(base) == "causal-lm"


def default_learning_rate(base: str) -> float:
    """LoRA on a small encoder wants a high rate; decoder LMs a lower one."""
    return 1e-4 if _is_decoder(base) else 1e-3


def default_targets(base: str) -> list[str] | None:
    """Every linear layer of a small encoder, the core's attention default for decoder LMs.

    Chosen on FPB validation data only (``benchmarks/select_defaults.py sentiment``):
    all-linear 0.833 accuracy / 0.818 macro-F1 against attention-only 0.806 / 0.792.
    """
    return None if _is_decoder(base) else ["all-linear"]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise AigcError(message)


@dataclass
class FitOptions:
    """Training knobs shared by the sentiment and the topic classifier.

    ``base`` None is the workspace's encoder (``AIGC_ENCODER``), read when training starts.
    ``balance`` sets the per-source sampling weights when several sources train together
    (1: natural proportions, 0: equal shares; see :mod:`apps.sentiment.sources`);
    ``normalize`` is the text normalisation saved with the model (the topic classifier
    reads raw text).
    ``lora_r``, ``lora_alpha`` and ``lora_dropout`` left at None take the core's
    classification defaults (``LORA_DEFAULTS["classify"]``); ``target_modules`` None takes
    :func:`default_targets`. Values that would train nothing are refused here, before any
    data is read, so an untrained model is never registered.
    """

    base: str | None = None
    epochs: float = 4.0
    max_steps: int = -1  # > 0 overrides epochs; -1: no limit
    learning_rate: float | None = None  # None: default_learning_rate(base)
    lora_r: int | None = None
    max_length: int = 96
    batch_size: int = 16
    seed: int = 42
    progress: bool = True
    target_modules: str | list[str] | None = None  # comma-separated or a list
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    balance: float = 0.5
    normalize: NormalizeConfig = field(default_factory=lambda: DEFAULT_NORMALIZE)
    r: InitVar[int | None] = None  # 0.1.0 spelling of lora_r, deprecated

    def __post_init__(self, r: int | None) -> None:
        if r is not None:
            warnings.warn("FitOptions(r=...) is deprecated; use lora_r=", FutureWarning,
                          stacklevel=3)
            if self.lora_r is None:
                self.lora_r = r
        _check(0 < self.epochs < math.inf, f"epochs (--epochs) must be > 0, got {self.epochs}")
        _check(self.max_steps > 0 or self.max_steps == -1,
               f"max_steps (--max-steps) must be > 0, or -1 for no limit, got {self.max_steps}")
        _check(self.learning_rate is None or 0 < self.learning_rate < math.inf,
               f"learning rate (--lr) must be > 0, got {self.learning_rate}")
        _check(self.batch_size > 0, f"batch size (--batch-size) must be > 0, got {self.batch_size}")
        _check(self.max_length > 8, f"max length (--max-length) must be > 8, got {self.max_length}")
        _check(self.lora_r is None or self.lora_r > 0, f"--lora-r must be > 0, got {self.lora_r}")
        _check(self.lora_alpha is None or self.lora_alpha > 0,
               f"--lora-alpha must be > 0, got {self.lora_alpha}")
        _check(self.lora_dropout is None or 0 <= self.lora_dropout < 1,
               f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        _check(0 <= self.balance <= 1, f"--balance must be in [0, 1], got {self.balance}")

    def resolved(self, settings: Settings) -> FitOptions:
        """A copy with ``base`` filled in from ``settings``."""
        return replace(self, base=self.base or settings.default_encoder)

    def targets(self, base: str) -> list[str] | None:
        if isinstance(self.target_modules, str):
            return [m.strip() for m in self.target_modules.split(",") if m.strip()] or None
        return list(self.target_modules) if self.target_modules else default_targets(base)


def _fit(rows: list[dict[str, str]], eval_rows: list[dict[str, str]], out_dir: Path, name: str,
         label_col: str, opts: FitOptions, settings: Settings,
         callbacks: Sequence[Any] = ()) -> float:
    """Train one classifier into ``out_dir``; returns the seconds it took."""
    from aigc_apps.finetune import LoraTrainer, LoraTrainingConfig

    base = opts.base or settings.default_encoder
    config = LoraTrainingConfig(
        base=base, task="classify", name=name, lora_r=opts.lora_r, lora_alpha=opts.lora_alpha,
        lora_dropout=opts.lora_dropout, target_modules=opts.targets(base),
        epochs=opts.epochs, max_steps=opts.max_steps,
        learning_rate=opts.learning_rate or default_learning_rate(base),
        batch_size=opts.batch_size, max_length=opts.max_length, eval_fraction=0.0,
        early_stopping_patience=3, seed=opts.seed, text_col="text", label_col=label_col,
        class_weight="balanced", logging_steps=20,
    )
    start = time.perf_counter()
    trainer = LoraTrainer(config, progress=opts.progress, register=False, callbacks=callbacks,
                          settings=settings)
    result = trainer.fit(rows, out_dir, eval_data=eval_rows or None)
    if result.global_step <= 0:
        raise AigcError(f"training {name!r} ran no optimisation step: nothing registered")
    return time.perf_counter() - start


def train_sentiment(
    data: LabelledData | Sequence[LabelledData],
    name: str,
    options: FitOptions | None = None,
    *,
    topics: bool = False,
    out_root: str | Path | None = None,
    registry: ModelRegistry | None = None,
    settings: Settings | None = None,
) -> TrainReport:
    """Fine-tune on the ``train`` rows of one source or several, select on ``validation``,
    report on ``test``, then register the model (and its topic classifier) and make it the
    active one.

    With several sources, training rows are mixed by ``options.balance``, the best epoch is
    the one with the best validation macro-F1 averaged per source, and figures are reported
    per source (``report.sources``) as well as pooled.
    """
    sources = [data] if isinstance(data, LabelledData) else list(data)
    if not sources:
        raise DataError("no labelled source to train on")
    for source in sources:
        if not source.splits["train"]:
            raise DataError(f"{source.path}: no training rows")
    settings = settings or get_settings()  # the default base and where adapters go
    root = Path(out_root) if out_root else settings.adapters_dir / APP
    whole = pooled(sources)
    opts = (options or FitOptions()).resolved(settings)
    if len({r["label"] for r in whole.splits["train"]}) < 2:
        raise DataError(f"{whole.path}: training rows need at least 2 sentiment labels")
    norm = opts.normalize
    callbacks: list[Any] = []
    mix: list[SourceMix] = []
    if len(sources) > 1:
        check_label_sets(sources)
        train, mix = mix_sources(sources, opts.balance, opts.seed)
        labels = sorted({r["label"] for r in train})
        callbacks.append(selection_callback(
            {s.name: norm.apply_rows(s.splits["validation"]) for s in sources}, labels,
            opts.max_length, opts.batch_size))
    else:
        train = whole.splits["train"]
    out_dir = root / name
    seconds = _fit(norm.apply_rows(train), norm.apply_rows(whole.splits["validation"]),
                   out_dir, name, "label", opts, settings, callbacks)
    norm.save_pretrained(out_dir)  # before any scoring: the model reads texts this way
    model = SentimentModel.from_pretrained(out_dir, name=name)
    val, val_by = evaluate_sources(model, sources, "validation")
    test, test_by = evaluate_sources(model, sources, "test")
    int8 = decide_int8(model, sources, val, (test, test_by))
    if int8 is not None:  # saved with the trained model; the rule decides if it scores
        save_int8(int8[0], out_dir, int8[1])
    per_source = [SourceReport(s.name, s.path, s.counts(), m, s.validation_carved, v, t)
                  for s, m, v, t in zip(sources, mix, val_by, test_by, strict=False)]
    topic: TopicRun | None = None
    if topics:
        topic = _train_topics(whole, f"{name}-topic", root / f"{name}-topic", opts, settings)
    report = TrainReport(
        name=name, adapter_dir=out_dir, base=str(opts.base), labels=model.model_labels,
        validation=val, test=test,
        train_seconds=seconds + (topic.seconds if topic else 0.0),
        counts=whole.counts(), skipped=whole.skipped,
        topic_model=topic.name if topic else None, topic_test=topic.test if topic else None,
        sources=per_source, normalization=norm.to_dict(),
        int8=int8[1].to_dict() if int8 is not None else None,
    )
    register_trained(report, topic, registry, settings)
    return report


def _train_topics(data: LabelledData, name: str, out_dir: Path, opts: FitOptions,
                  settings: Settings) -> TopicRun | None:
    """A topic classifier on the rows that have a topic; None with fewer than 2 topics."""
    t_train, t_val, t_test = ([r for r in data.splits[s] if r.get("topic")]
                              for s in ("train", "validation", "test"))
    if len({r["topic"] for r in t_train}) < 2:
        return None
    seconds = _fit(t_train, t_val, out_dir, name, "topic", opts, settings)
    from aigc_apps.finetune import TextClassifier

    classifier = TextClassifier.from_pretrained(out_dir)
    test = None
    if t_test:
        predicted = classifier.predict([r["text"] for r in t_test])
        test = evaluate_predictions([r["topic"] for r in t_test], predicted,
                                    labels=classifier.labels)
    return TopicRun(name, out_dir, list(classifier.labels), test, seconds)


class SentimentModel:
    """A trained classifier as a :class:`~apps.sentiment.scoring.Scorer`.

    Columns of :meth:`predict_proba` always follow :data:`LABELS`, whatever label names or
    order the model was trained with; a class it never saw gets probability 0. Texts go
    through the model's own ``normalize`` config first (None, as for models saved before
    normalisation existed: raw text). ``precision`` says which weights score: ``full``, or
    ``int8`` where the rule saved with the model chose them (:mod:`apps.sentiment.int8`).
    """

    def __init__(self, classifier: Any, name: str, topic_classifier: Any = None, *,
                 topic_dir: str | Path | None = None,
                 normalize: NormalizeConfig | None = None, precision: str = "full") -> None:
        self.classifier = classifier
        self.name = name
        self.precision = precision
        self.normalize = normalize
        self._topic_classifier = topic_classifier
        self.topic_dir = Path(topic_dir) if topic_dir else None
        self.model_labels = list(classifier.labels)
        canon = [normalize_label(lab) for lab in self.model_labels]
        if any(c is None for c in canon):
            raise DataError(f"model {name!r} has labels {self.model_labels}, not sentiment labels")
        self._columns = [LABELS.index(c) for c in canon if c is not None]

    @property
    def topic_classifier(self) -> Any:
        """The paired topic classifier, loaded on first use (evaluation never needs it)."""
        if self._topic_classifier is None and self.topic_dir is not None:
            from aigc_apps.finetune import TextClassifier

            self._topic_classifier = TextClassifier.from_pretrained(self.topic_dir)
        return self._topic_classifier

    @topic_classifier.setter
    def topic_classifier(self, value: Any) -> None:
        self._topic_classifier = value

    def with_network(self, network: Any, precision: str = "int8") -> SentimentModel:
        """The same model (labels, tokenizer, normalisation, topics) scoring with another
        network of the same architecture (its int8 copy), on the CPU."""
        from aigc_apps.finetune import TextClassifier

        clf = self.classifier
        return SentimentModel(
            TextClassifier(network, clf.tokenizer, clf.labels, max_length=clf.max_length,
                           device="cpu"), self.name, self._topic_classifier,
            topic_dir=self.topic_dir, normalize=self.normalize, precision=precision)

    @classmethod
    def from_pretrained(cls, adapter_dir: str | Path, name: str | None = None,
                        topic_dir: str | Path | None = None,
                        full_precision: bool | None = None,
                        settings: Settings | None = None) -> SentimentModel:
        """The model in ``adapter_dir``, with int8 weights where the rule saved with it
        chose them, unless ``full_precision`` (None: the settings' ``sentiment_precision``,
        ``AIGC_SENTIMENT_PRECISION``)."""
        from aigc_apps.finetune import TextClassifier

        folder = Path(adapter_dir)
        model = cls(TextClassifier.from_pretrained(folder), name or folder.name,
                    topic_dir=topic_dir, normalize=NormalizeConfig.from_pretrained(folder))
        wanted = wanted_precision(full_precision, settings)
        if wanted == "full" or model.classifier.device.type != "cpu":
            return model
        decision = read_decision(folder)
        if decision is None or not (decision.use_int8 or wanted == "int8"):
            return model
        return model.with_network(load_int8(model.classifier.model, folder))

    @classmethod
    def load(cls, name: str | None = None, with_topics: bool = True,
             registry: ModelRegistry | None = None,
             full_precision: bool | None = None,
             settings: Settings | None = None) -> SentimentModel:
        """A registered model by name, or the active sentiment model of the registry."""
        from aigc_apps.registry import ModelRegistry

        reg = registry or ModelRegistry()
        try:
            entry = sentiment_entry(reg, name)
            topic_dir = topic_dir_of(reg, entry) if with_topics else None
        finally:
            if registry is None:
                reg.close()
        return cls.from_pretrained(entry.path, entry.name, topic_dir, full_precision, settings)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Batches of 32 (the core's default): on 2 CPU cores, MiniLM scores a 256-text
        ingest batch at 174 texts/s in batches of 32 and 152 in batches of 64."""
        batch = list(texts) if self.normalize is None else self.normalize.apply_all(list(texts))
        raw = self.classifier.predict_proba(batch, batch_size=batch_size)
        out = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
        out[:, self._columns] = raw
        return out

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [LABELS[i] for i in self.predict_proba(texts).argmax(axis=1)]


def evaluate_model(model: Scorer, rows: Sequence[dict[str, str]]) -> EvalReport:
    """Metrics of ``model`` (any :class:`Scorer`) on labelled rows (``text``, ``label``)."""
    if not rows:
        raise DataError("no rows to evaluate")
    predicted = [p.label for p in predictions(model.predict_proba([r["text"] for r in rows]))]
    return evaluate_predictions([r["label"] for r in rows], predicted)

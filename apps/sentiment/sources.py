"""Several labelled sources in one training run: how each is read, mixed and selected on.

A source is one labelled file with its own column names, split column and label spellings
(:class:`SourceSpec`, the ``--data PATH:key=value,...`` syntax). Sources are mixed so that a
small one is not drowned by a large one: source *i* with *n_i* training rows gets the share
``n_i ** balance / sum_j n_j ** balance`` of every epoch (``balance`` 1: natural proportions,
0: equal shares, default 0.5: square-root, the temperature-2 sampling of multilingual
training). No row is ever dropped: the epoch is sized so that the source with the smallest
share still shows each of its rows once, and the others repeat rows (whole passes, then a
seeded sample) up to their share. Best-epoch selection reads every source's validation rows
and averages macro-F1 *per source* (:func:`selection_callback`), so the larger validation
set does not decide alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aigc_apps.errors import DataError

from .evaluation import EvalReport, LabelledData, evaluate_predictions
from .scoring import Scorer, predictions

__all__ = ["SourceMix", "SourceReport", "SourceSpec", "check_label_sets", "evaluate_sources",
           "mix_sources", "pooled", "selection_callback", "source_shares"]

_KEYS = {"text": "text_col", "label": "label_col", "split": "split_col", "topic": "topic_col",
         "name": "name"}
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


@dataclass
class SourceSpec:
    """One labelled file and how to read it; ``label_map`` maps its own label spellings
    (case-insensitive) to negative/neutral/positive before the common spellings are tried
    (``bearish``, ``neg``, ``-1`` ...; see :func:`~apps.sentiment.scoring.normalize_label`)."""

    path: Path
    text_col: str = "text"
    label_col: str = "label"
    split_col: str | None = None  # None: the file's 'split' column if any, else seeded
    topic_col: str | None = None
    name: str = ""
    label_map: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.name = self.name or self.path.stem
        if not _NAME.match(self.name):
            raise DataError(f"source name {self.name!r}: use letters, digits, '_', '-' or '.' "
                            "(set one with name=...)")

    @classmethod
    def parse(cls, spec: str, **defaults: Any) -> SourceSpec:
        """``PATH`` or ``PATH:key=value,...`` with keys ``text``, ``label``, ``split``,
        ``topic``, ``name`` and ``map`` (repeatable, ``map=SPELLING>LABEL``), e.g.
        ``tweets.csv:text=tweet,label=sentiment,map=0>negative,map=1>positive``.
        ``defaults`` (``text_col=...`` ...) apply to the keys a spec leaves out."""
        head, sep, tail = spec.rpartition(":")
        pairs = [p.strip() for p in tail.split(",")] if sep else []
        if not sep or not head or not all("=" in p for p in pairs if p):
            return cls(Path(spec), **defaults)
        values: dict[str, Any] = dict(defaults)
        label_map: dict[str, str] = {}
        for pair in filter(None, pairs):
            key, _, value = (s.strip() for s in pair.partition("="))
            if key == "map":
                spelling, arrow, target = value.partition(">")
                if not arrow or not spelling.strip() or not target.strip():
                    raise DataError(f"--data {spec!r}: map={value!r}: expected "
                                    "map=SPELLING>LABEL, e.g. map=bullish>positive")
                label_map[spelling.strip()] = target.strip()
            elif key in _KEYS:
                values[_KEYS[key]] = value or None
            else:
                raise DataError(f"--data {spec!r}: unknown key {key!r} (use "
                                f"{', '.join([*_KEYS, 'map'])})")
        return cls(Path(head), label_map=label_map, **values)

    def describe(self) -> str:
        return f"{self.name} ({self.path})"


@dataclass
class SourceMix:
    """How much of every training epoch one source makes up."""

    name: str
    rows: int  # its training rows
    share: float  # its share of an epoch (the sampling weight)
    epoch_rows: int  # rows it contributes to an epoch, repeats included

    @property
    def repeats(self) -> float:
        return self.epoch_rows / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "weight": round(self.share, 4),
                "epoch_rows": self.epoch_rows, "repeats": round(self.repeats, 2)}


@dataclass
class SourceReport:
    """One source of a multi-source run: its rows, its share of training, its figures."""

    name: str
    path: str
    counts: dict[str, dict[str, int]]
    mix: SourceMix
    validation_carved: bool
    validation: EvalReport | None
    test: EvalReport | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "path": self.path, "counts": self.counts, **self.mix.to_dict(),
            "validation_carved_from_train": self.validation_carved,
            "validation": self.validation.to_dict() if self.validation else None,
            "test": self.test.to_dict() if self.test else None,
        }


def source_shares(sizes: dict[str, int], balance: float) -> dict[str, float]:
    """Sampling weight of each source: ``n ** balance``, normalised to sum to 1."""
    if not 0.0 <= balance <= 1.0:
        raise DataError(f"balance must be in [0, 1] (1: natural proportions, 0: equal), "
                        f"got {balance}")
    raw = {name: float(n) ** balance if n else 0.0 for name, n in sizes.items()}
    total = sum(raw.values())
    return {name: v / total for name, v in raw.items()}


def mix_sources(sources: Sequence[LabelledData], balance: float, seed: int
                ) -> tuple[list[dict[str, str]], list[SourceMix]]:
    """One epoch's training rows of every source at its share, and the mix it used."""
    sizes = {s.name: len(s.splits["train"]) for s in sources}
    shares = source_shares(sizes, balance)
    epoch = max(n / shares[name] for name, n in sizes.items() if n)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, str]] = []
    mix: list[SourceMix] = []
    for source in sources:
        train, n = source.splits["train"], sizes[source.name]
        want = max(n, round(shares[source.name] * epoch))
        whole, rest = divmod(want, n)
        picked = train * whole + [train[i] for i in sorted(rng.choice(n, rest, replace=False))]
        rows += picked
        mix.append(SourceMix(source.name, n, shares[source.name], len(picked)))
    return rows, mix


def check_label_sets(sources: Sequence[LabelledData]) -> None:
    """Refuse sources whose training labels differ: a label that one source never uses
    would teach the joint model that its texts are never that label."""
    found = {s.name: {r["label"] for r in s.splits["train"]} for s in sources}
    union = set().union(*found.values())
    for label in sorted(union):
        lacking = [name for name, labels in found.items() if label not in labels]
        if lacking:
            having = [name for name in found if name not in lacking]
            raise DataError(
                f"label {label!r} is in source {', '.join(having)} only, not in "
                f"{', '.join(lacking)}: a joint model would learn that "
                f"{', '.join(lacking)} texts are never {label}. Map that source's labels "
                f"onto the shared set (map=SPELLING>LABEL) or train it separately")


def pooled(sources: Sequence[LabelledData]) -> LabelledData:
    """All sources' rows per split, each tagged with its ``source`` (natural proportions)."""
    if len(sources) == 1:
        return sources[0]
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"two sources are named {dupes[0]!r}: name them apart (name=...)")
    splits = {split: [r | {"source": s.name} for s in sources for r in s.splits[split]]
              for split in ("train", "validation", "test")}
    return LabelledData("+".join(s.path for s in sources), splits,
                        [skip for s in sources for skip in s.skipped],
                        all(s.split_from_column for s in sources), name="+".join(names),
                        validation_carved=any(s.validation_carved for s in sources))


def evaluate_sources(model: Scorer, sources: Sequence[LabelledData], split: str
                      ) -> tuple[EvalReport | None, list[EvalReport | None]]:
    """Pooled and per-source metrics on one split, each text scored once."""
    parts = [s.splits[split] for s in sources]
    rows = [r for part in parts for r in part]
    if not rows:
        return None, [None] * len(parts)
    predicted = [p.label for p in predictions(model.predict_proba([r["text"] for r in rows]))]
    by_source: list[EvalReport | None] = []
    start = 0
    for part in parts:
        end = start + len(part)
        by_source.append(evaluate_predictions([r["label"] for r in part], predicted[start:end])
                         if part else None)
        start = end
    return evaluate_predictions([r["label"] for r in rows], predicted), by_source



def selection_callback(validation: dict[str, list[dict[str, str]]], labels: Sequence[str],
                       max_length: int, batch_size: int = 32) -> Any:
    """A ``TrainerCallback`` that makes the trainer select (best epoch, early stopping) on
    the mean of per-source validation macro-F1 instead of the pooled one.

    It scores each source's validation rows when the trainer evaluates and rewrites
    ``eval_f1_macro`` (the metric the core trainer selects on) in place, keeping the pooled
    figure as ``eval_f1_macro_pooled`` and each source's as ``eval_f1_macro@<source>``.
    """
    import torch
    from transformers import TrainerCallback

    ids = sorted(labels)  # the core trainer numbers labels in sorted order

    @torch.inference_mode()
    def predict(model: Any, tokenizer: Any, texts: list[str]) -> list[str]:
        encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        device = next(model.parameters()).device
        out = [""] * len(texts)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]},
                                  return_tensors="pt").to(device)
            for i, k in zip(idx, model(**batch).logits.argmax(-1).tolist(), strict=True):
                out[i] = ids[k]
        return out

    class PerSourceSelection(TrainerCallback):
        def __init__(self) -> None:
            self.history: list[dict[str, float]] = []

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None,
                        model: Any = None, processing_class: Any = None, **_: Any) -> None:
            if metrics is None or model is None or processing_class is None:
                return
            was_training = model.training
            model.eval()
            f1 = {name: evaluate_predictions([r["label"] for r in rows], predict(
                model, processing_class, [r["text"] for r in rows])).macro_f1
                for name, rows in validation.items() if rows}
            if was_training:
                model.train()
            if not f1:
                return
            metrics["eval_f1_macro_pooled"] = metrics.get("eval_f1_macro", float("nan"))
            metrics.update({f"eval_f1_macro@{name}": v for name, v in f1.items()})
            metrics["eval_f1_macro"] = float(np.mean(list(f1.values())))
            self.history.append({"step": float(state.global_step), **metrics})

    return PerSourceSelection()

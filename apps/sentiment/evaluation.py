"""Labelled data for training/eval (label names, splits) and the metrics a risk team reads.

Labels are normalised (``neg``/``bearish``/``-1`` -> ``negative`` ...), after the
source's own ``label_map`` when it has one; a row with a label that is none of the three is
skipped and counted, never guessed. Integer codes ``0/1/2`` mean different things in
different data sets (FPB: negative/neutral/positive; TFNS: bearish/bullish/neutral), so a
file labelled that way is refused until a ``label_map`` says which is which. A ``split`` column with
``train``/``validation``/``test`` is honoured; without one the rows get a seeded split
stratified by label, so results are reproducible and every class is in every part.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aigc_apps.data import Skip, read_records
from aigc_apps.errors import DataError
from aigc_apps.metrics import ClassificationReport, classification_report

from .scoring import LABELS, normalize_label

SPLITS = ("train", "validation", "test")
_SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation",
                  "valid": "validation", "val": "validation", "dev": "validation",
                  "test": "test", "testing": "test"}


@dataclass
class LabelledData:
    """Rows (``text``, ``label`` and maybe ``topic``) per split, plus what was skipped."""

    path: str
    splits: dict[str, list[dict[str, str]]]
    skipped: list[Skip] = field(default_factory=list)
    split_from_column: bool = False
    name: str = ""  # the source's name in multi-source training (default: the file's stem)
    validation_carved: bool = False  # validation rows carved (seeded) out of train

    def __post_init__(self) -> None:
        self.name = self.name or Path(self.path).stem

    def counts(self) -> dict[str, dict[str, int]]:
        return {name: dict(Counter(r["label"] for r in rows)) for name, rows in self.splits.items()}


def load_labelled(
    path: str | Path,
    *,
    text_col: str = "text",
    label_col: str = "label",
    topic_col: str | None = None,
    split_col: str | None = "split",
    seed: int = 42,
    fractions: tuple[float, float] = (0.1, 0.1),
    require_split: bool = False,
    label_map: Mapping[str, str] | None = None,
    name: str = "",
) -> LabelledData:
    """Read a labelled CSV/JSONL and return train/validation/test rows.

    Without ``split_col`` values (or the column) rows are split by seed, stratified; with
    ``require_split`` a missing split column is an error instead, since the user named it.
    ``label_map`` maps this file's spellings (case-insensitive) to sentiment labels before
    the common spellings are tried.
    """
    own = _check_label_map(path, label_map)
    result = read_records(path, required=[text_col, label_col])
    for col in (topic_col, split_col if require_split else None):
        if col and not any(col in r for r in result.records):
            raise DataError(f"{path}: missing column {col!r}")
    skipped = list(result.skipped)
    rows: list[dict[str, str]] = []
    unknown: Counter[str] = Counter()
    has_split = split_col is not None and any(
        str(r.get(split_col) or "").strip() for r in result.records
    )
    if not own:
        _refuse_integer_codes(path, label_col, {str(r[label_col]).strip() for r in result.records})
    for i, record in enumerate(result.records, start=1):
        raw = str(record[label_col]).strip().lower()
        label = own.get(raw) or normalize_label(raw)
        if label is None:
            unknown[str(record[label_col])] += 1
            skipped.append(Skip(i, f"unknown label {str(record[label_col])[:40]!r} "
                                   f"(expected {', '.join(LABELS)})"))
            continue
        row = {"text": str(record[text_col]).strip(), "label": label}
        if topic_col:
            row["topic"] = str(record.get(topic_col) or "").strip()
        if has_split:
            assert split_col is not None
            split = _SPLIT_ALIASES.get(str(record.get(split_col) or "").strip().lower())
            if split is None:
                skipped.append(Skip(i, f"unknown split {record.get(split_col)!r} "
                                       "(expected train, validation or test)"))
                continue
            row["split"] = split
        rows.append(row)
    if not rows:
        detail = f"; labels found: {', '.join(list(unknown)[:5])}" if unknown else ""
        raise DataError(f"{path}: no rows with a known label in {label_col!r}{detail}")
    carved = False
    if has_split:
        splits = {part: [r for r in rows if r["split"] == part] for part in SPLITS}
        if not splits["train"]:
            raise DataError(f"{path}: column {split_col!r} has no 'train' rows")
        if not splits["validation"]:  # carve a validation set out of train
            splits["train"], splits["validation"] = stratified_split(
                splits["train"], fractions[0], seed)
            carved = True
    else:
        rest, test = stratified_split(rows, fractions[1], seed)
        train, validation = stratified_split(rest, fractions[0] / (1 - fractions[1]), seed + 1)
        splits = {"train": train, "validation": validation, "test": test}
        carved = True
    return LabelledData(str(path), splits, skipped, has_split, name=name,
                        validation_carved=carved)


def _check_label_map(path: str | Path, label_map: Mapping[str, str] | None) -> dict[str, str]:
    """``label_map`` with lower-cased keys and canonical values; an unknown target is an
    error (a typo would otherwise drop every row it names)."""
    own: dict[str, str] = {}
    for spelling, target in (label_map or {}).items():
        canon = normalize_label(target)
        if canon is None:
            raise DataError(f"{path}: label map {spelling!r} -> {target!r}: the target must be "
                            f"one of {', '.join(LABELS)}")
        own[str(spelling).strip().lower()] = canon
    return own


def _refuse_integer_codes(path: str | Path, label_col: str, found: set[str]) -> None:
    """Labels 0/1/2 have no common meaning: mapping 0 to neutral (the -1/0/1 reading)
    would silently mislabel a third of an FPB- or TFNS-coded file."""
    if "2" in found and found <= {"0", "1", "2"}:
        raise DataError(
            f"{path}: column {label_col!r} holds the codes 0/1/2, which data sets use "
            "differently (FPB: 0 negative, 1 neutral, 2 positive; TFNS: 0 bearish, 1 bullish, "
            "2 neutral); say which is which with a label map, e.g. "
            "map=0>negative,map=1>neutral,map=2>positive")


def stratified_split(
    rows: list[dict[str, str]], fraction: float, seed: int
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Seeded split keeping label proportions; each label with >= 2 rows gets one held out."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    by_label: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    for label in sorted(by_label):
        group = by_label[label]
        order = rng.permutation(len(group))
        n_held = min(len(group) - 1, max(1, round(len(group) * fraction))) if len(group) > 1 else 0
        held += [group[i] for i in order[:n_held]]
        keep += [group[i] for i in order[n_held:]]
    return keep, held


class EvalReport(ClassificationReport):
    """The core's classification report, in the JSON shape the sentiment commands print."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "per_class": {k: {m: round(v, 4) for m, v in d.items()}
                          for k, d in self.per_class.items()},
            "labels": self.labels,
            "confusion_matrix": self.confusion,
        }


def evaluate_predictions(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] = LABELS
) -> EvalReport:
    """:func:`aigc_apps.metrics.classification_report` over the sentiment labels."""
    report = classification_report(y_true, y_pred, labels)
    return EvalReport(**vars(report))

"""What training a sentiment model produced: its report, and the topic classifier's run.

Plain records, apart from the trainer (:mod:`.classifier`) that fills them and the registry
view (:mod:`.registry`) that files them, so that neither of those imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aigc_apps.data import Skip

from .evaluation import EvalReport
from .sources import SourceReport


@dataclass
class TrainReport:
    name: str
    adapter_dir: Path
    base: str
    labels: list[str]
    validation: EvalReport | None
    test: EvalReport | None
    train_seconds: float
    counts: dict[str, dict[str, int]]
    skipped: list[Skip] = field(default_factory=list)
    topic_model: str | None = None
    topic_test: EvalReport | None = None
    sources: list[SourceReport] = field(default_factory=list)  # with several sources only
    normalization: dict[str, Any] | None = None
    int8: dict[str, Any] | None = None  # the int8 scorer's figures and decision (.int8)

    @property
    def selection_macro_f1(self) -> float | None:
        """What the best epoch was chosen on: validation macro-F1, averaged per source."""
        found = [s.validation.macro_f1 for s in self.sources if s.validation]
        if found:
            return float(np.mean(found))
        return self.validation.macro_f1 if self.validation else None

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"normalization": self.normalization, "int8": self.int8}
        if self.sources:
            extra["sources"] = [s.to_dict() for s in self.sources]
            extra["selection"] = {"criterion": "validation macro-F1, mean over sources",
                                  "value": round(self.selection_macro_f1 or 0.0, 4)}
        return extra | {
            "name": self.name,
            "adapter_dir": str(self.adapter_dir),
            "base": self.base,
            "labels": self.labels,
            "counts": self.counts,
            "train_seconds": round(self.train_seconds, 1),
            "validation": self.validation.to_dict() if self.validation else None,
            "test": self.test.to_dict() if self.test else None,
            "skipped": [str(s) for s in self.skipped],
            "topic_model": self.topic_model,
            "topic_test": self.topic_test.to_dict() if self.topic_test else None,
        }

    def metrics(self) -> dict[str, float]:
        """What the registry keeps: accuracy and macro-F1 per evaluated split (pooled), and
        per source as ``<source>_<split>_...`` when there are several."""
        found: dict[str, float] = {}
        parts = [("", "validation", self.validation), ("", "test", self.test)]
        parts += [(f"{s.name}_", split, ev) for s in self.sources
                  for split, ev in (("validation", s.validation), ("test", s.test))]
        for prefix, split, ev in parts:
            if ev is not None:
                found[f"{prefix}{split}_accuracy"] = round(ev.accuracy, 4)
                found[f"{prefix}{split}_macro_f1"] = round(ev.macro_f1, 4)
        return found


@dataclass
class TopicRun:
    """The topic classifier trained beside a sentiment model."""

    name: str
    path: Path
    labels: list[str]
    test: EvalReport | None
    seconds: float

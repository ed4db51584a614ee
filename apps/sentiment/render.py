"""Rich tables of the app's reports, shared by the CLI and the demo.

Only ``rich`` is imported here, so the CLI can import this module at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from aigc_apps.registry import ModelEntry

    from .evaluation import EvalReport
    from .service import ScoredText
    from .store import Alert
    from .topics import WatchTopic
    from .trends import Bucket


def trend_table(series: Mapping[str, Sequence[Bucket]], limit: int | None = None) -> Table:
    """Non-empty buckets per topic (the newest ``limit`` of each when given)."""
    table = Table("topic", "bucket (UTC)", "n", "neg", "neu", "pos", "neg share", "mean score")
    for topic, buckets in series.items():
        shown = [b for b in buckets if b.count]
        for b in shown[-limit:] if limit else shown:
            table.add_row(topic, b.start.strftime("%Y-%m-%d %H:%M"), str(b.count),
                          str(b.negative), str(b.neutral), str(b.positive),
                          f"{b.share_negative:.0%}", f"{b.mean_score:+.2f}")
    return table


def alerts_table(alerts: Sequence[Alert]) -> Table:
    table = Table("bucket (UTC)", "topic", "signals", "n", "neg share", "baseline", "webhook")
    for a in alerts:
        d = a.to_dict()
        table.add_row(d["bucket_start"][:16].replace("T", " "), a.topic, a.signals,
                      str(a.count), f"{a.negative_share:.0%}", f"{a.baseline_share:.0%}",
                      a.webhook_status or "-")
    return table


def scores_table(rows: Sequence[ScoredText]) -> Table:
    from .scoring import LABELS

    table = Table("text", "label", *LABELS, "topics")
    for row in rows:
        p = row.prediction
        table.add_row(row.text[:80], p.label, *(f"{p.probabilities[lab]:.2f}" for lab in LABELS),
                      ", ".join(f"{h.topic} ({h.method})" for h in row.topics) or "-")
    return table


def per_class_table(report: EvalReport) -> Table:
    table = Table("label", "precision", "recall", "F1", "support")
    for label, m in report.per_class.items():
        table.add_row(label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
                      str(int(m["support"])))
    return table


def confusion_table(report: EvalReport) -> Table:
    table = Table("true \\ predicted", *report.labels, title="confusion matrix")
    for label, row in zip(report.labels, report.confusion, strict=True):
        table.add_row(label, *map(str, row))
    return table


def models_table(entries: Sequence[ModelEntry]) -> Table:
    table = Table("name", "base", "labels", "val acc", "test acc", "test macro-F1", "topics",
                  "scorer", "active")
    for m in entries:
        x = m.metrics
        int8 = m.info.get("int8") or {}
        scorer = "-" if not int8 else ("int8" if int8.get("use_int8") else "full")
        table.add_row(m.name, m.base, ",".join(m.labels),
                      str(x.get("validation_accuracy", "-")), str(x.get("test_accuracy", "-")),
                      str(x.get("test_macro_f1", "-")), m.info.get("topic_model") or "-",
                      scorer, "yes" if m.active else "")
    return table


def topics_table(topics: Sequence[WatchTopic]) -> Table:
    table = Table("topic", "keywords", "rule overrides")
    for t in topics:
        table.add_row(t.name, ", ".join(t.keywords), json.dumps(t.rule) if t.rule else "-")
    return table

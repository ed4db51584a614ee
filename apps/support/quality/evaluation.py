"""Offline evaluation of intent matching and handoff on a labelled query file.

Accuracy counts the top-ranked intent; recall@k and MRR use the full ranking; handoff is
the bot's real decision (template vs handoff), so the false-handoff rate on in-scope rows
and the handoff recall on out-of-scope rows measure the calibrated threshold as deployed.
Latency is the decision time per query (embedding, search, scoring), without generation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aigc_apps.errors import DataError
from aigc_apps.metrics import hit_rate, mrr

from ..answers.answerer import Answerer, HasAnswerer, answerer_of
from ..answers.reply import clean_question
from .outcomes import embed_questions


@dataclass
class EvalReport:
    n: int
    n_in_scope: int
    n_oos: int
    top1_accuracy: float | None
    recall_at_5: float | None
    mrr: float | None
    oos_handoff_recall: float | None
    false_handoff_rate: float | None
    latency_p50_ms: float
    latency_p95_ms: float
    skipped: list[str] = field(default_factory=list)  # rows of the query file left out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ranking_metrics(
    rankings: Sequence[Sequence[str]], gold: Sequence[str], k: int = 5
) -> dict[str, float]:
    """Top-1 accuracy, recall@k and mean reciprocal rank of ``gold`` (core metrics)."""
    if not gold:
        return {"top1": float("nan"), "recall": float("nan"), "mrr": float("nan")}
    return {
        "top1": hit_rate(rankings, gold, k=1),
        "recall": hit_rate(rankings, gold, k=k),
        "mrr": mrr(rankings, gold),
    }


def read_labelled_queries(
    path: Path,
    text_col: str = "text",
    intent_col: str = "intent",
    where: dict[str, str] | None = None,
) -> tuple[list[str], list[str], list[str]]:
    """``(texts, labels, skipped)`` of a labelled query file (only rows whose columns hold
    the values in ``where``). A query ``ask`` would refuse (empty, or over its length limit)
    is a counted skip, not fatal; no usable query is."""
    from aigc_apps.data import read_records

    rows = read_records(path, required=[text_col, intent_col, *(where or {})])
    skipped = [str(s) for s in rows.skipped]
    texts, labels = [], []
    for r in rows.records:
        if where and any(str(r.get(k)) != v for k, v in where.items()):
            continue
        try:
            clean_question(str(r[text_col]))
        except DataError as exc:
            skipped.append(f"query {str(r[text_col])[:30]!r}...: {exc}")
            continue
        texts.append(str(r[text_col]))
        labels.append(str(r[intent_col]))
    if not texts:
        raise DataError(f"{path}: no usable queries ({skipped[0]})")
    return texts, labels, skipped


def evaluate(
    bot: Answerer | HasAnswerer,
    texts: Sequence[str],
    labels: Sequence[str],
    oos_label: str | None = None,
    latency_sample: int = 200,
) -> EvalReport:
    """Score ``bot`` (an answerer, or the service's) on labelled queries; rows labelled
    ``oos_label`` should be handed off. One knowledge generation answers every query.

    Queries are embedded in one batch for the metrics; latency is timed on the first
    ``latency_sample`` queries, each decided alone as ``ask`` would (without the DB write).
    A handoff counts when confidence is below the threshold and no document is relevant
    (an intent recognised but lacking answer text is the knowledge base's gap, not a miss).
    """
    answerer = answerer_of(bot)
    clean = [clean_question(t) for t in texts]
    vecs = embed_questions(answerer, texts)
    rankings: list[list[str]] = []
    gold: list[str] = []
    handoff_in: list[bool] = []
    handoff_oos: list[bool] = []
    latencies: list[float] = []
    for text in texts[:latency_sample]:
        started = time.perf_counter()
        answerer.decide(clean_question(text))
        latencies.append((time.perf_counter() - started) * 1000)
    for text, vec, label in zip(clean, vecs, labels, strict=True):
        d = answerer.decide(text, vec=vec)
        handoff = d.path == "handoff" and d.confidence < answerer.calibration.threshold
        if oos_label is not None and label == oos_label:
            handoff_oos.append(handoff)
            continue
        ranked = [
            answerer.kb.meta[int(k[5:])].intent or k if k.startswith("pair:") else k
            for k in d.ranking.keys
        ]
        rankings.append(ranked)
        gold.append(label)
        handoff_in.append(handoff)
    m = ranking_metrics(rankings, gold)
    lat = np.asarray(latencies) if latencies else np.zeros(1)

    def rate(xs: list[bool]) -> float | None:
        return round(float(np.mean(xs)), 4) if xs else None

    return EvalReport(
        n=len(labels),
        n_in_scope=len(gold),
        n_oos=len(handoff_oos),
        top1_accuracy=round(m["top1"], 4) if gold else None,
        recall_at_5=round(m["recall"], 4) if gold else None,
        mrr=round(m["mrr"], 4) if gold else None,
        oos_handoff_recall=rate(handoff_oos),
        false_handoff_rate=rate(handoff_in),
        latency_p50_ms=round(float(np.percentile(lat, 50)), 2),
        latency_p95_ms=round(float(np.percentile(lat, 95)), 2),
    )

"""Financial sentiment monitor: score news and posts, aggregate per topic, alert on surges.

``aigc sentiment ...`` is the CLI (:mod:`apps.sentiment.cli`); :class:`SentimentService` is
the one entry point it calls, and the objects below are the Python API. Importing this
package does not load torch; models load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aigc_apps.lazy import lazy_exports

_EXPORTS = {
    "AlertEngine": ".alerts",
    "AlertEvent": ".alerts",
    "AlertRule": ".alerts",
    "detect": ".alerts",
    "FitOptions": ".classifier",
    "SentimentModel": ".classifier",
    "TrainReport": ".classifier",
    "train_sentiment": ".classifier",
    "ALL": ".constants",
    "list_alerts": ".alerts",
    "Ingester": ".ingest",
    "IngestReport": ".ingest",
    "parse_timestamp": ".ingest",
    "plot_trends": ".plot",
    "LABELS": ".scoring",
    "LexiconScorer": ".scoring",
    "Prediction": ".scoring",
    "Scorer": ".scoring",
    "normalize_label": ".scoring",
    "Evaluation": ".service",
    "IngestOptions": ".service",
    "ScoredText": ".service",
    "SentimentService": ".service",
    "open_db": ".store",
    "TopicMatcher": ".topics",
    "WatchTopic": ".topics",
    "load_topics_file": ".topics",
    "parse_topics": ".topics",
    "Bucket": ".trends",
    "aggregate": ".trends",
    "trends": ".trends",
}

__all__ = [
    "ALL",
    "LABELS",
    "AlertEngine",
    "AlertEvent",
    "AlertRule",
    "Bucket",
    "Evaluation",
    "FitOptions",
    "IngestOptions",
    "IngestReport",
    "Ingester",
    "LexiconScorer",
    "Prediction",
    "ScoredText",
    "Scorer",
    "SentimentModel",
    "SentimentService",
    "TopicMatcher",
    "TrainReport",
    "WatchTopic",
    "aggregate",
    "detect",
    "list_alerts",
    "load_topics_file",
    "normalize_label",
    "open_db",
    "parse_timestamp",
    "parse_topics",
    "plot_trends",
    "train_sentiment",
    "trends",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from apps.sentiment.alerts import AlertEngine, AlertEvent, AlertRule, detect, list_alerts
    from apps.sentiment.classifier import FitOptions, SentimentModel, TrainReport, train_sentiment
    from apps.sentiment.constants import ALL
    from apps.sentiment.ingest import Ingester, IngestReport, parse_timestamp
    from apps.sentiment.plot import plot_trends
    from apps.sentiment.scoring import LABELS, LexiconScorer, Prediction, Scorer, normalize_label
    from apps.sentiment.service import Evaluation, IngestOptions, ScoredText, SentimentService
    from apps.sentiment.store import open_db
    from apps.sentiment.topics import TopicMatcher, WatchTopic, load_topics_file, parse_topics
    from apps.sentiment.trends import Bucket, aggregate, trends

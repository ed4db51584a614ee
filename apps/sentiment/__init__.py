"""Financial sentiment monitor: score news and posts, aggregate per topic, alert on surges.

``aigc sentiment ...`` is the CLI (:mod:`apps.sentiment.cli`); the objects below are the
Python API. Importing this package does not load torch; models load on first use.
"""

from __future__ import annotations

from apps.sentiment.alerts import AlertEngine, AlertEvent, AlertRule, detect, list_alerts
from apps.sentiment.ingest import Ingester, IngestReport, parse_timestamp
from apps.sentiment.plot import plot_trends
from apps.sentiment.scoring import LABELS, LexiconScorer, Scorer, normalize_label
from apps.sentiment.store import open_db
from apps.sentiment.topics import TopicMatcher, WatchTopic, load_topics_file, parse_topics
from apps.sentiment.trends import Bucket, aggregate, trends

__all__ = [
    "LABELS",
    "AlertEngine",
    "AlertEvent",
    "AlertRule",
    "Bucket",
    "IngestReport",
    "Ingester",
    "LexiconScorer",
    "Scorer",
    "TopicMatcher",
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
    "trends",
]

"""Financial sentiment monitor: score news and posts, aggregate per topic, alert on surges.

``aigc sentiment ...`` is the CLI (:mod:`apps.sentiment.cli`); the objects below are the
Python API. Importing this package does not load torch; models load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aigc_apps.lazy import lazy_exports

_EXPORTS = {
    "AlertEngine": ".alerts",
    "AlertEvent": ".alerts",
    "AlertRule": ".alerts",
    "detect": ".alerts",
    "list_alerts": ".alerts",
    "Ingester": ".ingest",
    "IngestReport": ".ingest",
    "parse_timestamp": ".ingest",
    "plot_trends": ".plot",
    "LABELS": ".scoring",
    "LexiconScorer": ".scoring",
    "Scorer": ".scoring",
    "normalize_label": ".scoring",
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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from apps.sentiment.alerts import AlertEngine, AlertEvent, AlertRule, detect, list_alerts
    from apps.sentiment.ingest import Ingester, IngestReport, parse_timestamp
    from apps.sentiment.plot import plot_trends
    from apps.sentiment.scoring import LABELS, LexiconScorer, Scorer, normalize_label
    from apps.sentiment.store import open_db
    from apps.sentiment.topics import TopicMatcher, WatchTopic, load_topics_file, parse_topics
    from apps.sentiment.trends import Bucket, aggregate, trends

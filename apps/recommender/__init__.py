"""Personalised recommender: item texts + user behaviour -> ranked, explained recommendations.

    from apps.recommender import RecommenderService
    service = RecommenderService()            # the workspace's store and model registry
    service.ingest("items.csv", "events.csv")
    service.train()                           # registers the model and makes it active
    service.for_user("user-42", k=10, explain=True)

or the models alone: ``Recommender(RecommenderConfig()).fit(catalog, log)``.

CLI: ``aigc recommend ingest | train | for-user | similar | eval | status``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aigc_apps.lazy import lazy_exports

_EXPORTS = {
    "EASE": ".collaborative",
    "Popularity": ".collaborative",
    "Transitions": ".collaborative",
    "ContentModel": ".content",
    "HashingEncoder": ".content",
    "Catalog": ".dataset",
    "Interactions": ".dataset",
    "load_from_store": ".dataset",
    "coverage": ".evaluation",
    "hit_rate": ".evaluation",
    "ndcg": ".evaluation",
    "run_evaluation": ".evaluation",
    "EventColumns": ".ingest",
    "IngestReport": ".ingest",
    "ItemColumns": ".ingest",
    "ingest": ".ingest",
    "InterestConfig": ".interest",
    "InterestModel": ".interest",
    "FeatureBuilder": ".features",
    "CandidateFeatures": ".features",
    "Ranker": ".ranker",
    "Recommendation": ".recommender",
    "RecommendationList": ".recommender",
    "Recommender": ".recommender",
    "RecommenderConfig": ".recommender",
    "RecommenderService": ".service",
    "TrainingResult": ".service",
    "open_db": ".store",
}

__all__ = [
    "EASE",
    "CandidateFeatures",
    "Catalog",
    "ContentModel",
    "EventColumns",
    "FeatureBuilder",
    "HashingEncoder",
    "IngestReport",
    "Interactions",
    "InterestConfig",
    "InterestModel",
    "ItemColumns",
    "Popularity",
    "Ranker",
    "Recommendation",
    "RecommendationList",
    "Recommender",
    "RecommenderConfig",
    "RecommenderService",
    "TrainingResult",
    "Transitions",
    "coverage",
    "hit_rate",
    "ingest",
    "load_from_store",
    "ndcg",
    "open_db",
    "run_evaluation",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .collaborative import EASE, Popularity, Transitions
    from .content import ContentModel, HashingEncoder
    from .dataset import Catalog, Interactions, load_from_store
    from .evaluation import coverage, hit_rate, ndcg, run_evaluation
    from .features import CandidateFeatures, FeatureBuilder
    from .ingest import EventColumns, IngestReport, ItemColumns, ingest
    from .interest import InterestConfig, InterestModel
    from .ranker import Ranker
    from .recommender import Recommendation, RecommendationList, Recommender, RecommenderConfig
    from .service import RecommenderService, TrainingResult
    from .store import open_db

"""Personalised recommender: item texts + user behaviour -> ranked, explained recommendations.

    from apps.recommender import Recommender, RecommenderConfig, Catalog, Interactions
    model = Recommender(RecommenderConfig()).fit(catalog, log)
    model.recommend("user-42", k=10, explain=True)

CLI: ``aigc recommend ingest | train | for-user | similar | eval``.
"""

from .collaborative import EASE, Popularity, Transitions
from .content import ContentModel, HashingEncoder
from .dataset import Catalog, Interactions, load_from_store
from .evaluation import coverage, hit_rate, ndcg, run_evaluation
from .ingest import EventColumns, IngestReport, ItemColumns, ingest
from .interest import InterestConfig, InterestModel
from .ranker import FeatureBuilder, Ranker
from .recommender import Recommendation, RecommendationList, Recommender, RecommenderConfig
from .store import open_db

__all__ = [
    "EASE",
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
    "Transitions",
    "coverage",
    "hit_rate",
    "ingest",
    "load_from_store",
    "ndcg",
    "open_db",
    "run_evaluation",
]

"""Candidate generation, ranking features and the learned ranker that orders candidates.

Each signal scores the whole catalogue for one user; candidates are the union of each
signal's top items (so a cold item found only by its text still competes); the ranker, a
scikit-learn model trained on held-out next interactions, turns the feature rows into the
final order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .collaborative import DAY, EASE, Popularity, Transitions
from .content import ContentModel, recency_weights

FEATURES = [
    "ease",
    "ease_recent",
    "ease_last5",
    "trans_last1",
    "trans_last3",
    "trans_recent",
    "content_profile",
    "content_last",
    "interest",
    "pop",
    "pop_30d",
    "pop_365d",
    "item_age_days",
    "is_cold",
    "history_len",
]

# Signals whose top items become candidates, and how many each contributes. ``text_query``
# (a free-text interest) is a candidate source and blended in by the recommender, not a
# ranker feature: held-out training events come with no free text.
CANDIDATE_SOURCES = {
    "ease_recent": 0.4,
    "trans_last3": 0.2,
    "content_profile": 0.15,
    "interest": 0.15,
    "text_query": 0.3,
    "pop_30d": 0.1,
}


@dataclass
class UserContext:
    """What is known about a user right now: ordered history (item indices) and times."""

    history: np.ndarray
    times: np.ndarray
    interest_vec: np.ndarray | None = None
    text_vec: np.ndarray | None = None
    now: float | None = None

    @property
    def ref_time(self) -> float:
        if self.now is not None:
            return self.now
        return float(self.times[-1]) if len(self.times) else 0.0


@dataclass
class FeatureBuilder:
    ease: EASE
    transitions: Transitions
    popularity: Popularity
    content: ContentModel | None = None
    interest_V: np.ndarray | None = None
    history_cap: int = 300
    _log_pop: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._log_pop = np.log1p(self.popularity.counts)

    def signals(self, ctx: UserContext) -> dict[str, np.ndarray]:
        """Every feature as a catalogue-length vector (user constants as scalars)."""
        h = np.asarray(ctx.history, dtype=np.int64)[-self.history_cap :]
        n = self.popularity.n_items
        zero = np.zeros(n, dtype=np.float32)
        t = ctx.ref_time
        out: dict[str, np.ndarray] = {}
        # One gather of the history's EASE rows serves all three EASE features.
        weights = np.zeros((3, len(h)), dtype=np.float32)
        weights[0] = 1.0
        m = min(len(h), 100)
        if m:
            weights[1, -m:] = recency_weights(m, 10.0)
        weights[2, -5:] = 1.0
        out["ease"], out["ease_recent"], out["ease_last5"] = self.ease.scores_many(h, weights)
        out["trans_last1"] = self.transitions.scores(h[-1:])
        out["trans_last3"] = self.transitions.scores(h[-3:])
        out["trans_recent"] = self.transitions.scores(
            h[-20:], recency_weights(min(len(h), 20), 3.0)
        )
        if self.content is not None and len(h):
            out["content_profile"] = self.content.V @ self.content.profile(h)
            last = self.content.V[h[-3:]].mean(axis=0)
            out["content_last"] = self.content.V @ (last / max(float(np.linalg.norm(last)), 1e-12))
        else:
            out["content_profile"] = out["content_last"] = zero
        if self.interest_V is not None and ctx.interest_vec is not None:
            out["interest"] = self.interest_V @ ctx.interest_vec
        else:
            out["interest"] = zero
        if self.content is not None and ctx.text_vec is not None:
            out["text_query"] = self.content.V @ ctx.text_vec
        else:
            out["text_query"] = zero
        out["pop"] = self._log_pop
        out["pop_30d"] = np.log1p(self.popularity.window(t, 30))
        out["pop_365d"] = np.log1p(self.popularity.window(t, 365))
        age = (t - self.popularity.first_seen) / DAY
        out["item_age_days"] = np.where(
            np.isfinite(age), np.sign(age) * np.log1p(np.abs(age)), -1.0
        )
        out["is_cold"] = (self.popularity.counts == 0).astype(np.float32)
        out["history_len"] = np.full(n, np.log1p(len(ctx.history)), dtype=np.float32)
        return out

    def candidates(
        self,
        sig: dict[str, np.ndarray],
        n: int,
        exclude: np.ndarray | None = None,
        only: np.ndarray | None = None,
    ) -> np.ndarray:
        """Union of each source's top items, ``n`` in all at most (before de-duplication)."""
        total = len(self._log_pop)
        allowed = np.ones(total, dtype=bool)
        if only is not None:
            allowed[:] = False
            allowed[np.asarray(only, dtype=np.int64)] = True
        if exclude is not None and len(exclude):
            allowed[np.asarray(exclude, dtype=np.int64)] = False
        pool = np.flatnonzero(allowed)
        if len(pool) <= n:
            return pool
        picked: list[np.ndarray] = []
        for name, share in CANDIDATE_SOURCES.items():
            s = sig[name][pool]
            if not np.any(s):
                continue
            m = min(max(1, int(share * n)), len(pool))
            picked.append(pool[np.argpartition(-s, m - 1)[:m]])
        # Fill up with popular items so every list has enough candidates.
        picked.append(pool[np.argsort(-self._log_pop[pool], kind="stable")[: max(10, n // 10)]])
        return np.unique(np.concatenate(picked))

    @staticmethod
    def matrix(sig: dict[str, np.ndarray], cand: np.ndarray) -> np.ndarray:
        return np.stack([sig[f][cand] for f in FEATURES], axis=1).astype(np.float32)


class Ranker:
    """Binary "is this the next interaction" model over feature rows.

    ``kind``: ``hgb`` (gradient-boosted trees), ``logistic``, or ``auto``: trees once there
    are ``min_tree_positives`` positive examples, else logistic regression (a small catalogue's
    few held-out events cannot support trees).
    """

    def __init__(self, kind: str = "auto", min_tree_positives: int = 200, seed: int = 0) -> None:
        if kind not in ("auto", "hgb", "logistic"):
            raise ValueError(f"unknown ranker kind {kind!r} (auto, hgb, logistic)")
        self.kind = kind
        self.min_tree_positives = min_tree_positives
        self.seed = seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> Ranker:
        positives = int(y.sum())
        if positives == 0 or positives == len(y):
            raise ValueError("the ranker needs both held-out positives and negatives")
        kind = self.kind
        if kind == "auto":
            kind = "hgb" if positives >= self.min_tree_positives else "logistic"
        if kind == "hgb":
            self.model = HistGradientBoostingClassifier(
                max_iter=300,
                learning_rate=0.05,
                max_leaf_nodes=31,
                max_depth=8,
                min_samples_leaf=40,
                l2_regularization=1.0,
                early_stopping=True,
                validation_fraction=0.15,
                n_iter_no_change=30,
                random_state=self.seed,
            )
        else:
            self.model = make_pipeline(
                StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced")
            )
        # One OpenMP thread: the fit is seconds either way, and on a busy machine scikit-learn's
        # spinning OpenMP threads can slow it down a hundredfold.
        with threadpool_limits(limits=1, user_api="openmp"):
            self.model.fit(x, y)
        self.fitted_kind = kind
        self._trees = _compile_trees(self.model) if kind == "hgb" else None
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        """Higher is better; trees give raw log-odds, logistic regression the probability."""
        if len(x) == 0:
            return np.zeros(0)
        if self.fitted_kind == "hgb":
            trees = getattr(self, "_trees", None)
            if trees is None:  # pickled before compilation existed
                trees = self._trees = _compile_trees(self.model)
            return _predict_trees(trees, x)
        return self.model.predict_proba(x)[:, 1]


def _compile_trees(model: HistGradientBoostingClassifier) -> dict[str, np.ndarray]:
    """All trees' nodes in flat arrays (children as global positions), walked together.

    scikit-learn's predictor starts an OpenMP region per tree, which for a 200-row request
    costs far more than the arithmetic (and stalls on a busy machine); a numpy walk over all
    trees at once answers in a few milliseconds.
    """
    trees = [t[0].nodes for t in model._predictors]
    if any(t["is_categorical"].any() for t in trees):
        raise ValueError("categorical splits are not supported")
    offsets = np.cumsum([0] + [len(t) for t in trees[:-1]])
    nodes = np.concatenate(trees)
    shift = np.repeat(offsets, [len(t) for t in trees])
    leaf = nodes["is_leaf"].astype(bool)
    return {
        "roots": offsets.astype(np.int64),
        "feature": np.where(leaf, 0, nodes["feature_idx"]).astype(np.int64),
        "threshold": nodes["num_threshold"].astype(np.float64),
        "left": np.where(leaf, np.arange(len(nodes)), nodes["left"] + shift).astype(np.int64),
        "right": np.where(leaf, np.arange(len(nodes)), nodes["right"] + shift).astype(np.int64),
        "value": np.where(leaf, nodes["value"], 0.0),
        "nan_left": nodes["missing_go_to_left"].astype(bool),
        "depth": np.array([int(nodes["depth"].max())]),
        "baseline": np.asarray(model._baseline_prediction, np.float64).ravel()[:1],
    }


def _predict_trees(trees: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Raw scores (log-odds); leaves point to themselves, so extra steps change nothing."""
    n_features = x.shape[1]
    flat = np.ascontiguousarray(x, dtype=np.float64).ravel()
    base = (np.arange(len(x)) * n_features)[:, None]
    node = np.broadcast_to(trees["roots"], (len(x), len(trees["roots"]))).copy()
    for _ in range(int(trees["depth"][0])):
        value = flat[base + trees["feature"][node]]
        go_left = value <= trees["threshold"][node]
        nan = np.isnan(value)
        if nan.any():
            go_left = np.where(nan, trees["nan_left"][node], go_left)
        node = np.where(go_left, trees["left"][node], trees["right"][node])
    return trees["value"][node].sum(axis=1) + trees["baseline"][0]

"""The learned ranker that orders candidates, and its fast tree export.

A scikit-learn model trained on held-out next interactions turns the candidates' feature rows
(:mod:`.features`) into the final order. :class:`Ranker` follows scikit-learn's conventions:
hyper-parameters in ``__init__``, fitted attributes end in ``_``, ``fit`` returns self.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

# The feature pipeline lived here before; these names stay importable from this module.
from .features import CANDIDATE_SOURCES, FEATURES, FeatureBuilder, UserContext

__all__ = [
    "CANDIDATE_SOURCES",
    "FEATURES",
    "KINDS",
    "FeatureBuilder",
    "Ranker",
    "UserContext",
    "validate",
]

KINDS = ("auto", "hgb", "logistic")


class Ranker(BaseEstimator):
    """Binary "is this the next interaction" model over feature rows.

    ``kind``: ``hgb`` (gradient-boosted trees), ``logistic``, or ``auto``: trees once there
    are ``min_tree_positives`` positive examples, else logistic regression (a small catalogue's
    few held-out events cannot support trees). ``seed``: the trees' random state.

    Fitted: ``kind_`` (``hgb`` or ``logistic``), ``model_`` (the scikit-learn model) and
    ``trees_`` (the trees exported for fast scoring, or None: score with ``model_``).
    """

    def __init__(self, kind: str = "auto", min_tree_positives: int = 200, seed: int = 0) -> None:
        self.kind = kind
        self.min_tree_positives = min_tree_positives
        self.seed = seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> Ranker:
        if self.kind not in KINDS:
            raise ValueError(f"unknown ranker kind {self.kind!r} ({', '.join(KINDS)})")
        positives = int(y.sum())
        if positives == 0 or positives == len(y):
            raise ValueError("the ranker needs both held-out positives and negatives")
        kind = self.kind
        if kind == "auto":
            kind = "hgb" if positives >= self.min_tree_positives else "logistic"
        model: Any
        if kind == "hgb":
            model = HistGradientBoostingClassifier(
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
            model = make_pipeline(
                StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced")
            )
        # One OpenMP thread: the fit is seconds either way, and on a busy machine scikit-learn's
        # spinning OpenMP threads can slow it down a hundredfold.
        with threadpool_limits(limits=1, user_api="openmp"):
            model.fit(x, y)
        self.kind_, self.model_ = kind, model
        self.trees_ = export_trees(model, x) if kind == "hgb" else None
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        """Higher is better; trees give raw log-odds, logistic regression the probability."""
        check_is_fitted(self)
        if len(x) == 0:
            return np.zeros(0)
        if self.kind_ == "hgb":
            if self.trees_ is not None:
                return predict_trees(self.trees_, x)
            with threadpool_limits(limits=1, user_api="openmp"):
                return self.model_.decision_function(x)
        return self.model_.predict_proba(x)[:, 1]

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Also reads rankers pickled before the scikit-learn naming (``model``,
        ``fitted_kind``, ``_trees``): saved models keep loading."""
        state = dict(state)
        for old, new in (("model", "model_"), ("fitted_kind", "kind_"), ("_trees", "trees_")):
            if old in state:
                state[new] = state.pop(old)
        if "model_" in state:
            state.setdefault("trees_", None)  # pickled before the export existed
        self.__dict__.update(state)


# ------------------------------------------------------------------ tree export
# scikit-learn offers no public route to a fitted HistGradientBoostingClassifier's trees, so
# the export reads the private ``_predictors`` (each tree's ``nodes`` record array) and
# ``_baseline_prediction``. Their layout is the same from scikit-learn 1.4 (this project's
# floor) to 1.9.1 (tested); pin: scikit-learn>=1.4,<1.10. Outside that range the export
# checks itself: at fit time the exported trees must reproduce the model's public
# ``decision_function`` on the training rows, else the ranker scores with the model itself.


def export_trees(
    model: HistGradientBoostingClassifier, probe: np.ndarray, max_probe: int = 2000
) -> dict[str, np.ndarray] | None:
    """All trees' nodes in flat arrays (children as global positions), walked together.

    scikit-learn's predictor starts an OpenMP region per tree, which for a 200-row request
    costs far more than the arithmetic (and stalls on a busy machine); a numpy walk over all
    trees at once answers in a few milliseconds. None (with a warning) when the export does
    not reproduce ``model.decision_function`` on up to ``max_probe`` rows of ``probe``.
    """
    rows = probe[np.linspace(0, len(probe) - 1, min(len(probe), max_probe)).astype(int)]
    try:
        trees = _compile_trees(model)
        with threadpool_limits(limits=1, user_api="openmp"):
            expected = model.decision_function(rows)
        same = np.allclose(predict_trees(trees, rows), expected, rtol=1e-9, atol=1e-9)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        same, trees = False, None
        why = f"{type(exc).__name__}: {exc}"
    else:
        why = "its scores differ from decision_function"
    if same:
        return trees
    warnings.warn(
        f"cannot export the ranker's trees from scikit-learn {sklearn.__version__} ({why}); "
        "scoring with scikit-learn's own predictor (slower)",
        RuntimeWarning,
        stacklevel=3,
    )
    return None


def _compile_trees(model: HistGradientBoostingClassifier) -> dict[str, np.ndarray]:
    if model.n_trees_per_iteration_ != 1:
        raise ValueError("only binary classifiers are supported")
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


def predict_trees(trees: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Raw scores (log-odds); leaves point to themselves, so extra steps change nothing.

    The baseline and then the trees are added in scikit-learn's order, so the sums match its
    ``decision_function`` to the last bit."""
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
    terms = np.concatenate([np.full((len(x), 1), trees["baseline"][0]), trees["value"][node]], 1)
    return np.cumsum(terms, axis=1)[:, -1]


# ------------------------------------------------------------------ inner validation
def validate(
    ranker: Ranker, x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int = 0
) -> dict[str, Any]:
    """HR@10 on 20% of the groups (users) for a copy of ``ranker`` fitted on the other 80%,
    beside single signals. Measured among the candidates of users whose item is a candidate."""
    distinct = np.unique(groups)
    if len(distinct) < 20:
        return {}
    rng = np.random.default_rng(seed)
    val = np.isin(groups, rng.choice(distinct, len(distinct) // 5, replace=False))
    if y[~val].sum() == 0 or y[val].sum() == 0:
        return {}
    pred = clone(ranker).fit(x[~val], y[~val]).score(x[val])
    out: dict[str, Any] = {"users": len(np.unique(groups[val]))}
    for name, s in [("ranker", pred)] + [
        (f, x[val][:, FEATURES.index(f)])
        for f in ("ease", "ease_recent", "trans_last3", "interest", "content_profile")
    ]:
        hits = 0
        for grp in np.unique(groups[val]):
            m = groups[val] == grp
            top = np.argsort(-s[m], kind="stable")[:10]
            hits += int(y[val][m][top].any())
        out[f"hr@10_{name}"] = round(hits / out["users"], 4)
    return out

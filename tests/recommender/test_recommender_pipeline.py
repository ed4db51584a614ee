"""The training pipeline's parts in scikit-learn's conventions, and the ranker's tree export
checked against the scikit-learn model's own predictions."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from aigc_apps.errors import AigcError
from apps.recommender import ranker as ranker_module
from apps.recommender.content import ContentModel, HashingEncoder
from apps.recommender.dataset import Catalog, Interactions
from apps.recommender.features import FEATURES, CandidateFeatures, hold_out
from apps.recommender.ranker import Ranker
from apps.recommender.recommender import (
    FORMAT,
    ModelFormatError,
    Recommender,
    RecommenderConfig,
)


def training_rows(n: int = 3000, seed: int = 7, missing: float = 0.05) -> tuple[np.ndarray, ...]:
    """Random feature rows, some values missing, labelled by a noisy rule on two columns."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    signal = x[:, 0] + 0.5 * x[:, 3] - 0.3 * x[:, 8] + rng.normal(scale=0.5, size=n)
    x[rng.random(x.shape) < missing] = np.nan
    return x.astype(np.float32), (signal > 1.2).astype(int)


def probe_rows(ranker: Ranker, n: int = 600, seed: int = 8) -> np.ndarray:
    """Random rows, a wider spread than training, missing values, and one value of each row
    exactly on a split threshold (the ``<=`` side must agree with scikit-learn too)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.0, size=(n, len(FEATURES)))
    x[rng.random(x.shape) < 0.1] = np.nan
    trees = ranker.trees_
    assert trees is not None
    split = np.flatnonzero(trees["left"] != np.arange(len(trees["left"])))
    nodes = rng.choice(split, n)
    x[np.arange(n), trees["feature"][nodes]] = trees["threshold"][nodes]
    return x


@pytest.fixture(scope="module")
def trees_ranker() -> Ranker:
    return Ranker("hgb").fit(*training_rows())


def test_exported_trees_equal_the_models_own_predictions(trees_ranker: Ranker) -> None:
    assert trees_ranker.trees_ is not None  # the export, not the fallback, is under test
    model = trees_ranker.model_
    assert model.n_iter_ > 10 and trees_ranker.trees_["nan_left"].any()
    x64 = probe_rows(trees_ranker)
    x32 = training_rows(500, seed=9, missing=0.1)[0]
    for x in (x64, x32):
        raw = trees_ranker.score(x)
        np.testing.assert_allclose(raw, model.decision_function(x), rtol=0, atol=1e-12)
        np.testing.assert_allclose(expit(raw), model.predict_proba(x)[:, 1], rtol=1e-12, atol=0)
    assert trees_ranker.score(x64[:0]).shape == (0,)


def test_a_failed_export_scores_with_the_model_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = training_rows(1500)
    real = ranker_module._compile_trees

    def missing(model: object) -> dict[str, np.ndarray]:
        raise AttributeError("'HistGradientBoostingClassifier' has no attribute '_predictors'")

    def shifted(model: object) -> dict[str, np.ndarray]:
        trees = real(model)
        return {**trees, "baseline": trees["baseline"] + 0.01}

    for broken in (missing, shifted):
        monkeypatch.setattr(ranker_module, "_compile_trees", broken)
        with pytest.warns(RuntimeWarning, match="cannot export the ranker's trees"):
            ranker = Ranker("hgb").fit(x, y)
        assert ranker.trees_ is None
        np.testing.assert_array_equal(ranker.score(x), ranker.model_.decision_function(x))


def test_ranker_follows_scikit_learn_conventions() -> None:
    x, y = training_rows(400)
    ranker = Ranker("logistic", seed=3)
    assert ranker.get_params() == {"kind": "logistic", "min_tree_positives": 200, "seed": 3}
    with pytest.raises(NotFittedError):
        ranker.score(x)
    assert ranker.fit(np.nan_to_num(x), y) is ranker
    assert ranker.kind_ == "logistic" and ranker.trees_ is None
    copy = clone(ranker)
    assert copy.get_params() == ranker.get_params() and not hasattr(copy, "model_")
    assert Ranker("auto").fit(np.nan_to_num(x), y).kind_ == "logistic"  # < 200 positives
    with pytest.raises(ValueError, match="unknown ranker kind 'forest'"):
        Ranker("forest").fit(x, y)


def test_rankers_pickled_under_the_old_names_still_score(trees_ranker: Ranker) -> None:
    """Models saved before the rename (``model``, ``fitted_kind``, ``_trees``) keep loading."""
    x = probe_rows(trees_ranker, n=200)
    old = {"kind": "auto", "min_tree_positives": 200, "seed": 0, "model": trees_ranker.model_}
    before_export = {**old, "fitted_kind": "hgb"}  # pickled before the export existed
    for state in ({**before_export, "_trees": trees_ranker.trees_}, before_export):
        legacy = Ranker.__new__(Ranker)
        legacy.__setstate__(state)
        assert legacy.kind_ == "hgb"
        np.testing.assert_allclose(legacy.score(x), trees_ranker.score(x), rtol=0, atol=1e-12)
    again = pickle.loads(pickle.dumps(trees_ranker))
    np.testing.assert_array_equal(again.score(x), trees_ranker.score(x))


def test_hold_out_hides_the_targets_and_the_simulated_cold_items(
    clustered_data: tuple[Catalog, Interactions],
) -> None:
    _, log = clustered_data
    heldout = hold_out(log, max_users=12, cold_fraction=0.3, seed=0)
    assert len(heldout.users) == 12 and len(np.unique(heldout.users)) == 12
    assert len(heldout.simulated_cold) == round(0.3 * len(np.unique(heldout.targets)))
    assert not np.isin(heldout.inner.item, heldout.simulated_cold).any()
    assert len(heldout.inner) <= len(log) - log.n_users
    again = hold_out(log, max_users=12, cold_fraction=0.3, seed=0)
    assert np.array_equal(again.users, heldout.users)
    assert np.array_equal(again.simulated_cold, heldout.simulated_cold)

    rows = CandidateFeatures().fit(heldout.inner).rows(heldout)
    assert rows.x.shape == (len(rows.y), len(FEATURES)) and rows.x.dtype == np.float32
    assert 2 <= rows.n_users <= 12
    for group in np.unique(rows.groups):  # exactly one held-out item per user
        assert rows.y[rows.groups == group].sum() == 1


def test_candidate_features_fit_state_and_serve(
    clustered_data: tuple[Catalog, Interactions],
) -> None:
    catalog, log = clustered_data
    features = CandidateFeatures(l2=10.0, n_candidates=12)
    assert vars(features) == {"l2": 10.0, "window": 5, "n_candidates": 12, "history_cap": 300}
    content = ContentModel(HashingEncoder()).fit(catalog)
    assert features.fit(log, content=content) is features
    assert features.content_ is content and features.interest_ is None
    loaded = CandidateFeatures(l2=10.0, n_candidates=12).load_state(
        features.state(), content=content
    )
    history, times = log.histories()[0], log.ts[: len(log.histories()[0])]
    for model in (features, loaded):
        ctx = model.context(history, times, text="space rockets")
        sig = model.signals(ctx)
        cand = model.candidates(sig, exclude=history)
        assert not np.isin(history, cand).any()
        assert model.matrix(sig, cand).shape == (len(cand), len(FEATURES))
    a, b = (
        features.signals(features.context(history, times)),
        loaded.signals(loaded.context(history, times)),
    )
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_recommender_fit_exposes_its_fitted_parts(fitted: Recommender) -> None:
    assert fitted.builder is fitted.features.builder_
    assert fitted.features.content_ is fitted.content
    assert fitted.ranker.kind_ == fitted.info["ranker"]
    assert list(fitted.info["timings"]) == [
        "content",
        "interest",
        "features",
        "ranker",
        "collaborative",
    ]


def test_unknown_ranker_kind_fails_before_any_model_is_fitted(
    clustered_data: tuple[Catalog, Interactions],
) -> None:
    catalog, log = clustered_data
    config = RecommenderConfig(encoder="no-such-encoder", interest=None, ranker="forest")
    with pytest.raises(ValueError, match="unknown ranker kind 'forest'"):
        Recommender(config).fit(catalog, log)


def test_a_model_in_another_format_is_a_one_line_error(fitted: Recommender, tmp_path: Path) -> None:
    folder = fitted.save_pretrained(tmp_path / "m")
    meta = json.loads((folder / "recommender.json").read_text())
    assert meta["format"] == FORMAT
    (folder / "recommender.json").write_text(json.dumps({**meta, "format": FORMAT + 1}))
    with pytest.raises(ModelFormatError) as err:
        Recommender.from_pretrained(folder, encoder=HashingEncoder())
    assert isinstance(err.value, AigcError)
    assert "\n" not in str(err.value) and "aigc recommend train" in str(err.value)

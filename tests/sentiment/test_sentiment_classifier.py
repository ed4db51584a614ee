"""Labelled data loading, metrics against hand-computed values, training and the model API."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aigc_apps.errors import AigcError, DataError, NotFoundError
from aigc_apps.registry import ModelRegistry
from apps.sentiment.classifier import (
    FitOptions,
    SentimentModel,
    default_learning_rate,
    default_targets,
    evaluate_model,
    train_sentiment,
)
from apps.sentiment.evaluation import evaluate_predictions, load_labelled
from apps.sentiment.registry import topic_dir_of

DATA = Path(__file__).resolve().parents[2] / "data" / "sentiment" / "headlines.csv"


def test_metrics_match_hand_computed_values() -> None:
    y_true = ["negative", "negative", "neutral", "neutral", "neutral", "positive", "positive"]
    y_pred = ["negative", "neutral", "neutral", "neutral", "positive", "positive", "negative"]
    r = evaluate_predictions(y_true, y_pred)
    # confusion (rows true, cols pred) in negative, neutral, positive order
    assert r.confusion == [[1, 1, 0], [0, 2, 1], [1, 0, 1]]
    assert r.accuracy == pytest.approx(4 / 7)
    # negative: P = 1/2, R = 1/2, F1 = 1/2; neutral: P = 2/3, R = 2/3; positive: P = R = 1/2
    assert r.per_class["negative"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert r.per_class["neutral"]["precision"] == pytest.approx(2 / 3)
    assert r.per_class["neutral"]["f1"] == pytest.approx(2 / 3)
    assert r.per_class["positive"]["f1"] == pytest.approx(0.5)
    assert r.macro_f1 == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)


def test_metrics_class_never_predicted() -> None:
    r = evaluate_predictions(["negative", "positive", "positive"], ["positive"] * 3)
    assert r.per_class["negative"] == pytest.approx(
        {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    # positive: P = 2/3, R = 1, F1 = 0.8; neutral absent from both: not averaged
    assert r.macro_f1 == pytest.approx((0.0 + 0.8) / 2)
    with pytest.raises(DataError):
        evaluate_predictions([], [])


def test_load_uses_split_column_and_skips_unknown_labels(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_text(
        "headline,sent,split\n"
        "a up,bullish,train\nb down,neg,train\nc flat,Neutral,train\nd up,1,train\n"
        "e down,-1,validation\nf ??,mixed,train\ng flat,0,test\nh x,positive,holdout\n"
    )
    d = load_labelled(path, text_col="headline", label_col="sent")
    assert d.split_from_column
    assert [r["label"] for r in d.splits["train"]] == ["positive", "negative", "neutral",
                                                       "positive"]
    assert [r["text"] for r in d.splits["validation"]] == ["e down"]
    assert [r["label"] for r in d.splits["test"]] == ["neutral"]
    reasons = [s.reason for s in d.skipped]
    assert any("unknown label 'mixed'" in x for x in reasons)
    assert any("unknown split 'holdout'" in x for x in reasons)


def test_load_without_split_column_is_seeded_and_stratified(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    rows = [f'{{"text": "t{i}", "label": "{lab}"}}' for i, lab in
            enumerate(["negative"] * 20 + ["neutral"] * 50 + ["positive"] * 30)]
    path.write_text("\n".join(rows))
    a = load_labelled(path, seed=3)
    b = load_labelled(path, seed=3)
    assert a.splits == b.splits and not a.split_from_column
    assert load_labelled(path, seed=4).splits != a.splits  # the seed is used, not ignored
    assert a.counts()["test"] == {"negative": 2, "neutral": 5, "positive": 3}
    assert a.counts()["validation"] == {"negative": 2, "neutral": 5, "positive": 3}
    assert sum(len(v) for v in a.splits.values()) == 100
    with pytest.raises(DataError, match="missing column 'fold'"):  # named, so must exist
        load_labelled(path, split_col="fold", require_split=True)


def test_load_rejects_files_with_no_known_labels(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_text("text,label\na,good\nb,bad\n")
    with pytest.raises(DataError, match=r"no rows with a known label.*good"):
        load_labelled(path)
    with pytest.raises(DataError, match="missing column 'nope'"):
        load_labelled(DATA, topic_col="nope")


def test_train_tiny_encoder_registers_labels_and_metrics(tiny_encoder_dir: Path) -> None:
    data = load_labelled(DATA, topic_col="topic")
    opts = FitOptions(base=str(tiny_encoder_dir), epochs=1, max_steps=4, batch_size=8,
                      max_length=32, progress=False)
    report = train_sentiment(data, "tiny", opts, topics=True)
    assert report.labels == ["negative", "neutral", "positive"]
    assert report.test is not None and report.test.n == len(data.splits["test"])
    assert report.topic_model == "tiny-topic" and report.topic_test is not None
    model = SentimentModel.load("tiny")
    assert model.topic_classifier is not None
    assert set(model.topic_classifier.labels) == {"banking", "energy", "housing", "rates", "tech"}
    probs = model.predict_proba(["Bank shares plunge", "Oil rises"])
    assert probs.shape == (2, 3) and probs.sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert SentimentModel.load().name == "tiny"  # the active sentiment model is the default
    again = evaluate_model(model, data.splits["test"])
    assert again.accuracy == pytest.approx(report.test.accuracy)
    with pytest.raises(NotFoundError, match="not registered"):
        SentimentModel.load("nope")

    # One registry entry per classifier: app/role, labels, metrics, the topic link in info.
    registry = ModelRegistry()
    entry = registry.active("sentiment", "sentiment")
    assert entry is not None and entry.name == "tiny" and entry.base == str(tiny_encoder_dir)
    assert entry.labels == report.labels and entry.info["topic_model"] == "tiny-topic"
    assert set(entry.info) == {"topic_model", "int8"}  # int8: both validation macro-F1s
    assert entry.metrics["test_accuracy"] == pytest.approx(report.test.accuracy, abs=1e-4)
    assert {"validation_macro_f1", "test_macro_f1"} <= set(entry.metrics)
    assert not {"app", "labels", "topic_model"} & set(entry.metrics) and entry.data_hash
    topic = registry.active("sentiment", "topic")
    assert topic is not None and topic.name == "tiny-topic"
    assert set(topic.labels) == {"banking", "energy", "housing", "rates", "tech"}
    assert [e.name for e in registry.list(app="core")] == []  # nothing in the core's name

    # The active entry, not the newest, scores texts; the topic link follows the entry.
    registry.register("tiny-copy", entry.path, app="sentiment", role="sentiment",
                      base=entry.base, labels=entry.labels, activate=False)
    assert SentimentModel.load().name == "tiny"
    registry.activate("tiny-copy")
    copy = SentimentModel.load()
    assert copy.name == "tiny-copy" and copy.topic_dir is None
    assert SentimentModel.load("tiny").topic_dir == topic.path
    registry.close()


def test_topic_classifier_is_found_through_the_registry_or_beside_the_model(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "m-topic").mkdir()
    entry = registry.register("m", tmp_path / "m", app="sentiment", role="sentiment",
                              base="minilm-l6", info={"topic_model": "m-topic"})
    assert topic_dir_of(registry, entry) == tmp_path / "m-topic"  # 0.1.0 layout, unregistered
    registry.register("m-topic", tmp_path / "elsewhere", app="sentiment", role="topic",
                      base="minilm-l6")
    assert topic_dir_of(registry, entry) == (tmp_path / "elsewhere").resolve()
    bare = registry.register("n", tmp_path / "n", app="sentiment", role="sentiment",
                             base="minilm-l6", info={"topic_model": "gone"})
    assert topic_dir_of(registry, bare) is None
    registry.close()


@pytest.mark.parametrize(("knobs", "message"), [
    ({"max_steps": 0}, r"max_steps \(--max-steps\) must be > 0, or -1 for no limit, got 0"),
    ({"max_steps": -5}, "got -5"),
    ({"epochs": 0}, r"epochs \(--epochs\) must be > 0, got 0"),
    ({"epochs": float("nan")}, "epochs"),
    ({"learning_rate": 0.0}, "--lr"),
    ({"batch_size": 0}, "--batch-size"),
    ({"lora_r": 0}, "--lora-r"),
    ({"lora_dropout": 1.0}, "--lora-dropout"),
])
def test_options_that_would_train_nothing_are_refused(knobs: dict, message: str) -> None:
    with pytest.raises(AigcError, match=message):
        FitOptions(**knobs)


def test_lora_knobs_have_one_spelling_and_the_core_defaults() -> None:
    with pytest.warns(FutureWarning, match=r"FitOptions\(r=...\) is deprecated"):
        old = FitOptions(r=4)
    assert old.lora_r == 4
    with pytest.warns(FutureWarning):
        assert FitOptions(r=4, lora_r=8).lora_r == 8  # the new spelling wins
    fresh = FitOptions()
    assert (fresh.lora_r, fresh.lora_alpha, fresh.lora_dropout, fresh.base) == (
        None, None, None, None)  # None: LORA_DEFAULTS["classify"] and AIGC_ENCODER, at fit time
    assert FitOptions(target_modules="query, value").targets("minilm-l6") == ["query", "value"]
    assert FitOptions().targets("minilm-l6") == ["all-linear"]


def test_decoder_or_encoder_comes_from_the_config_not_the_name(
    tiny_encoder_dir: Path, tiny_llm_dir: Path, tmp_path: Path
) -> None:
    lookalike = tmp_path / "smollm2-135m-instruct-but-bert"
    shutil.copytree(tiny_encoder_dir, lookalike)
    assert default_learning_rate(str(lookalike)) == 1e-3
    assert default_targets(str(lookalike)) == ["all-linear"]
    assert default_learning_rate(str(tiny_llm_dir)) == 1e-4
    assert default_targets(str(tiny_llm_dir)) is None
    assert default_learning_rate("smollm2-135m-instruct") == 1e-4  # the alias knows its kind
    assert default_learning_rate("minilm-l6") == 1e-3


def test_no_model_yet_is_a_clear_error() -> None:
    with pytest.raises(NotFoundError, match="no sentiment model yet"):
        SentimentModel.load()


@pytest.mark.slow
def test_minilm_learns_the_sample_set_above_chance() -> None:
    data = load_labelled(DATA, topic_col="topic")
    # 4 epochs: about 0.82 accuracy on the test split (6 reach 0.79 in twice the time; 2 and 3
    # epochs stay below the bar, so a trainer that learns less fails here)
    report = train_sentiment(data, "sample", FitOptions(epochs=4, progress=False))
    assert report.test is not None
    # three balanced-ish classes: chance is about 0.4 accuracy / 0.33 macro-F1
    assert report.test.accuracy > 0.7 and report.test.macro_f1 > 0.6

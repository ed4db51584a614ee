"""The int8 scorer (saved at train time, chosen by the validation rule, reloaded) and the
length-sorted batching that every scorer goes through."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from aigc_apps.errors import AigcError
from aigc_apps.registry import ModelRegistry
from aigc_apps.settings import Settings
from apps.sentiment.classifier import FitOptions, SentimentModel, evaluate_model, train_sentiment
from apps.sentiment.evaluation import load_labelled
from apps.sentiment.int8 import (
    INT8_INFO,
    INT8_WEIGHTS,
    MAX_F1_DROP,
    Int8Decision,
    read_decision,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "sentiment" / "headlines.csv"

PRECISION_ENV = "AIGC_SENTIMENT_PRECISION"


@pytest.fixture(scope="module")
def trained(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory,
            models_cache: Path) -> tuple[Path, dict]:
    """A tiny classifier trained a few steps (int8 copy and decision saved with it)."""
    data = load_labelled(DATA)
    opts = FitOptions(base=str(tiny_encoder_dir), max_steps=6, batch_size=8, max_length=32,
                      progress=False)
    home = tmp_path_factory.mktemp("int8-home")
    with pytest.MonkeyPatch.context() as env:  # module-scoped: its own workspace
        env.setenv("AIGC_HOME", str(home))
        env.setenv("AIGC_MODELS_DIR", str(models_cache))
        report = train_sentiment(data, "tiny8", opts)
        registry = ModelRegistry()
        info = registry.get("tiny8").info
        registry.close()
    assert report.int8 is not None and info["int8"] == report.int8  # visible in the registry
    return report.adapter_dir, report.to_dict()


def test_the_rule_is_half_a_macro_f1_point() -> None:
    assert MAX_F1_DROP == 0.005
    assert Int8Decision(0.800, 0.795).use_int8  # exactly 0.5 points lower: used
    assert Int8Decision(0.800, 0.830).use_int8
    assert not Int8Decision(0.800, 0.7949).use_int8


def test_int8_scorer_is_saved_with_both_validation_figures(trained: tuple[Path, dict]) -> None:
    folder, report = trained
    assert (folder / INT8_WEIGHTS).is_file() and (folder / INT8_INFO).is_file()
    decision = read_decision(folder)
    assert decision is not None
    saved = json.loads((folder / INT8_INFO).read_text())
    assert saved == report["int8"] == decision.to_dict()
    assert saved["validation_macro_f1_full"] == pytest.approx(report["validation"]["macro_f1"],
                                                              abs=1e-4)
    assert saved["use_int8"] == (saved["validation_macro_f1_int8"]
                                 >= saved["validation_macro_f1_full"] - MAX_F1_DROP)
    assert {"accuracy", "macro_f1"} <= set(saved["test_full"]) and saved["test_int8"]


def test_reloaded_int8_scorer_gives_the_validated_labels(
    trained: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reloaded from the folder, both scorers reproduce the validation macro-F1s saved at
    train time, so the rule holds for what is loaded, not only for what was trained; and on
    the whole sample set the int8 labels are the full model's. Forcing full precision (the
    setting) gives the full model."""
    folder, _ = trained
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    info = json.loads((copy / INT8_INFO).read_text())
    # whatever a 6-step model's figures decided, load its int8 weights here
    (copy / INT8_INFO).write_text(json.dumps(info | {"validation_macro_f1_int8":
                                                     info["validation_macro_f1_full"]}))
    data = load_labelled(DATA)
    int8 = SentimentModel.from_pretrained(copy)
    full = SentimentModel.from_pretrained(copy, full_precision=True)
    assert (int8.precision, full.precision) == ("int8", "full")
    assert any("quantized" in type(m).__module__ for m in int8.classifier.model.modules())
    assert not any("quantized" in type(m).__module__ for m in full.classifier.model.modules())
    f1_int8 = evaluate_model(int8, data.splits["validation"]).macro_f1
    f1_full = evaluate_model(full, data.splits["validation"]).macro_f1
    assert f1_int8 == pytest.approx(info["validation_macro_f1_int8"], abs=1e-4)
    assert f1_full == pytest.approx(info["validation_macro_f1_full"], abs=1e-4)
    assert info["use_int8"] == (f1_int8 >= f1_full - MAX_F1_DROP - 1e-4)
    texts = [r["text"] for split in data.splits.values() for r in split]
    agree = np.mean(np.array(int8.predict(texts)) == np.array(full.predict(texts)))
    assert agree >= 0.9, agree
    monkeypatch.setenv(PRECISION_ENV, "full")
    assert SentimentModel.from_pretrained(copy).precision == "full"
    assert SentimentModel.from_pretrained(copy, settings=Settings(home=tmp_path)).precision == (
        "int8"  # the settings given, not the environment's
    )
    monkeypatch.setenv(PRECISION_ENV, "fastest")
    with pytest.raises(AigcError, match=PRECISION_ENV):
        SentimentModel.from_pretrained(copy)


def test_a_decision_against_int8_loads_full_precision(trained: tuple[Path, dict],
                                                      tmp_path: Path) -> None:
    folder, _ = trained
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    info = json.loads((copy / INT8_INFO).read_text())
    worse = info["validation_macro_f1_full"] - 2 * MAX_F1_DROP
    (copy / INT8_INFO).write_text(json.dumps(info | {"validation_macro_f1_int8": worse}))
    assert SentimentModel.from_pretrained(copy).precision == "full"
    with pytest.MonkeyPatch.context() as env:  # forced, to measure it: int8 all the same
        env.setenv(PRECISION_ENV, "int8")
        assert SentimentModel.from_pretrained(copy).precision == "int8"
    (copy / INT8_WEIGHTS).unlink()  # a model from before int8: full precision, no error
    (copy / INT8_INFO).write_text(json.dumps(info | {"validation_macro_f1_int8": 1.0}))
    assert SentimentModel.from_pretrained(copy).precision == "full"


def test_length_sorted_batches_keep_the_input_order(tiny_encoder_dir: Path) -> None:
    """Texts of very different lengths scored in sorted, per-batch padded sub-batches come
    back in input order, equal to scoring each text alone (no padding at all)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from aigc_apps.finetune import TextClassifier

    torch.manual_seed(0)
    network = AutoModelForSequenceClassification.from_pretrained(tiny_encoder_dir, num_labels=3)
    with torch.no_grad():  # default init says about 1/3 for everything: make texts differ
        for weight in network.parameters():
            if weight.dim() > 1:
                weight.normal_(0.0, 0.3)
    clf = TextClassifier(network, AutoTokenizer.from_pretrained(tiny_encoder_dir),
                         ["negative", "neutral", "positive"], max_length=64, device="cpu")
    sentence = "bank shares plunge after the fed raises rates again and oil rises"
    texts = [" ".join(sentence.split()[: 1 + (7 * i) % 12]) for i in range(11)]
    assert len({len(t) for t in texts}) > 5  # lengths differ, so the order is shuffled
    batched = clf.predict_proba(texts, batch_size=3)
    alone = np.vstack([clf.predict_proba([t], batch_size=1) for t in texts])
    np.testing.assert_allclose(batched, alone, atol=1e-4)
    gaps = np.abs(alone[:, None, :] - alone[None, :, :]).max(axis=2)
    assert np.median(gaps) > 0.01  # rows differ, so a shuffled order would fail

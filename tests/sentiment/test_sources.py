"""Several labelled sources in one training run: spec syntax, label maps, mixing, selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aigc_apps.errors import DataError
from aigc_apps.registry import ModelRegistry
from apps.sentiment import cli
from apps.sentiment.classifier import FitOptions, train_sentiment
from apps.sentiment.evaluation import load_labelled
from apps.sentiment.normalize import NO_NORMALIZE
from apps.sentiment.service import SentimentService
from apps.sentiment.sources import SourceSpec, check_label_sets, mix_sources, source_shares

NEWS = Path(__file__).resolve().parents[2] / "data" / "sentiment" / "headlines.csv"
runner = CliRunner()

TWEETS = [  # (tweet, sentiment); bearish/bullish/neutral spelled as a tweet data set does
    ("$ACME to the moon!!! beat on revenue https://t.co/x1 @trader", "Bullish"),
    ("$BORE downgraded to sell, guidance cut", "Bearish"),
    ("$CALM annual meeting scheduled for May 4", "Neutral"),
    ("Record profits at $DYN 🚀🚀", "Bullish"),
    ("$EVO plunges after fraud probe", "Bearish"),
    ("$FLAT declares regular quarterly dividend", "Neutral"),
]


def _tweets(path: Path, n: int = 60, split: bool = True) -> Path:
    """A tweet-style source: other column names, other label spellings, and a ``fold``
    column with train and test only (no validation rows)."""
    lines = ["tweet,sentiment" + (",fold" if split else "")]
    for i in range(n):
        text, label = TWEETS[i % len(TWEETS)]
        fold = "test" if i % 5 == 0 else "train"
        lines.append(f'"{text} #{i}",{label}' + (f",{fold}" if split else ""))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_source_spec_syntax() -> None:
    plain = SourceSpec.parse("data/news.csv", text_col="headline")
    assert (plain.path, plain.name, plain.text_col, plain.label_col) == (
        Path("data/news.csv"), "news", "headline", "label")
    spec = SourceSpec.parse("t.csv:text=tweet,label=sentiment,split=fold,name=posts,"
                            "map=0>negative,map=1>positive, map = 2 > neutral")
    assert (spec.text_col, spec.label_col, spec.split_col, spec.name) == (
        "tweet", "sentiment", "fold", "posts")
    assert spec.label_map == {"0": "negative", "1": "positive", "2": "neutral"}
    with pytest.raises(DataError, match="unknown key 'column'"):
        SourceSpec.parse("t.csv:column=x")
    with pytest.raises(DataError, match="expected map=SPELLING>LABEL"):
        SourceSpec.parse("t.csv:map=bullish")
    with pytest.raises(DataError, match="source name 'a b'"):
        SourceSpec.parse("t.csv:name=a b")


def test_shares_follow_the_balance_exponent_and_no_row_is_dropped() -> None:
    assert source_shares({"a": 100, "b": 25}, 1.0) == pytest.approx({"a": 0.8, "b": 0.2})
    assert source_shares({"a": 100, "b": 25}, 0.5) == pytest.approx({"a": 2 / 3, "b": 1 / 3})
    assert source_shares({"a": 100, "b": 25}, 0.0) == pytest.approx({"a": 0.5, "b": 0.5})
    with pytest.raises(DataError, match=r"balance must be in \[0, 1\]"):
        source_shares({"a": 1}, 1.5)
    rows = {"a": [{"text": f"a{i}", "label": "neutral"} for i in range(100)],
            "b": [{"text": f"b{i}", "label": "neutral"} for i in range(25)]}
    from apps.sentiment.evaluation import LabelledData

    data = [LabelledData(n, {"train": r, "validation": [], "test": []}, name=n)
            for n, r in rows.items()]
    mixed, mix = mix_sources(data, 0.5, seed=1)
    # epoch sized so the source with the smallest share shows each row once: a 100, b 50
    assert [(m.name, m.epoch_rows, m.repeats) for m in mix] == [("a", 100, 1.0), ("b", 50, 2.0)]
    assert {r["text"] for r in mixed} == {r["text"] for part in rows.values() for r in part}
    equal, mix0 = mix_sources(data, 0.0, seed=1)
    assert [m.epoch_rows for m in mix0] == [100, 100] and len(equal) == 200
    again, _ = mix_sources(data, 0.0, seed=1)
    assert again == equal  # seeded


def test_label_maps_and_integer_codes(tmp_path: Path) -> None:
    coded = tmp_path / "coded.csv"
    coded.write_text("text,label\n" + "".join(f"t{i},{i % 3}\n" for i in range(30)))
    with pytest.raises(DataError, match="codes 0/1/2"):
        load_labelled(coded)
    data = load_labelled(coded, label_map={"0": "bearish", "1": "Bullish", "2": "neutral"})
    rows = [r for part in data.splits.values() for r in part]
    assert {(r["text"], r["label"]) for r in rows} >= {("t0", "negative"), ("t1", "positive"),
                                                      ("t2", "neutral")}
    with pytest.raises(DataError, match="the target must be one of"):
        load_labelled(coded, label_map={"0": "bad"})


def test_a_label_present_in_one_source_only_is_refused(tmp_path: Path) -> None:
    binary = tmp_path / "binary.csv"  # a positive/negative-only source beside 3-class news
    binary.write_text("text,label\n" + "".join(
        f"t{i},{'positive' if i % 2 else 'negative'}\n" for i in range(20)))
    sources = [load_labelled(NEWS), load_labelled(binary)]
    with pytest.raises(DataError, match=r"label 'neutral' is in source headlines only, "
                                        r"not in binary.*map=SPELLING>LABEL"):
        check_label_sets(sources)
    with pytest.raises(DataError, match="label 'neutral' is in source headlines only"):
        train_sentiment(sources, "never", FitOptions(max_steps=1, progress=False))
    assert ModelRegistry().list(app="sentiment") == []  # refused before training


def test_two_sources_with_their_own_columns_and_labels_train_one_model(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    tweets = _tweets(tmp_path / "tweets.csv")
    result = runner.invoke(cli.app, [
        "train", "--data", str(NEWS),
        "--data", f"{tweets}:text=tweet,label=sentiment,split=fold,name=posts",
        "--name", "joint", "--base", str(tiny_encoder_dir), "--max-steps", "4",
        "--batch-size", "8", "--max-length", "32", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    by_name = {s["name"]: s for s in report["sources"]}
    assert list(by_name) == ["headlines", "posts"]
    news, posts = by_name["headlines"], by_name["posts"]
    # the tweets' fold has no validation rows: some were carved (seeded) out of train
    assert not news["validation_carved_from_train"] and posts["validation_carved_from_train"]
    assert posts["validation"]["n"] > 0 and posts["test"]["n"] == 12
    assert sum(posts["counts"]["train"].values()) + posts["validation"]["n"] == 48
    assert set(posts["counts"]["train"]) == {"negative", "neutral", "positive"}
    assert news["test"]["n"] == 34 and report["test"]["n"] == 34 + 12  # pooled too
    # square-root weights: the small source gets more than its natural share, no row dropped
    n_news, n_posts = news["rows"], posts["rows"]
    assert posts["weight"] == pytest.approx(n_posts ** 0.5 / (n_news ** 0.5 + n_posts ** 0.5),
                                            abs=1e-4)
    assert posts["weight"] > n_posts / (n_news + n_posts)
    assert news["epoch_rows"] == n_news and posts["epoch_rows"] > n_posts
    # the best epoch was chosen on macro-F1 averaged per source, as the trainer recorded it
    training = json.loads((Path(report["adapter_dir"]) / "aigc_training.json").read_text())
    metrics = training["metrics"]
    assert metrics["eval_f1_macro"] == pytest.approx(
        (metrics["eval_f1_macro@headlines"] + metrics["eval_f1_macro@posts"]) / 2)
    assert "eval_f1_macro_pooled" in metrics
    assert report["selection"]["value"] == pytest.approx(
        (news["validation"]["macro_f1"] + posts["validation"]["macro_f1"]) / 2, abs=1e-4)
    # weights and per-source figures are in the model's registry entry and metadata
    entry = ModelRegistry().get("joint")
    assert entry.info["sources"]["posts"]["weight"] == posts["weight"]
    assert entry.metrics["posts_test_macro_f1"] == posts["test"]["macro_f1"]
    listed = json.loads(runner.invoke(cli.app, ["models", "--json"]).stdout)
    assert listed[0]["sources"]["headlines"]["weight"] == news["weight"]
    saved = json.loads((Path(report["adapter_dir"]) / "sentiment_model.json").read_text())
    assert [s["name"] for s in saved["sources"]] == ["headlines", "posts"]

    text = runner.invoke(cli.app, [
        "train", "--data", str(NEWS), "--data", f"{tweets}:text=tweet,label=sentiment,"
        "split=fold", "--name", "joint2", "--base", str(tiny_encoder_dir), "--max-steps", "2",
        "--batch-size", "8", "--max-length", "32", "--balance", "0"], catch_exceptions=False)
    assert text.exit_code == 0, text.output
    # 48 rows in the fold's train part, 2 per label carved out for validation
    assert "source tweets: 42 training rows, weight 0.500" in text.stdout
    assert "validation carved from train" in text.stdout
    assert "averaged over sources" in text.stdout


def test_sdk_takes_several_sources_and_a_source_without_any_split(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    tweets = _tweets(tmp_path / "posts.csv", n=45, split=False)
    with SentimentService("sqlite:///:memory:") as service:
        sources = service.read_sources(
            [str(NEWS), f"{tweets}:text=tweet,label=sentiment"], seed=7)
        assert [s.name for s in sources] == ["headlines", "posts"]
        assert sources[1].validation_carved and sources[1].splits["test"]
        opts = FitOptions(base=str(tiny_encoder_dir), max_steps=2, batch_size=8, max_length=32,
                          progress=False, normalize=NO_NORMALIZE, balance=1.0)
        report = service.train(sources, "sdk", opts)
    assert [s.name for s in report.sources] == ["headlines", "posts"]
    assert [s.mix.repeats for s in report.sources] == [1.0, 1.0]  # balance 1: natural
    assert report.normalization == NO_NORMALIZE.to_dict()
    with pytest.raises(DataError, match="named 'headlines'"):
        train_sentiment([load_labelled(NEWS), load_labelled(NEWS)], "twice",
                        FitOptions(base=str(tiny_encoder_dir), max_steps=1, progress=False))

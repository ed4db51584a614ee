"""Text normalisation for posts: what it does, that it is saved with the model, and that
``score`` and ``ingest`` apply it through the model (an old model without it scores raw)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aigc_apps.errors import DataError
from apps.sentiment import cli
from apps.sentiment.classifier import SentimentModel
from apps.sentiment.normalize import (
    DEFAULT_NORMALIZE,
    NO_NORMALIZE,
    NORMALIZE_FILE,
    NormalizeConfig,
)

NEWS = Path(__file__).resolve().parents[2] / "data" / "sentiment" / "headlines.csv"
POST = "$AAPL to the moon!!! https://x.co @bob"
runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(cli.app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_each_option_does_what_it_says() -> None:
    assert DEFAULT_NORMALIZE(POST) == "$AAPL to the moon!!! http @user"
    assert DEFAULT_NORMALIZE("AT&amp;T 🚀 up!!  ") == "AT&amp;T 🚀 up!!"  # spaces only
    tidy = NormalizeConfig(emoji="name", max_repeat=2, unescape_html=True)
    assert tidy("AT&amp;T 🚀🚀 up?!?! ...... 👍🏽") == (
        "AT&T rocket rocket up?!?! .. thumbs up sign")
    full = NormalizeConfig(cashtags="mask", urls="drop", users="drop", emoji="drop",
                           max_repeat=1)
    assert full(POST + " 📉") == "$ticker to the moon!"
    assert NormalizeConfig(cashtags="strip")("buy $TSLA, not $5.00") == "buy TSLA, not $5.00"
    assert DEFAULT_NORMALIZE("mail a@b.com") == "mail a@b.com"  # an address is no handle
    assert NO_NORMALIZE.is_identity and NO_NORMALIZE(POST) == POST
    assert NO_NORMALIZE.apply_all([" x  y "]) == [" x  y "]  # untouched, not even spaces


def test_parse_save_and_load(tmp_path: Path) -> None:
    assert NormalizeConfig.parse("default") == DEFAULT_NORMALIZE
    assert NormalizeConfig.parse("none") == NO_NORMALIZE
    parsed = NormalizeConfig.parse("cashtags=mask, emoji=drop, max-repeat=3")
    assert (parsed.cashtags, parsed.emoji, parsed.max_repeat, parsed.urls) == (
        "mask", "drop", 3, "mask")
    for bad, message in (("emoji=smile", "emoji='smile'"), ("colour=red", "unknown option"),
                         ("urls", "expected key=value"), ("max_repeat=x", "an integer")):
        with pytest.raises(DataError, match=message):
            NormalizeConfig.parse(bad)
    assert NormalizeConfig.from_pretrained(tmp_path) is None  # an old model's folder
    parsed.save_pretrained(tmp_path)
    assert NormalizeConfig.from_pretrained(tmp_path) == parsed
    (tmp_path / NORMALIZE_FILE).write_text('{"cashtags": "keep", "lowercase": true}')
    with pytest.raises(DataError, match="unknown normalisation option"):
        NormalizeConfig.from_pretrained(tmp_path)


def test_the_saved_model_normalises_in_score_and_ingest_and_old_models_score_raw(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    report = json.loads(_ok([
        "train", "--data", str(NEWS), "--name", "posts", "--base", str(tiny_encoder_dir),
        "--max-steps", "6", "--lr", "0.05", "--batch-size", "8", "--max-length", "32",
        "--json"]))  # a high rate: the tiny model must tell texts apart
    folder = Path(report["adapter_dir"])
    assert report["normalization"] == DEFAULT_NORMALIZE.to_dict()
    assert NormalizeConfig.from_pretrained(folder) == DEFAULT_NORMALIZE
    model = SentimentModel.load("posts")
    normalised = DEFAULT_NORMALIZE(POST)
    raw = model.classifier.predict_proba([POST])[0]  # what the model would say unnormalised
    assert not np.allclose(raw, model.classifier.predict_proba([normalised])[0], atol=1e-3)

    db = ["--db", f"sqlite:///{tmp_path / 's.db'}", "--no-embeddings"]
    scored = json.loads(_ok(["score", POST, normalised, "--json", *db]))
    assert scored[0]["text"] == POST  # the caller's text is kept; the model reads it normalised
    assert scored[0]["probabilities"] == scored[1]["probabilities"]
    assert scored[0]["probabilities"] != pytest.approx(dict(zip(
        ("negative", "neutral", "positive"), raw.tolist(), strict=True)), abs=1e-3)

    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps({"id": "1", "text": POST}) + "\n")
    assert "1 stored" in _ok(["ingest", str(feed), *db])
    from apps.sentiment.service import SentimentService

    with SentimentService(db[1]) as service:
        (doc,) = service.documents()
    assert doc.text == POST
    assert doc.probabilities == pytest.approx(scored[1]["probabilities"], abs=1e-4)

    # A model saved before normalisation existed: loads, and scores raw text exactly as the
    # bare classifier does.
    (folder / NORMALIZE_FILE).unlink()
    old = SentimentModel.load("posts")
    assert old.normalize is None
    assert old.predict_proba([POST])[0][old._columns] == pytest.approx(raw, abs=1e-6)
    rescored = json.loads(_ok(["score", POST, "--json", *db]))
    assert rescored[0]["probabilities"]["negative"] == pytest.approx(float(raw[0]), abs=1e-4)


def test_training_can_switch_normalisation_off(tiny_encoder_dir: Path) -> None:
    report = json.loads(_ok([
        "train", "--data", str(NEWS), "--name", "raw", "--base", str(tiny_encoder_dir),
        "--max-steps", "1", "--batch-size", "8", "--max-length", "32", "--normalize", "none",
        "--json"]))
    assert report["normalization"] == NO_NORMALIZE.to_dict()
    assert SentimentModel.load("raw").normalize == NO_NORMALIZE
    result = runner.invoke(cli.app, ["train", "--data", str(NEWS), "--name", "bad",
                                     "--normalize", "emoji=smile"])
    assert result.exit_code != 0 and "emoji='smile'" in str(result.exception)

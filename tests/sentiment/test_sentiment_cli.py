"""The ``aigc sentiment`` commands through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aigc_apps.cli import main
from aigc_apps.errors import AigcError, DataError, NotFoundError
from aigc_apps.registry import ModelRegistry
from apps.sentiment import cli
from apps.sentiment.classifier import SentimentModel
from apps.sentiment.scoring import LexiconScorer

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "sentiment"
runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(cli.app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout  # progress bars go to stderr


@pytest.fixture
def lexicon_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands that need a model get the deterministic lexicon scorer."""
    monkeypatch.setattr(SentimentModel, "load", classmethod(lambda cls, *a, **k: LexiconScorer()))


def test_monitoring_flow(db_url: str, lexicon_model: None, tmp_path: Path) -> None:
    db = ["--db", db_url]
    assert "5 topics saved" in _ok(["topics", "load", str(DATA / "topics.txt"), *db])
    _ok(["topics", "add", "crypto", "-k", "bitcoin, crypto", "--rule", "min_volume=5", *db])
    listed = json.loads(_ok(["topics", "list", "--json", *db]))
    assert {t["name"] for t in listed} == {"rates", "banking", "energy", "tech", "housing",
                                           "crypto"}
    assert next(t for t in listed if t["name"] == "crypto")["rule"] == {"min_volume": 5}

    args = ["ingest", str(DATA / "stream.jsonl"), "--no-embeddings", "--json", *db]
    report = json.loads(_ok(args))
    assert report["duplicates"] == 1 and len(report["skipped"]) == 3
    assert report["stored"] > 800
    banking_alerts = [a for a in report["alerts"] if a["topic"] == "banking"]
    # the injected surge runs 10:00-13:00 on May 8: one alert, in its first or second hour
    assert [a["bucket_start"][:13] for a in banking_alerts] in (["2024-05-08T10"],
                                                                ["2024-05-08T11"])
    again = json.loads(_ok(args))  # idempotent re-run
    assert again["stored"] == 0 and again["alerts"] == []

    rows = json.loads(_ok(["trends", "--topic", "banking", "--json", *db]))
    surge = next(r for r in rows if r["bucket_start"].startswith("2024-05-08T11"))
    assert surge["count"] >= 10 and surge["share_negative"] > 0.5
    daily = json.loads(_ok(["trends", "--topic", "banking", "--bucket", "1d", "--json", *db]))
    assert len(daily) == 3 and sum(r["count"] for r in daily) == sum(r["count"] for r in rows)
    chart = tmp_path / "chart.png"
    out = _ok(["trends", "--plot", str(chart), *db])
    assert "chart written" in out and chart.stat().st_size > 10_000
    assert "banking" in _ok(["alerts", *db])
    alerts = json.loads(_ok(["alerts", "--topic", "banking", "--json", *db]))
    assert alerts and all(a["topic"] == "banking" for a in alerts)

    with pytest.raises(NotFoundError, match="unknown topic 'crypt'"):
        runner.invoke(cli.app, ["trends", "--topic", "crypt", *db], catch_exceptions=False)
    with pytest.raises(DataError, match="duration"):
        runner.invoke(cli.app, ["trends", "--bucket", "often", *db], catch_exceptions=False)
    _ok(["topics", "remove", "crypto", *db])
    with pytest.raises(NotFoundError):
        runner.invoke(cli.app, ["topics", "remove", "crypto", *db], catch_exceptions=False)


def test_ingest_stdin_and_score(lexicon_model: None, tmp_path: Path) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 's.db'}"]
    _ok(["topics", "add", "banking", "-k", "bank, lender", *db])
    feed = '{"text": "Bank profits rise"}\nnot json\n{"text": "Lender shares plunge"}\n'
    result = runner.invoke(cli.app, ["ingest", "-", "--no-embeddings", "--json", *db],
                           input=feed, catch_exceptions=False)
    report = json.loads(result.stdout)
    assert report["stored"] == 2 and report["skipped"][0]["line"] == 2
    scored = json.loads(_ok(["score", "Bank shares plunge", "Weather is fine today",
                             "--no-embeddings", "--json", *db]))
    assert scored[0]["label"] == "negative" and scored[0]["topics"][0]["topic"] == "banking"
    assert scored[1]["topics"] == []
    assert abs(sum(scored[0]["probabilities"].values()) - 1) < 1e-4
    assert not scored[0]["truncated"]
    with pytest.raises(DataError, match="text 2 is empty"):
        runner.invoke(cli.app, ["score", "Bank up", "   ", "--no-embeddings", *db],
                      catch_exceptions=False)
    huge = "Bank shares plunge " * 60_000  # about 1 MB
    out = _ok(["score", huge, "--no-embeddings", *db])
    assert "text 1 truncated" in out and "20,000 characters" in out
    long_json = json.loads(_ok(["score", huge, "--no-embeddings", "--json", *db]))
    assert long_json[0]["truncated"] and long_json[0]["label"] == "negative"
    big_feed = tmp_path / "big.jsonl"
    big_feed.write_text(json.dumps({"id": "big", "text": huge}) + "\n")
    out = _ok(["ingest", str(big_feed), "--no-embeddings", *db])
    assert "1 stored" in out and "1 texts truncated" in out and "20,000 characters" in out


def _lora_config(report: dict) -> dict:
    training = json.loads((Path(report["adapter_dir"]) / "aigc_training.json").read_text())
    return training["config"]


def test_train_eval_score_with_tiny_encoder(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    train = json.loads(_ok([
        "train", "--data", str(DATA / "headlines.csv"), "--name", "tiny", "--base",
        str(tiny_encoder_dir), "--max-steps", "3", "--batch-size", "8", "--max-length", "32",
        "--lora-r", "8", "--lora-alpha", "24", "--lora-dropout", "0.05",
        "--target-modules", "query,value", "--json",
    ]))
    assert train["labels"] == ["negative", "neutral", "positive"] and train["test"]["n"] == 34
    config = _lora_config(train)
    assert (config["lora_r"], config["lora_alpha"], config["lora_dropout"]) == (8, 24, 0.05)
    assert config["target_modules"] == ["query", "value"]
    ev = json.loads(_ok(["eval", "--model", "tiny", "--data", str(DATA / "headlines.csv"),
                         "--split", "test", "--json"]))
    assert ev["n"] == 34 and len(ev["confusion_matrix"]) == 3 and ev["model"] == "tiny"
    assert ev["accuracy"] == pytest.approx(train["test"]["accuracy"], abs=1e-4)
    assert sum(map(sum, ev["confusion_matrix"])) == 34
    assert "tiny" in _ok(["models"])
    (listed,) = json.loads(_ok(["models", "--json"]))
    assert {"name": "tiny", "base": str(tiny_encoder_dir), "labels": train["labels"],
            "topic_model": None, "active": True}.items() <= listed.items()
    assert listed["test_accuracy"] == pytest.approx(train["test"]["accuracy"], abs=1e-4)
    assert Path(listed["path"]) == Path(train["adapter_dir"]).resolve()
    db = ["--db", f"sqlite:///{tmp_path / 'x.db'}"]
    scored = json.loads(_ok(["score", "Bank profits rise", "--json", *db]))
    assert scored[0]["label"] in ("negative", "neutral", "positive")
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nup,great\ndown,awful\n")
    with pytest.raises(DataError, match="no rows with a known label"):
        runner.invoke(cli.app, ["train", "--data", str(bad), "--name", "x"],
                      catch_exceptions=False)


@pytest.mark.parametrize("bad", [["--max-steps", "0"], ["--max-steps", "-3"],
                                 ["--epochs", "0"], ["--epochs", "-1"]])
def test_train_refuses_settings_that_train_nothing(
    bad: list[str], workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--data", str(DATA / "headlines.csv"), "--name", "untrained", *bad]
    with pytest.raises(AigcError, match=f"{bad[0]}\\) must be > 0"):
        runner.invoke(cli.app, args, catch_exceptions=False)
    assert ModelRegistry().list() == [] and not (workspace / "adapters").exists()
    with pytest.raises(SystemExit) as exited:  # through `aigc`: one line, exit 1
        main(["sentiment", *args])
    assert exited.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and bad[0] in lines[0]


def test_old_lora_option_and_default_base_from_settings(
    tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIGC_ENCODER", str(tiny_encoder_dir))
    result = runner.invoke(cli.app, [
        "train", "--data", str(DATA / "headlines.csv"), "--name", "old-style", "--r", "4",
        "--max-steps", "1", "--batch-size", "8", "--max-length", "32", "--json",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "--r is deprecated" in result.stderr and "--lora-r" in result.stderr
    report = json.loads(result.stdout)
    assert report["base"] == str(tiny_encoder_dir)  # --base defaults to AIGC_ENCODER
    config = _lora_config(report)
    # the old option sets the rank (alpha twice it, as 0.1.0 did), dropout the classify default
    assert (config["lora_r"], config["lora_alpha"], config["lora_dropout"]) == (4, 8, 0.1)
    assert config["target_modules"] == ["all-linear"]
    assert " --r " not in runner.invoke(cli.app, ["train", "--help"]).stdout  # hidden

"""`aigc recommend ...` end to end on the sample catalogue (hashing encoder: no model load)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from aigc_apps.errors import DataError, ModelNotFoundError, NotFoundError
from apps.recommender.cli import app

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_end_to_end(db_url: str, sample_dir: Path) -> None:
    items, events = str(sample_dir / "items.csv"), str(sample_dir / "events.csv")
    report = json.loads(
        run("ingest", "--items", items, "--events", events, "--db", db_url, "--json")
    )
    assert report["items_added"] == 122 and report["events_added"] > 300
    again = json.loads(
        run("ingest", "--items", items, "--events", events, "--db", db_url, "--json")
    )
    assert again["events_added"] == 0 and again["items_unchanged"] == 122

    trained = json.loads(
        run("train", "--encoder", "hashing", "--no-interest-model", "--db", db_url, "--json")
    )
    assert trained["version"] == 1 and trained["items"] == 122 and trained["train_seconds"] >= 0

    recs = json.loads(run("for-user", "u01", "-k", "5", "--explain", "--db", db_url, "--json"))
    assert len(recs["items"]) == 5 and recs["note"] is None
    assert sum(r["item_id"].startswith("spa-") for r in recs["items"]) >= 3  # u01 loves space
    assert all(r["reasons"] for r in recs["items"])

    unknown = json.loads(run("for-user", "zz-new", "--db", db_url, "--json"))
    assert "unknown user 'zz-new'" in unknown["note"] and len(unknown["items"]) == 10
    text = json.loads(
        run(
            "for-user",
            "zz-new",
            "--interest",
            "space documentary astronomy",
            "--db",
            db_url,
            "--json",
        )
    )
    assert text["note"] is None and text["items"][0]["item_id"].split("-")[0] in ("spa", "n")

    similar = json.loads(run("similar", "n-voyager", "-k", "3", "--db", db_url, "--json"))
    assert [s["item_id"][:3] for s in similar["similar"]] == ["spa"] * 3
    assert "HR@10" in run("eval", "--encoder", "hashing", "--no-interest-model", "--db", db_url)


def test_cli_errors_are_aigc_errors(db_url: str, tmp_path: Path, sample_dir: Path) -> None:
    result = runner.invoke(app, ["for-user", "u01", "--db", db_url])
    assert isinstance(result.exception, ModelNotFoundError)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = runner.invoke(app, ["ingest", "--items", str(empty), "--db", db_url])
    assert isinstance(result.exception, DataError) and "empty" in str(result.exception)
    result = runner.invoke(app, ["ingest", "--db", db_url])
    assert isinstance(result.exception, DataError)
    run("ingest", "--items", str(sample_dir / "items.csv"), "--db", db_url)
    result = runner.invoke(app, ["train", "--encoder", "hashing", "--db", db_url])
    assert isinstance(result.exception, DataError) and "no events" in str(result.exception)


def test_similar_unknown_item(db_url: str, sample_dir: Path) -> None:
    run(
        "ingest",
        "--items",
        str(sample_dir / "items.csv"),
        "--events",
        str(sample_dir / "events.csv"),
        "--db",
        db_url,
    )
    run("train", "--encoder", "hashing", "--no-interest-model", "--db", db_url)
    result = runner.invoke(app, ["similar", "nope", "--db", db_url])
    assert isinstance(result.exception, NotFoundError)


def test_every_command_has_help() -> None:
    for command in ("ingest", "train", "for-user", "similar", "eval"):
        out = run(command, "--help")
        assert "--db" in out and "Usage" in out
    assert "--interest-lora" in run("train", "--help")

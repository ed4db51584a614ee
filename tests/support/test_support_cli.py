from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aigc_apps.errors import DataError, NotFoundError
from apps.support.edges.cli import app

runner = CliRunner()


def run(*args: str) -> dict:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else {"out": result.stdout}


def test_cli_round_trip(env: None, db_url: str, kb_dir: Path, tmp_path: Path) -> None:
    first = run("ingest", str(kb_dir), "--db", db_url, "--json")
    assert first["entries_added"] > 100 and first["stats"]["intents"] == 42
    again = run("ingest", str(kb_dir), "--db", db_url, "--json")
    assert again["entries_added"] == 0 and again["unchanged_sources"] == 5

    reply = run("ask", "Where is my order?", "--db", db_url, "--json")
    assert set(reply) >= {"answer", "intent", "sources", "confidence", "handoff", "latency_ms"}
    follow = run("ask", "and when?", "--session", reply["session_id"], "--db", db_url, "--json")
    assert follow["turn_number"] == 2 and follow["turn"] == 2  # "turn": 0.1.0's key
    assert all(s["entry_id"] for s in reply["sources"])
    run(
        "feedback",
        reply["session_id"],
        "1",
        "--bad",
        "--correct-answer",
        "Try again",
        "--db",
        db_url,
    )
    turns = run("session", reply["session_id"], "--db", db_url, "--json")
    assert [t["turn"] for t in turns] == [1, 2]  # 0.1.0's key, kept for one release
    assert [t["turn_number"] for t in turns] == [1, 2]

    labelled = tmp_path / "eval.csv"
    labelled.write_text(
        f"q,label\nWhere is my order?,order_status\nWhat is 2+2?,OOS\n{'x' * 100_000},OOS\n"
    )
    report = run(
        "eval",
        "--data",
        str(labelled),
        "--text-col",
        "q",
        "--intent-col",
        "label",
        "--oos-label",
        "OOS",
        "--db",
        db_url,
        "--json",
    )
    assert report["n_in_scope"] == 1 and report["n_oos"] == 1
    assert len(report["skipped"]) == 1 and "the limit is 4000" in report["skipped"][0]
    assert 0 <= report["top1_accuracy"] <= 1
    assert "reindexed" in run("reindex", "--db", db_url)["out"]
    assert run("status", "--db", db_url, "--json")["examples"] == 133


def test_cli_errors_are_aigc_errors(env: None, db_url: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="question is empty"):
        runner.invoke(app, ["ask", "", "--db", db_url], catch_exceptions=False)
    with pytest.raises(NotFoundError, match="session 'nope'"):
        runner.invoke(
            app, ["feedback", "nope", "1", "--good", "--db", db_url], catch_exceptions=False
        )
    with pytest.raises(DataError, match="--good or --bad"):
        runner.invoke(app, ["feedback", "s", "1", "--db", db_url], catch_exceptions=False)
    bad = tmp_path / "t.csv"
    bad.write_text("question\nhi\n")
    with pytest.raises(DataError, match="missing column 'text'"):
        runner.invoke(app, ["ingest", str(bad), "--db", db_url], catch_exceptions=False)


def test_chat_streams_and_keeps_one_session(env: None, db_url: str, kb_dir: Path) -> None:
    run("ingest", str(kb_dir), "--db", db_url)
    result = runner.invoke(
        app,
        ["chat", "--db", db_url],
        input="Where is my order?\n\nignored\n",
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    assert result.stdout.count("you>") == 2 and result.stdout.count("turn ") == 1
    assert "ignored" not in result.stdout


def test_every_command_has_help() -> None:
    for command in (
        "ingest",
        "ask",
        "chat",
        "feedback",
        "reindex",
        "status",
        "session",
        "finetune",
        "eval",
    ):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "--db" in result.stdout


def test_finetune_passes_the_lora_shape_to_the_service(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.support.quality.tuning import TuningReport
    from apps.support.service import SupportService

    calls: list[dict] = []

    def tune(self: SupportService, **options: object) -> TuningReport:
        calls.append(options)
        return TuningReport(generator_model="support-generator-x")

    monkeypatch.setattr(SupportService, "tune", tune)
    out = run(
        "finetune", "--no-retriever", "--lora-r", "4", "--lora-alpha", "8",
        "--lora-dropout", "0.2", "--target-modules", "q_proj,v_proj", "--json",
    )
    assert out["generator_model"] == "support-generator-x"
    assert calls == [
        {
            "retriever": False, "generator": True, "epochs": 1, "batch_size": 64,
            "lora": False, "max_steps": 30, "lora_r": 4, "lora_alpha": 8,
            "lora_dropout": 0.2, "target_modules": "q_proj,v_proj",
        }
    ]

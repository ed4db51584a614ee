"""`aigc recommend ...` end to end on the sample catalogue (hashing encoder: no model load)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aigc_apps.errors import AigcError, DataError, ModelNotFoundError, NotFoundError
from aigc_apps.registry import ModelRegistry
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
    assert recs["user_id"] == recs["user"] == "u01"  # the API's name, and 0.1.0's for a release
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
    assert similar["items"] == similar["similar"] and similar["item_id"] == similar["item"]
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
    for command in ("ingest", "train", "for-user", "similar", "eval", "status"):
        out = run(command, "--help")
        assert "--db" in out and "Usage" in out
    assert "--interest-lora" in run("train", "--help")
    for command in ("train", "eval"):
        out = run(command, "--help")
        assert "--lora-r" in out and "--lora-alpha" in out and "--lora-dropout" in out
        assert "AIGC_ENCODER" in out


def strict_json(text: str) -> object:
    """json.loads that refuses NaN and Infinity, which are not JSON."""

    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def ingested(db_url: str, sample_dir: Path) -> None:
    items, events = str(sample_dir / "items.csv"), str(sample_dir / "events.csv")
    run("ingest", "--items", items, "--events", events, "--db", db_url)


def test_similar_with_k_beyond_the_catalogue_is_strict_json_without_the_item(
    db_url: str, sample_dir: Path
) -> None:
    """Issue 10 item 6: `similar spa-01 -k 500` listed spa-01 itself with score -Infinity."""
    ingested(db_url, sample_dir)
    run("train", "--encoder", "hashing", "--no-interest-model", "--db", db_url)
    out = strict_json(run("similar", "spa-01", "-k", "500", "--db", db_url, "--json"))
    assert isinstance(out, dict)
    ids = [s["item_id"] for s in out["similar"]]
    assert len(ids) == 121 and "spa-01" not in ids and len(set(ids)) == 121
    assert all(np.isfinite(s["score"]) for s in out["similar"])
    assert "spa-01 " not in run("similar", "spa-01", "-k", "500", "--db", db_url)


@pytest.mark.parametrize("command", [["for-user", "u01"], ["similar", "spa-01"]])
def test_k_below_one_is_a_usage_error(command: list[str]) -> None:
    for k in ("0", "-1"):
        result = runner.invoke(app, [*command, "-k", k])
        assert result.exit_code == 2 and "Invalid value" in result.output


def test_json_output_has_no_nan_or_infinity(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from aigc_apps.console import print_json

    report = {"a": float("nan"), "b": [np.float32("inf"), 1.5, 2], "c": {"d": -np.inf}, "e": "x"}
    print_json(report)
    assert json.loads(capsys.readouterr().out) == {
        "a": None, "b": [None, 1.5, 2], "c": {"d": None}, "e": "x"}
    print_json((np.float64(0.25), True, None))
    assert json.loads(capsys.readouterr().out) == [0.25, True, None]


def test_train_defaults_to_the_workspace_encoder(
    db_url: str, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --encoder: AIGC_ENCODER, read when the command runs (here: no model to load)."""
    ingested(db_url, sample_dir)
    monkeypatch.setenv("AIGC_ENCODER", "hashing")
    report = json.loads(run("train", "--no-interest-model", "--db", db_url, "--json"))
    entry = ModelRegistry().get(report["name"])
    assert entry.base == "hashing" and entry.active
    assert (
        json.loads((Path(report["path"]) / "recommender.json").read_text())["config"]["encoder"]
        == "hashing"
    )


def test_lora_knobs_need_the_lora_interest_model(db_url: str) -> None:
    for flags in (
        ["--interest-full", "--lora-r", "4"],
        ["--no-interest-model", "--lora-dropout", "0.2"],
    ):
        result = runner.invoke(app, ["train", *flags, "--db", db_url])
        assert isinstance(result.exception, AigcError) and "--lora-r" in str(result.exception)
    result = runner.invoke(app, ["train", "--lora-r", "0", "--db", db_url])
    assert result.exit_code == 2


def test_status_reports_the_store_and_the_active_model(db_url: str, sample_dir: Path) -> None:
    before = json.loads(run("status", "--db", db_url, "--json"))
    assert (before["items"], before["model"]) == (0, None)
    assert "no trained model yet" in run("status", "--db", db_url)
    ingested(db_url, sample_dir)
    trained = json.loads(
        run("train", "--encoder", "hashing", "--no-interest-model", "--db", db_url, "--json")
    )
    after = json.loads(run("status", "--db", db_url, "--json"))
    assert after["items"] == 122 and after["users"] == trained["users"]
    model = after["model"]
    assert model["name"] == trained["name"] == "recommend-1" and model["active"]
    assert model["info"]["n_items"] == 122 and model["path"] == str(Path(trained["path"]).resolve())
    assert "active model recommend-1" in run("status", "--db", db_url)


STATUS_IMPORTS = r"""
import sys
from typer.testing import CliRunner
from apps.recommender.cli import app

result = CliRunner().invoke(app, ["status", "--json", "--db", sys.argv[1]])
assert result.exit_code == 0, result.output
heavy = {"torch", "transformers", "sklearn", "faiss", "peft", "numpy", "scipy"}
print(sorted({m.split(".")[0] for m in sys.modules} & heavy))
"""


def test_status_loads_no_model_library(tmp_path: Path, workspace: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", STATUS_IMPORTS, f"sqlite:///{tmp_path / 'r.db'}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_train_options_default_to_what_the_sdk_trains() -> None:
    """`aigc recommend train` used to tune LoRA while InterestConfig() tuned every weight."""
    from apps.recommender.cli import _config
    from apps.recommender.interest import InterestConfig

    plain = _config(None, True, 100, None, None, None, None).interest
    assert plain is not None and plain.lora == InterestConfig().lora
    shaped = _config(None, True, 100, None, 4, None, None).interest
    assert shaped is not None and shaped.lora and shaped.lora_r == 4
    full = _config(None, True, 100, False, None, None, None).interest
    assert full is not None and not full.lora
    with pytest.raises(AigcError, match="do not go with --interest-full"):
        _config(None, True, 100, False, 4, None, None)

"""The root `aigc` command: plugin mounting, core commands, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aigc_apps.cli import main

ROOT = Path(__file__).resolve().parents[1]
SFT = ROOT / "data" / "core" / "sft_sample.jsonl"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_core_commands_and_mounted_apps(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for name in ("models", "finetune", "generate", "adapters", "demo", "support", "sentiment"):
        assert name in out
    assert "recommend" in out


def test_models_json_reports_bundled_aliases(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["models", "--json"], capsys)
    assert code == 0
    names = {m["name"]: m for m in json.loads(out)}
    assert {"smollm2-135m-instruct", "minilm-l6"} <= set(names)
    assert names["minilm-l6"]["kind"] == "encoder"


def test_user_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    """Through the real console script: exit 1, one line on stderr, nothing written."""
    out_dir = tmp_path / "adapter"
    proc = subprocess.run(
        [sys.executable, "-m", "aigc_apps.cli", "finetune", "--data",
         str(tmp_path / "missing.jsonl"), "--out", str(out_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {tmp_path / 'missing.jsonl'}: file not found"]
    assert "Traceback" not in proc.stderr
    assert not out_dir.exists()


def test_unknown_model_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        ["finetune", "--base", str(tmp_path / "no-such-model"), "--data", str(SFT),
         "--out", str(tmp_path / "a")],
        capsys,
    )
    assert code == 1
    assert "no-such-model" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists()


def test_finetune_generate_and_adapters_commands(
    tiny_llm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "faq"
    code, out, err = run(
        ["finetune", "--base", str(tiny_llm_dir), "--data", str(SFT), "--out", str(out_dir),
         "--max-steps", "2", "--batch-size", "4", "--max-length", "64", "--json"],
        capsys,
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["name"] == "faq" and report["train_tokens"] > 0
    assert (out_dir / "adapter_config.json").exists()

    code, out, _ = run(["models", "list", "--json"], capsys)
    [entry] = json.loads(out)
    assert (entry["name"], entry["app"], entry["role"], entry["active"]) == (
        "faq", "core", "sft", True)
    code, out, err = run(["adapters", "list", "--json"], capsys)  # 0.1.0 spelling still works
    assert [a["name"] for a in json.loads(out)] == ["faq"] and "deprecated" in err

    code, out, err = run(
        ["generate", "--model", str(tiny_llm_dir), "--adapter", "faq", "--max-new-tokens", "4",
         "hello"],
        capsys,
    )
    assert code == 0, err

    merged = tmp_path / "merged"
    code, _, err = run(["models", "merge", "faq", "--out", str(merged)], capsys)
    assert code == 0, err
    assert (merged / "config.json").exists()

    code, _, err = run(["models", "delete", "faq", "--yes"], capsys)
    assert code == 1 and "--force" in err and out_dir.exists()  # the active model stays
    code, _, err = run(["models", "delete", "faq", "--yes", "--force"], capsys)
    assert code == 0 and not out_dir.exists()
    code, _, err = run(["models", "show", "faq"], capsys)
    assert code == 1 and "faq" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["recommend", "for-user", "u14", "-k", "abc"],
        ["recommend", "no-such-command"],
        ["--no-such-option"],
        ["support", "ask"],
        ["finetune"],
    ],
)
def test_usage_errors_are_one_line_not_a_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("Error:")]


def test_generate_refuses_an_encoder(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["generate", "--model", "minilm-l6", "hello"], capsys)
    assert code == 1 and "is an encoder, not a text generator" in err
    assert "Traceback" not in err


def test_json_output_is_strict_and_warnings_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from aigc_apps.console import print_json

    print_json({"score": float("-inf"), "xs": [1.5, float("nan")]})
    assert json.loads(capsys.readouterr().out) == {"score": None, "xs": [1.5, None]}

    import warnings

    old_url = f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("AIGC_RECOMMENDER_DB_URL", old_url)  # the 0.1.0 name
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as a user's Python shows them
        code, _, err = run(["db", "current", "--app", "recommend", "--json"], capsys)
    assert code == 0
    [line] = [x for x in err.splitlines() if "AIGC_RECOMMENDER_DB_URL" in x]
    assert line.startswith("warning:") and "AIGC_RECOMMEND_DB_URL" in line


def test_bytes_that_are_not_utf8_on_the_command_line_are_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = b"where is my order \xff".decode("utf-8", "surrogateescape")  # what Python passes
    for argv in (["support", "ask", bad], ["sentiment", "score", bad]):
        code, _, err = run(argv, capsys)
        assert code == 1 and "argument 3 is not valid UTF-8" in err and "Traceback" not in err

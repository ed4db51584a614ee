"""The CLI answers at once: `--help` of every command loads no model library.

`aigc` mounts every app on each run, so one app module that imports torch (or
scikit-learn, faiss...) at the top makes even `aigc --help` take seconds. Each check runs in
a fresh interpreter, because this test session has long since imported all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("torch", "transformers", "sklearn", "faiss", "peft", "matplotlib")
APPS = ("support", "sentiment", "recommend")

# Runs `main([*path, "--help"])` for the root and for every group and command of the tree
# (core commands and mounted apps, found by walking click's command tree, so new commands are
# covered without editing this list), then reports which heavy packages got imported.
HELP_SWEEP = r"""
import contextlib, io, json, sys

import typer

from aigc_apps.cli import app, main, mount_apps

heavy = json.loads(sys.argv[1])
mounted = mount_apps(app)


def walk(command, path):
    yield path
    # groups have `commands`; recent typer vendors its own click, so no isinstance(click.Group)
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from walk(sub, [*path, name])


paths = list(walk(typer.main.get_command(app), []))
results = []
for path in paths:
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main([*path, "--help"])
        except SystemExit as exc:
            code = exc.code
    results.append({"path": path, "code": code, "usage": "Usage" in out.getvalue()})
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
print(json.dumps({"mounted": mounted, "results": results, "loaded": loaded}))
"""


# Mounts the apps (the first test checks what that imports), then runs each command line of
# argv[2] (a JSON list) through `main`, in order, and reports for each its exit code and the
# heavy packages first imported while it ran.
COMMAND_SWEEP = r"""
import contextlib, io, json, sys

from aigc_apps.cli import app, main, mount_apps

heavy, commands = set(json.loads(sys.argv[1])), json.loads(sys.argv[2])
mount_apps(app)
results = []
for argv in commands:
    before = {m.split(".")[0] for m in sys.modules} & heavy
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code
    loaded = sorted(({m.split(".")[0] for m in sys.modules} & heavy) - before)
    results.append({"argv": argv, "code": code, "loaded": loaded, "output": out.getvalue()})
print(json.dumps(results))
"""


def _run(script: str, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_of_every_command_imports_no_model_library() -> None:
    report = _run(HELP_SWEEP, json.dumps(HEAVY))
    assert set(APPS) <= set(report["mounted"]), report["mounted"]  # a broken app only warns
    paths = [" ".join(r["path"]) for r in report["results"]]
    # the walk reached every app and the commands under it (and nested groups)
    assert "" in paths and {"support ask", "sentiment topics list", "recommend train"} <= set(
        paths
    ), paths
    failed = [r for r in report["results"] if r["code"] not in (0, None) or not r["usage"]]
    assert not failed, failed
    assert report["loaded"] == [], (
        f"`aigc ... --help` imported {report['loaded']}: import them inside the commands"
    )


def test_commands_that_touch_no_model_import_no_model_library(tmp_path: Path) -> None:
    """Reports, topics and ingesting a catalogue read the database only."""
    sentiment_db = ["--db", f"sqlite:///{tmp_path / 'sentiment.db'}"]
    commands = [  # (argv, expected exit code)
        (["sentiment", "topics", "add", "rates", "-k", "rate,fed", *sentiment_db], 0),
        (["sentiment", "topics", "list", "--json", *sentiment_db], 0),
        (["sentiment", "trends", "--json", *sentiment_db], 0),
        (["sentiment", "alerts", "--json", *sentiment_db], 0),
        (["sentiment", "topics", "remove", "rates", *sentiment_db], 0),
        (["sentiment", "models", "--json"], 0),
        (["support", "session", "no-such-session", "--db", f"sqlite:///{tmp_path / 's.db'}"], 1),
        (
            [
                "recommend",
                "ingest",
                "--items",
                str(ROOT / "data" / "recommender" / "items.csv"),
                "--json",
                "--db",
                f"sqlite:///{tmp_path / 'r.db'}",
            ],
            0,
        ),
    ]
    results = _run(COMMAND_SWEEP, json.dumps(HEAVY), json.dumps([argv for argv, _ in commands]))
    for (argv, expected), result in zip(commands, results, strict=True):
        assert result["code"] in ((expected, None) if expected == 0 else (expected,)), result
        assert result["loaded"] == [], f"`aigc {' '.join(argv)}` imported {result['loaded']}"

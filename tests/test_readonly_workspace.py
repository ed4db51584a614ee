"""A read-only workspace (a read-only mount, a shared folder): reading commands work,
writing commands say so in one line (issue 10 item 10).

Root ignores permission bits, so the workspace is made read-only the way a real deployment
does it: a read-only bind mount, in a private mount namespace (``unshare -m``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.services import unavailable

ROOT = Path(__file__).resolve().parents[1]


def _can_mount_read_only(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    script = f"mount --bind -o ro {probe} {probe} && ! touch {probe}/x 2>/dev/null"
    probed = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True)
    return probed.returncode == 0


def aigc(workspace: Path, *args: str, read_only: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIGC_HOME": str(workspace), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "aigc_apps.cli", *args]
    if read_only:
        quoted = " ".join(f"'{a}'" for a in command)
        script = f"mount --bind -o ro {workspace} {workspace} && exec {quoted}"
        command = ["unshare", "-m", "sh", "-c", script]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_reading_works_and_writing_is_one_line(tmp_path: Path, workspace: Path) -> None:
    if not _can_mount_read_only(tmp_path):
        unavailable("unshare", "needs root and unshare to mount the workspace read-only")
    items = tmp_path / "items.csv"
    items.write_text("id,title,description,tags\nspa-01,Spa day,Relax,wellness\n")
    for args in (
        ["sentiment", "topics", "add", "banks", "--keywords", "bank,lender"],
        ["recommend", "ingest", "--items", str(items)],
    ):
        done = aigc(workspace, *args, read_only=False)
        assert done.returncode == 0, done.stderr
    shutil.rmtree(workspace / "models", ignore_errors=True)
    assert not (workspace / "registry.db").exists()  # nothing trained: never created

    for args in (
        ["sentiment", "topics", "list", "--json"],
        ["recommend", "status", "--json"],
        ["models", "list", "--json"],
        ["db", "current", "--json"],
        ["support", "status", "--json"],  # never ingested: its index lives in memory
    ):
        done = aigc(workspace, *args, read_only=True)
        assert done.returncode == 0, (args, done.stderr)
        assert "Traceback" not in done.stderr
        json.loads(done.stdout)
    topics = json.loads(aigc(workspace, "sentiment", "topics", "list", "--json",
                             read_only=True).stdout)
    assert [t["name"] for t in topics] == ["banks"]

    done = aigc(workspace, "sentiment", "topics", "add", "rates", "--keywords", "fed",
                read_only=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "read-only" in done.stderr and len(done.stderr.strip().splitlines()) <= 2

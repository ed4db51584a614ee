"""README's "## HTTP service" must work as printed: run it as a user would.

Its bash blocks go through bash (``aigc support ingest``, then the real ``aigc serve`` as a
subprocess on a free port, the ``curl`` calls, the ``aigc tokens`` commands) and its Python
block (the ``openai`` client, plain and streamed) is executed, all against the bundled
SmolLM2 and MiniLM in a fresh workspace.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve.conftest import free_port
from tests.services import unavailable

ROOT = Path(__file__).resolve().parents[1]
README_URL = "127.0.0.1:8000"
CACHE_S = 2.0  # the README: "a revoked token stops working within 2 seconds"


def section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## HTTP service", 1)[1].split("\n## ", 1)[0]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section(), flags=re.S)


def bash(script: str, cwd: Path, timeout: float = 180) -> str:
    """Run ``script`` as a user would; its stdout once it exits 0."""
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, f"{script!r} exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


def json_values(text: str) -> list[Any]:
    """Every JSON value in ``text`` (``curl -s`` prints bodies back to back)."""
    decoder, values, at, text = json.JSONDecoder(), [], 0, text.strip()
    while at < len(text):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return values


@contextlib.contextmanager
def serving(command: str, cwd: Path, port: int, log: Path) -> Iterator[str]:
    """``command`` (``aigc serve ...``) in its own process group until /healthz answers;
    the whole group is killed afterwards, whatever happened."""
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"aigc serve exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"no /healthz: {log.read_text()[-2000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def status_within(request: Any, expected: int, since: float) -> float:
    """Poll ``request()`` until it answers ``expected``; a request sent more than
    ``CACHE_S`` after ``since`` must answer it (the server's auth cache delay)."""
    while True:
        sent = time.monotonic()
        code = int(request().status_code)
        if code == expected:
            return sent - since
        assert sent - since < CACHE_S, f"still {code} {sent - since:.1f} s later"
        time.sleep(0.1)


@pytest.mark.slow
def test_readme_http_service_runs_as_printed(
    tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("curl") is None:  # the only test of README's curl and openai calls
        unavailable("curl", "the README's examples use curl")
    setup, calls, tokens = blocks("bash")
    (python_block,) = blocks("python")
    port = free_port()

    def here(text: str) -> str:
        assert README_URL in text, text
        return text.replace(README_URL, f"127.0.0.1:{port}")

    # as after `. .venv/bin/activate`: `aigc` on PATH even under a bare interpreter
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "data").symlink_to(ROOT / "data")
    lines = [line for line in setup.splitlines() if line.strip()]
    serve_line = next(line for line in lines if line.startswith("aigc serve"))
    assert f"http://{README_URL}" in serve_line  # what the comment promises
    for line in lines:
        if line is not serve_line:
            bash(line, tmp_path)
    serve = serve_line.split("#", 1)[0].strip() + f" --port {port}"

    with serving(serve, tmp_path, port, tmp_path / "serve.log") as url:
        # curl: a support answer with its sources, then a chat completion
        ask, chat = json_values(bash(here(calls), tmp_path))
        assert ask["path"] == "template" and ask["intent"] == "return_policy", ask
        assert "30 days" in ask["answer"] and ask["sources"], ask
        assert {"session_id", "confidence", "handoff", "handoff_reason"} <= set(ask)
        assert chat["object"] == "chat.completion", chat
        assert chat["choices"][0]["message"]["content"].strip(), chat
        usage = chat["usage"]
        assert 0 < usage["completion_tokens"] <= 32, usage
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

        # the openai client: a reply with its token count, then a streamed reply
        out = io.StringIO()
        namespace: dict[str, object] = {}
        with contextlib.redirect_stdout(out):
            exec(compile(here(python_block), "README.md", "exec"), namespace)
        reply: Any = namespace["reply"]
        content, count = reply.choices[0].message.content, reply.usage.completion_tokens
        assert content.strip() and 0 < count <= 32, reply
        first = f"{content} {count}\n"
        assert out.getvalue().startswith(first), out.getvalue()
        assert out.getvalue()[len(first) :].strip(), out.getvalue()  # the streamed reply

        # tokens: create (printed alone on stdout), then auth is on within the cache delay
        create, listing, revoke = [ln for ln in tokens.splitlines() if ln.strip()]
        token = bash(create, tmp_path).strip()
        assert re.fullmatch(r"aigc_[A-Za-z0-9_-]{40,}", token), token
        created = time.monotonic()
        items = f"{url}/v1/recommend/items"
        item = [{"item_id": "jacket-1", "title": "Rain jacket", "tags": ["outdoor"]}]
        bearer = {"Authorization": f"Bearer {token}"}
        status_within(lambda: httpx.post(items, json=item, timeout=30), 401, created)
        refused = json_values(bash(here(calls), tmp_path))  # the curl calls, as printed
        assert [r["error"]["code"] for r in refused] == ["missing_token"] * 2, refused
        stored = httpx.post(items, json=item, headers=bearer, timeout=30)
        assert stored.status_code == 200 and stored.json()["added"] == 1, stored.text
        scoped = httpx.post(
            f"{url}/v1/support/ask", json={"message": "hi"}, headers=bearer, timeout=30
        )
        assert scoped.status_code == 403, scoped.text  # no support scope
        listed = bash(listing, tmp_path)
        assert "web-shop" in listed and "active" in listed and token not in listed, listed
        records = json.loads(bash(listing.split("#", 1)[0] + " --json", tmp_path))
        assert [(r["name"], r["active"]) for r in records] == [("web-shop", True)], records

        # revoke: with another token keeping auth on, the revoked one is refused in 2 s
        bash("aigc tokens create --name keeper --scope admin", tmp_path)
        assert "revoked" in bash(revoke, tmp_path)
        revoked = time.monotonic()
        status_within(
            lambda: httpx.post(items, json=item, headers=bearer, timeout=30), 401, revoked
        )
        bash("aigc tokens revoke keeper", tmp_path)  # no active token: open on loopback
        reopened = time.monotonic()
        status_within(lambda: httpx.post(items, json=item, timeout=30), 200, reopened)

    assert (workspace / "support.db").exists()  # everything ran in the test's workspace

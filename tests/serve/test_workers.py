"""``aigc serve --workers 2`` behaves as one service: what one worker writes the other reads,
a token created while serving is seen by both, one revoked is refused by both within 2 s,
and either worker's ``/metrics`` sums both.

Each request goes on a fresh connection, so the kernel hands it to either worker; the
``X-Aigc-Worker`` header says which process answered, and the test retries until both did.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from aigc_apps.cli import main

Spawn = Callable[..., AbstractContextManager[str]]


def _fresh(method: str, url: str, **kwargs: object) -> httpx.Response:
    with httpx.Client(timeout=30) as client:  # a new connection: any worker may answer
        return client.request(method, url, **kwargs)  # type: ignore[arg-type]


def _until(check: Callable[[httpx.Response], bool], method: str, url: str, *,
           seconds: float = 60, **kwargs: object) -> httpx.Response:
    """Repeat the request until ``check`` holds for an answer; that answer."""
    deadline = time.monotonic() + seconds
    while True:
        response = _fresh(method, url, **kwargs)
        if check(response):
            return response
        assert time.monotonic() < deadline, f"no answer from the expected worker: {response}"
        time.sleep(0.02)


def _worker(response: httpx.Response) -> str:
    return response.headers["x-aigc-worker"]


def test_two_workers_share_their_state(spawn_server: Spawn, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "serve.log"
    with spawn_server(["--workers", "2"], startup_s=120, log=log) as url:
        # both workers answer
        health: Counter[str] = Counter()
        deadline = time.monotonic() + 60
        while len(health) < 2:
            assert time.monotonic() < deadline, f"one worker only: {health}"
            health[_worker(_fresh("GET", f"{url}/healthz"))] += 1

        # a session created through one worker is read through the other
        created = _fresh("POST", f"{url}/v1/support/sessions")
        assert created.status_code == 201, created.text
        session_id, writer = created.json()["session_id"], _worker(created)
        read = _until(lambda r: _worker(r) != writer, "GET",
                      f"{url}/v1/support/sessions/{session_id}")
        assert read.status_code == 200, read.text
        assert read.json()["session_id"] == session_id and read.json()["turns"] == []

        # a token created while serving turns auth on in both workers (after their cache)
        main(["tokens", "create", "--name", "late", "--scope", "support:read"])
        token = capsys.readouterr().out.strip()
        session_url = f"{url}/v1/support/sessions/{session_id}"
        first = _worker(_until(lambda r: r.status_code == 401, "GET", session_url, seconds=30))
        other = _until(lambda r: _worker(r) != first and r.status_code == 401, "GET",
                       session_url, seconds=30)
        assert other.json()["error"]["type"] == "authentication_error"
        as_late = {"Authorization": f"Bearer {token}"}
        allowed = {_worker(_until(lambda r: r.status_code == 200, "GET", session_url,
                                  headers=as_late))}
        allowed.add(_worker(_until(lambda r: _worker(r) not in allowed and r.status_code == 200,
                                   "GET", session_url, headers=as_late)))
        assert len(allowed) == 2

        # README: "a revoked token stops working within 2 seconds on every worker": once
        # 2 s have passed since the revocation, every request with it is refused, by both
        main(["tokens", "create", "--name", "keeper", "--scope", "admin"])  # auth stays on
        main(["tokens", "revoke", "late"])
        capsys.readouterr()
        time.sleep(2.0)  # each worker's cache entry was read before the revocation
        refused: Counter[str] = Counter()
        deadline = time.monotonic() + 60
        while len(refused) < 2:
            assert time.monotonic() < deadline, f"one worker only: {refused}"
            late = _fresh("GET", session_url, headers=as_late)
            assert late.status_code == 401, (_worker(late), late.text)
            refused[_worker(late)] += 1

        # /metrics of either worker counts the requests both answered
        metrics = _fresh("GET", f"{url}/metrics").text
        counted = sum(
            float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
            if line.startswith("aigc_http_requests_total{")
            and re.search(r'route="/healthz"', line) and 'status="200"' in line
        )
        assert counted >= sum(health.values()) > max(health.values()), (counted, health)


def test_serve_answers_on_a_public_address_once_a_token_exists(
    spawn_server: Spawn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["tokens", "create", "--name", "ops", "--scope", "admin"])
    with spawn_server(["--host", "0.0.0.0"], log=tmp_path / "serve.log") as url:
        assert _fresh("GET", f"{url}/v1/support/sessions/nope").status_code == 401
        assert _fresh("GET", f"{url}/healthz").status_code == 200


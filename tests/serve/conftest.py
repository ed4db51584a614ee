"""Fixtures for the HTTP service: a real uvicorn server on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from aigc_apps.embeddings import Encoder
from aigc_apps.serve import create_app
from apps.support import SupportService
from tests.support.conftest import KB, BowEncoder

if TYPE_CHECKING:
    from aigc_apps.serve.tokens import TokenStore
    from tests.support.sample_kb import SampleKnowledge


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(app: object) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread (real HTTP); yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",  # type: ignore[arg-type]
                       lifespan="on", proxy_headers=False)  # as `aigc serve` runs it
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def live_server() -> Iterator[Callable[[object], str]]:
    """``url = live_server(app)``: serve an app for the rest of the test."""
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(running(app))


@pytest.fixture
def token_store(workspace: Path) -> Iterator[TokenStore]:
    """The workspace's API tokens (the same store ``aigc tokens`` and the server use)."""
    from aigc_apps.serve.tokens import TokenStore

    store = TokenStore()
    yield store
    store.close()


def serve_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an ``aigc serve`` subprocess on workspace ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    for key in ("AIGC_MODELS_DIR",):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update({"AIGC_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


@contextmanager
def aigc_serve(args: list[str], home: Path, *, env: dict[str, str] | None = None,
               startup_s: float = 90, log: Path | None = None) -> Iterator[str]:
    """``aigc serve --port <free> *args`` as a real subprocess on workspace ``home`` (``env``
    adds variables); yields its base URL once ``/healthz`` answers, and stops it (SIGINT,
    then kill) at the end."""
    import httpx

    port = free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "aigc_apps.cli", "serve", "--port", str(port),
         "--log-level", "warning", *args],
        env=serve_env(home, **(env or {})), stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                text = log.read_text(errors="replace")[-3000:] if log else ""
                raise RuntimeError(f"aigc serve exited with {proc.returncode}: {text}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("aigc serve did not answer /healthz in time")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if log:
            out.close()  # type: ignore[union-attr]


@pytest.fixture
def spawn_server(workspace: Path) -> Callable[..., AbstractContextManager[str]]:
    """``with spawn_server([...args], log=path) as url``: ``aigc serve`` as a subprocess on
    this test's workspace."""

    def spawn(args: list[str], **kwargs: Any) -> AbstractContextManager[str]:
        return aigc_serve(args, workspace, **kwargs)

    return spawn


@pytest.fixture(scope="session")
def serve_subprocess() -> Callable[..., AbstractContextManager[str]]:
    """:func:`aigc_serve` itself, for fixtures that outlive one test (their own home)."""
    return aigc_serve


@pytest.fixture
def knowledge(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tiny_llm_dir: Path,
    sample_knowledge: SampleKnowledge,
) -> Iterator[str]:
    """The sample FAQ ingested into the workspace's support store (on each backend when the
    test asks for ``db_url``: a copy of the session's ingest, see
    :mod:`tests.support.sample_kb`); the encoder is the test bag of words and the LLM the
    tiny one, so nothing big loads."""
    db_url = (
        request.getfixturevalue("db_url")
        if "db_url" in request.fixturenames
        else f"sqlite:///{tmp_path_of(request) / 'support.db'}"
    )
    monkeypatch.setenv("AIGC_SUPPORT_DB_URL", db_url)
    monkeypatch.setenv("AIGC_LLM", str(tiny_llm_dir))
    monkeypatch.setattr(Encoder, "from_pretrained", classmethod(lambda cls, *a, **k: BowEncoder()))
    with SupportService.from_settings() as service:
        sample_knowledge.ingest_into(service, KB)
    yield db_url


@pytest.fixture
def client(knowledge: str) -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


def tmp_path_of(request: pytest.FixtureRequest) -> Path:
    return Path(request.getfixturevalue("tmp_path"))

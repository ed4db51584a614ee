"""Shared fixtures: an isolated workspace per test and a database URL per backend.

``db_url`` runs a test twice, on SQLite and on PostgreSQL. PostgreSQL tests use a fresh
schema each (dropped afterwards); they skip when no server answers (connection refused or
unreachable), unless ``AIGC_REQUIRE_PG=1`` (set by CI), where a missing server is a failure.
A server that answers but cannot be used (a refused login, no such database) always fails.
"""

from __future__ import annotations

import contextlib
import os

# One OpenBLAS thread: the suite's matrices are small (an intent head's logistic regression
# on a few hundred rows), and OpenBLAS's spinning threads cost ~5x the CPU they save on CI's
# two cores. Set before anything loads numpy; ``aigc`` subprocesses inherit it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.services import pg_check, unavailable

if TYPE_CHECKING:
    from tests.support.sample_kb import SampleKnowledge

PG_URL = os.environ.get(
    "AIGC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def models_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted bundled models, shared by all tests (conversion takes ~30 s)."""
    preset = os.environ.get("AIGC_MODELS_DIR")
    return Path(preset) if preset else tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_cache: Path) -> Path:
    """Every test gets its own AIGC_HOME; converted models are shared via AIGC_MODELS_DIR."""
    home = tmp_path / "aigc-home"
    monkeypatch.setenv("AIGC_HOME", str(home))
    monkeypatch.setenv("AIGC_MODELS_DIR", str(models_cache))
    monkeypatch.delenv("AIGC_DATABASE_URL", raising=False)
    monkeypatch.delenv("AIGC_WEBHOOK_ALLOW", raising=False)  # inner addresses refused
    return home


@pytest.fixture
def local_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhooks may post to 127.0.0.1, where the tests' receivers listen: the allow-list
    (``AIGC_WEBHOOK_ALLOW``) a deployment would use; every other inner address stays refused."""
    monkeypatch.setenv("AIGC_WEBHOOK_ALLOW", "127.0.0.1")


@pytest.fixture(scope="session")
def pg_available() -> bool:
    """Whether PostgreSQL answers at ``PG_URL``: False only when nothing listens there (and
    then a failure under ``AIGC_REQUIRE_PG=1``); a server that refuses us fails here."""
    reason = pg_check(PG_URL)
    if reason is not None:
        unavailable("pg", f"PostgreSQL not reachable at {PG_URL}: {reason}")
    return reason is None


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL on an empty store, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    if not request.getfixturevalue("pg_available"):
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    with fresh_schema(PG_URL) as url:
        yield url


@contextlib.contextmanager
def fresh_schema(server_url: str, also: str = "") -> Iterator[str]:
    """``server_url`` with a new empty schema first on the search path (then ``also``,
    e.g. ``public`` where an extension's types live), dropped afterwards."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in server_url else "?"
    path = f"{schema},{also}" if also else schema
    try:
        yield f"{server_url}{sep}options=-csearch_path%3D{path}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init 2-layer Llama with a ChatML tokenizer (built in about a second)."""
    from tests.tiny import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture(scope="session")
def sample_knowledge(
    tmp_path_factory: pytest.TempPathFactory, tiny_llm_dir: Path
) -> Iterator[SampleKnowledge]:
    """The support sample knowledge base, ingested once per backend; the ``bot`` and
    ``knowledge`` fixtures copy it into each test's store (see :mod:`tests.support.sample_kb`)."""
    from tests.support.sample_kb import session_samples

    yield from session_samples(tmp_path_factory, tiny_llm_dir, PG_URL)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init 2-layer BERT with a WordPiece tokenizer."""
    from tests.tiny import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))

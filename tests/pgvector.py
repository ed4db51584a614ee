"""A throwaway PostgreSQL 16 with pgvector for the tests (the PyPI package ``pgserver``).

The machine's own PostgreSQL may lack pgvector (Debian has no package for 15), so the
pgvector tests start a private server in a temporary folder on a Unix socket, create the
``vector`` extension there and stop it afterwards. Without ``pgserver`` (or if it cannot
start) they skip with the reason, unless ``AIGC_REQUIRE_PGVECTOR=1`` (CI): then they fail.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.services import unavailable


def _unavailable(reason: str) -> NoReturn:
    unavailable("pgvector", f"no pgvector server: {reason}")


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[str]:
    """SQLAlchemy URL of a private PostgreSQL with the ``vector`` extension created.

    Its folder is not under pytest's ``tmp_path``: as root, pgserver runs PostgreSQL as the
    user ``pgserver``, which must traverse the folder's parents, and pytest makes its own
    base folder private again whenever another pytest session starts."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
            import pgserver
    except ImportError as exc:
        _unavailable(f"pip install pgserver ({exc})")
    folder = Path(tempfile.mkdtemp(prefix="aigc-pgvector-"))
    try:
        server = pgserver.get_server(folder, cleanup_mode="stop")
        server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    except Exception as exc:  # pgserver raises bare errors with initdb/pg_ctl output
        shutil.rmtree(folder, ignore_errors=True)
        _unavailable(f"pgserver could not start PostgreSQL in {folder}: {exc}")
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=<socket dir>
    try:
        yield uri.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pgvector_url(pgvector_server: str) -> Iterator[str]:
    """A fresh schema on the pgvector server per test (``public`` stays on the search path,
    where the ``vector`` type lives)."""
    from tests.conftest import fresh_schema

    with fresh_schema(pgvector_server, also="public") as url:
        yield url

"""The suite's green means what it claims (issue 24 item 17): under CI a missing tool or
service fails instead of skipping, and only an unreachable PostgreSQL counts as missing:
a server that answers but refuses us is a broken set-up, never a reason to skip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import PG_URL
from tests.services import pg_check, pg_unreachable, unavailable

ROOT = Path(__file__).resolve().parents[1]


def test_ci_requires_every_tool_and_service_it_has() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    required = set(re.findall(r"^export AIGC_REQUIRE_([A-Z]+)=1", ci, re.M))
    assert {"PG", "CURL", "UNSHARE", "REDIS", "NATS", "BROWSER", "PGVECTOR"} <= required


@pytest.mark.parametrize("name", ["curl", "unshare", "pg"])
def test_a_required_tool_fails_instead_of_skipping(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(f"AIGC_REQUIRE_{name.upper()}", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no such thing"):
        unavailable(name, "no such thing")
    monkeypatch.setenv(f"AIGC_REQUIRE_{name.upper()}", "1")
    with pytest.raises(pytest.fail.Exception, match=f"AIGC_REQUIRE_{name.upper()}=1"):
        unavailable(name, "no such thing")


def test_only_a_refused_connection_means_postgres_is_not_reachable() -> None:
    closed = "postgresql+psycopg://postgres@127.0.0.1:1/test"
    assert "127.0.0.1:1" in (pg_unreachable(closed) or "")
    assert pg_check(closed) is not None  # a skip (or a CI failure), decided by the caller
    assert pg_unreachable("postgresql+psycopg://postgres@no-such-host.invalid/test")


def test_a_postgres_that_answers_but_refuses_us_fails_loudly(pg_available: bool) -> None:
    """A missing database or an unknown role was "not reachable" (a skip); now a failure."""
    assert pg_available  # else the fixture skipped (or failed under AIGC_REQUIRE_PG=1)
    assert pg_check(PG_URL) is None
    base = PG_URL.rsplit("/", 1)[0]
    missing_db = f"{base}/no_such_database_aigc"
    assert pg_unreachable(missing_db) is None  # the server answers...
    with pytest.raises(pytest.fail.Exception, match=r"answers but cannot be used.*no_such"):
        pg_check(missing_db)  # ...so this is a failure, not a skip
    stranger = PG_URL.replace("postgres@", "no_such_role_aigc@", 1)
    with pytest.raises(pytest.fail.Exception, match="no_such_role_aigc"):
        pg_check(stranger)

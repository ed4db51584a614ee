"""Outside services and tools a test needs (PostgreSQL, Redis, NATS, pgvector, a browser,
``curl``, ``unshare`` with mount rights).

Without one a test skips, saying why, unless ``AIGC_REQUIRE_<NAME>=1`` (``.ci/run`` sets them
all): there a missing service is a failure, so CI never passes by skipping.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest


def required(name: str) -> bool:
    """Whether ``AIGC_REQUIRE_<name>=1``: a missing service fails instead of skipping."""
    return os.environ.get(f"AIGC_REQUIRE_{name.upper()}") == "1"


def unavailable(name: str, reason: str) -> NoReturn:
    """Skip with ``reason``, or fail where the service is :func:`required`."""
    __tracebackhide__ = True  # report the test (or fixture) that needs the service
    if required(name):
        pytest.fail(f"{reason} (AIGC_REQUIRE_{name.upper()}=1: required)")
    pytest.skip(reason)


def pg_unreachable(url: str, timeout: float = 3.0) -> str | None:
    """Why no PostgreSQL server answers at ``url`` (a refused or unreachable TCP connection,
    or no such host), or None when one does.

    Only that is "not reachable": a server that answers but refuses the login, lacks the
    database or fails otherwise is a broken set-up, and the caller must fail on it loudly
    rather than skip every PostgreSQL test.
    """
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    host, port = parsed.host or "", int(parsed.port or 5432)
    if not host or host.startswith("/"):
        return None  # a Unix socket: let the connection itself say what is wrong
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"no host {host!r} ({exc})"
    except OSError as exc:  # refused, unreachable, timed out
        return f"nothing answers at {host}:{port} ({exc})"


def pg_check(url: str) -> str | None:
    """None when PostgreSQL at ``url`` answers ``select 1``; the reason when it is not
    reachable (:func:`pg_unreachable`). Any other failure (authentication, a missing
    database, a bad URL) fails the calling test or fixture with its message."""
    __tracebackhide__ = True
    reason = pg_unreachable(url)
    if reason is not None:
        return reason
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        pytest.fail(f"PostgreSQL at {url} answers but cannot be used: {first}", pytrace=False)
    finally:
        engine.dispose()
    return None

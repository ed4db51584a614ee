"""Outside services a test needs (PostgreSQL, Redis, NATS, pgvector, a browser).

Without one a test skips, saying why, unless ``AIGC_REQUIRE_<NAME>=1`` (``.ci/run`` sets them
all): there a missing service is a failure, so CI never passes by skipping.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(name: str, reason: str) -> NoReturn:
    """Skip with ``reason``, or fail where ``AIGC_REQUIRE_<name>=1``."""
    __tracebackhide__ = True  # report the test (or fixture) that needs the service
    flag = f"AIGC_REQUIRE_{name.upper()}"
    if os.environ.get(flag) == "1":
        pytest.fail(f"{reason} ({flag}=1: required)")
    pytest.skip(reason)

"""Outside services a test needs (PostgreSQL, Redis, NATS, pgvector, a browser).

Without one a test skips, saying why, unless ``AIGC_REQUIRE_<NAME>=1`` (``.ci/run`` sets them
all): there a missing service is a failure, so CI never passes by skipping.
"""

from __future__ import annotations

import os
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

"""The in-process rate limiter: a bounded table of buckets that never frees a throttled
caller because other addresses came by."""

from __future__ import annotations

import pytest

from aigc_apps.serve.errors import ApiError
from aigc_apps.serve.limits import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _allowed(limiter: RateLimiter, key: str) -> bool:
    try:
        limiter.check(key)
    except ApiError as exc:
        assert exc.status == 429 and int(exc.headers["Retry-After"]) >= 1
        return False
    return True


def test_a_full_table_forgets_the_least_recently_used_bucket_not_the_throttled_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RateLimiter, "MAX_KEYS", 4)
    clock = Clock()
    limiter = RateLimiter(2, clock=clock)
    for key in ("a", "b", "c"):
        assert _allowed(limiter, key)
    assert [_allowed(limiter, "x") for _ in range(3)] == [True, True, False]
    assert _allowed(limiter, "d")  # a fifth key: "a" (least recently used) is forgotten
    assert not _allowed(limiter, "x")  # ... and the throttled caller stays throttled
    assert len(limiter._buckets) == 4 and "a" not in limiter._buckets


def test_a_bucket_refills_with_the_injected_clock() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)  # one a second after the first minute's burst
    assert all(_allowed(limiter, "k") for _ in range(60))
    assert not _allowed(limiter, "k")
    clock.now += 0.5
    assert not _allowed(limiter, "k")
    clock.now += 0.6
    assert _allowed(limiter, "k")
    assert not _allowed(limiter, "k")

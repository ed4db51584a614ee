"""Model selection shared by the benchmarks: every choice is made on validation data only."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

C = TypeVar("C")
R = TypeVar("R")


def best_on_validation(
    candidates: Iterable[C], evaluate: Callable[[C], R], key: Callable[[R], float]
) -> tuple[C, R]:
    """The candidate whose validation result has the highest ``key`` (the first one of equals),
    with that result. ``evaluate`` must only look at training and validation data."""
    best: tuple[C, R] | None = None
    for candidate in candidates:
        result = evaluate(candidate)
        if best is None or key(result) > key(best[1]) + 1e-12:
            best = (candidate, result)
    if best is None:
        raise ValueError("no candidates to choose from")
    return best

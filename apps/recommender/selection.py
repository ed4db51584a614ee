"""Choosing between two configurations on validation, with training cost counted.

A default picked on a validation difference smaller than the noise of the users it was
measured on is a coin flip, and a coin flip that costs five times the training time is not
free. So the rule is fixed before a run and printed with its output:

1. Both configurations are scored per user on the same validation users (NDCG@10 for the
   recommender: :func:`apps.recommender.evaluation.per_user`).
2. A paired bootstrap resamples users with replacement (``resamples`` times, fixed ``seed``)
   and takes the mean per-user difference of each resample; its central ``level`` interval
   (percentiles) is the uncertainty of the difference.
3. An interval that excludes 0: the configuration with the higher mean wins ("better").
4. An interval that contains 0: the two are tied, and the cheaper one wins ("tie,
   cheaper"), where cheaper means at most ``1 - cost_margin`` times the other's training
   seconds (timings on a shared machine move by a few per cent from run to run).
5. Tied and within the cost margin of each other: the higher mean wins, and on equal means
   the first one given (the incumbent default) stays ("tie, same cost").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Alternative:
    """One configuration: its ``name``, per-user validation ``scores`` (one per user, the same
    users in the same order as the other's) and its training ``cost`` in seconds."""

    name: str
    scores: np.ndarray
    cost: float


@dataclass(frozen=True)
class Decision:
    winner: str
    reason: str  # "better", "tie, cheaper" or "tie, same cost"
    mean_difference: float  # first minus second
    interval: tuple[float, float]
    tied: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "winner": self.winner,
            "reason": self.reason,
            "mean_difference": round(self.mean_difference, 5),
            "interval": [round(x, 5) for x in self.interval],
            "tied": self.tied,
        }


def rule_text(
    metric: str = "NDCG@10",
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    cost_margin: float = 0.1,
) -> str:
    """The rule of :func:`decide` in one paragraph, with its settings (printed before a run)."""
    return (
        f"Selection rule (fixed before the run): per-user validation {metric} differences, "
        f"paired bootstrap over users ({resamples} resamples, seed {seed}), {level:.0%} "
        "percentile interval of the mean difference. Interval excludes 0: the higher mean "
        "wins. Interval contains 0: tied, and the cheaper configuration (training seconds at "
        f"most {1 - cost_margin:.0%} of the other's) wins; tied and within that cost margin: "
        "the higher mean wins, on equal means the incumbent (listed first) stays."
    )


def paired_bootstrap_interval(
    a: np.ndarray, b: np.ndarray, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of ``mean(a - b)`` over users resampled with replacement."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(
            f"need two equal-length, non-empty per-user arrays (got {a.shape}, {b.shape})"
        )
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1 (got {resamples}, {level})")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for i in range(resamples):  # one resample at a time: bounded memory for any user count
        means[i] = diff[rng.integers(0, len(diff), len(diff))].mean()
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def decide(
    first: Alternative,
    second: Alternative,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    cost_margin: float = 0.1,
) -> Decision:
    """Apply the module's rule to two alternatives (``first`` is the incumbent)."""
    if not 0 <= cost_margin < 1:
        raise ValueError(f"cost_margin must be in [0, 1) (got {cost_margin})")
    lo, hi = paired_bootstrap_interval(
        first.scores, second.scores, resamples=resamples, level=level, seed=seed
    )
    mean = float(
        np.mean(np.asarray(first.scores, np.float64) - np.asarray(second.scores, np.float64))
    )
    higher = second.name if mean < 0 else first.name
    if lo > 0 or hi < 0:
        return Decision(higher, "better", mean, (lo, hi), tied=False)
    if first.cost <= (1 - cost_margin) * second.cost:
        return Decision(first.name, "tie, cheaper", mean, (lo, hi), tied=True)
    if second.cost <= (1 - cost_margin) * first.cost:
        return Decision(second.name, "tie, cheaper", mean, (lo, hi), tied=True)
    return Decision(higher, "tie, same cost", mean, (lo, hi), tied=True)

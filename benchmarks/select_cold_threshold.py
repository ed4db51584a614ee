"""Validation-only choice of ``RecommenderConfig.cold_threshold`` (the cold-item bar).

    python benchmarks/select_cold_threshold.py --data ../shared/data/movielens-small [--json]

The rule, fixed before the run: MovieLens-small (the recommender benchmark's data); the
validation protocol of ``select_defaults.py recommender`` (each user's latest interaction,
the test item, is dropped and never read; the second-to-last is the validation target; the
model trains on everything earlier); 20% of the distinct validation targets are made cold
(all their training events removed, as the benchmark's cold evaluation does), so the bar
has new arrivals both to admit and to keep out; every validation user is ranked over the
full catalogue (seen items excluded). Thresholds 0.00, 0.05, ..., 0.95; the one with the
highest NDCG@10 wins, ties broken toward the higher threshold. The model is fitted once
(the bar only filters the ranked candidates); the content encoder is the benchmark's
(``minilm-l6``), the interest model is left out to keep the run short on a shared CPU (the
bar compares content vectors only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

THRESHOLDS = [round(0.05 * n, 2) for n in range(20)]


def select(data: Path, encoder: str, fraction: float, seed: int) -> dict[str, Any]:
    from recommender_movielens import load_movielens

    from apps.recommender.evaluation import leave_last_out, metrics
    from apps.recommender.recommender import Recommender, RecommenderConfig

    catalog, log, _ = load_movielens(data)
    val_log = leave_last_out(log).train  # the test items: dropped here, never read again
    split = leave_last_out(val_log)
    rng = np.random.default_rng(seed)
    distinct = np.unique(split.targets)
    cold = rng.choice(distinct, size=max(1, round(fraction * len(distinct))), replace=False)
    train = split.train.subset(~np.isin(split.train.item, cold))
    started = time.perf_counter()
    model = Recommender(RecommenderConfig(encoder=encoder, interest=None, seed=seed))
    model.fit(catalog, train)
    fit_seconds = time.perf_counter() - started
    hist, bounds = train.histories(), train.bounds()
    scored = []
    for u in split.users:
        ctx = model.features.context(hist[u], train.ts[bounds[u] : bounds[u + 1]])
        scored.append((ctx, *model._score(ctx, hist[u])))
    results: dict[str, Any] = {}
    cold_users = np.isin(split.targets, cold)
    for t in THRESHOLDS:
        model.config.cold_threshold = t  # the bar read by _top_k
        ranked = [model._top_k(ctx, c, s, sig, 10)[0] for ctx, c, s, sig in scored]
        every = metrics(ranked, split.targets, len(catalog))
        on_cold = metrics([r for r, c in zip(ranked, cold_users, strict=True) if c],
                          split.targets[cold_users], len(catalog))  # fmt: skip
        counts = model.builder.popularity.counts
        shown = float(np.mean([(counts[r] == 0).any() for r in ranked]))
        results[f"{t:.2f}"] = {
            "ndcg@10": every["ndcg@10"],
            "hr@10": every["hr@10"],
            "cold_users_ndcg@10": on_cold["ndcg@10"],
            "lists_with_a_cold_item": round(shown, 4),
        }
    best = max(THRESHOLDS, key=lambda t: (results[f"{t:.2f}"]["ndcg@10"], t))
    return {
        "protocol": "MovieLens-small, test dropped, second-to-last is the validation target, "
        f"{fraction:.0%} of distinct validation targets made cold; NDCG@10 over every "
        "validation user; ties toward the higher threshold",
        "encoder": encoder,
        "users": len(split.users),
        "cold_users": int(cold_users.sum()),
        "cold_items": len(cold),
        "fit_seconds_shared_machine": round(fit_seconds, 1),
        "thresholds": results,
        "decision": best,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("AIGC_BENCH_DATA"), required=False)
    parser.add_argument("--encoder", default="minilm-l6")
    parser.add_argument("--cold-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.data or not (Path(args.data) / "ratings.csv").is_file():
        parser.error("--data must be a folder with ratings.csv and movies.csv (MovieLens)")
    out = select(Path(args.data), args.encoder, args.cold_fraction, args.seed)
    if args.json:
        print(json.dumps(out))
    else:
        for t, r in out["thresholds"].items():
            print(t, r)
        print("decision", out["decision"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

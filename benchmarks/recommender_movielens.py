"""MovieLens leave-last-out benchmark of the recommender app (protocol: shared/data/README.md).

    python benchmarks/recommender_movielens.py --data ../shared/data/movielens-small [--json]

Works on any folder with ratings.csv (userId,movieId,rating,timestamp), movies.csv
(movieId,title,genres) and optional tags.csv (userId,movieId,tag,timestamp). Item text is
the title, the genres and the most frequent user tags. Prints the popularity and EASE
baselines from the same run beside the app's figures, training time, the cold-item
evaluation and the p95 latency of one for-user request.

Nothing is chosen here by the test figures: the interest model's default (every weight tuned
rather than LoRA) was chosen on a validation protocol that never sees the test items,
``python benchmarks/select_defaults.py recommender``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.recommender.dataset import Catalog, Interactions
from apps.recommender.evaluation import run_evaluation
from apps.recommender.interest import InterestConfig
from apps.recommender.recommender import Recommender, RecommenderConfig


def load_movielens(folder: Path) -> tuple[Catalog, Interactions, dict[str, int]]:
    skipped: Counter[str] = Counter()
    with open(folder / "movies.csv", newline="", encoding="utf-8") as fh:
        movies = list(csv.DictReader(fh))
    tags: dict[str, Counter[str]] = defaultdict(Counter)
    if (folder / "tags.csv").is_file():
        with open(folder / "tags.csv", newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                tag = (row.get("tag") or "").strip().lower()
                if tag:
                    tags[row["movieId"]][tag] += 1
    ids, titles, item_tags = [], [], []
    for m in movies:
        genres = [g.lower() for g in m["genres"].split("|") if g and g != "(no genres listed)"]
        user_tags = [t for t, _ in tags[m["movieId"]].most_common(8) if t not in genres]
        ids.append(m["movieId"])
        titles.append(m["title"])
        item_tags.append(genres + user_tags)
    catalog = Catalog(ids, titles, tags=item_tags)
    users, items, times = [], [], []
    with open(folder / "ratings.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            idx = catalog.index.get(row["movieId"])
            if idx is None:
                skipped["unknown movie"] += 1
                continue
            try:
                ts = float(row["timestamp"])
            except (TypeError, ValueError):
                skipped["bad timestamp"] += 1
                continue
            users.append(row["userId"])
            items.append(idx)
            times.append(ts)
    return catalog, Interactions.from_events(users, items, times, len(catalog)), dict(skipped)


def latency(model: Recommender, n: int = 300, warmup: int = 20, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    users = [
        model.log.users[i]
        for i in rng.choice(model.log.n_users, min(n, model.log.n_users), replace=False)
    ]
    for u in users[:warmup]:
        model.recommend(u, k=10)
    times = []
    for u in users:
        start = time.perf_counter()
        model.recommend(u, k=10)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
        "requests": len(times),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        default=os.environ.get("AIGC_BENCH_DATA"),
        help="folder with ratings.csv/movies.csv (or a folder holding movielens-small/)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--encoder", default="minilm-l6", help="content encoder (alias, folder, hashing, none)"
    )
    parser.add_argument("--no-interest", action="store_true", help="skip the tuned interest model")
    parser.add_argument(
        "--interest-pairs", type=int, default=3000, help="training pairs for the interest model"
    )
    parser.add_argument(
        "--cold-fraction", type=float, default=0.2, help="share of test items made cold (0: skip)"
    )
    tuning = parser.add_mutually_exclusive_group()
    tuning.add_argument(
        "--interest-full",
        dest="interest_lora",
        action="store_false",
        default=None,
        help="tune every weight of the interest encoder (the app's default)",
    )
    tuning.add_argument(
        "--interest-lora",
        dest="interest_lora",
        action="store_true",
        default=None,
        help="tune the interest encoder through LoRA adapters instead",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if not args.data:
        print("SKIP: no data folder (give --data or set AIGC_BENCH_DATA)")
        return 0
    folder = Path(args.data)
    if (
        not (folder / "ratings.csv").is_file()
        and (folder / "movielens-small" / "ratings.csv").is_file()
    ):
        folder = folder / "movielens-small"
    if not (folder / "ratings.csv").is_file() or not (folder / "movies.csv").is_file():
        print(f"SKIP: {folder} has no ratings.csv/movies.csv")
        return 0

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    catalog, log, skipped = load_movielens(folder)
    encoder = None if args.encoder.lower() == "none" else args.encoder
    interest = (
        None
        if args.no_interest
        else InterestConfig(
            max_pairs=args.interest_pairs,
            seed=args.seed,
            **({} if args.interest_lora is None else {"lora": args.interest_lora}),
        )
    )
    config = RecommenderConfig(encoder=encoder, interest=interest, seed=args.seed)
    vectors: dict[str, np.ndarray] = {}

    def fit(cat: Catalog, train: Interactions) -> Recommender:
        # Item texts do not depend on the split, so the cold-item refit reuses the content vectors.
        model = Recommender(config).fit(cat, train, content_vectors=vectors.get("content"))
        if model.content is not None:
            vectors.setdefault("content", model.content.V)
        return model

    report = run_evaluation(fit, catalog, log, cold_fraction=args.cold_fraction, seed=args.seed)
    model = report.pop("_model")
    report.pop("_split")
    report["data"] = str(folder)
    report["skipped_rows"] = skipped
    report["training"] = model.info
    report["latency_for_user"] = latency(model)
    report["config"] = config.to_dict()

    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"MovieLens leave-last-out on {folder}: {report['users']} users, {report['items']} items, "
        f"{report['events']} events"
    )
    print(f"{'model':<22}{'HR@10':>8}{'NDCG@10':>9}{'coverage':>10}")
    rows = [*report["baselines"].items(), ("recommender (app)", report["model"])]
    for name, m in rows:
        print(f"{name:<22}{m['hr@10']:>8.4f}{m['ndcg@10']:>9.4f}{m['coverage']:>10.4f}")
    print(f"training: {report['train_seconds']} s ({model.info['timings']})")
    lat = report["latency_for_user"]
    print(
        f"for-user latency: p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms "
        f"over {len(catalog)} items"
    )
    if "cold" in report:
        c = report["cold"]
        print(
            f"cold items ({c.get('cold_items')} items, {c['users']} users): "
            f"HR@10 {c.get('hr@10')} full ranking (popularity {c.get('popularity_hr@10')}), "
            f"HR@10 among cold items {c.get('hr@10_among_cold')} "
            f"(random {c.get('random_hr@10_among_cold')})"
        )
    print(
        f"inner validation (held-out users, given candidate): {model.info.get('inner_validation')}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

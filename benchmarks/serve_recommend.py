"""The recommender's part of ``serve_load.py``: lists served from the cache against the
uncached path (the same server with ``AIGC_RECOMMEND_CACHE_TTL=0``), at the sample shop's
scale and at MovieLens-small's (9.7k items, 610 users, from ``../shared/data``), freshness
after an event, and HR@10 computed through the cache beside the same lists ranked on the
spot.

MovieLens workspace: every user's last rating (by time) is held out; the rest is ingested
(items: title and genres as tags; events: ``rating`` with its value) and a recommender is
trained as the sample shop's is (no interest model). HR@10: the share of users whose
held-out movie is in their top-10, asked over HTTP (served from the cache the training
filled) and ranked in this process from the same stored events (no cache).

Freshness: for each of some users, the top item of their list is posted as a purchase; the
time from the event's response to the first list without that item (asked again at once,
then every 10 ms) is that event's freshness. The promise is :data:`FRESHNESS_S`.
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
MOVIELENS = ROOT.parent / "shared" / "data" / "movielens-small"
FRESHNESS_S = 1.0
UNCACHED = {"AIGC_RECOMMEND_CACHE_TTL": "0"}
RECS = "/v1/recommend/users/{}/recommendations"


def movielens_home(base: Path, log: Callable[[str], None]) -> Path | None:
    """A workspace holding MovieLens-small minus each user's last rating, trained once."""
    if not (MOVIELENS / "ratings.csv").is_file():
        log(f"recommend MovieLens: skipped, no {MOVIELENS}/ratings.csv")
        return None
    home = base / "movielens"
    if (home / "heldout.json").is_file():
        return home
    home.mkdir(parents=True, exist_ok=True)
    with (MOVIELENS / "ratings.csv").open(newline="", encoding="utf-8") as fh:
        ratings = sorted(csv.DictReader(fh), key=lambda r: (r["userId"], int(r["timestamp"])))
    last: dict[str, dict[str, str]] = {}
    for row in ratings:
        last[row["userId"]] = row  # sorted by time within a user: the last one wins
    with (home / "items.csv").open("w", newline="", encoding="utf-8") as out, \
            (MOVIELENS / "movies.csv").open(newline="", encoding="utf-8") as fh:  # fmt: skip
        writer = csv.writer(out)
        writer.writerow(["id", "title", "tags"])
        for movie in csv.DictReader(fh):
            genres = "" if movie["genres"] == "(no genres listed)" else movie["genres"]
            writer.writerow([f"m{movie['movieId']}", movie["title"], genres])
    with (home / "events.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["user", "item", "type", "rating", "timestamp"])
        for row in ratings:
            if row is not last[row["userId"]]:
                when = datetime.fromtimestamp(int(row["timestamp"]), timezone.utc).isoformat()
                writer.writerow([f"u{row['userId']}", f"m{row['movieId']}", "rating",
                                 row["rating"], when])  # fmt: skip
    from aigc_apps.settings import Settings
    from apps.recommender.recommender import RecommenderConfig
    from apps.recommender.service import RecommenderService

    started = time.perf_counter()
    with RecommenderService.from_settings(Settings(home=home)) as rec:
        rec.ingest(home / "items.csv", home / "events.csv")
        report = rec.train(RecommenderConfig(interest=None)).report
    log(f"recommend MovieLens: {report['items']} items, {report['users']} users, "
        f"{report['events']} events; trained in {report['train_seconds']} s, cache filled "
        f"in {report['cache']['seconds']} s; set up in {time.perf_counter() - started:.0f} s")
    heldout = {f"u{u}": f"m{row['movieId']}" for u, row in last.items()}
    (home / "heldout.json").write_text(json.dumps(heldout))
    return home


async def hit_rate(url: str, home: Path) -> dict[str, Any]:
    """HR@10 through the server's cache and ranked on the spot in this process."""
    from aigc_apps.settings import Settings
    from apps.recommender.service import RecommenderService

    heldout: dict[str, str] = json.loads((home / "heldout.json").read_text())
    served: dict[str, list[str]] = {}
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        for user in heldout:
            body = (await http.get(RECS.format(user), params={"k": 10})).json()
            served[user] = [i["item_id"] for i in body["items"]]
    spot: dict[str, list[str]] = {}
    with RecommenderService.from_settings(Settings(home=home)) as rec:
        model = rec.model()
        for user in heldout:
            events = rec.user_events(user)
            spot[user] = [r.item_id for r in model.recommend(user, k=10, events=events).items]
    n = len(heldout)
    return {
        "users": n,
        "hr@10_cached": round(sum(heldout[u] in served[u] for u in heldout) / n, 4),
        "hr@10_on_the_spot": round(sum(heldout[u] in spot[u] for u in heldout) / n, 4),
        "same_lists": round(sum(served[u] == spot[u] for u in heldout) / n, 4),
    }


async def freshness(url: str, users: list[str], n: int, seed: int) -> dict[str, Any]:
    """Seconds from an event's response to the first list that reflects it."""
    rng = random.Random(seed + 1)
    waits: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for user in rng.sample(users, min(n, len(users))):
            top = (await http.get(RECS.format(user))).json()["items"][0]["item_id"]
            event = {"user_id": user, "item_id": top, "type": "purchase"}
            (await http.post("/v1/recommend/events", json=[event])).raise_for_status()
            posted = time.perf_counter()
            while True:
                items = (await http.get(RECS.format(user))).json()["items"]
                if top not in [i["item_id"] for i in items]:
                    waits.append(time.perf_counter() - posted)
                    break
                if time.perf_counter() - posted > 30:
                    waits.append(float("inf"))
                    break
                await asyncio.sleep(0.01)
    waits.sort()
    p95 = waits[min(len(waits) - 1, round(0.95 * (len(waits) - 1)))]
    return {"events": len(waits), "p50_ms": waits[len(waits) // 2] * 1000, "p95_ms": p95 * 1000,
            "promise_s": FRESHNESS_S}  # fmt: skip


def movielens_users(home: Path) -> list[str]:
    return sorted(json.loads((home / "heldout.json").read_text()))


def report(out: dict[str, Any], verdict: Callable[[bool], str]) -> None:
    for name, scale in (("recommend", "sample shop"), ("recommend_movielens", "MovieLens-small")):
        rec, base = out.get(name), out.get(f"{name}_uncached")
        if not rec:
            continue
        print(f"recommend top-10 from the cache, {scale}, 16 clients: p95 {rec['p95_ms']:.1f} "
              f"ms (p50 {rec['p50_ms']:.1f}), {rec['requests_per_s']:.0f} req/s (target p95 "
              f"<= 50 ms: {verdict(rec['p95_ms'] <= 50)})")
        if base:
            print(f"  uncached, same run: p95 {base['p95_ms']:.1f} ms (p50 {base['p50_ms']:.1f})"
                  f", {base['requests_per_s']:.0f} req/s")
    fresh = out.get("recommend_freshness")
    if fresh:
        met = fresh["p95_ms"] <= 1000 * fresh["promise_s"]
        print(f"  freshness after an event ({fresh['events']} events): p50 "
              f"{fresh['p50_ms']:.0f} ms, p95 {fresh['p95_ms']:.0f} ms (promise <= "
              f"{fresh['promise_s']:.0f} s: {verdict(met)})")
    hits = out.get("recommend_movielens_hr")
    if hits:
        print(f"  MovieLens HR@10 through the cache {hits['hr@10_cached']:.4f} vs on the spot "
              f"{hits['hr@10_on_the_spot']:.4f} ({hits['users']} users; identical lists "
              f"{100 * hits['same_lists']:.1f}%)")

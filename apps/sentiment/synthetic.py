"""Synthetic financial headlines and news streams with known surges.

Used to write the sample data under ``data/sentiment/`` (``python -m
apps.sentiment.synthetic data/sentiment``) and by the alert benchmark, which needs streams
whose surges are known exactly. Headlines are composed from hand-written templates per topic
and sentiment, with company names and figures varied so texts do not repeat.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

TOPICS_TEXT = """\
# Watch-list topics: name: keywords/entities (comma separated)
rates: interest rate, rate hike, rate cut, Fed, ECB, central bank, bond yields, inflation
banking: bank, lender, deposits, loan, credit
energy: oil, crude, OPEC, natural gas, refinery, power prices
tech: chipmaker, semiconductor, software, cloud, AI
housing: housing, mortgage, home prices, property, homebuilder
"""

_NAMES = {
    "rates": ["the Fed", "the ECB", "the Bank of England", "the central bank", "the Fed chair"],
    "banking": ["Northgate Bank", "Alder Savings Bank", "Meridian Bank", "Crown Trust bank",
                "Harbor Capital bank", "regional lender Pinecrest"],
    "energy": ["Borealis Energy", "Sable Oil", "Westline Petroleum", "Crestpoint Gas",
               "Atlas Refining"],
    "tech": ["Quantix", "Novachip", "Skyforge Software", "Lumen Cloud", "Vertex AI Systems"],
    "housing": ["Hearth Homes", "Oakridge Builders", "Summit Mortgage", "Keystone Property",
                "Brightdoor Realty"],
}

_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "rates": {
        "negative": [
            "{n} delivers surprise rate hike of {bp} basis points, stocks slide",
            "Bond yields jump to {y}-year high as inflation stays sticky at {p}%",
            "Inflation accelerates to {p}%, raising fears of further tightening by {n}",
            "Markets tumble after {n} signals rates will stay higher for longer",
            "Mortgage costs climb as {n} rules out a rate cut this year",
            "Rate hike fears hit equities; {n} warns inflation risks remain",
        ],
        "neutral": [
            "{n} holds interest rates steady, in line with expectations",
            "{n} minutes due on Wednesday; analysts expect no policy change",
            "Economists split on timing of next {n} interest rate decision",
            "{n} publishes its quarterly inflation report at {h}:00 GMT",
            "Bond yields little changed at {p}% ahead of {n} meeting",
            "{n} to review its balance sheet policy in the next quarter",
        ],
        "positive": [
            "Inflation cools to {p}%, boosting hopes of a rate cut by {n}",
            "Stocks rally as {n} signals an end to rate hikes",
            "{n} cuts interest rates by {bp} basis points, lifting markets",
            "Bond yields ease as inflation falls faster than expected",
            "Borrowing costs drop after {n} strikes a softer tone",
        ],
    },
    "banking": {
        "negative": [
            "{n} shares plunge {p}% after surprise loan losses",
            "Depositors pull {b} billion from {n} amid liquidity fears",
            "{n} downgraded by Moody's on rising bad loans",
            "Regulators fine {n} {b} million over money laundering failures",
            "{n} cuts {k} jobs as credit quality deteriorates",
            "Credit rating agency warns on {n} capital shortfall",
            "{n} suspends dividend after {p}% drop in quarterly profit",
            "Run on deposits forces {n} to seek emergency funding",
        ],
        "neutral": [
            "{n} to report quarterly results on Thursday",
            "{n} appoints new chief risk officer",
            "{n} completes previously announced branch reorganisation",
            "{n} says deposit base unchanged at {b} billion",
            "{n} schedules investor day for next month",
            "{n} renews credit facility on existing terms",
        ],
        "positive": [
            "{n} profit beats forecasts as lending margins widen",
            "{n} raises dividend by {p}% after record earnings",
            "{n} shares rise {p}% on strong deposit growth",
            "{n} upgraded to buy as loan book quality improves",
            "{n} posts {p}% rise in net interest income",
        ],
    },
    "energy": {
        "negative": [
            "Crude oil slumps {p}% as demand outlook weakens",
            "{n} cuts output forecast after refinery outage",
            "{n} shares fall {p}% on weaker gas margins",
            "OPEC output dispute sends oil prices sharply lower",
            "{n} writes down {b} billion on North Sea assets",
            "Power prices spike as supply shortfall hits industry",
        ],
        "neutral": [
            "OPEC meeting scheduled for next week in Vienna",
            "{n} to publish production figures on {d}",
            "Oil prices steady near ${o} a barrel ahead of inventory data",
            "{n} names new head of its gas trading unit",
            "{n} confirms refinery maintenance plan for the summer",
        ],
        "positive": [
            "{n} profit jumps {p}% on higher oil prices",
            "{n} raises output target after new discovery",
            "Oil rises {p}% as OPEC extends supply cuts",
            "{n} shares climb on record natural gas sales",
            "{n} wins {b} billion contract for new pipeline",
        ],
    },
    "tech": {
        "negative": [
            "{n} shares sink {p}% after weak cloud revenue",
            "Chipmaker {n} warns of falling demand, cuts guidance",
            "{n} lays off {k} staff as software sales slow",
            "{n} faces antitrust probe over AI licensing",
            "Semiconductor shortage hits {n} quarterly sales",
        ],
        "neutral": [
            "{n} to hold developer conference in {d}",
            "{n} releases new version of its software platform",
            "{n} names new chief financial officer",
            "Chipmaker {n} to report earnings after the bell",
            "{n} moves cloud headquarters to a new campus",
        ],
        "positive": [
            "{n} beats estimates as AI demand lifts sales {p}%",
            "Chipmaker {n} raises guidance on strong orders",
            "{n} shares jump {p}% on record cloud growth",
            "{n} wins major software contract worth {b} billion",
            "Semiconductor maker {n} posts record quarterly profit",
        ],
    },
    "housing": {
        "negative": [
            "Home prices fall for {k} straight months as mortgage rates bite",
            "{n} shares drop {p}% as housing orders collapse",
            "Mortgage defaults rise to {p}%, highest in a decade",
            "Homebuilder {n} cuts outlook on weak demand",
            "Property developer {n} misses bond payment",
        ],
        "neutral": [
            "{n} to release housing market survey on {d}",
            "Housing starts data due later this week",
            "{n} appoints new head of mortgage lending",
            "Average mortgage rate unchanged at {p}% this week",
            "{n} completes sale of office property portfolio",
        ],
        "positive": [
            "Home sales rise {p}% as mortgage rates ease",
            "Homebuilder {n} beats forecasts on strong orders",
            "{n} shares rise after upbeat housing outlook",
            "Property values recover {p}% in major cities",
            "{n} reports record mortgage approvals",
        ],
    },
}

TOPICS = list(_TEMPLATES)
LABELS = ("negative", "neutral", "positive")
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


def headline(topic: str, label: str, rng: random.Random) -> str:
    """One headline about ``topic`` with sentiment ``label``."""
    template = rng.choice(_TEMPLATES[topic][label])
    text = template.format(
        n=rng.choice(_NAMES[topic]), p=f"{rng.uniform(1, 19):.1f}", bp=rng.choice([25, 50, 75]),
        y=rng.randint(5, 20), b=rng.randint(2, 90), k=rng.randint(3, 12) * 100,
        h=rng.randint(9, 16), d=rng.choice(_DAYS), o=rng.randint(60, 95),
    )
    return text[0].upper() + text[1:]


def labelled_headlines(n: int = 240, seed: int = 7) -> list[dict[str, str]]:
    """``n`` distinct headlines with sentiment, topic and a stratified 70/15/15 split."""
    rng = random.Random(seed)
    weights = {"negative": 0.3, "neutral": 0.4, "positive": 0.3}
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    while len(rows) < n:
        topic = rng.choice(TOPICS)
        label = rng.choices(list(weights), weights=list(weights.values()))[0]
        text = headline(topic, label, rng)
        if text.lower() not in seen:
            seen.add(text.lower())
            rows.append({"text": text, "label": label, "topic": topic})
    by_label: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    for group in by_label.values():
        for i, row in enumerate(group):
            frac = i / len(group)
            row["split"] = "train" if frac < 0.7 else "validation" if frac < 0.85 else "test"
    return [{"id": str(i + 1), **row} for i, row in enumerate(rows)]


@dataclass(frozen=True)
class Surge:
    """A known negative surge: from ``start`` for ``hours``, volume times ``volume``."""

    topic: str
    start: datetime
    hours: float
    volume: float = 3.0
    negative_share: float = 0.75


def stream(
    start: datetime,
    days: float,
    *,
    rate_per_hour: float = 4.0,
    negative_share: float = 0.2,
    surges: Sequence[Surge] = (),
    topics: Sequence[str] = TOPICS,
    seed: int = 11,
    diurnal: bool = True,
) -> list[dict[str, Any]]:
    """Timestamped records (Poisson arrivals per topic, quieter at night) with surges.

    Each record carries its true ``label`` and ``topic`` (a scorer may ignore them).
    """
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    total = timedelta(days=days).total_seconds()
    for topic in topics:
        t = 0.0
        while True:
            now = start + timedelta(seconds=t)
            hour = now.hour + now.minute / 60
            factor = (0.5 + 0.5 * (7 <= hour < 20)) if diurnal else 1.0
            neg = negative_share
            for s in surges:
                if s.topic == topic and s.start <= now < s.start + timedelta(hours=s.hours):
                    factor *= s.volume
                    neg = s.negative_share
            t += rng.expovariate(rate_per_hour * factor / 3600)
            if t >= total:
                break
            rest = (1 - neg) / 2
            label = rng.choices(LABELS, weights=[neg, rest * 1.2, rest * 0.8])[0]
            text = headline(topic, label, rng)
            tries = 0
            while text.lower() in seen:  # wires re-send stories as "UPDATE n-"
                tries += 1
                text = headline(topic, label, rng)
                if tries > 20:
                    text = f"UPDATE {tries - 20}-{text}"
            seen.add(text.lower())
            records.append({"timestamp": start + timedelta(seconds=t), "text": text,
                            "label": label, "topic": topic})
    records.sort(key=lambda r: r["timestamp"])
    for i, r in enumerate(records, start=1):
        r["id"] = f"n{i:05d}"
        r["source"] = rng.choice(["newswire", "newswire", "social"])
    return records


SAMPLE_START = datetime(2024, 5, 6, tzinfo=timezone.utc)
SAMPLE_SURGE = Surge("banking", SAMPLE_START + timedelta(days=2, hours=10), hours=3, volume=4.0,
                     negative_share=0.85)


def write_samples(folder: str | Path) -> list[Path]:
    """Write ``headlines.csv``, ``stream.jsonl`` (with a few bad lines) and ``topics.txt``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    heads = folder / "headlines.csv"
    with open(heads, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "text", "label", "topic", "split"])
        writer.writeheader()
        writer.writerows(labelled_headlines())
    records = stream(SAMPLE_START, 3, rate_per_hour=4.0, surges=[SAMPLE_SURGE])
    lines = [
        json.dumps({"id": r["id"], "timestamp": r["timestamp"].isoformat().replace("+00:00", "Z"),
                    "source": r["source"], "text": r["text"]})
        for r in records
    ]
    # Real feeds are untidy: a repeated id, an empty text, a bad timestamp, broken JSON.
    lines.insert(100, lines[99])
    lines.insert(200, json.dumps({"id": "bad-1", "timestamp": "2024-05-06T12:00:00Z", "text": ""}))
    lines.insert(300, json.dumps({"id": "bad-2", "timestamp": "yesterday-ish", "text": "Hi"}))
    lines.insert(400, '{"id": "bad-3", "text": "truncated JSON')
    stream_path = folder / "stream.jsonl"
    stream_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    topics = folder / "topics.txt"
    topics.write_text(TOPICS_TEXT, encoding="utf-8")
    return [heads, stream_path, topics]


if __name__ == "__main__":  # pragma: no cover
    for written in write_samples(sys.argv[1] if len(sys.argv) > 1 else "data/sentiment"):
        print(written)

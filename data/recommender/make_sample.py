"""Writes the recommender's sample catalogue and event log (deterministic; run once).

A fictional media shop ("Northwind Media") sells and streams documentaries, books, courses
and albums in eight taste clusters. Forty users each love one cluster (some a second one);
their events are views, clicks, purchases and ratings over two months. Two items are new
arrivals nobody has touched yet (cold items).
"""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent

CLUSTERS = {
    "space": (
        ["space", "astronomy", "science"],
        "a journey through the solar system, distant galaxies and the people who explore them",
        [
            "Beyond the Red Planet",
            "The Rings of Saturn",
            "Hubble's Deep Field",
            "Life on Europa?",
            "Apollo: The Untold Missions",
            "Black Holes Explained",
            "Night Sky Field Guide",
            "Building the James Webb Telescope",
            "Comets and the Early Earth",
            "Women of Mission Control",
            "The Search for Exoplanets",
            "Stargazing for Beginners",
            "Rocket Engines from Scratch",
            "The Moon Village Plan",
            "Cosmic Dawn: The First Stars",
        ],
    ),
    "cooking": (
        ["cooking", "food", "baking"],
        "recipes, kitchen techniques and the stories behind the dishes",
        [
            "Knife Skills in Ten Lessons",
            "The Bread Book",
            "Street Food of Bangkok",
            "Pasta by Hand",
            "Fermentation at Home",
            "One-Pot Weeknight Dinners",
            "The Spice Atlas",
            "Perfect Pastry",
            "Vegetables First",
            "Grill Master Course",
            "Dumplings of the World",
            "The Coffee Journey",
            "Chocolate: Bean to Bar",
            "Soups for Every Season",
            "Baking with Kids",
        ],
    ),
    "crime": (
        ["true crime", "mystery", "investigation"],
        "a gripping investigation into a real case, told by the detectives and reporters",
        [
            "The Vanishing at Harrow Lake",
            "Cold Case Files: 1987",
            "The Forger's Confession",
            "Inside the Heist",
            "Witness for the Defense",
            "The Poison Garden Murders",
            "Fingerprints",
            "The Detective's Notebook",
            "Missing in the Fog",
            "The Con Artist Next Door",
            "Courtroom Secrets",
            "The Lighthouse Mystery",
            "Undercover for Ten Years",
            "The Jewel Thief of Paris",
            "Evidence Room",
        ],
    ),
    "fantasy": (
        ["fantasy", "novel", "dragons", "magic"],
        "an epic fantasy novel of kingdoms, magic and dragons",
        [
            "The Ember Crown",
            "Song of the Last Dragon",
            "The Glass Wizard",
            "Shadows over Eldmoor",
            "The Witch of Ninefold Wood",
            "Blade of the North Wind",
            "The Cartographer's Spell",
            "Kingdom of Ash and Salt",
            "The Sleeping Sorcerer",
            "Riders of the Silver Flame",
            "The Hollow Throne",
            "Moonforged",
            "The Thief of Seven Towers",
            "A Map of Stolen Magic",
            "The Dragon Keeper's Daughter",
        ],
    ),
    "fitness": (
        ["fitness", "yoga", "health"],
        "a guided programme for strength, flexibility and calm",
        [
            "Morning Yoga Flow",
            "30-Day Core Challenge",
            "Running Your First 10K",
            "Mobility for Desk Workers",
            "Strength Training Basics",
            "Yoga for Better Sleep",
            "HIIT in Twenty Minutes",
            "Pilates at Home",
            "Meditation for Beginners",
            "Marathon Mindset",
            "Kettlebell Fundamentals",
            "Stretching After 40",
            "Cycling Endurance Plan",
            "Breathwork Essentials",
            "Healthy Back Programme",
        ],
    ),
    "jazz": (
        ["jazz", "music", "classical"],
        "an album and listening guide for lovers of jazz and classical music",
        [
            "Blue Notes After Midnight",
            "The Art of the Trio",
            "Bebop Essentials",
            "Piano Nocturnes",
            "Swing Era Classics",
            "The Saxophone Story",
            "Modal Jazz Explained",
            "Chamber Music Evenings",
            "Cool Jazz West Coast",
            "The Great Violin Concertos",
            "Big Band Revival",
            "Late Night Standards",
            "Bach for Focus",
            "Jazz Guitar Masters",
            "Symphony of the Sea",
        ],
    ),
    "kids": (
        ["kids", "animation", "family"],
        "an animated adventure for the whole family",
        [
            "The Little Robot Who Could",
            "Penguin Patrol",
            "Dino Detectives",
            "The Balloon Bear",
            "Captain Whiskers",
            "Jungle Band",
            "The Magic Treehouse Club",
            "Bubbles Under the Sea",
            "Tiny Tractor's Big Day",
            "Space Puppies",
            "The Dragon Who Was Afraid",
            "Rainbow Garden",
            "Snow Fox Friends",
            "The Lost Kite",
            "Monster Mix-Up",
        ],
    ),
    "history": (
        ["history", "ancient", "civilizations"],
        "the rise and fall of empires, told through archaeology and first-hand sources",
        [
            "Rome: Rise of an Empire",
            "Secrets of the Pyramids",
            "The Silk Road",
            "Vikings of the North Sea",
            "The Maya Calendar",
            "Knights and Castles",
            "Ancient Greece Unearthed",
            "The Aztec Capital",
            "Samurai: The Last Warriors",
            "The Library of Alexandria",
            "Mesopotamia: Cradle of Cities",
            "The Byzantine Centuries",
            "Pompeii's Last Day",
            "Lost Cities of the Indus",
            "The Crusades",
        ],
    ),
}
FORMATS = ["documentary", "book", "course", "series"]
COLD = [
    (
        "n-voyager",
        "Voyager's Golden Record: A Message to the Stars",
        "A new documentary about the space probes and the record they carry past the solar system.",
        ["space", "astronomy", "documentary"],
    ),
    (
        "n-sourdough",
        "Wild Yeast: A Sourdough Masterclass",
        "A new baking course: starters, shaping and scoring for crusty sourdough bread at home.",
        ["cooking", "baking", "course"],
    ),
]


def main() -> None:
    rng = random.Random(7)
    items = []
    by_cluster: dict[str, list[str]] = {}
    for c, (tags, blurb, titles) in CLUSTERS.items():
        by_cluster[c] = []
        for n, title in enumerate(titles):
            fmt = FORMATS[n % len(FORMATS)]
            item_id = f"{c[:3]}-{n + 1:02d}"
            by_cluster[c].append(item_id)
            items.append(
                {
                    "id": item_id,
                    "title": title,
                    "description": f"A {fmt}: {blurb}.",
                    "tags": "|".join([*tags, fmt]),
                    "price": f"{rng.choice([4.99, 9.99, 14.99, 19.99])}",
                }
            )
    for item_id, title, desc, tags in COLD:
        items.append(
            {
                "id": item_id,
                "title": title,
                "description": desc,
                "tags": "|".join(tags),
                "price": "12.99",
            }
        )
    with open(HERE / "items.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "title", "description", "tags", "price"])
        writer.writeheader()
        writer.writerows(items)

    names = list(CLUSTERS)
    start = datetime(2024, 3, 1, tzinfo=timezone.utc)
    events = []
    for u in range(1, 41):
        main_c = names[(u - 1) % len(names)]
        second = rng.choice([c for c in names if c != main_c]) if rng.random() < 0.35 else None
        t = start + timedelta(hours=rng.randint(0, 240))
        # Each user walks through their cluster in order, so "what comes next" is learnable.
        pool = by_cluster[main_c][:]
        offset = rng.randint(0, 4)
        pool = pool[offset:] + pool[:offset]
        for step in range(rng.randint(7, 12)):
            roll = rng.random()
            if roll < 0.8 or (second is None and roll < 0.93):
                item = pool[step % len(pool)]
            elif second is not None and roll < 0.95:
                item = rng.choice(by_cluster[second])
            else:
                item = rng.choice([i["id"] for i in items[:120]])
            kind = rng.choices(["view", "click", "purchase", "rating"], [5, 3, 1, 1])[0]
            row = {
                "user": f"u{u:02d}",
                "item": item,
                "type": kind,
                "rating": "",
                "timestamp": t.isoformat().replace("+00:00", "Z"),
            }
            if kind == "rating":
                row["rating"] = str(
                    rng.choice([4, 5]) if item in by_cluster[main_c] else rng.choice([2, 3])
                )
            events.append(row)
            t += timedelta(hours=rng.randint(2, 60))
    # Every catalogue item except the new arrivals has been seen at least once: a cluster fan
    # browsed it early on.
    touched = {e["item"] for e in events}
    for c, ids in by_cluster.items():
        fans = [f"u{u:02d}" for u in range(1, 41) if names[(u - 1) % len(names)] == c]
        for item_id in ids:
            if item_id not in touched:
                when = start - timedelta(hours=rng.randint(1, 200))
                events.append(
                    {
                        "user": rng.choice(fans),
                        "item": item_id,
                        "type": "view",
                        "rating": "",
                        "timestamp": when.isoformat().replace("+00:00", "Z"),
                    }
                )
    events.sort(key=lambda e: e["timestamp"])
    with open(HERE / "events.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["user", "item", "type", "rating", "timestamp"])
        writer.writeheader()
        writer.writerows(events)
    print(json.dumps({"items": len(items), "events": len(events), "users": 40}))


if __name__ == "__main__":
    main()

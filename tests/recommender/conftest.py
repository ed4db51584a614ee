"""Fixtures for the recommender tests: the sample catalogue and a small fitted model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apps.recommender.content import HashingEncoder
from apps.recommender.dataset import Catalog, Interactions
from apps.recommender.recommender import Recommender, RecommenderConfig

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "recommender"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


def clustered(n_users: int = 30, seed: int = 0) -> tuple[Catalog, Interactions]:
    """Three taste clusters of 10 items plus one cold item per cluster; users walk their cluster."""
    clusters = {
        "space": "space astronomy planets rockets documentary",
        "cooking": "cooking recipes kitchen baking food",
        "jazz": "jazz music saxophone piano album",
    }
    ids, titles, tags = [], [], []
    for name, words in clusters.items():
        for n in range(10):
            ids.append(f"{name}-{n}")
            titles.append(f"{name.title()} story {n}: {words}")
            tags.append([name, words.split()[1]])
    for name, words in clusters.items():
        ids.append(f"new-{name}")
        titles.append(f"New arrival: {words}")
        tags.append([name])
    catalog = Catalog(ids, titles, tags=tags)
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        c = u % 3
        start = int(rng.integers(0, 10))
        t = float(rng.integers(0, 1000)) * 3600
        for step in range(int(rng.integers(5, 9))):
            users.append(f"user{u}")
            items.append(c * 10 + (start + step) % 10)
            times.append(t)
            t += 3600.0 * float(rng.integers(1, 24))
    return catalog, Interactions.from_events(users, items, times, len(catalog))


@pytest.fixture(scope="session")
def clustered_data() -> tuple[Catalog, Interactions]:
    return clustered()


@pytest.fixture(scope="session")
def fitted(clustered_data: tuple[Catalog, Interactions]) -> Recommender:
    catalog, log = clustered_data
    config = RecommenderConfig(encoder="hashing", interest=None, sim_cold_fraction=0.2)
    return Recommender(config).fit(catalog, log, encoder=HashingEncoder())

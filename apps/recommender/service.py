"""Glue between the store and the models: train, register, load the active model, evaluate.

Each training run writes a new folder under ``<adapters_dir>/recommender/`` and a
``rec_models`` row; serving loads the newest row's folder. Serving reads the user's events
from the store on every request, so events ingested after training count immediately.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from aigc_apps.errors import ModelNotFoundError
from aigc_apps.fileio import atomic_dir
from aigc_apps.settings import get_settings
from aigc_apps.store import Database, utcnow

from .dataset import load_from_store
from .evaluation import run_evaluation
from .recommender import Recommender, RecommenderConfig
from .store import RecEvent, RecModel

_loaded: dict[str, Recommender] = {}


def models_dir() -> Path:
    return get_settings().adapters_dir / "recommender"


def train(
    db: Database, config: RecommenderConfig | None = None
) -> tuple[Recommender, dict[str, Any]]:
    """Fit on everything in the store, save the artefacts and register the version."""
    config = config or RecommenderConfig()
    catalog, log = load_from_store(db, config.event_weights)
    started = time.perf_counter()
    model = Recommender(config).fit(catalog, log)
    folder = models_dir() / utcnow().strftime("model-%Y%m%dT%H%M%S%f")
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
    seconds = round(time.perf_counter() - started, 1)
    with db.session() as s:
        row = RecModel(
            path=str(folder.resolve()),
            n_items=len(catalog),
            n_users=log.n_users,
            n_events=len(log),
            train_seconds=seconds,
            info=json.dumps(model.info, default=str),
        )
        s.add(row)
        s.flush()
        version = row.id
    report = {"version": version, "path": str(folder), "train_seconds": seconds, **model.info}
    return model, report


def load_active(db: Database) -> Recommender:
    """The newest registered model (cached per process)."""
    with db.session() as s:
        row = s.scalars(select(RecModel).order_by(RecModel.id.desc()).limit(1)).first()
    if row is None:
        raise ModelNotFoundError("no trained recommender yet; run `aigc recommend train`")
    if row.path not in _loaded:
        if not Path(row.path).is_dir():
            raise ModelNotFoundError(
                f"model version {row.id}: folder {row.path} is missing; retrain"
            )
        _loaded.clear()
        _loaded[row.path] = Recommender.from_pretrained(row.path)
    return _loaded[row.path]


def user_events(db: Database, user: str) -> list[tuple[str, float]]:
    with db.session() as s:
        rows = s.execute(
            select(RecEvent.item_id, RecEvent.ts)
            .where(RecEvent.user_id == user)
            .order_by(RecEvent.ts, RecEvent.id)
        ).all()
    return [(r[0], float(r[1])) for r in rows]


def evaluate(
    db: Database, config: RecommenderConfig | None = None, cold_fraction: float = 0.2, seed: int = 0
) -> dict[str, Any]:
    """Leave-last-out on the store's events (models refitted on the training part)."""
    config = config or RecommenderConfig()
    catalog, log = load_from_store(db, config.event_weights)
    vectors: dict[str, Any] = {}

    def fit(cat: Any, train_log: Any) -> Recommender:
        model = Recommender(config).fit(cat, train_log, content_vectors=vectors.get("v"))
        if model.content is not None:
            vectors.setdefault("v", model.content.V)
        return model

    report = run_evaluation(fit, catalog, log, cold_fraction=cold_fraction, seed=seed)
    report.pop("_model")
    report.pop("_split")
    return report

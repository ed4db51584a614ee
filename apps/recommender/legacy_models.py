"""Import the model versions 0.1.0 recorded in ``rec_models`` into the model registry.

Each row becomes the entry ``recommend-<id>`` (with a suffix if that name already means
another folder), once: the row remembers the entry's name, so re-opening imports nothing
and an entry deleted later stays deleted. When the app has no active model afterwards, the
newest imported version becomes active, which is the one 0.1.0 served.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from aigc_apps.registry import ModelRegistry
from aigc_apps.store import Database

from .store import RecModel

APP = "recommend"
ROLE = "recommender"
NAME_PREFIX = f"{APP}-"


def import_legacy_models(db: Database, registry: ModelRegistry) -> list[str]:
    """Register every ``rec_models`` row not imported yet; returns the new entries' names."""
    with db.session() as s:
        rows = s.scalars(
            select(RecModel).where(RecModel.registry_name.is_(None)).order_by(RecModel.id)
        ).all()
    if not rows:
        return []
    paths = {entry.name: entry.path for entry in registry.list()}
    imported: list[str] = []
    for row in rows:
        name = _free_name(f"{NAME_PREFIX}{row.id}", Path(row.path).resolve(), paths)
        if name not in paths:
            metrics, info = registry_fields(json.loads(row.info or "{}"))
            registry.register(
                name,
                row.path,
                app=APP,
                role=ROLE,
                base=_saved_encoder(Path(row.path)),
                metrics=metrics,
                info={
                    **info,
                    "n_items": row.n_items,
                    "n_users": row.n_users,
                    "n_events": row.n_events,
                    "train_seconds": row.train_seconds,
                    "rec_models_id": row.id,
                },
                activate=False,
            )
            paths[name] = Path(row.path).resolve()
            imported.append(name)
        with db.session() as s:
            stored = s.get(RecModel, row.id)
            if stored is not None:
                stored.registry_name = name
    if imported and registry.active(APP, ROLE) is None:
        registry.activate(imported[-1])
    return imported


def registry_fields(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a training report into the registry's ``metrics`` (what training measured) and
    ``info`` (what it was trained on and how long it took)."""
    metrics: dict[str, Any] = {}
    if "candidate_recall" in report:
        metrics["candidate_recall"] = report["candidate_recall"]
    for key, value in (report.get("inner_validation") or {}).items():
        metrics[f"inner_validation_{key}"] = value
    renamed = {"items": "n_items", "users": "n_users", "events": "n_events"}
    skip = {"candidate_recall", "inner_validation", "version", "name", "path"}
    info = {renamed.get(k, k): v for k, v in report.items() if k not in skip}
    return metrics, info


def _free_name(preferred: str, path: Path, taken: dict[str, Path]) -> str:
    """``preferred``, unless another folder is registered under it: then the first free
    ``preferred-2``, ``-3``... (two stores may both have had a version 1)."""
    name, n = preferred, 1
    while name in taken and taken[name] != path:
        n += 1
        name = f"{preferred}-{n}"
    return name


def _saved_encoder(folder: Path) -> str:
    """The content encoder a saved model names (its registry ``base``); '' when unreadable."""
    try:
        config = json.loads((folder / "recommender.json").read_text()).get("config", {})
    except (OSError, ValueError):
        return ""
    return str(config.get("encoder") or "none")

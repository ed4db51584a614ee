"""The sentiment app's view of the core model registry.

A sentiment classifier is an entry of app ``sentiment``, role ``sentiment``: its label set in
``labels``, accuracy and macro-F1 per split in ``metrics``, and the name of the topic
classifier trained with it (role ``topic``) in ``info["topic_model"]``. Which model scores
texts is the registry's *active* entry, never "the newest".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigc_apps.errors import NotFoundError
from aigc_apps.fileio import atomic_write

from .constants import APP, SENTIMENT_ROLE, TOPIC_ROLE

if TYPE_CHECKING:
    from aigc_apps.registry import ModelEntry, ModelRegistry
    from aigc_apps.settings import Settings

    from .reports import TopicRun, TrainReport

INFO_FILE = "sentiment_model.json"
_TRAINING_FILE = "aigc_training.json"  # written by the core trainer beside the adapter


def _data_hash(adapter_dir: Path) -> str:
    try:
        return str(json.loads((adapter_dir / _TRAINING_FILE).read_text("utf-8"))["data_hash"])
    except (OSError, ValueError, KeyError):
        return ""


def register_trained(report: TrainReport, topic: TopicRun | None,
                     registry: ModelRegistry | None = None,
                     settings: Settings | None = None) -> None:
    """Register (and activate) a trained model and its topic classifier; the topic one
    first, so the sentiment entry never links to a missing entry."""
    from aigc_apps.registry import ModelRegistry

    atomic_write(report.adapter_dir / INFO_FILE,
                 json.dumps(report.to_dict() | {"app": APP}, indent=2) + "\n")
    reg = registry or ModelRegistry(settings=settings)
    try:
        if topic is not None:
            topic_metrics: dict[str, float] = {}
            if topic.test is not None:
                topic_metrics = {"test_accuracy": round(topic.test.accuracy, 4),
                                 "test_macro_f1": round(topic.test.macro_f1, 4)}
            reg.register(topic.name, topic.path, app=APP, role=TOPIC_ROLE, base=report.base,
                         labels=topic.labels, metrics=topic_metrics,
                         data_hash=_data_hash(topic.path))
        reg.register(report.name, report.adapter_dir, app=APP, role=SENTIMENT_ROLE,
                     base=report.base, labels=report.labels, metrics=report.metrics(),
                     info=_info(report),
                     data_hash=_data_hash(report.adapter_dir))
    finally:
        if registry is None:
            reg.close()


def _info(report: TrainReport) -> dict[str, Any]:
    """The entry's ``info``: the topic link and, for a multi-source model, each source's
    sampling weight and epoch rows (what ``aigc models`` shows of how it was trained)."""
    info: dict[str, Any] = {"topic_model": report.topic_model}
    if report.int8 is not None:  # both validation macro-F1s and whether int8 scores
        info["int8"] = report.int8
    if report.sources:
        info["sources"] = {s.name: s.mix.to_dict() for s in report.sources}
        info["selection"] = "validation macro-F1, mean over sources"
    return info


def model_summary(entry: ModelEntry) -> dict[str, Any]:
    """An entry as ``aigc sentiment models --json`` has always shown it, plus ``active``
    (and, for a model trained on several sources, each source's sampling weight)."""
    extra = {"sources": entry.info["sources"]} if entry.info.get("sources") else {}
    if entry.info.get("int8"):
        extra["int8"] = entry.info["int8"]
    return extra | {
        "name": entry.name,
        "base": entry.base,
        "path": str(entry.path),
        "app": entry.app,
        "role": entry.role,
        "labels": entry.labels,
        "topic_model": entry.info.get("topic_model"),
        **entry.metrics,
        "created_at": entry.created_at.isoformat() if entry.created_at else None,
        "active": entry.active,
    }


def sentiment_models(registry: ModelRegistry | None = None) -> list[ModelEntry]:
    """Registered sentiment models, newest first (the active one says so)."""
    from aigc_apps.registry import ModelRegistry

    reg = registry or ModelRegistry()
    try:
        return reg.list(app=APP, role=SENTIMENT_ROLE)
    finally:
        if registry is None:
            reg.close()


def sentiment_entry(registry: ModelRegistry, name: str | None = None) -> ModelEntry:
    """The registry entry of model ``name``, or of the active sentiment model."""
    if name is not None:
        try:
            return registry.get(name)
        except NotFoundError:
            raise NotFoundError(
                f"sentiment model {name!r} is not registered (see `aigc sentiment models`)"
            ) from None
    entry = registry.active(APP, SENTIMENT_ROLE)
    if entry is not None:
        return entry
    if registry.list(app=APP, role=SENTIMENT_ROLE):
        raise NotFoundError("no active sentiment model: activate one (`aigc models`) "
                            "or pass --model")
    raise NotFoundError(
        "no sentiment model yet: train one with `aigc sentiment train` or pass --model")


def topic_dir_of(registry: ModelRegistry, entry: ModelEntry) -> Path | None:
    """Folder of the topic classifier linked from ``entry``, None when there is none."""
    name = entry.info.get("topic_model")
    if not name:
        return None
    try:
        folder = registry.get(name).path
    except NotFoundError:  # linked but not (or no longer) registered: beside the model
        folder = entry.path.parent / name
    return folder if folder.is_dir() else None

"""A trained recommender on disk: one folder, read back by :meth:`Recommender.from_pretrained`.

``recommender.json`` (format, config, training report, feature names, users, catalogue),
``log.npz`` (the events), ``collaborative.npz`` (EASE, transitions, popularity),
``ranker.pkl``, the content vectors and index, the interest vectors and tuned encoder.
A folder in another format than :data:`FORMAT` is refused with a one-line error.

What is written and read is a :class:`Fitted`, the parts a recommender is made of: the
model class composes them and this module never needs it.
"""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aigc_apps.errors import ModelNotFoundError
from aigc_apps.settings import Settings

from .content import ContentModel, TextEncoder, load_encoder
from .dataset import Catalog, Interactions
from .features import FEATURES
from .interest import InterestConfig, InterestModel

FORMAT = 1


class ModelFormatError(ModelNotFoundError):
    """A saved recommender in a format this version cannot read."""


@dataclass
class Fitted:
    """Every fitted part of a recommender: its config (as a dict), training report,
    catalogue, events, ranker, text models and the collaborative models' arrays
    (:meth:`CandidateFeatures.state`)."""

    config: dict[str, Any]
    info: dict[str, Any]
    catalog: Catalog
    log: Interactions
    ranker: Any
    content: ContentModel | None
    interest: InterestModel | None
    collaborative: dict[str, np.ndarray]


def save(model: Fitted, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = model.collaborative
    np.savez(folder / "collaborative.npz", **arrays)
    log, catalog = model.log, model.catalog
    np.savez(folder / "log.npz", user=log.user, item=log.item, ts=log.ts, weight=log.weight)
    meta = {
        "format": FORMAT,
        "config": model.config,
        "info": model.info,
        "features": FEATURES,
        "users": log.users,
        "catalog": {
            "ids": catalog.ids,
            "titles": catalog.titles,
            "descriptions": catalog.descriptions,
            "tags": catalog.tags,
        },
    }
    (folder / "recommender.json").write_text(json.dumps(meta, ensure_ascii=False))
    with open(folder / "ranker.pkl", "wb") as fh:
        pickle.dump(model.ranker, fh)
    if model.content is not None:
        model.content.save(folder)
    if model.interest is not None:
        model.interest.save(folder)
        target = folder / "interest_encoder"
        if model.interest.folder.resolve() != target.resolve():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(model.interest.folder, target)
    return folder


def read_meta(folder: Path) -> dict[str, Any]:
    """``recommender.json``, once it is known to be a model this version reads."""
    meta_file = folder / "recommender.json"
    if not meta_file.is_file():
        raise ModelNotFoundError(
            f"{folder}: no trained recommender here; run `aigc recommend train`"
        )
    meta: dict[str, Any] = json.loads(meta_file.read_text())
    if meta.get("format") != FORMAT:
        raise ModelFormatError(
            f"{folder}: recommender saved in format {meta.get('format')!r}, this version reads "
            f"format {FORMAT}; retrain with `aigc recommend train`"
        )
    return meta


def load(
    folder: Path, meta: dict[str, Any], encoder: TextEncoder | None, *,
    encoder_name: str | None, interest: InterestConfig | None,
    settings: Settings | None = None,
) -> Fitted:
    """The parts saved in ``folder`` (``meta`` from :func:`read_meta`); ``encoder`` replaces
    the content encoder ``encoder_name`` of the saved config, ``interest`` is its interest
    model's config (None: no interest model)."""
    c = meta["catalog"]
    catalog = Catalog(c["ids"], c["titles"], c["descriptions"], c["tags"])
    log = np.load(folder / "log.npz")
    weight = log["weight"] if "weight" in log else np.ones(len(log["item"]), np.float32)
    events = Interactions(meta["users"], log["user"], log["item"], log["ts"], len(catalog), weight)
    with open(folder / "ranker.pkl", "rb") as fh:
        ranker = pickle.load(fh)
    content = None
    if (folder / "content_vectors.npy").is_file():
        enc = encoder or load_encoder(encoder_name or "hashing", settings)
        content = ContentModel.load(folder, enc, settings)
    interest_model = None
    if interest is not None and (folder / "interest_vectors.npy").is_file():
        interest_model = InterestModel.load(
            folder, catalog, interest, folder / "interest_encoder"
        )
    return Fitted(
        meta["config"], meta["info"], catalog, events, ranker, content, interest_model,
        dict(np.load(folder / "collaborative.npz")),
    )

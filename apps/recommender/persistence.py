"""A trained recommender on disk: one folder, read back by :meth:`Recommender.from_pretrained`.

``recommender.json`` (format, config, training report, feature names, users, catalogue),
``log.npz`` (the events), ``collaborative.npz`` (EASE, transitions, popularity),
``ranker.pkl``, the content vectors and index, the interest vectors and tuned encoder.
A folder in another format than :data:`FORMAT` is refused with a one-line error.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aigc_apps.errors import ModelNotFoundError

from .content import ContentModel, TextEncoder, load_encoder
from .dataset import Catalog, Interactions
from .features import FEATURES
from .interest import InterestModel

if TYPE_CHECKING:
    from .recommender import Recommender

FORMAT = 1


class ModelFormatError(ModelNotFoundError):
    """A saved recommender in a format this version cannot read."""


def save(model: Recommender, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = model.features.state()
    np.savez(folder / "collaborative.npz", **arrays)
    log, catalog = model.log, model.catalog
    np.savez(folder / "log.npz", user=log.user, item=log.item, ts=log.ts, weight=log.weight)
    meta = {
        "format": FORMAT,
        "config": model.config.to_dict(),
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
    model: Recommender, folder: Path, meta: dict[str, Any], encoder: TextEncoder | None
) -> dict[str, np.ndarray]:
    """Set ``model``'s info, catalogue, log, ranker and text models from ``folder``; returns
    the collaborative models' arrays (:meth:`CandidateFeatures.load_state`)."""
    model.info = meta["info"]
    c = meta["catalog"]
    model.catalog = Catalog(c["ids"], c["titles"], c["descriptions"], c["tags"])
    log = np.load(folder / "log.npz")
    weight = log["weight"] if "weight" in log else np.ones(len(log["item"]), np.float32)
    model.log = Interactions(
        meta["users"], log["user"], log["item"], log["ts"], len(model.catalog), weight
    )
    with open(folder / "ranker.pkl", "rb") as fh:
        model.ranker = pickle.load(fh)
    model.content = None
    if (folder / "content_vectors.npy").is_file():
        enc = encoder or load_encoder(model.config.encoder or "hashing")
        model.content = ContentModel.load(folder, enc)
    model.interest = None
    if model.config.interest is not None and (folder / "interest_vectors.npy").is_file():
        model.interest = InterestModel.load(
            folder, model.catalog, model.config.interest, folder / "interest_encoder"
        )
    return dict(np.load(folder / "collaborative.npz"))

"""Serving items stored after training: a trained model grown to the store's catalogue.

A trained model knows the catalogue it was fitted on. Items inserted later (``aigc
recommend ingest --items``, the HTTP API's ``POST /v1/recommend/items``) join it at serving
time, without a retrain: their text is embedded with the model's own content (and interest)
encoder, they are cold items (no collaborative signal until the next training), and so they
are found the way a cold item is, by text: the free-text interest, the user's content
profile and the new-arrival slot. An item whose text changed is embedded again.

Every write of items bumps the store's ``catalog`` generation stamp in its transaction; a
service checks it before each answer (one primary-key SELECT), so a second worker sees an
insert as soon as the first has committed it.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from .content import ContentModel
from .dataset import Catalog
from .recommender import Recommender


def with_catalog(model: Recommender, stored: Catalog) -> Recommender:
    """``model`` serving ``stored``'s items too: a new model object (``model`` itself is
    left as it is, so requests reading it meanwhile are not disturbed), or ``model`` when
    nothing is new or changed. Items the store lacks stay (the store never deletes)."""
    old = model.catalog
    ids, titles = list(old.ids), list(old.titles)
    descriptions, tags = list(old.descriptions), [list(t) for t in old.tags]
    touched: list[int] = []
    for j, item_id in enumerate(stored.ids):
        i = old.index.get(item_id)
        if i is None:
            ids.append(item_id)
            titles.append(stored.titles[j])
            descriptions.append(stored.descriptions[j])
            tags.append(list(stored.tags[j]))
            touched.append(len(ids) - 1)
        elif (old.titles[i], old.descriptions[i], old.tags[i]) != (
            stored.titles[j],
            stored.descriptions[j],
            stored.tags[j],
        ):
            titles[i], descriptions[i], tags[i] = (
                stored.titles[j],
                stored.descriptions[j],
                list(stored.tags[j]),
            )
            touched.append(i)
    if not touched:
        return model
    catalog = Catalog(ids, titles, descriptions, tags)
    grown = copy.copy(model)
    grown.catalog = catalog
    grown.log = dataclasses.replace(model.log, n_items=len(catalog))
    texts = catalog.texts(touched)
    grown.content = None
    if model.content is not None:
        vectors = _grown(model.content.V, len(catalog), touched, model.content.encode(texts))
        content = ContentModel(model.content.encoder, model.content.recent,
                               model.content.half_life, settings=model.content.settings)
        grown.content = content.fit(catalog, vectors)
    grown.interest = None
    if model.interest is not None:
        interest = copy.copy(model.interest)
        encoded = np.asarray(interest.encoder.encode(texts, batch_size=64), dtype=np.float32)
        interest.item_V = _grown(interest.item_V, len(catalog), touched, encoded)
        interest.catalog, interest._cache = catalog, {}  # cached user vectors read old texts
        grown.interest = interest
    grown.features = model.features.resized(
        len(catalog), content=grown.content, interest=grown.interest
    )
    grown._index_users()
    return grown


def _grown(vectors: np.ndarray, n: int, rows: list[int], new: np.ndarray) -> np.ndarray:
    out = np.zeros((n, vectors.shape[1]), dtype=np.float32)
    out[: len(vectors)] = vectors
    out[rows] = new
    return out

"""In-memory catalogue and interaction log that every model trains on.

Items are addressed by their position in :class:`Catalog` (so items nobody touched yet,
cold items, still have a row); events are sorted by user, then time, then input order, which
is exactly what leave-last-out and the sequence features need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sqlalchemy import select
from sqlalchemy.orm import Session

from aigc_apps.errors import DataError
from aigc_apps.store import Database

from .store import RecEvent, RecItem


@dataclass
class Catalog:
    ids: list[str]
    titles: list[str]
    descriptions: list[str] = field(default_factory=list)
    tags: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.ids)
        self.descriptions = self.descriptions or [""] * n
        self.tags = self.tags or [[] for _ in range(n)]
        if not (len(self.titles) == len(self.descriptions) == len(self.tags) == n):
            raise ValueError("catalog columns differ in length")
        self.index = {item_id: i for i, item_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def text(self, i: int) -> str:
        """What the encoders read: title, tags, then description."""
        parts = [self.titles[i]]
        if self.tags[i]:
            parts.append("tags: " + ", ".join(self.tags[i]))
        if self.descriptions[i]:
            parts.append(self.descriptions[i])
        return ". ".join(p for p in parts if p)

    def texts(self, idx: Sequence[int] | None = None) -> list[str]:
        return [self.text(int(i)) for i in (range(len(self)) if idx is None else idx)]

    def lookup(self, item_id: str) -> int:
        if item_id not in self.index:
            raise KeyError(item_id)
        return self.index[item_id]


# How strongly an event type says "interested", relative to a plain view or rating; types
# not listed count 1. Only the collaborative model's user x item matrix uses them.
EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "like": 3.0,
    "add_to_cart": 3.0,
    "cart": 3.0,
    "purchase": 5.0,
    "buy": 5.0,
    "order": 5.0,
}


def event_weight(kind: str, weight: float | None, table: dict[str, float] | None = None) -> float:
    """The event's own weight (default 1) times its type's weight (default 1)."""
    base = 1.0 if weight is None or not weight > 0 else float(weight)
    return base * (EVENT_WEIGHTS if table is None else table).get(kind.strip().lower(), 1.0)


@dataclass
class Interactions:
    """Events as parallel arrays sorted by (user, ts, input order); ``weight`` is each
    event's strength (1 for a plain interaction)."""

    users: list[str]
    user: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    n_items: int
    weight: np.ndarray

    @classmethod
    def from_events(
        cls,
        user_ids: Sequence[str],
        item_idx: Sequence[int],
        ts: Sequence[float],
        n_items: int,
        weights: Sequence[float] | None = None,
    ) -> Interactions:
        users, uidx = np.unique(np.asarray(user_ids, dtype=object).astype(str), return_inverse=True)
        item = np.asarray(item_idx, dtype=np.int64)
        times = np.asarray(ts, dtype=np.float64)
        w = np.ones(len(item), np.float32) if weights is None else np.asarray(weights, np.float32)
        order = np.lexsort((np.arange(len(item)), times, uidx))
        return cls(
            [str(u) for u in users],
            uidx[order].astype(np.int64),
            item[order],
            times[order],
            n_items,
            w[order],
        )

    @property
    def n_users(self) -> int:
        return len(self.users)

    def __len__(self) -> int:
        return len(self.item)

    def subset(self, mask: np.ndarray) -> Interactions:
        """Same users and items, only the events where ``mask`` is true (order kept)."""
        return Interactions(
            self.users,
            self.user[mask],
            self.item[mask],
            self.ts[mask],
            self.n_items,
            self.weight[mask],
        )

    def bounds(self) -> np.ndarray:
        """``bounds[u]:bounds[u+1]`` is user ``u``'s slice of the event arrays."""
        return np.searchsorted(self.user, np.arange(self.n_users + 1))

    def histories(self) -> list[np.ndarray]:
        b = self.bounds()
        return [self.item[b[u] : b[u + 1]] for u in range(self.n_users)]

    def last_times(self) -> np.ndarray:
        b = self.bounds()
        out = np.full(self.n_users, np.nan)
        has = b[1:] > b[:-1]
        out[has] = self.ts[b[1:][has] - 1]
        return out

    def matrix(self) -> sp.csr_matrix:
        """User x item matrix holding each pair's strongest event weight (repeats count once;
        binary when every weight is 1, as on a plain interaction log)."""
        cell = self.user * self.n_items + self.item
        order = np.lexsort((-self.weight, cell))  # per cell, the strongest event first
        cells, first = np.unique(cell[order], return_index=True)
        return sp.csr_matrix(
            (
                self.weight[order][first].astype(np.float32),
                (cells // self.n_items, cells % self.n_items),
            ),
            shape=(self.n_users, self.n_items),
        )

    def leave_last_out(self, min_history: int = 1) -> tuple[Interactions, np.ndarray, np.ndarray]:
        """Hold out each user's latest event (ties: the later input row).

        Only users with more than ``min_history`` events lose one. Returns the remaining
        events plus the held-out (user, item) pairs.
        """
        b = self.bounds()
        sizes = b[1:] - b[:-1]
        users = np.flatnonzero(sizes > min_history)
        last = b[users + 1] - 1
        keep = np.ones(len(self.item), dtype=bool)
        keep[last] = False
        return self.subset(keep), users, self.item[last]


def load_catalog(db: Database) -> Catalog:
    """Every stored item, ordered by id (what training reads; serving compares with it)."""
    with db.session() as s:
        return _catalog(s)


def _catalog(s: Session) -> Catalog:
    items = s.execute(
        select(RecItem.id, RecItem.title, RecItem.description, RecItem.tags).order_by(RecItem.id)
    ).all()
    return Catalog(
        ids=[r[0] for r in items],
        titles=[r[1] for r in items],
        descriptions=[r[2] for r in items],
        tags=[[t for t in r[3].split("|") if t] for r in items],
    )


def load_from_store(
    db: Database, event_weights: dict[str, float] | None = None
) -> tuple[Catalog, Interactions]:
    """Everything the store holds, ready for training; event strength from ``event_weights``
    (default :data:`EVENT_WEIGHTS`) times the event's own weight."""
    with db.session() as s:
        catalog = _catalog(s)
        if not len(catalog):
            raise DataError(
                "the recommender store has no items; run `aigc recommend ingest --items FILE`"
            )
        events = s.execute(
            select(
                RecEvent.user_id, RecEvent.item_id, RecEvent.ts, RecEvent.type, RecEvent.weight
            ).order_by(RecEvent.id)
        ).all()
    if not events:
        raise DataError(
            "the recommender store has no events; run `aigc recommend ingest --events FILE`"
        )
    log = Interactions.from_events(
        [e[0] for e in events],
        [catalog.index[e[1]] for e in events],
        [e[2] for e in events],
        len(catalog),
        [event_weight(e[3] or "", e[4], event_weights) for e in events],
    )
    return catalog, log


def stored_users(db: Database) -> list[str]:
    """Every user with stored events, sorted."""
    with db.session() as s:
        return list(s.scalars(select(RecEvent.user_id).distinct().order_by(RecEvent.user_id)))

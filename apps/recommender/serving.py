"""The active recommender as one process serves it: :class:`ServedModel`.

Loaded once and kept. Before each answer two generation stamps (one primary-key SELECT
each, :mod:`aigc_apps.stamps`) tell whether another process changed what it serves: the
registry's ``models:recommend`` (a model trained, activated, replaced or deleted by any
worker or command) and the store's ``catalog`` (items added, changed or withdrawn by any
worker or ``aigc recommend ingest``). Only then is the active entry read again (and loaded
when it is another) or the model grown to the catalogue (:mod:`.live_catalog`) with its
withdrawn items masked. What is served is marked with the stamps it was loaded at only once
it is loaded, so a thread that finds the stamps moved while another reloads waits for that
reload instead of answering from the old model.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from aigc_apps.errors import ModelNotFoundError
from aigc_apps.registry import ModelEntry, ModelRegistry
from aigc_apps.settings import Settings
from aigc_apps.stamps import Freshness
from aigc_apps.store import Database

from .legacy_models import APP
from .store import CATALOG_STAMP, STAMPS

if TYPE_CHECKING:
    from .recommender import Recommender

__all__ = ["ServedModel"]

EntryKey = tuple[str, str, str]  # name, path, registered at: another value, another model


class ServedModel:
    """``get()`` is the active model grown to the store's catalogue; safe across threads.

    ``active_entry`` returns the registry entry to serve (None before any training).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        db: Callable[[], Database],
        settings: Settings,
        active_entry: Callable[[], ModelEntry | None],
    ) -> None:
        self._db, self._settings, self._active_entry = db, settings, active_entry
        self._registry = registry
        self._lock = threading.RLock()
        self._loaded: tuple[EntryKey, Recommender] | None = None
        # the loaded model grown to the store's catalogue, by the loaded model's key
        self._live: tuple[EntryKey, Recommender] | None = None
        self._models_stamp = registry.freshness(APP)
        self._catalog_stamp = Freshness(db, CATALOG_STAMP, table=STAMPS)
        self._served_at: tuple[int, int] | None = None  # the two stamps when it was loaded
        self.withdrawn: frozenset[str] = frozenset()  # ids, as of the served catalogue

    @property
    def serving(self) -> bool:
        """Whether this process has loaded a model (it answers requests)."""
        return self._loaded is not None

    @property
    def local(self) -> bool:
        """Whether this process serves and its store and registry are SQLite files here: a
        stamp or cache read is then microseconds with no network (see :mod:`.cache`)."""
        return (self.serving and self._db().path is not None
                and self._registry.db.path is not None)  # fmt: skip

    def current(self, catalog_stamp: int) -> bool:
        """Whether the model served is the one the stamps name (one stamp read; nothing is
        loaded: False before the first :meth:`get` and after any change)."""
        return self._live is not None and self._served_at == (
            self._models_stamp.peek(), catalog_stamp
        )

    @property
    def key(self) -> str:
        """The served model's identity, as stored with each cached list (64 hex digits)."""
        assert self._loaded is not None, "get() first"
        return hashlib.sha256("\x1f".join(self._loaded[0]).encode()).hexdigest()

    @property
    def catalog_gen(self) -> int:
        """The catalogue generation the served model was grown at."""
        return self._served_at[1] if self._served_at is not None else 0

    def get(self, catalog_stamp: int | None = None) -> Recommender:
        """``catalog_stamp``: the store's catalogue stamp when the caller has just read it
        (the cache reads it with the entry: one round trip less per request)."""
        catalog = self._catalog_stamp.peek() if catalog_stamp is None else catalog_stamp
        at = (self._models_stamp.peek(), catalog)
        live = self._live
        if live is not None and self._served_at == at:
            return live[1]
        with self._lock:
            served = self._served_at
            if self._loaded is None or served is None or served[0] != at[0]:
                entry = self._active_entry()
                if entry is None:
                    raise ModelNotFoundError(
                        "no trained recommender yet; run `aigc recommend train`"
                    )
                key = entry_key(entry)
                if self._loaded is None or self._loaded[0] != key:
                    self._loaded = (key, _load(entry, self._settings))
            if (self._live is None or self._live[0] != self._loaded[0]
                    or served is None or served[1] != at[1]):  # fmt: skip
                self._live = (self._loaded[0], self._grown())
            self._served_at = at
            return self._live[1]

    def adopt(self, entry: ModelEntry, model: Recommender) -> None:
        """Serve ``model``, just fitted and registered as ``entry``, without loading it."""
        with self._lock:
            self._loaded, self._live = (entry_key(entry), model), None

    def _grown(self) -> Recommender:
        """The loaded model serving the stored catalogue: the live one grown by what changed
        since (only new or changed items are embedded), else the loaded one; withdrawn items
        masked."""
        import numpy as np

        from .dataset import load_catalog
        from .live_catalog import with_catalog
        from .runtime import withdrawn_ids

        assert self._loaded is not None
        key, loaded = self._loaded
        base = self._live[1] if self._live is not None and self._live[0] == key else loaded
        db = self._db()
        served = with_catalog(base, load_catalog(db))
        withdrawn = withdrawn_ids(db)
        index = served.catalog.index
        rows = np.array(sorted(index[i] for i in withdrawn if i in index), np.int64)
        if not np.array_equal(served.withdrawn, rows):
            if served is base:  # requests reading it meanwhile keep what they read
                served = copy.copy(served)
            served.withdrawn = rows
        self.withdrawn = frozenset(withdrawn)
        return served


def entry_key(entry: ModelEntry) -> EntryKey:
    """What tells a registry entry's model apart (a name re-registered is another model)."""
    created = entry.created_at.isoformat() if entry.created_at is not None else ""
    return entry.name, str(entry.path), created


def _load(entry: ModelEntry, settings: Settings) -> Recommender:
    from .recommender import Recommender

    if not entry.path.is_dir():
        raise ModelNotFoundError(
            f"recommender model {entry.name!r}: folder {entry.path} is missing; retrain with "
            "`aigc recommend train` or activate another with `aigc models activate`"
        )
    return Recommender.from_pretrained(entry.path, settings=settings)

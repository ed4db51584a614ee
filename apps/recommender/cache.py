"""Recommendations served from a cache, the way Gorse serves them.

Ranking one user's list costs milliseconds of numpy, scikit-learn and explanation; under
load those milliseconds queue up and become the latency. So each user's top-``k`` with its
reasons is kept in the store's ``rec_cache`` table, where every worker of ``aigc serve
--workers N`` and every machine on the same database reads the same entry: a request is one
indexed read, not a ranking.

An entry remembers what it was computed from, and the query that reads it also says whether
that still holds, so a stale entry is never served and costs no second round trip:

- ``model_key``: the model that ranked it (another model active: a miss);
- ``last_event_id``: the user's newest event then. Any event stored since, by any worker,
  ``aigc recommend ingest`` or another machine, makes it a miss, so **the next answer after
  an event reflects it** (the freshness promise, :data:`FRESHNESS_S`, is measured by
  ``benchmarks/serve_load.py``);
- ``computed_at``: older than the cache's ``ttl_s``: a miss;
- ``catalog_gen``: the catalogue's generation then. An entry from an older catalogue is
  still served (new items join it at its background refresh), but never one that holds a
  withdrawn item: that is a miss.

A miss ranks on the spot and fills the entry. Entries are refreshed off the request path
(:class:`CacheRefresher`): a user's after their events are posted, everyone's after items
are added or withdrawn through the service, and one found with an older catalogue. Training
writes every active user's entry (``k`` = :data:`WARM_K`). Users without events (a shop's
new visitors, whose list is the popular items) get no entry: any id could be one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from aigc_apps.errors import AigcError
from aigc_apps.stamps import current
from aigc_apps.store import Database

from .store import CATALOG_STAMP, STAMPS, RecCacheEntry, RecEvent

if TYPE_CHECKING:  # scikit-learn and torch load with the model, not with the service
    from .recommender import Recommendation, RecommendationList
    from .serving import ServedModel

__all__ = ["CacheRefresher", "CachedLists", "RecommendationCache", "user_history"]

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 24 * 3600.0  # events and withdrawals invalidate at once; this bounds the rest
FRESHNESS_S = 1.0  # promised: after an event, the user's next list reflects it within this
WARM_K = 10  # the API's default k: what training fills

_entries: Table = RecCacheEntry.__table__  # type: ignore[assignment]


def user_history(db: Database, user: str) -> tuple[list[tuple[str, float]], int]:
    """``(item_id, timestamp)`` of the user's events, oldest first, and the newest event's
    id (0 without events): what a list is computed from, read in one query."""
    if "\x00" in user:  # no stored id has one (PostgreSQL could not even compare it)
        return [], 0
    with db.session() as s:
        rows = s.execute(
            select(RecEvent.item_id, RecEvent.ts, RecEvent.id)
            .where(RecEvent.user_id == user)
            .order_by(RecEvent.ts, RecEvent.id)
        ).all()
    return [(r[0], float(r[1])) for r in rows], max((r[2] for r in rows), default=0)


@dataclass(frozen=True)
class Entry:
    """A valid cached list: what it holds and the catalogue generation it was ranked at."""

    items: list[Recommendation]
    note: str | None
    catalog_gen: int

    def answer(self, user: str, explain: bool) -> RecommendationList:
        from .recommender import RecommendationList

        items = self.items if explain else [replace(r, reasons=[]) for r in self.items]
        return RecommendationList(user, items, self.note)


class RecommendationCache:
    """The ``rec_cache`` table of a recommender store: read, write, find what to refresh.

    ``db`` returns the store (opened lazily by the service); ``ttl_s`` is how long an entry
    is served at most (0: never cached).
    """

    def __init__(self, db: Callable[[], Database], ttl_s: float = DEFAULT_TTL_S) -> None:
        self._db = db
        self.ttl_s = ttl_s
        # one statement, built once (building and keying a select per request costs more
        # than the indexed read itself; each round trip also gives up the GIL, which a busy
        # server takes back late): the catalogue's stamp, the entry if any, and whether an
        # event of the user came after it
        self._read = text(
            f"SELECT (SELECT value FROM {STAMPS} WHERE key = '{CATALOG_STAMP}'),"
            " c.model_key, c.catalog_gen, c.computed_at, c.payload, EXISTS ("
            " SELECT 1 FROM rec_events e WHERE e.user_id = c.user_id"
            " AND e.id > c.last_event_id)"
            " FROM (SELECT 1 AS one) o LEFT JOIN rec_cache c ON c.user_id = :user AND c.k = :k"
        )

    def lookup(self, user: str, k: int) -> tuple[Any, int]:
        """The stored row of ``(user, k)`` (None: none, or no cache) and the catalogue's
        stamp now, in one query; :meth:`entry` says whether the row may be served."""
        if self.ttl_s <= 0 or "\x00" in user:
            return None, current(self._db(), CATALOG_STAMP, table=STAMPS)
        with self._db().engine.connect() as conn:
            row = conn.execute(self._read, {"user": user, "k": k}).first()
        assert row is not None  # one row, whatever the cache holds
        return (row if row[1] is not None else None), int(row[0] or 0)

    def entry(self, row: Any, model: str) -> Entry | None:
        """The looked-up ``row`` as an entry if it was ranked by ``model``, no event of the
        user came after it, and it has not expired; else None."""
        if row is None or row[1] != model or row[5] or row[3] < time.time() - self.ttl_s:
            return None
        from .recommender import Recommendation

        data = json.loads(row[4])
        items = [Recommendation(i, t, s, list(r)) for i, t, s, r in data["items"]]
        return Entry(items, data["note"], int(row[2]))

    def write(
        self, user: str, k: int, model: str, catalog_gen: int, last_event_id: int,
        result: RecommendationList,
    ) -> None:
        """Store ``result`` (ranked with reasons) as ``(user, k)``'s entry, replacing any."""
        if self.ttl_s <= 0:
            return
        payload = json.dumps({
            "items": [[r.item_id, r.title, r.score, r.reasons] for r in result.items],
            "note": result.note,
        })
        row = {"user_id": user, "k": k, "model_key": model, "catalog_gen": catalog_gen,
               "last_event_id": last_event_id, "computed_at": time.time(), "payload": payload}
        db = self._db()
        with db.session() as s:
            dialect = s.get_bind().dialect.name
            if dialect in ("sqlite", "postgresql"):
                make = sqlite.insert if dialect == "sqlite" else postgresql.insert
                stmt = make(_entries).values(row)
                fields = {c: stmt.excluded[c] for c in row if c not in ("user_id", "k")}
                s.execute(stmt.on_conflict_do_update(index_elements=["user_id", "k"], set_=fields))
            else:  # one transaction: another writer's row for the key is replaced
                s.execute(delete(_entries).where(_entries.c.user_id == user, _entries.c.k == k))
                s.execute(insert(_entries).values(row))

    def ks(self, user: str) -> list[int]:
        """The ``k`` of each entry the user has."""
        with self._db().session() as s:
            return list(s.scalars(select(_entries.c.k).where(_entries.c.user_id == user)))

    def older_than(self, catalog_gen: int) -> list[tuple[str, int]]:
        """``(user, k)`` of the entries ranked before the catalogue reached ``catalog_gen``."""
        with self._db().session() as s:
            rows = s.execute(
                select(_entries.c.user_id, _entries.c.k).where(_entries.c.catalog_gen < catalog_gen)
            ).all()
        return [(r[0], int(r[1])) for r in rows]

    def size(self) -> int:
        """How many entries are stored."""
        with self._db().session() as s:
            return int(s.scalar(select(func.count()).select_from(_entries)) or 0)


class CacheRefresher:
    """One daemon thread that runs refreshes off the request path, each pending once.

    ``submit(key, job)`` queues ``job`` unless the same ``key`` is already waiting; a job
    that fails is logged and dropped (its entry stays a miss until a request fills it).
    """

    def __init__(self, name: str = "rec-cache-refresh") -> None:
        self._name = name
        self._pending: dict[Hashable, Callable[[], object]] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, jobs: Iterable[tuple[Hashable, Callable[[], object]]]) -> None:
        with self._cond:
            if self._closed:
                return
            for key, job in jobs:
                self._pending.setdefault(key, job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or running; False if ``timeout`` came first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Drop what is pending and wait (up to ``timeout`` s) for the running job, so that
        nothing refreshes into a store being closed."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                key = next(iter(self._pending))
                job = self._pending.pop(key)
                self._busy = True
            try:
                job()
            except Exception:  # a refresh is an optimisation: the next request ranks anyway
                log.warning("recommendation cache refresh %r failed", key, exc_info=True)


class CachedLists:
    """Users' lists served from a :class:`RecommendationCache`, ranked by ``served`` on a
    miss, refreshed in the background by a :class:`CacheRefresher`."""

    def __init__(
        self, served: ServedModel, db: Callable[[], Database], ttl_s: float = DEFAULT_TTL_S
    ) -> None:
        self._served, self._db = served, db
        self.store = RecommendationCache(db, ttl_s)
        self.refresher = CacheRefresher()

    def for_user(self, user: str, k: int, explain: bool) -> RecommendationList:
        """The user's cached list when it is still valid, else ranked now and cached."""
        row, catalog_stamp = self.store.lookup(user, k)
        self._served.get(catalog_stamp)  # the served model is current (a stamp read)
        found = self._answer(row, user, k, explain)
        if found is not None:
            return found
        result = self.rank(user, k)  # ranked with reasons, as cached
        return result if explain else Entry(result.items, result.note, 0).answer(user, explain)

    @property
    def local(self) -> bool:
        """Whether a hit is microseconds: a serving process on SQLite files (no network).
        The HTTP route then answers hits on its event loop, skipping the thread-pool hop
        that cost a busy server half its throughput (``serve_load.py``)."""
        return self._served.local

    def hit(self, user: str, k: int, explain: bool) -> RecommendationList | None:
        """The user's cached list if it may be served now, else None; never loads a model
        or ranks (two statements: the entry with the catalogue stamp, the registry stamp)."""
        row, catalog_stamp = self.store.lookup(user, k)
        if not self._served.current(catalog_stamp):
            return None
        return self._answer(row, user, k, explain)

    def _answer(self, row: Any, user: str, k: int, explain: bool) -> RecommendationList | None:
        entry = self.store.entry(row, self._served.key)
        if entry is None or not self._served.withdrawn.isdisjoint(r.item_id for r in entry.items):
            return None
        if entry.catalog_gen != self._served.catalog_gen:  # items came: rank again later
            self.refresher.submit([((user, k), self._job(user, k))])
        return entry.answer(user, explain)

    def rank(self, user: str, k: int) -> RecommendationList:
        """Rank ``user``'s list from the stored events (with reasons) and cache it."""
        model = self._served.get()
        key, catalog_gen = self._served.key, self._served.catalog_gen
        events, last_event_id = user_history(self._db(), user)
        result = model.recommend(user, k=k, events=events or None, explain=True)
        if events:  # a user without events gets the popular items: no entry per visitor
            try:
                self.store.write(user, k, key, catalog_gen, last_event_id, result)
            except (AigcError, SQLAlchemyError):  # a busy or read-only store: answer anyway
                log.warning("could not cache the list of %r", user, exc_info=True)
        return result

    def warm(self, users: Iterable[str], k: int = WARM_K) -> dict[str, float]:
        """Rank and cache ``users``' lists now; how many and how long."""
        started, n = time.perf_counter(), 0
        for user in users:
            self.rank(user, k)
            n += 1
        return {"users": n, "seconds": round(time.perf_counter() - started, 2)}

    def after_events(self, users: Iterable[str]) -> None:
        """Rank these users' entries again in the background (when this process serves)."""
        if self._served.serving:
            for user in dict.fromkeys(users):
                ks = self.store.ks(user) or [WARM_K]
                self.refresher.submit(((user, k), self._job(user, k)) for k in ks)

    def after_catalog_change(self) -> None:
        """Rank again, in the background, every entry older than the catalogue (after items
        were added or withdrawn through this process, when it serves)."""
        if not self._served.serving:
            return

        def sweep() -> None:
            self._served.get()  # grown to the new catalogue first
            stale = self.store.older_than(self._served.catalog_gen)
            self.refresher.submit((key, self._job(*key)) for key in stale)

        self.refresher.submit([("sweep", sweep)])

    def close(self) -> None:
        """Stop the background refreshes; a service used again refreshes again."""
        self.refresher.close()
        self.refresher = CacheRefresher()

    def _job(self, user: str, k: int) -> Callable[[], object]:
        return lambda: self.rank(user, k)

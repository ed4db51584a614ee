"""The recommender behind one object, :class:`RecommenderService`, which the CLI calls.

Trained models are entries of the core's model registry (app ``recommend``, role
``recommender``); serving uses the active one, loaded once per service and loaded again
when another entry becomes active (:mod:`.serving`). A user's list comes from the store's
cache (:mod:`.cache`), which an event of the user, a withdrawn item or another active model
makes stale at once, so events ingested after training count from the next request on;
items stored after training join the served model by their text (:mod:`.live_catalog`)
until the next ``train`` learns their collaborative signal. All of it holds across
processes (every worker of ``aigc serve --workers N``): the state is the store's and the
registry's, and generation stamps in each say when what a worker holds in memory is out of
date.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from aigc_apps.errors import AigcError
from aigc_apps.lazy import lazy
from aigc_apps.registry import ModelEntry, ModelRegistry, NameTakenError
from aigc_apps.service import AppService
from aigc_apps.settings import Settings
from aigc_apps.store import Database, utcnow

from .cache import WARM_K, CachedLists, user_history
from .legacy_models import APP, NAME_PREFIX, ROLE, import_legacy_models, registry_fields
from .serving import ServedModel
from .store import SCHEMA, counts

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .ingest import EventColumns, IngestReport, ItemColumns
    from .recommender import Recommendation, RecommendationList, Recommender, RecommenderConfig
    from .runtime import NewEvent, NewItem

__all__ = ["RecommenderService", "TrainingResult"]

VERSION_NAME = re.compile(rf"{NAME_PREFIX}(\d+)")


@dataclass(frozen=True)
class TrainingResult:
    """What ``train`` made: the registry entry, the fitted model and the training report."""

    entry: ModelEntry
    model: Recommender
    report: dict[str, Any]


class RecommenderService(AppService):
    """Ingest, train, recommend, find similar items, evaluate and report, on one store.

    ``url`` is the store's database (default: the workspace's ``recommend`` store);
    ``registry`` the model registry (default: the workspace's). Nothing is opened here: the
    store on first use, the active model on the first request that needs it. Safe to share
    between threads.

    >>> service = RecommenderService("sqlite:///shop.db")
    >>> service.for_user("u01", k=5, explain=True)  # doctest: +SKIP
    """

    app = APP

    def __init__(
        self,
        url: str | None = None,
        *,
        registry: ModelRegistry | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(url, registry=registry, settings=settings)
        self.served = ServedModel(self.registry, lambda: self.db, self.settings, self.active_entry)
        self.cache = CachedLists(
            self.served, lambda: self.db, ttl_s=self.settings.recommend_cache_ttl
        )

    def close(self) -> None:
        """Stop the cache's background refreshes, then close the store."""
        self.cache.close()
        super().close()

    @property
    def url(self) -> str | None:
        """The store's URL as given (None: the workspace's); ``db_url`` is the same."""
        return self.db_url

    @url.setter
    def url(self, value: str | None) -> None:
        self.db_url = value

    def open_db(self, url: str) -> Database:
        """The store, its schema brought up to date."""
        return Database.open(SCHEMA, url)

    @property
    def models_dir(self) -> Path:
        """Where trained versions are written (one folder each)."""
        return models_dir(self.settings)

    # ------------------------------------------------------------------ store
    def ingest(
        self,
        items: str | Path | None = None,
        events: str | Path | None = None,
        *,
        item_columns: ItemColumns | None = None,
        event_columns: EventColumns | None = None,
    ) -> IngestReport:
        """Upsert a catalogue and add events (see :func:`.ingest.ingest`); no model needed."""
        from .ingest import ingest

        return ingest(
            self.db, items, events, item_columns=item_columns, event_columns=event_columns
        )

    def add_items(self, items: Sequence[NewItem]) -> IngestReport:
        """Insert or update catalogue items now (one transaction); served by their text from
        the next request on, without a retrain (see :mod:`.runtime`); cached lists take them
        in at their background refresh."""
        from .runtime import add_items

        report = add_items(self.db, items)
        self.cache.after_catalog_change()
        return report

    def withdraw(self, item_ids: Sequence[str]) -> list[str]:
        """Never recommend these items again (until posted again); returns those newly
        withdrawn. A cached list holding one is not served from then on."""
        from .runtime import withdraw_items

        newly = withdraw_items(self.db, item_ids)
        if newly:
            self.cache.after_catalog_change()
        return newly

    def add_events(self, events: Sequence[NewEvent]) -> IngestReport:
        """Store new events (one transaction; a batch naming an unknown item stores
        nothing); they steer the user's next recommendations at once, and their cached
        lists are ranked again in the background."""
        from .runtime import add_events

        report = add_events(self.db, events)
        self.cache.after_events(str(e.user_id).strip() for e in events)
        return report

    def counts(self) -> dict[str, int]:
        """Items, events and distinct users in the store."""
        return counts(self.db)

    def user_events(self, user: str) -> list[tuple[str, float]]:
        """``(item_id, timestamp)`` of the user's stored events, oldest first."""
        return user_events(self.db, user)

    def status(self) -> dict[str, Any]:
        """The store's counts and the active model's registry entry (None before training)."""
        entry = self.active_entry()
        return {
            "store": _masked(self.db.url),
            **self.counts(),
            "model": entry.to_dict() if entry is not None else None,
        }

    # ------------------------------------------------------------------ models
    def active_entry(self) -> ModelEntry | None:
        """The registry entry serving uses (0.1.0's ``rec_models`` rows imported first)."""
        self._import_legacy_models()
        return self.registry.active(APP, ROLE)

    def models(self) -> list[ModelEntry]:
        """Every trained recommender in the registry, newest first (``active`` marks one)."""
        self._import_legacy_models()
        return self.registry.list(app=APP, role=ROLE)

    def activate(self, name: str) -> ModelEntry:
        """Serve ``name`` from the next request on (a rollback is activating an older one)."""
        entry = self.registry.get(name)
        if (entry.app, entry.role) != (APP, ROLE):
            raise AigcError(
                f"model {name!r} is a {entry.app} {entry.role} model, not a recommender"
            )
        return self.registry.activate(name)

    def model(self) -> Recommender:
        """The active model, grown to the items stored since it was trained, withdrawn
        items masked; loaded once and kept until another process changes what is served
        (see :mod:`.serving`)."""
        return self.served.get()

    def train(self, config: RecommenderConfig | None = None) -> TrainingResult:
        """Fit on everything in the store, save the model, register it and make it active."""
        from aigc_apps.fileio import atomic_dir

        from .dataset import load_from_store
        from .recommender import Recommender, RecommenderConfig

        config = config or RecommenderConfig()
        catalog, log = load_from_store(self.db, config.event_weights)
        started = time.perf_counter()
        model = Recommender(config, settings=self.settings).fit(catalog, log)
        folder = self.models_dir / utcnow().strftime("model-%Y%m%dT%H%M%S%f")
        with atomic_dir(folder) as tmp:
            model.save_pretrained(tmp)
        seconds = round(time.perf_counter() - started, 1)
        self._import_legacy_models()
        report = {"path": str(folder), "train_seconds": seconds, **model.info}
        metrics, info = registry_fields(report)
        info |= {"interest": _interest_kind(config), "store": _masked(self.db.url)}
        for _attempt in range(20):  # another trainer may take the same next name
            version = self._next_version()
            try:
                entry = self.registry.register(
                    f"{NAME_PREFIX}{version}", folder, app=APP, role=ROLE,
                    base=config.encoder or "none", metrics=metrics, info=info, replace=False,
                )
                break
            except NameTakenError:
                continue
        else:
            raise AigcError("could not find a free recommend-<n> name after 20 tries")
        # "version" is deprecated: the number in "name"
        report = {"name": entry.name, "version": version, **report}
        self.served.adopt(self.registry.get(entry.name), model)  # served as fitted
        report["cache"] = self.warm_cache()
        return TrainingResult(entry, model, report)

    def warm_cache(self, k: int = WARM_K) -> dict[str, float]:
        """Rank and cache every user with events (at ``k``), as training does; returns how
        many and how long. Only needed after the cache was emptied or ``k`` changed."""
        from .dataset import stored_users

        return self.cache.warm(stored_users(self.db), k)

    # ------------------------------------------------------------------ serving
    def for_user(
        self,
        user: str | None,
        *,
        k: int = 10,
        exclude_seen: bool = True,
        interest: str | None = None,
        explain: bool = False,
        events: list[tuple[str, float]] | None = None,
    ) -> RecommendationList:
        """Top-``k`` for ``user`` from their stored events (or the ``(item_id, timestamp)``
        ``events`` given), optionally steered by free-text ``interest``; ``explain`` adds
        the reasons. A user with neither history nor interest gets popular items."""
        _check_k(k)
        if events is None and user is not None and exclude_seen and not interest:
            return self.cache.for_user(user, k, explain)  # the common request: see .cache
        model = self.model()
        if events is None and user is not None:
            events = self.user_events(user) or None
        return model.recommend(
            user, k=k, exclude_seen=exclude_seen, events=events, text=interest, explain=explain
        )

    def cached(self, user: str, k: int = 10, explain: bool = False) -> RecommendationList | None:
        """``user``'s cached top-``k`` if it may be served now (see :mod:`.cache`), else
        None: then :meth:`for_user` ranks. Never loads a model or ranks."""
        _check_k(k)
        return self.cache.hit(user, k, explain)

    def similar(self, item_id: str, k: int = 10) -> list[Recommendation]:
        """Up to ``k`` other items like ``item_id`` (never the item itself)."""
        _check_k(k)
        return self.model().similar(item_id, k)

    def evaluate(
        self, config: RecommenderConfig | None = None, cold_fraction: float = 0.2, seed: int = 0
    ) -> dict[str, Any]:
        """Leave-last-out on the store's events, models refitted on the training part,
        beside popularity and EASE baselines and a cold-item evaluation."""
        from .dataset import load_from_store
        from .evaluation import run_evaluation
        from .recommender import Recommender, RecommenderConfig

        config = config or RecommenderConfig()
        catalog, log = load_from_store(self.db, config.event_weights)
        vectors: dict[str, Any] = {}

        def fit(cat: Any, train_log: Any) -> Recommender:
            model = Recommender(config, settings=self.settings).fit(
                cat, train_log, content_vectors=vectors.get("v")
            )
            if model.content is not None:
                vectors.setdefault("v", model.content.V)
            return model

        report = run_evaluation(fit, catalog, log, cold_fraction=cold_fraction, seed=seed)
        report.pop("_model")
        report.pop("_split")
        return report

    # ------------------------------------------------------------------ helpers
    def _import_legacy_models(self) -> None:
        self._legacy_imported  # noqa: B018 - once per service, on first use

    @lazy
    def _legacy_imported(self) -> bool:
        """0.1.0's ``rec_models`` rows moved into the registry (once; idempotent)."""
        import_legacy_models(self.db, self.registry)
        return True

    def _next_version(self) -> int:
        """One more than the highest ``recommend-<n>`` registered (imports keep their ids)."""
        numbers = [
            int(match.group(1))
            for entry in self.registry.list()
            if (match := VERSION_NAME.fullmatch(entry.name))
        ]
        return max(numbers, default=0) + 1


def models_dir(settings: Settings) -> Path:
    return settings.adapters_dir / "recommender"


def user_events(db: Database, user: str) -> list[tuple[str, float]]:
    return user_history(db, user)[0]


def _check_k(k: int) -> None:
    if k < 1:
        raise AigcError(f"k must be at least 1, got {k}")


def _interest_kind(config: RecommenderConfig) -> str | None:
    if config.interest is None:
        return None
    return "lora" if config.interest.lora else "full"


def _masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# ---------------------------------------------------------------------- deprecated (0.1.0)
_services: dict[str, RecommenderService] = {}


def _deprecated(name: str, instead: str) -> None:
    warnings.warn(
        f"apps.recommender.service.{name} is deprecated; use RecommenderService.{instead}",
        DeprecationWarning,
        stacklevel=3,
    )


def _service_for(db: Database) -> RecommenderService:
    """One service per store URL, so the deprecated functions share its loaded model."""
    service = _services.get(db.url)
    if service is None or service.__dict__.get("db") is not db:
        service = _services[db.url] = RecommenderService.for_database(db)
    return service


def train(
    db: Database, config: RecommenderConfig | None = None
) -> tuple[Recommender, dict[str, Any]]:
    """Deprecated: ``RecommenderService(url).train(config)``."""
    _deprecated("train", "train")
    result = _service_for(db).train(config)
    return result.model, result.report


def load_active(db: Database) -> Recommender:
    """Deprecated: ``RecommenderService(url).model()``."""
    _deprecated("load_active", "model")
    return _service_for(db).model()


def evaluate(
    db: Database, config: RecommenderConfig | None = None, cold_fraction: float = 0.2, seed: int = 0
) -> dict[str, Any]:
    """Deprecated: ``RecommenderService(url).evaluate(...)``."""
    _deprecated("evaluate", "evaluate")
    return _service_for(db).evaluate(config, cold_fraction, seed)

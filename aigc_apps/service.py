"""``AppService``: the shell every app's service shares; what is the app's own is its own.

An app's service is the one object its CLI, its HTTP routes and Python callers go through.
The shell is the same for each of them, so it lives here once:

* **settings** given, or read from the environment once, by the constructor (the edge),
  then passed down to what the service opens;
* **the app's database**, ``db_url`` or the workspace's store named :attr:`AppService.app`,
  opened on first use by the app's :meth:`AppService.open_db` (its schema, its migrations);
* **the model registry**, given or the workspace's;
* **one style of lazy, thread-safe loading**: :class:`~aigc_apps.lazy.lazy` attributes,
  computed once under the service's ``_lock`` (an ``RLock``: loading one may read another);
* ``close()``, idempotent, releasing only what the service opened itself (a registry or a
  database that was given stays open for its owner), and ``with service:``;
* ``ping()``, what ``/readyz`` calls: the database answers.

Construction does no I/O, so a CLI command or a server worker pays only for what it uses.
A new app subclasses it, names its store and opens its schema (docs/architecture.md)::

    class NotesService(AppService):
        app = "notes"

        def open_db(self, url: str) -> Database:
            return Database.open(NOTES_SCHEMA, url)
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from aigc_apps.lazy import lazy
from aigc_apps.settings import Settings, get_settings

if TYPE_CHECKING:
    from aigc_apps.registry import ModelRegistry
    from aigc_apps.store import Database

__all__ = ["AppService"]

S = TypeVar("S", bound="AppService")


class AppService:
    """Settings, database, registry, lazy loading and lifecycle of one app's service.

    ``db_url`` None is the workspace's store for :attr:`app` (``AIGC_<APP>_DB_URL``, then
    ``AIGC_DATABASE_URL``, then ``<home>/<app>.db``); ``registry`` None is the workspace's
    registry, which this service then owns and closes; ``settings`` None is the environment.
    """

    app: ClassVar[str] = ""  # the store's name in Settings.db_url (one per app)

    def __init__(
        self,
        db_url: str | None = None,
        *,
        registry: ModelRegistry | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.db_url = db_url
        self.settings = settings or get_settings()
        self._lock = threading.RLock()
        self._owns_db = True
        self._owns_registry = registry is None
        if registry is not None:
            self.registry = registry

    # -- ways to make one -------------------------------------------------------------
    @classmethod
    def from_settings(cls: type[S], settings: Settings | None = None, **options: Any) -> S:
        """The service on the workspace that ``settings`` (default: the environment) names."""
        return cls(settings=settings, **options)

    @classmethod
    def from_url(cls: type[S], url: str, **options: Any) -> S:
        """The service on the app database at ``url``."""
        return cls(url, **options)

    @classmethod
    def for_database(cls: type[S], db: Database, **options: Any) -> S:
        """A service on an already open database, left open by :meth:`close`."""
        service = cls(db.url, **options)
        service.db = db
        service._owns_db = False
        return service

    # -- what every app shares, opened on first use -----------------------------------
    @lazy
    def registry(self) -> ModelRegistry:
        from aigc_apps.registry import ModelRegistry

        return ModelRegistry(settings=self.settings)

    @lazy
    def db(self) -> Database:
        """The app's database, opened (and its schema brought up to date) on first use."""
        return self.open_db(self.store_url())

    def store_url(self) -> str:
        """The app database's URL: the one given, else the workspace's for :attr:`app`."""
        if self.db_url:
            return self.db_url
        if not self.app:
            raise TypeError(f"{type(self).__name__} names no store: set its `app`")
        return self.settings.db_url(self.app)

    def open_db(self, url: str) -> Database:
        """Open the app's database at ``url`` (its schema, its migrations)."""
        raise NotImplementedError(f"{type(self).__name__} must define open_db(url)")

    def opened(self, name: str) -> bool:
        """Whether the lazy attribute ``name`` is loaded (``close`` releases only those)."""
        return name in self.__dict__

    # -- readiness and lifecycle ------------------------------------------------------
    def ping(self) -> None:
        """Raise unless the app's database answers (opening it if nothing has yet)."""
        self.db.ping()

    def close(self) -> None:
        """Release the connections this service opened; a database or registry it was
        given stays open. Idempotent; a service used again reopens what it needs.
        Subclasses close their own things first, then call this."""
        db = self.__dict__.pop("db", None)
        if db is not None and self._owns_db:
            db.dispose()
        self._owns_db = True
        if self._owns_registry and self.opened("registry"):
            self.registry.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""One registry of trained models for every app, with one active model per (app, role).

Every artefact an app trains (an SFT adapter, a classifier, a tuned encoder, a recommender
model) is a :class:`ModelEntry`; apps ask :meth:`ModelRegistry.active` for the model to use
instead of keeping their own notes. Files stay where training wrote them; the registry
remembers where they are, what they were made from and what they measured. Rows live in
``aigc_models`` in the ``registry`` store (a SQLite file in the workspace, or the shared
``AIGC_DATABASE_URL``); a partial unique index lets the database itself guarantee at most
one active entry per (app, role), even with several writers.

Every write bumps the app's generation stamp (:func:`models_stamp`, in the same
transaction), so a process that keeps models in memory (each worker of ``aigc serve
--workers N``) checks one counter per request (:class:`~aigc_apps.stamps.Freshness`) and
reloads when another process trained, activated or deleted one of its app's models.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aigc_apps.errors import AigcError, NotFoundError
from aigc_apps.lazy import lazy
from aigc_apps.migrations.runner import StoreSchema
from aigc_apps.settings import Settings, get_settings
from aigc_apps.stamps import Freshness, bump, stamp_table
from aigc_apps.store import Database, app_metadata, utcnow

STORE = "registry"


class NameTakenError(AigcError):
    """A model of that name is registered already (see ``register(replace=False)``)."""


class RegistryBase(DeclarativeBase):
    metadata = app_metadata()


class ModelRow(RegistryBase):
    __tablename__ = "aigc_models"
    __table_args__ = (
        Index("ix_aigc_models_app_role", "app", "role"),
        Index(
            "uq_aigc_models_active",
            "app",
            "role",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    app: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(64))
    base: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    labels: Mapped[str] = mapped_column(Text, default="[]")
    metrics: Mapped[str] = mapped_column(Text, default="{}")
    info: Mapped[str] = mapped_column(Text, default="{}")
    data_hash: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=False)


class TokenRow(RegistryBase):
    """An API token of ``aigc serve`` (see :mod:`aigc_apps.serve.tokens`): only its hash.

    Declared here, beside the models, so that the registry's schema (and its migrations)
    know every table of the core store without importing the HTTP service.
    """

    __tablename__ = "aigc_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(Text, default="[]")  # a JSON list
    # who the token acts as (support agents); NULL on tokens created before: their name
    agent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


stamp_table(RegistryBase.metadata)


def models_stamp(app: str) -> str:
    """The stamp key bumped by every change to ``app``'s registered models."""
    return f"models:{app}"


SCHEMA = StoreSchema(
    app=STORE,
    metadata=RegistryBase.metadata,
    versions=Path(__file__).resolve().parent / "migrations" / "registry",
    legacy_tables=("aigc_adapters",),
    baseline="registry_0001",
)


@dataclass(frozen=True)
class ModelEntry:
    """One registered model (a plain copy, safe to use after the session closed).

    ``metrics`` holds what training measured; ``info`` what the app needs to use the model
    again (e.g. the topic classifier paired with a sentiment classifier).
    """

    name: str
    app: str
    role: str
    base: str
    path: Path
    labels: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    data_hash: str = ""
    created_at: datetime | None = None
    active: bool = False

    @property
    def base_model(self) -> str:
        """Deprecated spelling of :attr:`base` (the adapter registry's)."""
        return self.base

    @property
    def task(self) -> str:
        """Deprecated: the adapter registry's task is the entry's role."""
        return self.role

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["created_at"] = self.created_at.isoformat() if self.created_at else None
        return data

    @classmethod
    def _from_row(cls, row: ModelRow) -> ModelEntry:
        return cls(
            name=row.name,
            app=row.app,
            role=row.role,
            base=row.base,
            path=Path(row.path),
            labels=list(json.loads(row.labels or "[]")),
            metrics=dict(json.loads(row.metrics or "{}")),
            info=dict(json.loads(row.info or "{}")),
            data_hash=row.data_hash,
            created_at=row.created_at,
            active=bool(row.active),
        )


class RegistryStore:
    """A client of the core (registry) store: ``url`` or the workspace's, opened lazily."""

    def __init__(self, url: str | None = None, *, settings: Settings | None = None) -> None:
        self.url = url
        self.settings = settings or get_settings()
        self._lock = threading.RLock()  # for the lazy attributes (aigc_apps.lazy)

    @lazy
    def db(self) -> Database:
        """The store's database, opened (and migrated) once, safely from any thread; once
        open, reading it takes no lock."""
        return Database.open(SCHEMA, self.url or self.settings.db_url(STORE))

    def ping(self) -> None:
        """Raise unless the store's database answers (what ``/readyz`` checks)."""
        self.db.ping()

    def close(self) -> None:
        """Release the connections; the next use opens the database again."""
        with self._lock:
            db = self.__dict__.pop("db", None)
        if db is not None:
            db.dispose()


class ModelRegistry(RegistryStore):
    """Register, list, activate and delete trained models of every app.

    Opening is lazy: the database is reached on the first call, not in ``__init__``.

    >>> registry = ModelRegistry(url="sqlite:///:memory:")
    >>> registry.active("sentiment", "sentiment") is None
    True
    """

    def register(
        self,
        name: str,
        path: str | Path,
        *,
        app: str,
        role: str,
        base: str,
        labels: list[str] | None = None,
        metrics: dict[str, Any] | None = None,
        info: dict[str, Any] | None = None,
        data_hash: str = "",
        activate: bool = True,
        replace: bool = True,
    ) -> ModelEntry:
        """Add ``name`` (or replace what it pointed to) and, by default, make it active.

        ``replace=False`` refuses a name that exists (:class:`NameTakenError`): two writers
        choosing the next free name cannot overwrite each other's entry.
        """
        if not name.strip():
            raise AigcError("a model needs a non-empty name")
        values: dict[str, Any] = {
            "app": app,
            "role": role,
            "base": base,
            "path": str(Path(path).resolve()),
            "labels": json.dumps(list(labels or [])),
            "metrics": json.dumps(metrics or {}, default=float),
            "info": json.dumps(info or {}, default=str),
            "data_hash": data_hash,
            "created_at": utcnow(),
        }
        with self.db.session() as s:
            row = s.get(ModelRow, name)
            if row is not None and not replace:
                raise NameTakenError(f"model {name!r} is already registered")
            if row is None:
                row = ModelRow(name=name, active=False, **values)
                s.add(row)
                try:
                    s.flush()  # a concurrent writer of the same name fails here
                except IntegrityError:
                    raise NameTakenError(f"model {name!r} is already registered") from None
            else:
                if row.active and (row.app, row.role) != (app, role):
                    row.active = False
                if row.app != app:  # moved: its old app loses a model
                    bump(s, models_stamp(row.app))
                for key, value in values.items():
                    setattr(row, key, value)
            s.flush()
            if activate:
                _activate(s, row)
            bump(s, models_stamp(app))  # a new or replaced entry, maybe the active one
            return ModelEntry._from_row(row)

    def list(self, app: str | None = None, role: str | None = None) -> list[ModelEntry]:
        """Entries, newest first, optionally of one app and/or role."""
        query = select(ModelRow).order_by(ModelRow.created_at.desc(), ModelRow.name)
        if app:
            query = query.where(ModelRow.app == app)
        if role:
            query = query.where(ModelRow.role == role)
        with self.db.session() as s:
            return [ModelEntry._from_row(r) for r in s.scalars(query)]

    def get(self, name: str) -> ModelEntry:
        with self.db.session() as s:
            return ModelEntry._from_row(_row(s, name))

    def active(self, app: str, role: str) -> ModelEntry | None:
        """The model ``app`` uses for ``role``, None when none is active."""
        query = select(ModelRow).where(
            ModelRow.app == app, ModelRow.role == role, ModelRow.active.is_(True)
        )
        with self.db.session() as s:
            row = s.scalars(query).first()
            return ModelEntry._from_row(row) if row is not None else None

    def activate(self, name: str) -> ModelEntry:
        """Make ``name`` the active model of its (app, role); the previous one steps down."""
        with self.db.session() as s:
            row = _row(s, name)
            _activate(s, row)
            bump(s, models_stamp(row.app))
            return ModelEntry._from_row(row)

    def delete(self, name: str, *, force: bool = False, remove_files: bool = True) -> ModelEntry:
        """Forget ``name`` and (after the commit) delete its folder.

        An active entry is what its app is serving: deleting it needs ``force``.
        """
        with self.db.session() as s:
            row = _row(s, name)
            entry = ModelEntry._from_row(row)
            if entry.active and not force:
                raise AigcError(
                    f"model {name!r} is the active {entry.app} {entry.role} model: activate "
                    "another one first, or delete it anyway with --force"
                )
            s.delete(row)
            bump(s, models_stamp(entry.app))
        if remove_files and entry.path.is_dir():
            shutil.rmtree(entry.path, ignore_errors=True)
        return entry

    def freshness(self, app: str) -> Freshness:
        """A :class:`Freshness` of ``app``'s models: its ``check()`` is True when any of
        them was registered, activated or deleted (here or elsewhere) since the last."""
        return Freshness(lambda: self.db, models_stamp(app))


def _row(s: Any, name: str) -> ModelRow:
    row = s.get(ModelRow, name)
    if row is None:
        raise NotFoundError(f"model {name!r} is not registered (see `aigc models list`)")
    return row


def _activate(s: Any, row: ModelRow) -> None:
    s.execute(
        update(ModelRow)
        .where(ModelRow.app == row.app, ModelRow.role == row.role, ModelRow.name != row.name)
        .values(active=False)
    )
    s.flush()
    row.active = True
    s.flush()

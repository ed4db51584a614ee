"""The recommender's tables: catalogue items and behaviour events.

Events carry a ``dedup_key`` (hash of user, item, type and timestamp) with a unique
constraint, so re-ingesting the same export never stores an interaction twice. Trained
models are entries of the core's :class:`~aigc_apps.registry.ModelRegistry`; ``rec_models``
only keeps what 0.1.0 recorded there, until it has been imported.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aigc_apps.migrations import StoreSchema
from aigc_apps.stamps import stamp_table
from aigc_apps.store import Database, app_metadata, utcnow

APP = "recommend"


class Base(DeclarativeBase):
    metadata = app_metadata()


class RecItem(Base):
    """One catalogue item; ``tags`` is a '|'-joined list, ``extra`` the other columns as JSON."""

    __tablename__ = "rec_items"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    title: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[str] = mapped_column(Text, default="{}")
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # set by a withdrawal (DELETE /v1/recommend/items/{id}, ``aigc recommend withdraw``):
    # the item and its events stay (history and training signal), it is never recommended
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def tag_list(self) -> list[str]:
        return [t for t in self.tags.split("|") if t]


class RecEvent(Base):
    """A user's interaction with an item; ``ts`` is seconds since the Unix epoch (UTC)."""

    __tablename__ = "rec_events"
    __table_args__ = (
        Index("ix_rec_events_user_ts", "user_id", "ts"),
        # "has this user an event newer than the cached list?" is one index seek
        Index("ix_rec_events_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(200), index=True)
    item_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("rec_items.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(40), default="interaction")
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    rating: Mapped[float | None] = mapped_column(Float, nullable=True)
    ts: Mapped[float] = mapped_column(Float)
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)


class RecCacheEntry(Base):
    """A user's top-``k`` as last computed (see :mod:`.cache`): the items with scores and
    reasons as JSON, and what they were computed from (the model, the catalogue's generation,
    the user's newest event), so a reader can tell a stale entry without a second query."""

    __tablename__ = "rec_cache"

    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    k: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_key: Mapped[str] = mapped_column(String(64))
    catalog_gen: Mapped[int] = mapped_column(Integer)
    last_event_id: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[float] = mapped_column(Float)
    payload: Mapped[str] = mapped_column(Text)


class RecModel(Base):
    """Deprecated (0.1.0's record of trained versions; removed in the next release).

    Nothing writes new versions here any more: :class:`~.service.RecommenderService`
    imports each row once into the model registry (as ``recommend-<id>``) and notes the
    entry's name in ``registry_name``, so an entry deleted later does not come back. The
    table stays because its rows may live in another database than the registry.
    """

    __tablename__ = "rec_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    path: Mapped[str] = mapped_column(Text)
    n_items: Mapped[int] = mapped_column(Integer)
    n_users: Mapped[int] = mapped_column(Integer)
    n_events: Mapped[int] = mapped_column(Integer)
    train_seconds: Mapped[float] = mapped_column(Float)
    info: Mapped[str] = mapped_column(Text, default="{}")
    registry_name: Mapped[str | None] = mapped_column(String(200), nullable=True)


# Generation stamps of this store (:mod:`aigc_apps.stamps`): ``catalog`` moves with every
# write of items, in the writing transaction.
STAMPS = "rec_stamps"
CATALOG_STAMP = "catalog"
stamp_table(Base.metadata, STAMPS)

SCHEMA = StoreSchema.beside(__file__, APP, Base.metadata, ("rec_items", "rec_events"))


def open_db(url: str | None = None) -> Database:
    """The app's database (``--db URL`` or the workspace default), schema up to date."""
    return Database.open(SCHEMA, url)


def counts(db: Database) -> dict[str, int]:
    """Rows per table, for reports."""
    with db.session() as s:
        return {
            "items": s.scalar(select(func.count()).select_from(RecItem)) or 0,
            "events": s.scalar(select(func.count()).select_from(RecEvent)) or 0,
            "users": s.scalar(select(func.count(func.distinct(RecEvent.user_id)))) or 0,
        }

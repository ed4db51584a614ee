"""A small catalogue of trained adapters so apps can pick one by name.

Rows live in ``aigc_adapters`` in the ``registry`` store (``get_settings().db_url("registry")``:
a SQLite file in the workspace, or a shared PostgreSQL). The adapter files stay on disk;
the registry only remembers where they are and how they were made.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aigc_apps.errors import NotFoundError
from aigc_apps.settings import Settings, get_settings
from aigc_apps.store import Database, utcnow


class _Base(DeclarativeBase):
    pass


class AdapterRow(_Base):
    __tablename__ = "aigc_adapters"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    base_model: Mapped[str] = mapped_column(Text)
    task: Mapped[str] = mapped_column(String(32))
    data_hash: Mapped[str] = mapped_column(String(64), default="")
    metrics: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class AdapterInfo:
    """One registered adapter (a plain copy, safe to use after the session closed)."""

    name: str
    path: Path
    base_model: str
    task: str
    data_hash: str
    metrics: dict[str, Any]
    created_at: datetime

    @classmethod
    def _from_row(cls, row: AdapterRow) -> AdapterInfo:
        return cls(
            name=row.name,
            path=Path(row.path),
            base_model=row.base_model,
            task=row.task,
            data_hash=row.data_hash,
            metrics=json.loads(row.metrics or "{}"),
            created_at=row.created_at,
        )


class AdapterRegistry:
    """``register`` (upsert by name), ``list``, ``get`` and ``delete`` trained adapters.

    >>> reg = AdapterRegistry(url="sqlite:///:memory:")
    """

    def __init__(self, settings: Settings | None = None, *, url: str | None = None) -> None:
        self.settings = settings or get_settings()
        self.db = Database(url or self.settings.db_url("registry"))
        self.db.migrate("registry", _Base)

    def register(
        self,
        name: str,
        path: str | Path,
        *,
        base_model: str,
        task: str,
        data_hash: str = "",
        metrics: dict[str, Any] | None = None,
    ) -> AdapterInfo:
        """Add ``name`` or replace what it pointed to (re-training under the same name)."""
        values = {
            "path": str(Path(path).resolve()),
            "base_model": base_model,
            "task": task,
            "data_hash": data_hash,
            "metrics": json.dumps(metrics or {}, default=float),
            "created_at": utcnow(),
        }
        with self.db.session() as s:
            row = s.get(AdapterRow, name)
            if row is None:
                row = AdapterRow(name=name, **values)
                s.add(row)
            else:
                for key, value in values.items():
                    setattr(row, key, value)
            s.flush()
            return AdapterInfo._from_row(row)

    def list(self, task: str | None = None) -> list[AdapterInfo]:
        """All adapters, newest first, optionally only one task's."""
        query = select(AdapterRow).order_by(AdapterRow.created_at.desc(), AdapterRow.name)
        if task:
            query = query.where(AdapterRow.task == task)
        with self.db.session() as s:
            return [AdapterInfo._from_row(r) for r in s.scalars(query)]

    def get(self, name: str) -> AdapterInfo:
        with self.db.session() as s:
            row = s.get(AdapterRow, name)
            if row is None:
                raise NotFoundError(f"adapter {name!r} is not registered")
            return AdapterInfo._from_row(row)

    def delete(self, name: str, *, remove_files: bool = False) -> AdapterInfo:
        """Forget ``name``; with ``remove_files`` also delete its folder (after the commit)."""
        with self.db.session() as s:
            row = s.get(AdapterRow, name)
            if row is None:
                raise NotFoundError(f"adapter {name!r} is not registered")
            info = AdapterInfo._from_row(row)
            s.delete(row)
        if remove_files and info.path.is_dir():
            shutil.rmtree(info.path)
        return info

    def close(self) -> None:
        self.db.dispose()

"""One model registry for every app: ``aigc_models`` replaces ``aigc_adapters``.

Each adapter becomes an entry. Sentiment classifiers kept their app, role, labels and paired
topic model inside ``metrics``; those move to their own columns. The newest entry of each
(app, role) becomes active, which is the model every app used before.

Revision ID: registry_0002
Revises: registry_0001
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "registry_0002"
down_revision = "registry_0001"
branch_labels = None
depends_on = None

_INFO_KEYS = ("topic_model",)


def _entry(row: Any) -> dict[str, Any]:
    metrics = json.loads(row.metrics or "{}")
    app = metrics.pop("app", None) or "core"
    role = metrics.pop("role", None)
    if app == "sentiment":
        role = role or "sentiment"
    labels = metrics.pop("labels", None) or []
    info = {key: metrics.pop(key) for key in _INFO_KEYS if metrics.get(key) is not None}
    for key in _INFO_KEYS:
        metrics.pop(key, None)
    return {
        "name": row.name,
        "app": app,
        "role": role or row.task,
        "base": row.base_model,
        "path": row.path,
        "labels": json.dumps(labels),
        "metrics": json.dumps(metrics),
        "info": json.dumps(info),
        "data_hash": row.data_hash or "",
        "created_at": row.created_at,
        "active": False,
    }


def upgrade() -> None:
    models = op.create_table(
        "aigc_models",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("base", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("info", sa.Text(), nullable=False),
        sa.Column("data_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_aigc_models_app_role", "aigc_models", ["app", "role"])
    op.create_index(
        "uq_aigc_models_active",
        "aigc_models",
        ["app", "role"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )
    conn = op.get_bind()
    adapters = sa.Table("aigc_adapters", sa.MetaData(), autoload_with=conn)  # typed dates
    rows = conn.execute(sa.select(adapters).order_by(adapters.c.created_at, adapters.c.name))
    entries = [_entry(row) for row in rows]
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        newest[(entry["app"], entry["role"])] = entry
    for entry in newest.values():
        entry["active"] = True
    if entries:
        op.bulk_insert(models, entries)
    op.drop_table("aigc_adapters")


def downgrade() -> None:
    adapters = op.create_table(
        "aigc_adapters",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("base_model", sa.Text(), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("data_hash", sa.String(64), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    conn = op.get_bind()
    models = sa.Table("aigc_models", sa.MetaData(), autoload_with=conn)
    rows = conn.execute(sa.select(models)).all()
    back = []
    for row in rows:
        metrics = json.loads(row.metrics or "{}") | json.loads(row.info or "{}")
        metrics |= {"app": row.app, "role": row.role, "labels": json.loads(row.labels or "[]")}
        task = "classify" if row.role in ("sentiment", "topic", "classify") else row.role
        back.append(
            {
                "name": row.name,
                "path": row.path,
                "base_model": row.base,
                "task": task[:32],
                "data_hash": row.data_hash,
                "metrics": json.dumps(metrics),
                "created_at": row.created_at,
            }
        )
    if back:
        op.bulk_insert(adapters, back)
    op.drop_index("uq_aigc_models_active", table_name="aigc_models")
    op.drop_index("ix_aigc_models_app_role", table_name="aigc_models")
    op.drop_table("aigc_models")

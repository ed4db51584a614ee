"""Baseline: the recommend schema as released up to 0.1.0 (commit e30be2b).

Databases made by 0.1.0 (tables present, no version table) are stamped at this revision.

Revision ID: recommend_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recommend_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rec_items",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("rec_items_pkey")),
    )
    op.create_table(
        "rec_models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("n_users", sa.Integer(), nullable=False),
        sa.Column("n_events", sa.Integer(), nullable=False),
        sa.Column("train_seconds", sa.Float(), nullable=False),
        sa.Column("info", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("rec_models_pkey")),
    )
    op.create_table(
        "rec_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("item_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("rating", sa.Float(), nullable=True),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["rec_items.id"], name=op.f("rec_events_item_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("rec_events_pkey")),
        sa.UniqueConstraint("dedup_key", name=op.f("rec_events_dedup_key_key")),
    )
    op.create_index(op.f("ix_rec_events_item_id"), "rec_events", ["item_id"], unique=False)
    op.create_index(op.f("ix_rec_events_user_id"), "rec_events", ["user_id"], unique=False)
    op.create_index("ix_rec_events_user_ts", "rec_events", ["user_id", "ts"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_rec_events_user_ts", table_name="rec_events")
    op.drop_index(op.f("ix_rec_events_user_id"), table_name="rec_events")
    op.drop_index(op.f("ix_rec_events_item_id"), table_name="rec_events")
    op.drop_table("rec_events")
    op.drop_table("rec_models")
    op.drop_table("rec_items")

"""Prompt-injection guard: passages held back at ingest, answers held back at answer time.

Two new tables; nothing existing changes, so the upgrade keeps every row as it is. A
knowledge base ingested before this revision can be screened with
``aigc support quarantine scan``.

Revision ID: support_0003
Revises: support_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "support_0003"
down_revision = "support_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "support_quarantine",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_kind", sa.String(length=16), nullable=False),
        sa.Column("source_uri", sa.String(length=1000), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("intent", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("support_quarantine_pkey")),
        sa.UniqueConstraint(
            "source_kind",
            "source_uri",
            "content_hash",
            name=op.f("support_quarantine_source_kind_source_uri_content_hash_key"),
        ),
    )
    op.create_index(
        op.f("ix_support_quarantine_status"), "support_quarantine", ["status"], unique=False
    )
    op.create_table(
        "support_blocked_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("turn_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("entry_ids", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["turn_id"],
            ["support_turns.id"],
            name=op.f("support_blocked_answers_turn_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("support_blocked_answers_pkey")),
        sa.UniqueConstraint("turn_id", name=op.f("support_blocked_answers_turn_id_key")),
    )


def downgrade() -> None:
    op.drop_table("support_blocked_answers")
    op.drop_index(op.f("ix_support_quarantine_status"), table_name="support_quarantine")
    op.drop_table("support_quarantine")

"""Baseline: the support schema as released up to 0.1.0 (commit e30be2b).

Databases made by 0.1.0 (tables present, no version table) are stamped at this revision.

Revision ID: support_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "support_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "support_intents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("support_intents_pkey")),
        sa.UniqueConstraint("name", name=op.f("support_intents_name_key")),
    )
    op.create_table(
        "support_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handoff", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("support_sessions_pkey")),
    )
    op.create_table(
        "support_settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("support_settings_pkey")),
    )
    op.create_table(
        "support_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("uri", sa.String(length=1000), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("support_sources_pkey")),
        sa.UniqueConstraint("kind", "uri", name=op.f("support_sources_kind_uri_key")),
    )
    op.create_table(
        "support_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("intent_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["intent_id"],
            ["support_intents.id"],
            name=op.f("support_entries_intent_id_fkey"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["support_sources.id"],
            name=op.f("support_entries_source_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("support_entries_pkey")),
        sa.UniqueConstraint(
            "source_id", "content_hash", name=op.f("support_entries_source_id_content_hash_key")
        ),
    )
    op.create_index(
        op.f("ix_support_entries_intent_id"), "support_entries", ["intent_id"], unique=False
    )
    op.create_table(
        "support_turns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("path", sa.String(length=16), nullable=False),
        sa.Column("intent", sa.String(length=200), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("retrieved_ids", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["support_sessions.id"],
            name=op.f("support_turns_session_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("support_turns_pkey")),
        sa.UniqueConstraint(
            "session_id", "number", name=op.f("support_turns_session_id_number_key")
        ),
    )
    op.create_table(
        "support_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("turn_id", sa.Integer(), nullable=False),
        sa.Column("good", sa.Boolean(), nullable=False),
        sa.Column("correct_answer", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["turn_id"],
            ["support_turns.id"],
            name=op.f("support_feedback_turn_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("support_feedback_pkey")),
    )


def downgrade() -> None:
    op.drop_table("support_feedback")
    op.drop_table("support_turns")
    op.drop_index(op.f("ix_support_entries_intent_id"), table_name="support_entries")
    op.drop_table("support_entries")
    op.drop_table("support_sources")
    op.drop_table("support_settings")
    op.drop_table("support_sessions")
    op.drop_table("support_intents")

"""Baseline: the sentiment schema as released up to 0.1.0 (commit e30be2b).

Databases made by 0.1.0 (tables present, no version table) are stamped at this revision.

Revision ID: sentiment_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sentiment_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sentiment_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("signals", sa.String(length=100), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bucket_seconds", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("negative_share", sa.Float(), nullable=False),
        sa.Column("baseline_share", sa.Float(), nullable=False),
        sa.Column("baseline_count", sa.Float(), nullable=False),
        sa.Column("z_share", sa.Float(), nullable=False),
        sa.Column("z_volume", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("webhook_status", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("sentiment_alerts_pkey")),
        sa.UniqueConstraint("topic", "bucket_start", name="uq_sentiment_alerts_bucket"),
    )
    op.create_table(
        "sentiment_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("ext_id", sa.String(length=500), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("p_negative", sa.Float(), nullable=False),
        sa.Column("p_neutral", sa.Float(), nullable=False),
        sa.Column("p_positive", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("sentiment_records_pkey")),
        sa.UniqueConstraint("ext_id", name="uq_sentiment_records_ext_id"),
        sa.UniqueConstraint("source", "text_hash", name="uq_sentiment_records_text"),
    )
    op.create_index("ix_sentiment_records_ts", "sentiment_records", ["ts"], unique=False)
    op.create_table(
        "sentiment_topics",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("keywords_json", sa.Text(), nullable=False),
        sa.Column("rule_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("sentiment_topics_pkey")),
    )
    op.create_table(
        "sentiment_record_topics",
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["sentiment_records.id"],
            name=op.f("sentiment_record_topics_record_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("record_id", "topic", name=op.f("sentiment_record_topics_pkey")),
    )
    op.create_index(
        "ix_sentiment_record_topics_topic", "sentiment_record_topics", ["topic"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_sentiment_record_topics_topic", table_name="sentiment_record_topics")
    op.drop_table("sentiment_record_topics")
    op.drop_table("sentiment_topics")
    op.drop_index("ix_sentiment_records_ts", table_name="sentiment_records")
    op.drop_table("sentiment_records")
    op.drop_table("sentiment_alerts")

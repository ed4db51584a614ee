"""Recommendations served from a cache, and items that can be withdrawn.

- ``rec_cache``: each user's top-``k`` as last computed, with what it was computed from
  (see :mod:`apps.recommender.cache`); every worker and machine on the store reads the same.
- ``rec_items.withdrawn_at``: a withdrawn item keeps its row and events, and is never
  recommended again.
- ``ix_rec_events_user_id_id``: whether a user has an event newer than their cached list is
  one index seek.

Revision ID: recommend_0005
Revises: recommend_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recommend_0005"
down_revision = "recommend_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rec_cache",
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.String(64), nullable=False),
        sa.Column("catalog_gen", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.Float(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "k", name="rec_cache_pkey"),
    )
    with op.batch_alter_table("rec_items") as batch:
        batch.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_rec_events_user_id_id", "rec_events", ["user_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_rec_events_user_id_id", table_name="rec_events")
    with op.batch_alter_table("rec_items") as batch:
        batch.drop_column("withdrawn_at")
    op.drop_table("rec_cache")

"""Alerts remember how many buckets their surge pooled.

A surge spread over up to ``span`` buckets fires in its last one, with the count of all of
them; ``window_buckets`` says how many, so the documents behind an alert (dashboard, API)
are those of every pooled bucket, not only the last. Existing alerts get 1 (the width was
not stored; most alerts are single-bucket).

Revision ID: sentiment_0005
Revises: sentiment_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sentiment_0005"
down_revision = "sentiment_0004"
branch_labels = None
depends_on = None

TABLE = "sentiment_alerts"


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("window_buckets", sa.Integer(), nullable=False,
                                   server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("window_buckets")

"""Alerts are a webhook outbox: delivery state per alert, so a failed POST is retried.

Until now an alert was POSTed once and its ``webhook_status`` kept the outcome. The new
columns (``delivered_at``, ``attempts``, ``next_attempt_at``, ``last_error``) let any worker
retry with back-off (:mod:`aigc_apps.webhooks`). Existing alerts get ``attempts`` 0 and no
``next_attempt_at``: they had their one try and are not posted again after the upgrade.

Revision ID: sentiment_0004
Revises: sentiment_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sentiment_0004"
down_revision = "sentiment_0003"
branch_labels = None
depends_on = None

TABLE = "sentiment_alerts"
INDEX = "ix_sentiment_alerts_next_attempt_at"


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
    op.create_index(INDEX, TABLE, ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    with op.batch_alter_table(TABLE) as batch:
        for name in ("last_error", "next_attempt_at", "attempts", "delivered_at"):
            batch.drop_column(name)

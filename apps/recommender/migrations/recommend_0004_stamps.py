"""Generation stamps of the recommender store: ``rec_stamps`` (see :mod:`aigc_apps.stamps`).

Every write of catalogue items bumps ``catalog`` in the same transaction, so each worker of
``aigc serve --workers N`` learns with one primary-key SELECT per request that its served
model must take in items stored elsewhere. (The table is the store's own, not
``aigc_stamps``: the recommend store may share a PostgreSQL database with the core store.)

Revision ID: recommend_0004
Revises: recommend_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recommend_0004"
down_revision = "recommend_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rec_stamps",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="rec_stamps_pkey"),
    )


def downgrade() -> None:
    op.drop_table("rec_stamps")

"""Generation stamps of the core store: ``aigc_stamps`` (see :mod:`aigc_apps.stamps`).

The model registry bumps ``models:<app>`` whenever an entry of that app is registered,
activated or deleted, so every worker of ``aigc serve --workers N`` reloads its models
before its next answer instead of serving what it loaded at start.

Revision ID: registry_0005
Revises: registry_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "registry_0005"
down_revision = "registry_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aigc_stamps",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="aigc_stamps_pkey"),
    )


def downgrade() -> None:
    op.drop_table("aigc_stamps")

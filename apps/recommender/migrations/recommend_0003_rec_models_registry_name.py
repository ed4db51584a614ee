"""Note which registry entry each 0.1.0 ``rec_models`` row was imported as.

Trained recommenders are registry entries now; ``registry_name`` marks a row as imported,
so the import runs once per row and an entry deleted afterwards is not imported again.

Revision ID: recommend_0003
Revises: recommend_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recommend_0003"
down_revision = "recommend_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rec_models") as batch:
        batch.add_column(sa.Column("registry_name", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rec_models") as batch:
        batch.drop_column("registry_name")

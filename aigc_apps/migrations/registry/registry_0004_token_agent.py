"""API tokens name the agent they act as: ``aigc_tokens.agent``.

A ``support:agent`` token used to act as whatever agent a request named; now it acts as
its own agent (``aigc tokens create --agent NAME``). Existing tokens get NULL, read as the
token's name.

Revision ID: registry_0004
Revises: registry_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "registry_0004"
down_revision = "registry_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("aigc_tokens") as batch:
        batch.add_column(sa.Column("agent", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("aigc_tokens") as batch:
        batch.drop_column("agent")

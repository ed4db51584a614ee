"""API tokens of ``aigc serve``: ``aigc_tokens`` keeps each token's name, scopes and hash.

The plaintext token is shown once by ``aigc tokens create`` and never stored.

Revision ID: registry_0003
Revises: registry_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "registry_0003"
down_revision = "registry_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aigc_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="aigc_tokens_pkey"),
        sa.UniqueConstraint("name", name="aigc_tokens_name_key"),
        sa.UniqueConstraint("token_hash", name="aigc_tokens_token_hash_key"),
    )


def downgrade() -> None:
    op.drop_table("aigc_tokens")

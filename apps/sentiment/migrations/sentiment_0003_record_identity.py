"""A record's id is unique within its source, not across every source.

0.1.0 made ``ext_id`` unique over the whole table, so a second feed whose ids collided with
another feed's (reuters ``1``-``3`` after headlines ``1``-``3``) lost all its records as
"duplicates". The id is now unique per ``source``, and the same id with the same text from
another source (a re-sent copy) stays a duplicate. Every stored row already satisfies both
new constraints (they are weaker than the old one), so the upgrade keeps every row.

Revision ID: sentiment_0003
Revises: sentiment_0002
"""

from __future__ import annotations

from alembic import op

from aigc_apps.store import NAMING_CONVENTION

revision = "sentiment_0003"
down_revision = "sentiment_0002"
branch_labels = None
depends_on = None

TABLE = "sentiment_records"


def upgrade() -> None:
    with op.batch_alter_table(TABLE, naming_convention=NAMING_CONVENTION) as batch:
        batch.drop_constraint("uq_sentiment_records_ext_id", type_="unique")
        batch.create_unique_constraint(
            op.f("sentiment_records_source_ext_id_key"), ["source", "ext_id"]
        )
        batch.create_unique_constraint(
            op.f("sentiment_records_ext_id_text_hash_key"), ["ext_id", "text_hash"]
        )


def downgrade() -> None:
    # fails (as it must) once two sources have stored records under the same id
    with op.batch_alter_table(TABLE, naming_convention=NAMING_CONVENTION) as batch:
        batch.drop_constraint(op.f("sentiment_records_ext_id_text_hash_key"), type_="unique")
        batch.drop_constraint(op.f("sentiment_records_source_ext_id_key"), type_="unique")
        batch.create_unique_constraint("uq_sentiment_records_ext_id", ["ext_id"])

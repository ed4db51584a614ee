"""Human handoff: conversation states, the message log, transitions (the webhook outbox)
and agents' answers proposed for the knowledge base.

Existing sessions start in state ``bot`` (their old ``handoff`` flag is kept as it was), and
their turns are copied into the message log so that agents and pages see whole histories.

Revision ID: support_0004
Revises: support_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "support_0004"
down_revision = "support_0003"
branch_labels = None
depends_on = None

SESSION_COLUMNS = (
    sa.Column("state", sa.String(length=16), nullable=False, server_default="bot"),
    sa.Column("agent", sa.String(length=200), nullable=True),
    sa.Column("state_since", sa.DateTime(timezone=True), nullable=True),
    sa.Column("handoff_reason", sa.String(length=200), nullable=True),
    sa.Column("intent_guess", sa.String(length=200), nullable=True),
    sa.Column("unsure_streak", sa.Integer(), nullable=False, server_default="0"),
)


def _session_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["session_id"],
        ["support_sessions.id"],
        name=op.f(f"{table}_session_id_fkey"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    with op.batch_alter_table("support_sessions") as batch:
        for column in SESSION_COLUMNS:
            batch.add_column(column)
    op.create_index(op.f("ix_support_sessions_state"), "support_sessions", ["state"])
    op.create_table(
        "support_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=True),
        sa.Column("sources", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _session_fk("support_messages"),
        sa.PrimaryKeyConstraint("id", name=op.f("support_messages_pkey")),
    )
    op.create_index(op.f("ix_support_messages_session_id"), "support_messages", ["session_id"])
    op.create_table(
        "support_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        _session_fk("support_transitions"),
        sa.PrimaryKeyConstraint("id", name=op.f("support_transitions_pkey")),
    )
    for name in ("session_id", "next_attempt_at"):
        op.create_index(
            op.f(f"ix_support_transitions_{name}"), "support_transitions", [name]
        )
    op.create_table(
        "support_suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("reply_id", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("intent", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        _session_fk("support_suggestions"),
        sa.ForeignKeyConstraint(
            ["reply_id"],
            ["support_messages.id"],
            name=op.f("support_suggestions_reply_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("support_suggestions_pkey")),
        sa.UniqueConstraint("reply_id", name=op.f("support_suggestions_reply_id_key")),
    )
    for name in ("session_id", "status"):
        op.create_index(
            op.f(f"ix_support_suggestions_{name}"), "support_suggestions", [name]
        )
    _copy_turns()


def _copy_turns() -> None:
    """Each old turn becomes a customer message and then a bot message, in turn order."""
    op.execute(
        "INSERT INTO support_messages (session_id, role, text, sources, created_at) "
        "SELECT session_id, role, text, '[]', created_at FROM ("
        " SELECT session_id, number, 0 AS k, 'customer' AS role, question AS text, created_at"
        " FROM support_turns UNION ALL"
        " SELECT session_id, number, 1, 'bot', answer, created_at FROM support_turns"
        ") AS t ORDER BY created_at, session_id, number, k"
    )


def downgrade() -> None:
    op.drop_table("support_suggestions")
    op.drop_table("support_transitions")
    op.drop_table("support_messages")
    op.drop_index(op.f("ix_support_sessions_state"), table_name="support_sessions")
    with op.batch_alter_table("support_sessions") as batch:
        for column in SESSION_COLUMNS:
            batch.drop_column(column.name)


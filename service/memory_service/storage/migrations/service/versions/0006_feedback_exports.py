"""Feedback on memories and memory exports (the mem0 Platform dialect's feedback and exports).

- memory_feedback: one row per feedback given (POSITIVE, NEGATIVE, VERY_NEGATIVE or none, and a
  reason), kept per memory and owner; a user's erasure removes it with the user's memories.
- memory_exports: an export request (the client's schema and filters), evaluated when read, so an
  export never holds a copy of memories that were deleted or erased since.

Revision ID: 0006_feedback_exports
Revises: 0005_console_sessions
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0006_feedback_exports"
down_revision = "0005_console_sessions"
branch_labels = None
depends_on = None

STATEMENTS = (
    """
    CREATE TABLE IF NOT EXISTS memory_feedback (
        id uuid PRIMARY KEY,
        tenant text NOT NULL,
        memory_id uuid NOT NULL,
        user_key text NOT NULL,
        feedback text CHECK (feedback IN ('POSITIVE', 'NEGATIVE', 'VERY_NEGATIVE')),
        feedback_reason text,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    "CREATE INDEX IF NOT EXISTS memory_feedback_memory_idx ON memory_feedback (memory_id, created_at)",
    "CREATE INDEX IF NOT EXISTS memory_feedback_user_idx ON memory_feedback (user_key)",
    """
    CREATE TABLE IF NOT EXISTS memory_exports (
        id uuid PRIMARY KEY,
        tenant text NOT NULL,
        schema jsonb NOT NULL,
        filters jsonb,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    "CREATE INDEX IF NOT EXISTS memory_exports_tenant_idx ON memory_exports (tenant, created_at)",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("migrations are additive; restore the backup taken before the upgrade")

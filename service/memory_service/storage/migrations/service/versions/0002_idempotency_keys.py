"""Idempotency keys of adds (`Idempotency-Key` on POST /v1/memories; storage/idempotency.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATEMENTS = (
    """
    CREATE TABLE IF NOT EXISTS idempotency_keys (
        tenant text NOT NULL,
        key text NOT NULL,
        fingerprint text NOT NULL,
        owner uuid NOT NULL,
        status integer,
        response jsonb,
        headers jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        locked_until timestamptz,
        PRIMARY KEY (tenant, key)
    )
    """,
    "CREATE INDEX IF NOT EXISTS idempotency_keys_created_idx ON idempotency_keys (created_at)",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("migrations are additive; restore the backup taken before the upgrade")

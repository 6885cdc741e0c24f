"""Baseline: the service's own tables as release 1.0.0 created them.

Written idempotently (IF NOT EXISTS), so that a database made by 1.0.0, which had no version
table, is adopted as it is: nothing is dropped or rewritten.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATEMENTS = (
    """
    CREATE TABLE IF NOT EXISTS api_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        key_hash text NOT NULL UNIQUE,
        prefix text NOT NULL,
        tenant text NOT NULL,
        role text NOT NULL CHECK (role IN ('user', 'admin')),
        name text,
        rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0),
        well_known boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS api_keys_tenant_idx ON api_keys (tenant)
    """,
    """
    CREATE TABLE IF NOT EXISTS memory_history (
        id uuid PRIMARY KEY,
        memory_id text NOT NULL,
        user_key text,
        old_memory text,
        new_memory text,
        event text NOT NULL,
        created_at text,
        updated_at text,
        is_deleted boolean NOT NULL DEFAULT false,
        actor_id text,
        role text,
        recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS memory_history_memory_idx ON memory_history (memory_id, recorded_at)
    """,
    """
    CREATE INDEX IF NOT EXISTS memory_history_user_idx ON memory_history (user_key)
    """,
    """
    CREATE TABLE IF NOT EXISTS memory_messages (
        id bigserial PRIMARY KEY,
        session_scope text NOT NULL,
        user_key text,
        role text,
        content text,
        name text,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS memory_messages_scope_idx ON memory_messages (session_scope, id)
    """,
    """
    CREATE INDEX IF NOT EXISTS memory_messages_user_idx ON memory_messages (user_key)
    """,
    """
    CREATE TABLE IF NOT EXISTS graph_outbox (
        id bigserial PRIMARY KEY,
        op text NOT NULL,
        memory_id text,
        user_key text NOT NULL,
        enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        attempts integer NOT NULL DEFAULT 0,
        last_error text
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS jobs (
        id uuid PRIMARY KEY,
        tenant text NOT NULL,
        kind text NOT NULL,
        state text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
        request jsonb NOT NULL,
        result jsonb,
        error jsonb,
        attempts integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS jobs_queue_idx ON jobs (created_at) WHERE state IN ('queued', 'running')
    """,
    # 1.0.0 added these to jobs at start (asynchronous adds: retries and leases).
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS run_after timestamptz",
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS locked_until timestamptz",
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS worker text",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("migrations are additive; restore the backup taken before the upgrade")

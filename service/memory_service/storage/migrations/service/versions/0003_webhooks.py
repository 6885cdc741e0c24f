"""Webhooks: endpoints per tenant, events written with the change they describe, deliveries.

`webhook_events` is the outbox: a row is inserted in the transaction of the memory (or job)
change it describes, only when an enabled webhook of the tenant subscribes to its type, together
with one `webhook_deliveries` row per such webhook. Delivery workers claim due rows with
`FOR UPDATE SKIP LOCKED` (services/webhooks.py).

Revision ID: 0003_webhooks
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0003_webhooks"
down_revision = "0002"
branch_labels = None
depends_on = None

STATEMENTS = (
    """
    CREATE TABLE IF NOT EXISTS webhooks (
        id uuid PRIMARY KEY,
        tenant text NOT NULL,
        url text NOT NULL,
        description text,
        event_types text[] NOT NULL,
        enabled boolean NOT NULL DEFAULT true,
        format text NOT NULL DEFAULT 'standard' CHECK (format IN ('standard', 'mem0')),
        secret text NOT NULL,
        previous_secret text,
        previous_secret_expires_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    # The lookup every memory write makes: "does an enabled webhook of this tenant want this type?"
    """
    CREATE INDEX IF NOT EXISTS webhooks_tenant_idx ON webhooks (tenant) WHERE enabled
    """,
    """
    CREATE TABLE IF NOT EXISTS webhook_events (
        id uuid PRIMARY KEY,
        tenant text NOT NULL,
        type text NOT NULL,
        body json NOT NULL, -- json, not jsonb: the body keeps its key order (id, type, timestamp, ...)
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS webhook_deliveries (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        webhook_id uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
        event_id uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'succeeded', 'dead')),
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        retry_from timestamptz NOT NULL DEFAULT clock_timestamp(),
        claim uuid,
        last_attempt_at timestamptz,
        last_status integer,
        last_duration_ms double precision,
        last_error text,
        last_response text,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        finished_at timestamptz,
        UNIQUE (webhook_id, event_id)
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
        WHERE state = 'pending'
    """,
    """
    CREATE INDEX IF NOT EXISTS webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at, id)
    """,
    """
    CREATE INDEX IF NOT EXISTS webhook_deliveries_event_idx ON webhook_deliveries (event_id)
    """,
    """
    CREATE INDEX IF NOT EXISTS webhook_deliveries_finished_idx ON webhook_deliveries (finished_at)
        WHERE state <> 'pending'
    """,
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("migrations are additive; restore the backup taken before the upgrade")

"""Sessions of the web console (`/console`; storage/console_sessions.py).

A session is bound to the API key that signed in (its hash, so a revoked or rotated key ends
every session it opened), the key's tenant and role, and expires when idle and at an absolute
deadline. Only the SHA-256 of the session id is stored: a copy of this table opens no session.

Revision ID: 0005_console_sessions
Revises: 0004_operator_role
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0005_console_sessions"
down_revision = "0004_operator_role"
branch_labels = None
depends_on = None

STATEMENTS = (
    """
    CREATE TABLE IF NOT EXISTS console_sessions (
        id_hash text PRIMARY KEY,
        key_hash text NOT NULL,
        key_id text NOT NULL,
        tenant text NOT NULL,
        role text NOT NULL,
        csrf_token text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_seen_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        revoked_at timestamptz
    )
    """,
    "CREATE INDEX IF NOT EXISTS console_sessions_key_idx ON console_sessions (key_hash)",
    "CREATE INDEX IF NOT EXISTS console_sessions_expires_idx ON console_sessions (expires_at)",
    # The console lists a tenant's recent jobs, newest first.
    "CREATE INDEX IF NOT EXISTS jobs_tenant_created_idx ON jobs (tenant, created_at DESC, id DESC)",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("migrations are additive; restore the backup taken before the upgrade")

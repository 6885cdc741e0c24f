"""The operator role: keys that manage every tenant's keys (issue 19); admins manage their own.

Widens the role check of `api_keys` to admit 'operator'. Existing keys keep their role.

Revision ID: 0004_operator_role
Revises: 0003_webhooks
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0004_operator_role"
down_revision = "0003_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_role_check")
    op.execute("ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check CHECK (role IN ('user', 'admin', 'operator'))")


def downgrade() -> None:
    raise NotImplementedError("migrations are additive; restore the backup taken before the upgrade")

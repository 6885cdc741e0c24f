"""Search reads the vector of every row of a user: keep it in the row, not in TOAST.

pgvector declares its type EXTERNAL, so once a row passes Postgres's 2 kB TOAST threshold (384
floats are 1.5 kB; a payload of 500 bytes is enough) the vector moves out of line and every
distance computed costs a TOAST index lookup and two more page reads (measured: 1,568 buffer
reads for one user's 500 rows instead of about 40). MAIN keeps the vector in the row and lets
the payload, read only for the few results, be compressed or moved out first. It applies to rows
written from now on; a collection's existing rows keep their layout until rewritten (VACUUM FULL).

Revision ID: c0002_vector_inline
Revises: c0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import context, op

revision = "c0002_vector_inline"
down_revision = "c0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = context.config.attributes["collection"]  # a validated lower-case identifier (settings.py)
    op.execute(f'ALTER TABLE "{table}" ALTER COLUMN vector SET STORAGE MAIN')


def downgrade() -> None:
    raise NotImplementedError("migrations are additive; restore the backup taken before the upgrade")

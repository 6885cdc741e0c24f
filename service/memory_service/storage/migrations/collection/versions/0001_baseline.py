"""Baseline: a memory collection (mem0's pgvector table) and our indexes, as 1.0.0 created them.

The table and the vector dimension come from the configuration (COLLECTION_NAME, the embedder's
dimension); written idempotently so a 1.0.0 collection is adopted as it is.

Revision ID: c0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import context, op

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None

# (index suffix, definition after ON <table>)
INDEXES = (
    ("hnsw_idx", "USING hnsw (vector vector_cosine_ops)"),
    ("text_lemmatized_idx", "USING gin (to_tsvector('simple', payload->>'text_lemmatized'))"),
    ("user_created_idx", "((payload->>'user_id'), (payload->>'created_at'), id)"),
    ("tenant_idx", "((payload->>'tenant_id'))"),
    ("entities_idx", "USING gin ((payload->'entity_keys'))"),
)


def upgrade() -> None:
    table = context.config.attributes["collection"]  # a validated lower-case identifier (settings.py)
    dims = int(context.config.attributes["dims"])
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (id uuid PRIMARY KEY, vector vector({dims}), payload jsonb)')
    for suffix, definition in INDEXES:
        op.execute(f'CREATE INDEX IF NOT EXISTS "{table}_{suffix}" ON "{table}" {definition}')


def downgrade() -> None:
    raise NotImplementedError("migrations are additive; restore the backup taken before the upgrade")

"""Tables and indexes, created at start, idempotently, under an advisory lock.

The memory table is mem0's pgvector collection (same columns mem0 creates) so mem0 reads and
writes it unchanged; we add the indexes our queries need (listing by user, tenant counts, entity
lookups). Several workers or hosts may start at once: the advisory lock serialises them.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from memory_service.errors import StartupError

_LOCK_ID = 0x6D656D30  # "mem0"

_OWN_TABLES = """
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
);
CREATE INDEX IF NOT EXISTS api_keys_tenant_idx ON api_keys (tenant);

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
);
CREATE INDEX IF NOT EXISTS memory_history_memory_idx ON memory_history (memory_id, recorded_at);
CREATE INDEX IF NOT EXISTS memory_history_user_idx ON memory_history (user_key);

CREATE TABLE IF NOT EXISTS memory_messages (
    id bigserial PRIMARY KEY,
    session_scope text NOT NULL,
    user_key text,
    role text,
    content text,
    name text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS memory_messages_scope_idx ON memory_messages (session_scope, id);
CREATE INDEX IF NOT EXISTS memory_messages_user_idx ON memory_messages (user_key);

CREATE TABLE IF NOT EXISTS graph_outbox (
    id bigserial PRIMARY KEY,
    op text NOT NULL,
    memory_id text,
    user_key text NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts integer NOT NULL DEFAULT 0,
    last_error text
);

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
);
CREATE INDEX IF NOT EXISTS jobs_queue_idx ON jobs (created_at) WHERE state IN ('queued', 'running');
"""


def stored_dimension(conn: psycopg.Connection[Any], table: str) -> int | None:
    """Dimension of the `vector` column of the memory table, or None when it does not exist."""
    row = conn.execute(
        """
        SELECT a.atttypmod FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relname = %s AND a.attname = 'vector' AND NOT a.attisdropped
        """,
        (table,),
    ).fetchone()
    return None if row is None else int(row[0])


def dimension_mismatch_message(table: str, stored: int, configured: int, embedder: str) -> str:
    return (
        f"The memory collection '{table}' stores {stored}-dimensional vectors, but the configured "
        f"embedder ({embedder}) produces {configured}. Searching it would fail or return nonsense. "
        f"Either go back to the embedder that made the collection, or point COLLECTION_NAME at a "
        f"new collection (and re-add your memories), or set EMBEDDING_DIMS={stored} only if the "
        f"model really produces {stored} dimensions."
    )


def ensure_schema(conn: psycopg.Connection[Any], table: str, dims: int, embedder: str) -> None:
    """Create everything the service needs; refuse a collection made by another embedder."""
    col = sql.Identifier(table)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        stored = stored_dimension(conn, table)
        if stored is not None and stored != dims:
            raise StartupError(dimension_mismatch_message(table, stored, dims, embedder))
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (id uuid PRIMARY KEY, vector vector({}), payload jsonb)").format(
                col, sql.Literal(dims)
            )
        )
        for name, using in (
            ("hnsw_idx", "USING hnsw (vector vector_cosine_ops)"),
            ("text_lemmatized_idx", "USING gin (to_tsvector('simple', payload->>'text_lemmatized'))"),
            ("user_created_idx", "((payload->>'user_id'), (payload->>'created_at'), id)"),
            ("tenant_idx", "((payload->>'tenant_id'))"),
            ("entities_idx", "USING gin ((payload->'entity_keys'))"),
        ):
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} " + using).format(sql.Identifier(f"{table}_{name}"), col)
            )
        conn.execute(_OWN_TABLES)

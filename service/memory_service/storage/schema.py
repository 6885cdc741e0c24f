"""The schema at start: versioned migrations (storage/migrations) behind one embedding check.

The memory table is mem0's pgvector collection (same columns mem0 creates) so mem0 reads and
writes it unchanged; the migrations add the indexes our queries need. Several workers or hosts
may start at once: the migrations' advisory lock serialises them.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from memory_service.errors import StartupError
from memory_service.storage import migrations
from memory_service.storage.database import Database

_STORED_DIMENSION = """
SELECT a.atttypmod FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = :table AND a.attname = 'vector' AND NOT a.attisdropped
"""


def stored_dimension(db: Database, table: str) -> int | None:
    """Dimension of the `vector` column of the memory table, or None when it does not exist."""
    with db.connection() as conn:
        row = conn.execute(_STORED_DIMENSION.replace(":table", "%s"), (table,)).fetchone()
    return None if row is None else int(row[0])


def dimension_mismatch_message(table: str, stored: int, configured: int, embedder: str) -> str:
    return (
        f"The memory collection '{table}' stores {stored}-dimensional vectors, but the configured "
        f"embedder ({embedder}) produces {configured}. Searching it would fail or return nonsense. "
        f"Either go back to the embedder that made the collection, or point COLLECTION_NAME at a "
        f"new collection (and re-add your memories), or set EMBEDDING_DIMS={stored} only if the "
        f"model really produces {stored} dimensions."
    )


def ensure_schema(db: Database, table: str, dims: int, embedder: str) -> dict[str, str | None]:
    """Migrate to this release's schema; refuse (changing nothing) a collection made by another
    embedder. Returns the schema revisions now current."""

    def check_dimension(connection: Connection) -> None:
        row = connection.execute(text(_STORED_DIMENSION), {"table": table}).fetchone()
        if row is not None and int(row[0]) != dims:
            raise StartupError(dimension_mismatch_message(table, int(row[0]), dims, embedder))

    return migrations.upgrade(db.conninfo_in_use, table, dims, check_dimension)

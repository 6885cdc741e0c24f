"""mem0's history and message log, kept in Postgres instead of its local SQLite file.

mem0 writes history through an object with SQLiteManager's methods; this class has the same
methods over the shared Postgres, so several API hosts see one history. mem0 does not pass the
tenant to those methods, so they read the owner from the call context the engine sets around
each call (core/context.py): history rows carry their owner, which scopes the history
endpoint and lets a user erasure remove them.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from memory_service.core.context import current_call
from memory_service.storage.database import Database


def _owner() -> str | None:
    context = current_call()
    return context.user_key if context is not None else None


_INSERT = """
INSERT INTO memory_history
    (id, memory_id, user_key, old_memory, new_memory, event, created_at, updated_at, is_deleted, actor_id, role)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def insert_history(cursor: psycopg.Cursor[Any], rows: list[tuple[Any, ...]]) -> None:
    """History rows (the _INSERT columns, id first) written in the caller's transaction, for the
    bulk changes the memory table makes itself (storage/memory_table.py)."""
    if rows:
        cursor.executemany(_INSERT, rows)


def insert_history_records(cursor: psycopg.Cursor[Any], user_key: str | None, records: list[dict[str, Any]]) -> None:
    """History rows in the caller's transaction (mem0's add_history fields, plus the owner)."""
    rows = [
        (
            uuid.uuid4(),
            str(r.get("memory_id")),
            user_key,
            r.get("old_memory"),
            r.get("new_memory"),
            r.get("event"),
            r.get("created_at"),
            r.get("updated_at"),
            bool(r.get("is_deleted", 0)),
            r.get("actor_id"),
            r.get("role"),
        )
        for r in records
    ]
    insert_history(cursor, rows)


class PostgresHistory:
    """Drop-in for mem0.memory.storage.SQLiteManager, backed by the service's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_history(
        self,
        memory_id: str,
        old_memory: str | None,
        new_memory: str | None,
        event: str,
        *,
        created_at: str | None = None,
        updated_at: str | None = None,
        is_deleted: int = 0,
        actor_id: str | None = None,
        role: str | None = None,
    ) -> None:
        self.batch_add_history(
            [
                {
                    "memory_id": memory_id,
                    "old_memory": old_memory,
                    "new_memory": new_memory,
                    "event": event,
                    "created_at": created_at,
                    "updated_at": updated_at,
                    "is_deleted": is_deleted,
                    "actor_id": actor_id,
                    "role": role,
                }
            ]
        )

    def batch_add_history(self, records: list[dict[str, Any]]) -> None:
        user_key = _owner()
        with self.db.connection(write=True) as conn, conn.cursor() as cur:
            insert_history_records(cur, user_key, records)

    def get_history(self, memory_id: str) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            rows = conn.execute(
                """
                SELECT id, memory_id, old_memory, new_memory, event, created_at, updated_at,
                       is_deleted, actor_id, role, user_key
                FROM memory_history WHERE memory_id = %s ORDER BY recorded_at, id
                """,
                (memory_id,),
            ).fetchall()
        keys = (
            "id",
            "memory_id",
            "old_memory",
            "new_memory",
            "event",
            "created_at",
            "updated_at",
            "is_deleted",
            "actor_id",
            "role",
            "user_key",
        )
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def save_messages(self, messages: list[dict[str, Any]], session_scope: str) -> None:
        if not messages:
            return
        user_key = _owner()
        with self.db.connection(write=True) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO memory_messages (session_scope, user_key, role, content, name)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(session_scope, user_key, m.get("role"), m.get("content"), m.get("name")) for m in messages],
            )
            # mem0 keeps the last 10 messages of a session as context for the next extraction.
            cur.execute(
                """
                DELETE FROM memory_messages WHERE session_scope = %s AND id NOT IN (
                    SELECT id FROM memory_messages WHERE session_scope = %s ORDER BY id DESC LIMIT 10)
                """,
                (session_scope, session_scope),
            )

    def get_last_messages(self, session_scope: str, limit: int = 10) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            rows = conn.execute(
                """
                SELECT role, content, name, created_at FROM (
                    SELECT id, role, content, name, created_at FROM memory_messages
                    WHERE session_scope = %s ORDER BY id DESC LIMIT %s) recent
                ORDER BY id
                """,
                (session_scope, limit),
            ).fetchall()
        return [{"role": r[0], "content": r[1], "name": r[2], "created_at": r[3].isoformat()} for r in rows]

    def reset(self) -> None:
        with self.db.connection(write=True) as conn:
            conn.execute("TRUNCATE memory_history, memory_messages")

    def close(self) -> None:
        """The pool belongs to the service, not to mem0."""

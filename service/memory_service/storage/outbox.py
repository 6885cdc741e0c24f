"""Outbox rows, written in the caller's transaction with the memory change they describe.

A committed change can then never miss its projection, and a rolled-back one never gets one:
the graph projector (services/projector.py) drains these rows into Neo4j. Rows name *what*
changed (a memory, or a whole user after an erasure), not how, so replaying them is harmless.
"""

from __future__ import annotations

from typing import Any

import psycopg


def enqueue_memories(cursor: psycopg.Cursor[Any], items: list[tuple[str, str]]) -> None:
    """Record (memory_id, user_key) changes inside the caller's transaction."""
    if items:
        cursor.executemany("INSERT INTO graph_outbox (op, memory_id, user_key) VALUES ('memory', %s, %s)", items)


def enqueue_user(cursor: psycopg.Cursor[Any], user_key: str) -> None:
    cursor.execute("INSERT INTO graph_outbox (op, user_key) VALUES ('user', %s)", (user_key,))

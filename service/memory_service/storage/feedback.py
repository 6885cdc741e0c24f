"""Feedback on memories: one row per feedback given, kept per memory and owner.

The mem0 Platform dialect's `POST /v1/feedback/` writes here. Rows carry the memory's owner
(the tenant-qualified user), so a user's erasure removes them with the user's memories
(storage/memory_table.py), and the tenant, so nothing is ever read across tenants.
"""

from __future__ import annotations

import uuid

from memory_service.storage.database import Database


class FeedbackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, tenant: str, memory_id: str, user_key: str, feedback: str | None, reason: str | None) -> str:
        feedback_id = uuid.uuid4()
        with self.db.connection(write=True) as conn:
            conn.execute(
                "INSERT INTO memory_feedback (id, tenant, memory_id, user_key, feedback, feedback_reason)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (feedback_id, tenant, memory_id, user_key, feedback, reason),
            )
        return str(feedback_id)

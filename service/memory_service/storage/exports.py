"""Memory exports: the request (the client's schema and filters) kept per tenant.

An export is evaluated when it is read (the domain runs its filters then), so it never holds a
copy of memories deleted or erased since it was requested.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from memory_service.storage.database import Database


@dataclass(frozen=True, slots=True)
class ExportRequest:
    id: str
    schema: Any
    filters: dict[str, Any] | None
    created_at: datetime


class ExportStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, tenant: str, schema: Any, filters: dict[str, Any] | None) -> ExportRequest:
        with self.db.connection(write=True) as conn:
            row = conn.execute(
                "INSERT INTO memory_exports (id, tenant, schema, filters) VALUES (%s, %s, %s, %s)"
                " RETURNING id, schema, filters, created_at",
                (uuid.uuid4(), tenant, Jsonb(schema), Jsonb(filters) if filters is not None else None),
            ).fetchone()
        assert row is not None
        return ExportRequest(str(row[0]), row[1], row[2], row[3])

    def get(self, tenant: str, export_id: str) -> ExportRequest | None:
        try:
            parsed = uuid.UUID(export_id)
        except ValueError:
            return None
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT id, schema, filters, created_at FROM memory_exports WHERE id = %s AND tenant = %s",
                (parsed, tenant),
            ).fetchone()
        return None if row is None else ExportRequest(str(row[0]), row[1], row[2], row[3])

    def latest(self, tenant: str, filters: dict[str, Any] | None) -> ExportRequest | None:
        """The tenant's most recent export requested with the same filters (JSON equality)."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT id, schema, filters, created_at FROM memory_exports"
                " WHERE tenant = %s AND filters IS NOT DISTINCT FROM %s ORDER BY created_at DESC LIMIT 1",
                (tenant, Jsonb(filters) if filters is not None else None),
            ).fetchone()
        return None if row is None else ExportRequest(str(row[0]), row[1], row[2], row[3])

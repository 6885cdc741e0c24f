"""The `api_keys` table: hashed keys and their tenant, role and limit. SQL only; the rules
(who may use which key, the development keys, the cache) are in domain/auth/keys.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from memory_service.models.keys import KeyInfo, Principal, Role
from memory_service.storage.database import Database

_COLUMNS = "id, prefix, tenant, role, name, rate_limit_per_minute, well_known, created_at, revoked_at"


def _info(row: tuple[Any, ...]) -> KeyInfo:
    return KeyInfo(str(row[0]), row[1], row[2], Role(row[3]), row[4], row[5], row[6], row[7], row[8])


class KeyRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def find_active(self, key_hash: str) -> Principal | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT id, tenant, role, rate_limit_per_minute FROM api_keys"
                " WHERE key_hash = %s AND revoked_at IS NULL",
                (key_hash,),
            ).fetchone()
        return None if row is None else Principal(str(row[0]), row[1], Role(row[2]), row[3])

    def insert(
        self, key_hash: str, prefix: str, tenant: str, role: Role, name: str | None, rate_limit: int | None
    ) -> KeyInfo:
        with self.db.connection() as conn:
            row = conn.execute(
                f"""
                INSERT INTO api_keys (key_hash, prefix, tenant, role, name, rate_limit_per_minute)
                VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}
                """,  # noqa: S608 - column list is a constant
                (key_hash, prefix, tenant, role.value, name, rate_limit),
            ).fetchone()
        assert row is not None
        return _info(row)

    def enable_well_known(self, keys: Iterable[tuple[str, str, str, Role, str]]) -> None:
        """(hash, prefix, tenant, role, name) rows, enabled (again) as well-known keys."""
        with self.db.connection() as conn:
            for key_hash, prefix, tenant, role, name in keys:
                conn.execute(
                    """
                    INSERT INTO api_keys (key_hash, prefix, tenant, role, name, well_known)
                    VALUES (%s, %s, %s, %s, %s, true)
                    ON CONFLICT (key_hash) DO UPDATE SET revoked_at = NULL, well_known = true, role = EXCLUDED.role
                    """,
                    (key_hash, prefix, tenant, role.value, name),
                )

    def count_active(self, hashes: Iterable[str]) -> int:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM api_keys WHERE key_hash = ANY(%s) AND revoked_at IS NULL", (list(hashes),)
            ).fetchone()
        return int(row[0]) if row else 0

    def list(self, tenant: str | None = None, include_revoked: bool = False) -> list[KeyInfo]:
        clauses, params = [], []
        if tenant is not None:
            clauses.append("tenant = %s")
            params.append(tenant)
        if not include_revoked:
            clauses.append("revoked_at IS NULL")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.db.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY created_at, id", params).fetchall()  # noqa: S608
        return [_info(r) for r in rows]

    def get(self, key_id: uuid.UUID) -> KeyInfo | None:
        with self.db.connection() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = %s", (key_id,)).fetchone()  # noqa: S608
        return None if row is None else _info(row)

    def revoke(self, key_id: uuid.UUID) -> KeyInfo | None:
        with self.db.connection() as conn:
            row = conn.execute(
                f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s RETURNING {_COLUMNS}",  # noqa: S608
                (key_id,),
            ).fetchone()
        return None if row is None else _info(row)

    def revoke_hashes(self, hashes: Iterable[str]) -> int:
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE key_hash = ANY(%s) AND revoked_at IS NULL",
                (list(hashes),),
            )
            return cur.rowcount

"""The `console_sessions` table (migration 0005_console_sessions): server-side sessions of the web console.

Kept in Postgres, not in a signed cookie or process memory, so a session works on every gunicorn
worker and host, and ends everywhere at once when it is signed out or its key is revoked. SQL
only; the policy (ids, lifetimes, CSRF tokens) is in domain/auth/sessions.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from memory_service.storage.database import Database

# A session is alive while: not signed out, before its absolute deadline, seen within the idle
# timeout, and its key is the bootstrap key (API_KEY, passed in) or an unrevoked stored key.
_TOUCH = """
UPDATE console_sessions s SET last_seen_at = now()
WHERE s.id_hash = %(id_hash)s
  AND s.revoked_at IS NULL
  AND s.expires_at > now()
  AND s.last_seen_at > now() - make_interval(secs => %(idle)s)
  AND (s.key_hash = %(bootstrap)s
       OR EXISTS (SELECT 1 FROM api_keys k WHERE k.key_hash = s.key_hash AND k.revoked_at IS NULL))
RETURNING s.key_id, s.tenant, s.role, s.csrf_token, s.expires_at,
  (SELECT k.rate_limit_per_minute FROM api_keys k WHERE k.key_hash = s.key_hash)
"""


@dataclass(frozen=True, slots=True)
class SessionRow:
    key_id: str
    tenant: str
    role: str
    csrf_token: str
    expires_at: datetime
    rate_limit_per_minute: int | None


class ConsoleSessionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(
        self,
        id_hash: str,
        key_hash: str,
        key_id: str,
        tenant: str,
        role: str,
        csrf_token: str,
        lifetime_seconds: float,
    ) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO console_sessions (id_hash, key_hash, key_id, tenant, role, csrf_token, expires_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))",
                (id_hash, key_hash, key_id, tenant, role, csrf_token, lifetime_seconds),
            )

    def touch(self, id_hash: str, idle_seconds: float, bootstrap_hash: str | None) -> SessionRow | None:
        """The live session with this id (its idle clock restarted), or None."""
        with self.db.connection() as conn:
            row = conn.execute(
                _TOUCH, {"id_hash": id_hash, "idle": idle_seconds, "bootstrap": bootstrap_hash}
            ).fetchone()
        return None if row is None else SessionRow(*row)

    def revoke(self, id_hash: str) -> bool:
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE console_sessions SET revoked_at = now() WHERE id_hash = %s AND revoked_at IS NULL", (id_hash,)
            )
            return cur.rowcount == 1

    def revoke_key(self, key_id: str) -> int:
        """End every session a key opened (the key was revoked)."""
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE console_sessions SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL", (key_id,)
            )
            return cur.rowcount

    def purge(self, grace_seconds: float) -> int:
        """Delete sessions past their deadline (reads ignore them already; this frees the space)."""
        with self.db.connection() as conn:
            cur = conn.execute(
                "DELETE FROM console_sessions WHERE expires_at < now() - make_interval(secs => %s)", (grace_seconds,)
            )
            return cur.rowcount

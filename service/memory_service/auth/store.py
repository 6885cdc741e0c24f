"""The key store: hashed keys in Postgres, a short in-process cache, the bootstrap key.

A lookup per request would cost a database round trip on every call; valid keys are cached for
a few seconds instead (revocation through this process clears its cache at once; other
processes follow within KEY_CACHE_SECONDS). Unknown keys are not cached, so a new key works
immediately; guessing is slowed by the per-address rate limit instead.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memory_service.auth.keys import (
    WELL_KNOWN_HASHES,
    WELL_KNOWN_KEYS,
    Role,
    display_prefix,
    generate_key,
    hash_key,
    is_well_known,
)
from memory_service.auth.principal import Principal
from memory_service.engine.database import Database
from memory_service.engine.scope import validate_tenant
from memory_service.errors import InvalidRequest, NotFound, StartupError
from memory_service.settings import Settings

KEY_CACHE_SECONDS = 10.0
KEY_CACHE_SIZE = 10_000
BOOTSTRAP_KEY_ID = "bootstrap"
MIN_PRODUCTION_KEY_LENGTH = 32


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    prefix: str
    tenant: str
    role: Role
    name: str | None
    rate_limit_per_minute: int | None
    well_known: bool
    created_at: datetime
    revoked_at: datetime | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "tenant": self.tenant,
            "role": self.role.value,
            "name": self.name,
            "rate_limit_per_minute": self.rate_limit_per_minute,
            "well_known": self.well_known,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


_COLUMNS = "id, prefix, tenant, role, name, rate_limit_per_minute, well_known, created_at, revoked_at"


def _info(row: tuple[Any, ...]) -> KeyInfo:
    return KeyInfo(str(row[0]), row[1], row[2], Role(row[3]), row[4], row[5], row[6], row[7], row[8])


class KeyStore:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._bootstrap_hash = hash_key(settings.api_key.get_secret_value()) if settings.api_key else None

    # -- start-up policy -----------------------------------------------------------------------

    def apply_environment_policy(self) -> None:
        """Development enables the seed's keys; production refuses to run while any works."""
        api_key = self.settings.api_key.get_secret_value() if self.settings.api_key else None
        if self.settings.development:
            self._enable_well_known()
            return
        if api_key is not None:
            if is_well_known(api_key):
                raise StartupError("API_KEY is one of the documented development keys; choose a secret one")
            if len(api_key) < MIN_PRODUCTION_KEY_LENGTH:
                raise StartupError(
                    f"API_KEY must be at least {MIN_PRODUCTION_KEY_LENGTH} characters in production "
                    "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM api_keys WHERE key_hash = ANY(%s) AND revoked_at IS NULL",
                (list(WELL_KNOWN_HASHES),),
            ).fetchone()
        if row and row[0]:
            raise StartupError(
                "APP_ENV=production, but the documented development keys are enabled in the key store "
                "(a development run used this database). Revoke them with: memory-service keys revoke --well-known"
            )

    def _enable_well_known(self) -> None:
        with self.db.connection() as conn:
            for known in WELL_KNOWN_KEYS:
                conn.execute(
                    """
                    INSERT INTO api_keys (key_hash, prefix, tenant, role, name, well_known)
                    VALUES (%s, %s, %s, %s, %s, true)
                    ON CONFLICT (key_hash) DO UPDATE SET revoked_at = NULL, well_known = true
                    """,
                    (
                        hash_key(known.key),
                        display_prefix(known.key),
                        known.tenant,
                        known.role.value,
                        known.name,
                    ),
                )

    # -- per request ---------------------------------------------------------------------------

    def cached(self, key: str) -> Principal | None:
        """The principal without touching the database: bootstrap key or a fresh cache entry."""
        digest = hash_key(key)
        if self._bootstrap_hash is not None and hmac.compare_digest(digest, self._bootstrap_hash):
            return Principal(BOOTSTRAP_KEY_ID, "default", Role.ADMIN)
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return None

    def authenticate(self, key: str) -> Principal | None:
        if (principal := self.cached(key)) is not None:
            return principal
        digest = hash_key(key)
        now = time.monotonic()
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT id, tenant, role, rate_limit_per_minute FROM api_keys"
                " WHERE key_hash = %s AND revoked_at IS NULL",
                (digest,),
            ).fetchone()
        if row is None:
            self._cache.pop(digest, None)
            return None
        principal = Principal(str(row[0]), row[1], Role(row[2]), row[3])
        self._cache[digest] = (principal, now + KEY_CACHE_SECONDS)
        self._cache.move_to_end(digest)
        while len(self._cache) > KEY_CACHE_SIZE:
            self._cache.popitem(last=False)
        return principal

    # -- administration (CLI and /v1/admin/keys) -------------------------------------------------

    def create(
        self, tenant: str, role: Role, name: str | None = None, rate_limit_per_minute: int | None = None
    ) -> tuple[str, KeyInfo]:
        try:
            validate_tenant(tenant)
        except ValueError as exc:
            raise InvalidRequest(str(exc), {"field": "tenant"}) from exc
        if rate_limit_per_minute is not None and rate_limit_per_minute < 1:
            raise InvalidRequest("rate_limit must be a positive number of requests per minute")
        key = generate_key()
        with self.db.connection() as conn:
            row = conn.execute(
                f"""
                INSERT INTO api_keys (key_hash, prefix, tenant, role, name, rate_limit_per_minute)
                VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}
                """,  # noqa: S608 - column list is a constant
                (hash_key(key), display_prefix(key), tenant, role.value, name, rate_limit_per_minute),
            ).fetchone()
        assert row is not None
        return key, _info(row)

    def list_keys(self, tenant: str | None = None, include_revoked: bool = False) -> list[KeyInfo]:
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

    def revoke(self, key_id: str) -> KeyInfo:
        try:
            uuid.UUID(key_id)
        except ValueError:
            raise NotFound(f"API key '{key_id}' not found", {"id": key_id}) from None
        with self.db.connection() as conn:
            row = conn.execute(
                f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s RETURNING {_COLUMNS}",  # noqa: S608
                (key_id,),
            ).fetchone()
        if row is None:
            raise NotFound(f"API key '{key_id}' not found", {"id": key_id})
        self._cache.clear()
        return _info(row)

    def revoke_well_known(self) -> int:
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE key_hash = ANY(%s) AND revoked_at IS NULL",
                (list(WELL_KNOWN_HASHES),),
            )
            count = cur.rowcount
        self._cache.clear()
        return count

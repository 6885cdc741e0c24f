"""API keys as the rest of the service sees them: roles, the caller (principal), a key's record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from memory_service.core.timefmt import rfc3339


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, tenant and role, and its own rate limit if it has one."""

    key_id: str
    tenant: str
    role: Role
    rate_limit_per_minute: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A stored key, without its secret (only the hash is kept, and a display prefix)."""

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
            "created_at": rfc3339(self.created_at),
            "revoked_at": rfc3339(self.revoked_at),
        }

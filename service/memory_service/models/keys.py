"""API keys as the rest of the service sees them: roles, the caller (principal), a key's record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from memory_service.core.timefmt import rfc3339


class Role(StrEnum):
    """What a key may do besides its own tenant's memories.

    - user: the memories of its tenant;
    - admin: also the keys of its own tenant (user and admin keys) and the metrics;
    - operator: the keys of every tenant and the metrics. Created only by the command line
      (`memory-service keys create --role operator`) or over HTTP by the bootstrap key
      (API_KEY, itself an operator).
    """

    USER = "user"
    ADMIN = "admin"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, tenant and role, and its own rate limit if it has one."""

    key_id: str
    tenant: str
    role: Role
    rate_limit_per_minute: int | None = None
    bootstrap: bool = False  # the API_KEY of the environment

    @property
    def is_admin(self) -> bool:
        """May administer keys (of its tenant, or of all for an operator) and read metrics."""
        return self.role in (Role.ADMIN, Role.OPERATOR)

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR

    def manages(self, tenant: str) -> bool:
        """Whether this key may administer the keys of `tenant`."""
        return self.is_operator or (self.role is Role.ADMIN and tenant == self.tenant)


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

"""Who is calling: the key's id, tenant and role, and its own rate limit if it has one."""

from __future__ import annotations

from dataclasses import dataclass

from memory_service.auth.keys import Role


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tenant: str
    role: Role
    rate_limit_per_minute: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

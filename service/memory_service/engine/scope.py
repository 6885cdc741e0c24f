"""Tenant scoping: every memory belongs to (tenant, user), and that pair is one mem0 user id.

mem0 filters every query by `user_id`, so storing the tenant-qualified id `tenant/user` there
means no query path can forget the tenant: scoping rides on mem0's own filter. Tenants cannot
contain `/`, so the pair is unambiguous. The API only ever shows the plain user id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# No whitespace (mem0 rejects it), no `/` (it would not survive a path segment), printable ASCII.
_ENTITY_ID = re.compile(r"^[A-Za-z0-9_.:@+=-][A-Za-z0-9_.:@+=~-]{0,127}$")
SEPARATOR = "/"


def validate_tenant(value: str) -> str:
    """Return the tenant name or raise ValueError saying what is allowed."""
    if not _TENANT.match(value):
        raise ValueError("tenant must be 1-64 characters: letters, digits, '_', '.', '-'")
    return value


def validate_user_id(value: str, field: str = "user_id") -> str:
    """Return the id or raise ValueError; ids are used as path segments and mem0 filters."""
    if not _ENTITY_ID.match(value):
        raise ValueError(f"{field} must be 1-128 characters of letters, digits and _ . : @ + = ~ - (no spaces or '/')")
    return value


@dataclass(frozen=True, slots=True)
class Scope:
    """Who a memory operation is for: the key's tenant and the request's user (and agent/run)."""

    tenant: str
    user_id: str
    agent_id: str | None = None
    run_id: str | None = None

    @property
    def user_key(self) -> str:
        """The tenant-qualified id stored in mem0's `user_id`."""
        return f"{self.tenant}{SEPARATOR}{self.user_id}"


def split_user_key(user_key: str) -> tuple[str, str]:
    """Inverse of Scope.user_key."""
    tenant, _, user_id = user_key.partition(SEPARATOR)
    return tenant, user_id

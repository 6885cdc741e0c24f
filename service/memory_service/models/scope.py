"""Tenant scoping: every memory belongs to (tenant, user), and that pair is one mem0 user id.

mem0 filters every query by `user_id`, so storing the tenant-qualified id `tenant/user` there
means no query path can forget the tenant: scoping rides on mem0's own filter. Tenants cannot
contain `/`, so the pair is unambiguous. The API only ever shows the plain user id.
"""

from __future__ import annotations

from dataclasses import dataclass

SEPARATOR = "/"


@dataclass(frozen=True, slots=True)
class Scope:
    """Who a memory operation is for: the key's tenant and the request's user (and agent, run and
    app: mem0's other entity ids, stored beside the user on each memory)."""

    tenant: str
    user_id: str
    agent_id: str | None = None
    run_id: str | None = None
    app_id: str | None = None

    @property
    def user_key(self) -> str:
        """The tenant-qualified id stored in mem0's `user_id`."""
        return user_key(self.tenant, self.user_id)


def user_key(tenant: str, user_id: str) -> str:
    return f"{tenant}{SEPARATOR}{user_id}"


def split_user_key(key: str) -> tuple[str, str]:
    """Inverse of Scope.user_key."""
    tenant, _, user_id = key.partition(SEPARATOR)
    return tenant, user_id

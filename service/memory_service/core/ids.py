"""The id rules, in one place: tenants, and the user, agent and run ids clients send.

Ids end up in path segments, mem0 filters and the tenant-qualified user key (`tenant/user`), so
they are printable ASCII without whitespace or `/`. `fullmatch` (not `match` with `$`, which
accepts a trailing newline) checks the whole string. The HTTP layer documents the same patterns
in OpenAPI from the constants here.
"""

from __future__ import annotations

import re

TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# No whitespace (mem0 rejects it), no `/` (it would not survive a path segment), printable ASCII.
ID_PATTERN = r"^[A-Za-z0-9_.:@+=-][A-Za-z0-9_.:@+=~-]{0,127}$"

_TENANT = re.compile(TENANT_PATTERN.strip("^$"))
_ID = re.compile(ID_PATTERN.strip("^$"))


def is_valid_tenant(value: str) -> bool:
    return _TENANT.fullmatch(value) is not None


def is_valid_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def validate_tenant(value: str) -> str:
    """Return the tenant name or raise ValueError saying what is allowed."""
    if not is_valid_tenant(value):
        raise ValueError("tenant must be 1-64 characters: letters, digits, '_', '.', '-'")
    return value


def validate_user_id(value: str, field: str = "user_id") -> str:
    """Return the id or raise ValueError; ids are used as path segments and mem0 filters."""
    if not is_valid_id(value):
        raise ValueError(f"{field} must be 1-128 characters of letters, digits and _ . : @ + = ~ - (no spaces or '/')")
    return value

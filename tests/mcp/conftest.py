"""Fixtures of the MCP tests: a fresh tenant's key, and a REST client with it to check effects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.server import ServiceProcess, new_tenant_key


@dataclass
class TenantKey:
    tenant: str
    key: str
    rest: httpx.Client


@pytest.fixture
def tenant_key(service: ServiceProcess, admin: httpx.Client) -> Iterator[TenantKey]:
    """A user key of a new tenant (so a test sees only its own memories) and a REST client with it."""
    tenant = f"mcp-{uuid.uuid4().hex[:10]}"
    key = new_tenant_key(admin, tenant)
    with service.client(key) as rest:
        yield TenantKey(tenant, key, rest)

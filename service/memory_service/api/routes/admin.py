"""Admin operations: API keys over HTTP (the same store as `memory-service keys`).

An admin key manages the user and admin keys of its own tenant; an operator key those of every
tenant; operator keys themselves are created only by the bootstrap key (or the command line).
Another tenant's key is not found for an admin, like a key that does not exist.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, status

from memory_service.api.deps import AdminPrincipal, ServicesDep
from memory_service.api.envelope import Envelope, error_responses, ok
from memory_service.api.schemas import CreateKeyRequest, KeyCreated, KeyList, KeyOut
from memory_service.core.ids import TENANT_PATTERN
from memory_service.models.keys import Role

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post(
    "/keys",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key",
    responses=error_responses(401, 403, 429),
)
async def create_key(body: CreateKeyRequest, admin: AdminPrincipal, services: ServicesDep) -> Envelope[KeyCreated]:
    key, info = await asyncio.to_thread(
        lambda: services.keys.create(body.tenant, Role(body.role), body.name, body.rate_limit, by=admin)
    )
    return ok(KeyCreated(key=key, **info.public()), "Key created; it is shown only once")


@router.get("/keys", summary="List API keys", responses=error_responses(401, 403, 429))
async def list_keys(
    admin: AdminPrincipal,
    services: ServicesDep,
    tenant: Annotated[str | None, Query(pattern=TENANT_PATTERN)] = None,
    include_revoked: bool = False,
) -> Envelope[KeyList]:
    keys = await asyncio.to_thread(lambda: services.keys.list_keys(tenant, include_revoked, by=admin))
    return ok(KeyList(keys=[KeyOut(**k.public()) for k in keys], count=len(keys)))


@router.delete("/keys/{key_id}", summary="Revoke an API key", responses=error_responses(401, 403, 404, 429))
async def revoke_key(key_id: str, admin: AdminPrincipal, services: ServicesDep) -> Envelope[KeyOut]:
    info = await asyncio.to_thread(lambda: services.keys.revoke(key_id, by=admin))
    return ok(KeyOut(**info.public()), "Key revoked")

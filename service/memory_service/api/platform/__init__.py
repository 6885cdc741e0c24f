"""The mem0 Platform's REST dialect, so that mem0's own clients work against this server unmodified.

Python `mem0ai` (`MemoryClient`, `AsyncMemoryClient`) and npm `mem0ai` (`MemoryClient`) speak it:
`/v1/ping/`, `/v3/memories/add/`, `/v3/memories/search/`, `/v1/memories/{id}/`, `/v1/batch/`, ...
Every path ends with `/`, which is how the app tells the dialects apart (api/dialects.py); the
routes here sit beside the contract's on the same port, over the same engine, keys, tenants and
rate limits. docs/mem0-compat.md is the wire specification and the user documentation.
"""

from __future__ import annotations

from fastapi import APIRouter

from memory_service.api.platform import memories, tenant, unsupported, webhooks

router = APIRouter()
router.include_router(tenant.router)
router.include_router(memories.router)
router.include_router(webhooks.router)
router.include_router(unsupported.router)

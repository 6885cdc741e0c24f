"""Every route of the mem0 Platform dialect sits behind the same door as the contract's: the key
(authentication, which scopes it to the key's tenant) and the per-key rate limit, or the admin
check built on both. A route added to api/platform/ without them fails here."""

from __future__ import annotations

from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from memory_service.api import platform
from memory_service.api.deps import rate_limited, require_admin
from memory_service.api.dialects import PLATFORM, dialect_of
from memory_service.api.platform import memories, tenant, unsupported, webhooks


def _calls(dependant: Dependant) -> set[Any]:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


MODULES = (tenant, memories, webhooks, unsupported)


def _platform_routes() -> list[APIRoute]:
    return [r for module in MODULES for r in module.router.routes if isinstance(r, APIRoute)]


def test_the_dialects_router_is_these_modules() -> None:
    """What main.py mounts (api/platform/__init__.py) is exactly the routers checked below."""
    assert [r.original_router for r in platform.router.routes] == [m.router for m in MODULES]


def test_every_platform_route_is_authenticated_and_rate_limited() -> None:
    routes = _platform_routes()
    assert len(routes) >= 20  # the memory, entity, export, feedback, webhook and not-offered routes
    unguarded = [r.path for r in routes if rate_limited not in _calls(r.dependant)]
    assert unguarded == []


def test_webhook_routes_need_an_admin_key() -> None:
    webhooks = [r for r in _platform_routes() if r.path.startswith("/api/v1/webhooks/")]
    assert {(m, r.path) for r in webhooks for m in r.methods} == {
        ("GET", "/api/v1/webhooks/projects/{project_id}/"),
        ("POST", "/api/v1/webhooks/projects/{project_id}/"),
        ("PUT", "/api/v1/webhooks/{webhook_id}/"),
        ("DELETE", "/api/v1/webhooks/{webhook_id}/"),
    }
    assert all(require_admin in _calls(r.dependant) for r in webhooks)


def test_every_platform_path_is_in_the_platform_dialect() -> None:
    """The dispatch rule (api/dialects.py): the path alone says which dialect answers (a catch-all
    of Platform-only features as the clients call it, with its trailing slash)."""
    paths = [r.path.replace("{rest:path}", "settings/") for r in _platform_routes()]
    assert {p: dialect_of(p) for p in paths} == dict.fromkeys(paths, PLATFORM)

"""Typed dependencies: the services, the caller (key -> tenant, role), rate limits, roles.

All of them are `async def`: FastAPI runs a plain `def` dependency on its thread pool, which
would cost a thread hop per dependency per request for what are attribute reads.

Routes declare what they need with these Annotated aliases; the order is fixed here: a request
is authenticated, then rate-limited per key (an unknown key is limited per client address
before it gets its 401), then checked for its role.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from memory_service.domain.memories.engine import MemoryEngine
from memory_service.errors import Forbidden, ServiceUnavailable, Unauthorized
from memory_service.models.keys import Principal
from memory_service.observability.metrics import AUTH_FAILURES
from memory_service.services.container import Services
from memory_service.settings import Settings

_bearer = HTTPBearer(
    auto_error=False,
    description="API key: `Authorization: Bearer <key>`, or `Authorization: Token <key>` as mem0's clients send it",
)


def services_of(request: Request) -> Services:
    """The process's services, set by the lifespan; a plain call, not a dependency node."""
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


# These read the request directly rather than depending on get_services: FastAPI's dependency
# resolution costs tens of microseconds per node, on every request.
async def get_engine(request: Request) -> MemoryEngine:
    return services_of(request).engine


async def get_settings(request: Request) -> Settings:
    return services_of(request).settings


EngineDep = Annotated[MemoryEngine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def bearer(request: Request) -> HTTPAuthorizationCredentials | None:
    """The request's bearer credentials, for a route that authenticates in its body (/mcp)."""
    return await _bearer(request)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _limit_address(request: Request, services: Services) -> None:
    state = await services.limiter.check(client_address(request), "address")
    if state is not None:
        request.state.ratelimit = state


def presented_key(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The key of `Authorization: Bearer <key>` or of `Authorization: Token <key>` (mem0's
    clients' scheme): one key, one tenant, whichever dialect the request speaks."""
    if credentials is not None:
        return credentials.credentials or None
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "token":
        return None
    return key.strip() or None


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller's key, or 401 (after the per-address limit, so keys cannot be guessed quickly)."""
    services = services_of(request)
    key = presented_key(request, credentials)
    if key is None:
        AUTH_FAILURES.labels("missing").inc()
        await _limit_address(request, services)
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>' (or 'Token <key>')")
    principal = services.keys.cached(key)
    if principal is None:
        try:
            principal = await asyncio.wait_for(
                asyncio.to_thread(services.keys.authenticate, key),
                services.settings.db_timeout,
            )
        except TimeoutError:
            raise ServiceUnavailable("postgres") from None
    if principal is None:
        AUTH_FAILURES.labels("invalid").inc()
        await _limit_address(request, services)
        raise Unauthorized("Invalid API key")
    structlog.contextvars.bind_contextvars(tenant=principal.tenant, key_id=principal.key_id)
    return principal


AuthenticatedDep = Annotated[Principal, Depends(authenticate)]


async def rate_limited(request: Request, principal: AuthenticatedDep) -> Principal:
    state = await services_of(request).limiter.check(principal.key_id, "key", principal.rate_limit_per_minute)
    if state is not None:
        request.state.ratelimit = state
    return principal


CurrentPrincipal = Annotated[Principal, Depends(rate_limited)]


def _admin_only(principal: Principal, message: str) -> Principal:
    if not principal.is_admin:
        AUTH_FAILURES.labels("forbidden").inc()
        raise Forbidden(message)
    return principal


async def require_admin(principal: CurrentPrincipal) -> Principal:
    return _admin_only(principal, "This operation needs an admin or operator key")


AdminPrincipal = Annotated[Principal, Depends(require_admin)]


async def require_admin_unlimited(principal: AuthenticatedDep) -> Principal:
    """Admin or operator without the rate limit: for scrapers of /v1/metrics (service-wide
    aggregates without tenant labels; Prometheus scrapes with the bootstrap or an operator key)."""
    return _admin_only(principal, "Metrics need an admin or operator key")


ScraperPrincipal = Annotated[Principal, Depends(require_admin_unlimited)]

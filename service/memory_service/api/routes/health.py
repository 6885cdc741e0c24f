"""Health (no auth, cached) and status (auth: version, uptime, providers, counts)."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from memory_service import __version__
from memory_service.api.deps import CurrentPrincipal, ServicesDep
from memory_service.api.envelope import Envelope, error_responses, ok
from memory_service.api.schemas import DependencyState, HealthOut, StatusOut
from memory_service.services.container import Services

router = APIRouter(tags=["health"])


def _dependencies(services: Services) -> dict[str, DependencyState]:
    return {
        name: DependencyState(up=r.up, latency_ms=r.latency_ms, checked_at=r.checked_at, error=r.error)
        for name, r in services.health.results.items()
    }


@router.get("/health", summary="System health check", response_model=Envelope[HealthOut])
async def health(services: ServicesDep) -> JSONResponse:
    """200 while the process serves; `degraded` names the dependency that is down. Never probes inline.

    503 `draining` while DRAIN_FILE exists: the load balancer takes this host out before a deploy
    stops it, so no new request lands on a process about to exit.
    """
    drain_file = services.settings.drain_file
    draining = drain_file is not None and drain_file.exists()
    state: Literal["ok", "degraded", "draining"] = (
        "draining" if draining else "ok" if services.health.healthy else "degraded"
    )
    body = ok(HealthOut(status=state, version=__version__, dependencies=_dependencies(services)), f"Service {state}")
    return JSONResponse(body.model_dump(), status_code=503 if draining else 200, headers={"Cache-Control": "no-store"})


@router.get("/status", summary="Detailed system status", responses=error_responses(401, 429))
async def status(principal: CurrentPrincipal, services: ServicesDep) -> Envelope[StatusOut]:
    settings = services.settings
    return ok(
        StatusOut(
            version=__version__,
            uptime_seconds=round(time.monotonic() - services.started_at, 3),
            profile=settings.profile,
            environment=settings.app_env,
            providers=services.providers,
            dependencies=_dependencies(services),
            memory_count=await services.engine.count(principal.tenant),
            tenant=principal.tenant,
        )
    )

"""Health (no auth, cached), liveness and readiness (no auth), status (auth: version, uptime,
providers, counts).

- `/health` is the contract's: 200 while the process serves, `ok` or `degraded` (naming the
  dependency that is down), with this process's saturation. Never probes inline.
- `/health/live`: 503 only when restarting this process would help (every engine thread held by
  work that outlived its deadline). A dependency that is down never fails liveness.
- `/health/ready`: 503 while this process should get no traffic: Postgres down, or more calls
  queued than it has threads.
"""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from memory_service import __version__
from memory_service.api.deps import CurrentPrincipal, ServicesDep
from memory_service.api.envelope import Envelope, error_responses, ok
from memory_service.api.errors import error_response
from memory_service.api.schemas import DependencyState, HealthOut, ProbeOut, Saturation, StatusOut
from memory_service.services.container import Services

router = APIRouter(tags=["health"])
_NO_STORE = {"Cache-Control": "no-store"}


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
    out = HealthOut(
        status=state,
        version=__version__,
        dependencies=_dependencies(services),
        saturation=Saturation(**services.saturation()),
    )
    return JSONResponse(
        ok(out, f"Service {state}").model_dump(), status_code=503 if draining else 200, headers=_NO_STORE
    )


def _probe(reasons: list[str], good: str) -> JSONResponse:
    if reasons:
        return error_response(
            503, "SERVICE_UNAVAILABLE", f"Not {good}: {'; '.join(reasons)}", {"reasons": reasons}, _NO_STORE
        )
    return JSONResponse(ok(ProbeOut(status=good), f"Service {good}").model_dump(), headers=_NO_STORE)


@router.get(
    "/health/live",
    summary="Liveness: 503 only when a restart of this process would help",
    response_model=Envelope[ProbeOut],
    responses=error_responses(503),
)
async def live(services: ServicesDep) -> JSONResponse:
    return _probe(services.liveness(), "alive")


@router.get(
    "/health/ready",
    summary="Readiness: 503 while this process should get no traffic",
    response_model=Envelope[ProbeOut],
    responses=error_responses(503),
)
async def ready(services: ServicesDep) -> JSONResponse:
    return _probe(services.readiness(), "ready")


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

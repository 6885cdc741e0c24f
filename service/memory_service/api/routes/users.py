"""Per-user statistics (the seed's "user-specific operations and statistics")."""

from __future__ import annotations

from fastapi import APIRouter

from memory_service.api.deps import CurrentPrincipal, EngineDep
from memory_service.api.envelope import Envelope, error_responses, ok
from memory_service.api.routes.memories import UserIdPath
from memory_service.api.schemas import UserStatsOut
from memory_service.engine.scope import Scope

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/{user_id}/stats", summary="A user's memory statistics", responses=error_responses(401, 429))
async def user_stats(user_id: UserIdPath, principal: CurrentPrincipal, engine: EngineDep) -> Envelope[UserStatsOut]:
    stats = await engine.stats(Scope(principal.tenant, user_id))
    return ok(UserStatsOut.of(stats))

"""Per-user operations: statistics (the seed's "user-specific operations and statistics") and
the user's entity graph."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from memory_service.api.deps import CurrentPrincipal, EngineDep, ServicesDep
from memory_service.api.envelope import Envelope, error_responses, ok
from memory_service.api.routes.memories import UserIdPath
from memory_service.api.schemas import EntityList, EntityMemories, EntityOut, MemoryOut, UserStatsOut
from memory_service.models.scope import Scope

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/{user_id}/stats", summary="A user's memory statistics", responses=error_responses(401, 429))
async def user_stats(user_id: UserIdPath, principal: CurrentPrincipal, engine: EngineDep) -> Envelope[UserStatsOut]:
    stats = await engine.stats(Scope(principal.tenant, user_id))
    return ok(UserStatsOut.of(stats))


@router.get("/{user_id}/entities", summary="A user's entities with counts", responses=error_responses(401, 429))
async def user_entities(
    user_id: UserIdPath,
    principal: CurrentPrincipal,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Envelope[EntityList]:
    entities, source = await services.graph.entities(Scope(principal.tenant, user_id), limit)
    out = [EntityOut(name=e.name, key=e.key, memory_count=e.memory_count, confidence=e.confidence) for e in entities]
    return ok(EntityList(user_id=user_id, entities=out, count=len(out), source=source))


@router.get(
    "/{user_id}/entities/{name:path}/memories",
    summary="The user's memories that mention an entity",
    responses=error_responses(401, 429),
)
async def entity_memories(
    user_id: UserIdPath,
    name: Annotated[
        str,
        Path(
            min_length=1,
            max_length=200,
            description="Entity name (any case; may contain '/', not a line break)",
            json_schema_extra={"pattern": "^[^\\u0000\\n]+$"},
        ),
    ],
    principal: CurrentPrincipal,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Envelope[EntityMemories]:
    records, source = await services.graph.entity_memories(Scope(principal.tenant, user_id), name, limit)
    memories = [MemoryOut.of(r) for r in records]
    return ok(EntityMemories(user_id=user_id, entity=name, memories=memories, count=len(memories), source=source))

"""The Platform dialect's routes around the memories: the ping, entities (users), exports, feedback."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request

from memory_service.api.deps import CurrentPrincipal, EngineDep
from memory_service.api.dialects import PLATFORM_TAG
from memory_service.api.platform.schemas import (
    MAX_PAGE,
    EntitiesResponse,
    ExportCreated,
    ExportCreateRequest,
    ExportGetRequest,
    ExportResponse,
    FeedbackRequest,
    FeedbackResponse,
    IgnoredQuery,
    MessageResponse,
    PingResponse,
    PlatformJSON,
    memory_object,
    platform_errors,
)
from memory_service.core.ids import ID_PATTERN
from memory_service.core.timefmt import rfc3339
from memory_service.errors import InvalidRequest

router = APIRouter(tags=[PLATFORM_TAG], default_response_class=PlatformJSON)
EntityType = Literal["user", "agent", "app", "run"]
EntityName = Annotated[str, Path(pattern=ID_PATTERN)]


@router.get(
    "/v1/ping/", summary="Check the key (mem0 clients call it when constructed)", response_model=PingResponse,
    responses=platform_errors(),
)  # fmt: skip
async def ping(principal: CurrentPrincipal) -> PlatformJSON:
    """`org_id` and `project_id` are the key's tenant: organisations and projects are Platform features."""
    return PlatformJSON(
        {
            "status": "ok",
            "org_id": principal.tenant,
            "project_id": principal.tenant,
            "user_email": None,
            "role": principal.role.value,
        }
    )


@router.get(
    "/v1/entities/", summary="Users, agents, apps and runs (mem0 client: users)", response_model=EntitiesResponse,
    responses=platform_errors(),
)  # fmt: skip
async def entities(
    request: Request,
    principal: CurrentPrincipal,
    engine: EngineDep,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000, description="Default 1000, so users() sees them all")] = 1000,
    org_id: IgnoredQuery = None,
    project_id: IgnoredQuery = None,
) -> PlatformJSON:
    rows, totals = await engine.entities(principal.tenant, limit=page_size, offset=(page - 1) * page_size)
    count = sum(totals.values())

    def link(target: int) -> str:
        return str(request.url.include_query_params(page=target, page_size=page_size))

    return PlatformJSON(
        {
            "count": count,
            "next": link(page + 1) if page * page_size < count else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": [
                {
                    "id": f"{r.kind}:{r.name}",
                    "name": r.name,
                    "type": r.kind,
                    "owner": principal.tenant,
                    "metadata": None,
                    "total_memories": r.memories,
                    "created_at": r.first_write,
                    "updated_at": r.last_write,
                }
                for r in rows
            ],
            **{f"total_{kind}s": totals.get(kind, 0) for kind in ("user", "agent", "app", "run")},
        }
    )


async def _delete_entity(
    principal: CurrentPrincipal, engine: EngineDep, entity_type: str, entity_id: str
) -> PlatformJSON:
    count = await engine.delete_entity(principal.tenant, entity_type, entity_id)
    return PlatformJSON({"message": "Entity deleted successfully.", "deleted_count": count})


@router.delete(
    "/v2/entities/{entity_type}/{entity_id}/",
    summary="Erase a user, agent, app or run with its memories (mem0 client: delete_users)",
    response_model=MessageResponse,
    responses=platform_errors(),
)
async def delete_entity(
    entity_type: EntityType, entity_id: EntityName, principal: CurrentPrincipal, engine: EngineDep
) -> PlatformJSON:
    """Its memories, their history and feedback go in one transaction; an entity without memories
    is already gone (200), so `reset()` can delete entities an earlier deletion emptied."""
    return await _delete_entity(principal, engine, entity_type, entity_id)


@router.delete(
    "/v1/entities/{entity_type}/{entity_id}/",
    summary="The same, as mem0's npm client's deprecated deleteUser calls it",
    response_model=MessageResponse,
    responses=platform_errors(),
)
async def delete_entity_v1(
    entity_type: EntityType, entity_id: EntityName, principal: CurrentPrincipal, engine: EngineDep
) -> PlatformJSON:
    return await _delete_entity(principal, engine, entity_type, entity_id)


@router.post(
    "/v1/exports/", status_code=201, summary="Request a memory export (mem0 client: create_memory_export)",
    response_model=ExportCreated, responses=platform_errors(),
)  # fmt: skip
async def create_export(body: ExportCreateRequest, principal: CurrentPrincipal, engine: EngineDep) -> PlatformJSON:
    request = await engine.create_export(principal.tenant, body.export_schema, body.filters)
    message = "Memory export request received. The export is evaluated when you get it."
    return PlatformJSON({"message": message, "id": request.id}, status_code=201)


@router.post(
    "/v1/exports/get/", summary="Get a memory export (mem0 client: get_memory_export)",
    response_model=ExportResponse, responses=platform_errors(404),
)  # fmt: skip
async def get_export(body: ExportGetRequest, principal: CurrentPrincipal, engine: EngineDep) -> PlatformJSON:
    """By `memory_export_id`, or the latest export requested with the same `filters`: the memories
    its filters name now (at most 10,000, newest first), with the schema as it was given."""
    if body.memory_export_id is None and body.filters is None:
        raise InvalidRequest("give memory_export_id or filters")
    export = await engine.get_export(principal.tenant, body.memory_export_id, body.filters)
    body_out: dict[str, Any] = {
        "id": export.request.id,
        "schema": export.request.schema,
        "filters": export.request.filters,
        "created_at": rfc3339(export.request.created_at),
        "count": export.total,
        "memories": [memory_object(r) for r in export.memories],
    }
    return PlatformJSON(body_out)


@router.post(
    "/v1/feedback/", summary="Feedback on a memory (mem0 client: feedback)", response_model=FeedbackResponse,
    responses=platform_errors(404),
)  # fmt: skip
async def feedback(body: FeedbackRequest, principal: CurrentPrincipal, engine: EngineDep) -> PlatformJSON:
    feedback_id = await engine.feedback(principal.tenant, body.memory_id, body.feedback, body.feedback_reason)
    return PlatformJSON(
        {
            "id": feedback_id,
            "memory_id": body.memory_id,
            "feedback": body.feedback,
            "feedback_reason": body.feedback_reason,
        }
    )

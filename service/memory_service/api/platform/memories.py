"""The Platform dialect's memory routes: add, get_all, search, get, update, delete, delete_all,
history, batch update and delete, and the events of asynchronous adds.

Each route is the same engine call the contract's routes make (or its filter-tree twin), with
the Platform's request and response shapes around it (schemas.py).
"""

from __future__ import annotations

import ast
import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request

from memory_service.api.deps import CurrentPrincipal, EngineDep, ServicesDep, SettingsDep
from memory_service.api.dialects import PLATFORM_TAG
from memory_service.api.platform.schemas import (
    MAX_PAGE,
    AddRequest,
    AddResponse,
    BatchDeleteRequest,
    BatchUpdateRequest,
    EventObject,
    HistoryObject,
    IgnoredQuery,
    MemoryObject,
    MessageResponse,
    PageResponse,
    PlatformJSON,
    SearchRequest,
    SearchResponse,
    UpdateRequest,
    added_object,
    history_object,
    memory_object,
    platform_errors,
)
from memory_service.api.platform.schemas import (
    ListRequest as ListMemoriesRequest,
)
from memory_service.api.routes.jobs import job_runner
from memory_service.api.schemas import check_sizes
from memory_service.core.ids import ID_PATTERN
from memory_service.core.timefmt import rfc3339
from memory_service.domain.memories.commands import AddCommand, Message
from memory_service.domain.memories.engine import MemoryChange
from memory_service.domain.memories.filters import parse_platform_filters
from memory_service.errors import InvalidRequest
from memory_service.models.filters import Filter, all_of
from memory_service.models.jobs import Job

router = APIRouter(tags=[PLATFORM_TAG], default_response_class=PlatformJSON)
MAX_QUERY_OBJECT = 16 * 1024
_EVENT_STATUS = {"queued": "PENDING", "running": "RUNNING", "succeeded": "SUCCEEDED", "failed": "FAILED"}


def _filters(tenant: str, *parts: dict[str, Any] | None) -> Filter | None:
    trees = [parse_platform_filters(p, tenant) for p in parts if p]
    present = [t for t in trees if t is not None]
    return all_of(*present) if present else None


@router.post(
    "/v3/memories/add/", summary="Add memories (mem0 client: add)", response_model=AddResponse,
    responses=platform_errors(413),
)  # fmt: skip
async def add(
    body: AddRequest, principal: CurrentPrincipal, engine: EngineDep, settings: SettingsDep, services: ServicesDep
) -> PlatformJSON:
    messages = body.message_list()
    check_sizes(settings.max_memory_size, [m.content for m in messages], body.metadata)
    if not any(m.role == "user" for m in messages):
        raise InvalidRequest("messages must contain at least one message with role 'user'", {"field": "messages"})
    command = AddCommand(
        user_id=body.user_id or settings.default_user_id,
        messages=tuple(Message(m.role, m.content, m.name) for m in messages),
        agent_id=body.agent_id,
        run_id=body.run_id,
        app_id=body.app_id,
        metadata=dict(body.metadata or {}),
        infer=body.infer,
    )
    if body.async_mode:
        jobs = job_runner(services)
        job = await asyncio.to_thread(jobs.submit, principal.tenant, command)
        jobs.wake()
        queued = "Memory processing has been queued for background execution"
        return PlatformJSON({"message": queued, "status": "PENDING", "event_id": job.id})
    outcome = await engine.add(principal.tenant, command, caller=principal.key_id)
    count = len(outcome.memories)
    return PlatformJSON(
        {
            "message": f"{count} {'memory' if count == 1 else 'memories'} stored",
            "status": "SUCCEEDED",
            "results": [added_object(r) for r in outcome.memories],
        }
    )


@router.post(
    "/v3/memories/", summary="List memories, paginated (mem0 client: get_all)", response_model=PageResponse,
    responses=platform_errors(),
)  # fmt: skip
async def list_memories(
    request: Request,
    body: ListMemoriesRequest,
    principal: CurrentPrincipal,
    engine: EngineDep,
    page: Annotated[
        int | None, Query(ge=1, le=MAX_PAGE, description="From 1 (the query parameter wins over the body's)")
    ] = None,
    page_size: Annotated[int | None, Query(ge=1, le=200, description="1-200, default 100")] = None,
) -> PlatformJSON:
    page = page or body.page or 1
    size = page_size or body.page_size or 100
    created: dict[str, Any] = {}
    if body.start_date:
        created["gte"] = body.start_date
    if body.end_date:
        created["lte"] = body.end_date
    extra = {
        **({"created_at": created} if created else {}),
        **({"keywords": {"icontains": body.keywords}} if body.keywords else {}),
    }
    where = _filters(principal.tenant, body.filters, extra)
    records, total = await engine.list_where(principal.tenant, where, limit=size, offset=(page - 1) * size)

    def link(target: int) -> str:
        return str(request.url.include_query_params(page=target, page_size=size))

    return PlatformJSON(
        {
            "count": total,
            "next": link(page + 1) if page * size < total else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": [memory_object(r, body.fields) for r in records],
        }
    )


@router.post(
    "/v3/memories/search/", summary="Search memories (mem0 client: search)", response_model=SearchResponse,
    responses=platform_errors(),
)  # fmt: skip
async def search(
    body: SearchRequest, principal: CurrentPrincipal, engine: EngineDep, settings: SettingsDep
) -> PlatformJSON:
    if body.top_k > settings.search_limit:
        raise InvalidRequest(
            f"top_k must be at most {settings.search_limit} (SEARCH_LIMIT)",
            {"field": "top_k", "max": settings.search_limit},
        )
    where = _filters(principal.tenant, body.filters, {"metadata": body.metadata} if body.metadata else None)
    records = await engine.search_where(
        principal.tenant, body.query, where, limit=body.top_k, threshold=body.threshold, caller=principal.key_id
    )
    return PlatformJSON({"results": [memory_object(r, body.fields) for r in records]})


def _query_object(raw: str, name: str) -> dict[str, Any]:
    """An object in a query parameter: JSON, or a Python literal, which is how mem0's Python client
    writes a dict into one (`str(dict)`); parsed as data only, never evaluated."""
    if len(raw) > MAX_QUERY_OBJECT:
        raise InvalidRequest(f"{name} is longer than {MAX_QUERY_OBJECT} characters", {"field": name})
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise InvalidRequest(f"{name} must be a JSON object", {"field": name}) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{name} must be a JSON object", {"field": name})
    return value


DELETE_ALL_SELECTORS = ["user_id", "agent_id", "app_id", "run_id", "filters", "metadata"]
EntityQuery = Annotated[str | None, Query(pattern=ID_PATTERN, max_length=128)]


@router.delete(
    "/v1/memories/", summary="Delete the memories that match (mem0 client: delete_all)",
    description="Give at least one of user_id, agent_id, app_id, run_id, filters or metadata (400 otherwise): "
    "`x-required-one-of` names them, as OpenAPI cannot.",
    response_model=MessageResponse, responses=platform_errors(),
    openapi_extra={"x-required-one-of": DELETE_ALL_SELECTORS},
)  # fmt: skip
async def delete_all(
    principal: CurrentPrincipal,
    engine: EngineDep,
    user_id: EntityQuery = None,
    agent_id: EntityQuery = None,
    app_id: EntityQuery = None,
    run_id: EntityQuery = None,
    filters: Annotated[str | None, Query(description="mem0 filters, as JSON")] = None,
    metadata: Annotated[str | None, Query(description="Metadata values, as a JSON object")] = None,
    org_id: IgnoredQuery = None,
    project_id: IgnoredQuery = None,
) -> PlatformJSON:
    ids = {"user_id": user_id, "agent_id": agent_id, "app_id": app_id, "run_id": run_id}
    parts: list[dict[str, Any] | None] = [{k: v for k, v in ids.items() if v}]
    if filters:
        parts.append(_query_object(filters, "filters"))
    if metadata:
        parts.append({"metadata": _query_object(metadata, "metadata")})
    where = _filters(principal.tenant, *parts)
    if where is None:
        raise InvalidRequest("give at least one of user_id, agent_id, app_id, run_id, filters or metadata")
    count = await engine.delete_where(principal.tenant, where)
    return PlatformJSON({"message": f"{count} {'memory' if count == 1 else 'memories'} deleted successfully!"})


@router.get(
    "/v1/memories/{memory_id}/", summary="Get a memory (mem0 client: get)", response_model=MemoryObject,
    responses=platform_errors(404),
)  # fmt: skip
async def get_memory(memory_id: str, principal: CurrentPrincipal, engine: EngineDep) -> PlatformJSON:
    return PlatformJSON(memory_object(await engine.get(principal.tenant, memory_id)))


@router.put(
    "/v1/memories/{memory_id}/", summary="Update a memory (mem0 client: update)", response_model=MemoryObject,
    responses=platform_errors(404, 413),
)  # fmt: skip
async def update_memory(
    memory_id: str, body: UpdateRequest, principal: CurrentPrincipal, engine: EngineDep, settings: SettingsDep
) -> PlatformJSON:
    if body.text is None and body.metadata is None:
        raise InvalidRequest("give text, metadata or both", {"fields": ["text", "metadata"]})
    check_sizes(settings.max_memory_size, [body.text] if body.text else [], body.metadata)
    record = await engine.update(principal.tenant, memory_id, body.text, body.metadata)
    return PlatformJSON(memory_object(record))


@router.delete(
    "/v1/memories/{memory_id}/", summary="Delete a memory (mem0 client: delete)", response_model=MessageResponse,
    responses=platform_errors(404),
)  # fmt: skip
async def delete_memory(
    memory_id: str,
    principal: CurrentPrincipal,
    engine: EngineDep,
    delete_linked: Annotated[bool, Query(description="Accepted: no memory supersedes another here")] = False,
) -> PlatformJSON:
    await engine.delete(principal.tenant, memory_id)
    body: dict[str, Any] = {"message": "Memory deleted successfully!"}
    if delete_linked:
        body["cascade_count"] = 0
    return PlatformJSON(body)


@router.get(
    "/v1/memories/{memory_id}/history/", summary="A memory's history (mem0 client: history)",
    response_model=list[HistoryObject],
    responses=platform_errors(404),
)  # fmt: skip
async def history(memory_id: str, principal: CurrentPrincipal, engine: EngineDep) -> PlatformJSON:
    return PlatformJSON([history_object(e) for e in await engine.history(principal.tenant, memory_id)])


@router.put(
    "/v1/batch/", summary="Update up to 1,000 memories (mem0 client: batch_update)", response_model=MessageResponse,
    responses=platform_errors(404, 413),
)  # fmt: skip
async def batch_update(
    body: BatchUpdateRequest, principal: CurrentPrincipal, engine: EngineDep, settings: SettingsDep
) -> PlatformJSON:
    for item in body.memories:
        if item.text is None and item.metadata is None:
            raise InvalidRequest(f"memory {item.memory_id}: give text, metadata or both", {"field": "memories"})
        check_sizes(settings.max_memory_size, [item.text] if item.text else [], item.metadata)
    changes = [MemoryChange(i.memory_id, i.text, i.metadata) for i in body.memories]
    count = await engine.update_many(principal.tenant, changes, caller=principal.key_id)
    return PlatformJSON({"message": f"Successfully updated {count} memories"})


@router.delete(
    "/v1/batch/", summary="Delete up to 1,000 memories (mem0 client: batch_delete)", response_model=MessageResponse,
    responses=platform_errors(404),
)  # fmt: skip
async def batch_delete(body: BatchDeleteRequest, principal: CurrentPrincipal, engine: EngineDep) -> PlatformJSON:
    count = await engine.delete_many(principal.tenant, [i.memory_id for i in body.memories])
    return PlatformJSON({"message": f"Successfully deleted {count} memories"})


@router.get(
    "/v1/event/{event_id}/", summary="The state of an asynchronous add (its event)", response_model=EventObject,
    responses=platform_errors(404),
)  # fmt: skip
async def event(event_id: str, principal: CurrentPrincipal, engine: EngineDep, services: ServicesDep) -> PlatformJSON:
    job: Job = await asyncio.to_thread(job_runner(services).get, principal.tenant, event_id)
    results: list[dict[str, Any]] = []
    if job.result is not None:
        ids = [str(m["id"]) for m in job.result.get("memories", [])]
        results = [added_object(r) for r in await engine.get_many(principal.tenant, ids)]
    error = job.error.get("message") if job.error else None
    finished = job.finished_at
    return PlatformJSON(
        {
            "id": job.id,
            "event_type": "ADD",
            "status": _EVENT_STATUS[job.state],
            "payload": {k: v for k, v in job.request.items() if k != "dialect"},
            "results": results,
            "error": error,
            "created_at": rfc3339(job.created_at),
            "updated_at": rfc3339(finished or job.started_at or job.created_at),
            "started_at": rfc3339(job.started_at),
            "completed_at": rfc3339(finished),
            "latency": (finished - job.started_at).total_seconds() * 1000 if finished and job.started_at else None,
        }
    )

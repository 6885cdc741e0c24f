"""Memory routes: add, search, read, update, delete, list and erase a user's memories."""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, status
from fastapi.responses import JSONResponse

from memory_service.api.deps import CurrentPrincipal, EngineDep, ServicesDep, SettingsDep
from memory_service.api.envelope import Envelope, error_responses, ok
from memory_service.api.routes.jobs import JobAccepted, job_runner, status_url
from memory_service.api.schemas import (
    NOT_BLANK_PATTERN,
    AddedMemories,
    AddMemoryRequest,
    Deleted,
    Erased,
    HistoryOut,
    MemoryHistory,
    MemoryList,
    MemoryOut,
    SearchResults,
    UpdateMemoryRequest,
    check_sizes,
)
from memory_service.core.ids import ID_PATTERN
from memory_service.domain.memories.engine import MemoryEngine
from memory_service.domain.memories.filters import parse_search_filters
from memory_service.errors import InvalidRequest
from memory_service.models.keys import Principal
from memory_service.models.scope import Scope
from memory_service.services.container import Services
from memory_service.storage.idempotency import HEADER as IDEMPOTENCY_HEADER
from memory_service.storage.idempotency import KEY_PATTERN as IDEMPOTENCY_KEY_PATTERN
from memory_service.storage.idempotency import StoredResponse, check_key

router = APIRouter(prefix="/memories", tags=["memories"])

# pydantic matches patterns to the end of the string (a trailing newline does not pass).
UserIdPath = Annotated[str, Path(pattern=ID_PATTERN)]
IdQuery = Annotated[str | None, Query(pattern=ID_PATTERN)]
IncludeEmbedding = Annotated[bool, Query(description="Include each memory's embedding vector")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add new memory",
    response_model=Envelope[AddedMemories],
    responses={
        **error_responses(401, 403, 409, 413, 429),
        202: {"model": Envelope[JobAccepted], "description": "async=true: queued; poll `status_url`"},
    },
)
async def add_memory(
    body: AddMemoryRequest,
    principal: CurrentPrincipal,
    engine: EngineDep,
    settings: SettingsDep,
    services: ServicesDep,
    run_async: Annotated[
        bool, Query(alias="async", description="Queue the add and answer 202 with a job id (inference takes seconds)")
    ] = False,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            description="Makes retries safe: a replay with the same key and body within 24 h answers the first "
            "response and stores nothing; the same key with another body is 409 IDEMPOTENCY_CONFLICT",
            json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN},
        ),
    ] = None,
) -> Envelope[AddedMemories] | JSONResponse:
    check_sizes(settings.max_memory_size, [m.content for m in body.messages], body.metadata)
    if not any(m.role == "user" for m in body.messages):
        raise InvalidRequest("messages must contain at least one message with role 'user'", {"field": "messages"})
    if idempotency_key is None:
        return await _add(body, principal, engine, settings.default_user_id, services, run_async)
    store = services.idempotency
    request = {"async": run_async, "body": body.model_dump(mode="json")}
    claim = await store.begin(principal.tenant, check_key(idempotency_key), request)
    if isinstance(claim, StoredResponse):
        headers = {**claim.headers, "Idempotent-Replayed": "true"}
        return JSONResponse(claim.body, status_code=claim.status, headers=headers)
    try:
        result = await _add(body, principal, engine, settings.default_user_id, services, run_async)
    except BaseException:
        await store.release(claim)
        raise
    if isinstance(result, JSONResponse):
        stored = StoredResponse(result.status_code, orjson.loads(result.body), {"Location": result.headers["location"]})
    else:
        stored = StoredResponse(201, result.model_dump(mode="json"), {})
    await store.complete(claim, stored)
    return JSONResponse(stored.body, status_code=stored.status, headers=stored.headers)


async def _add(
    body: AddMemoryRequest,
    principal: Principal,
    engine: MemoryEngine,
    default_user: str,
    services: Services,
    run_async: bool,
) -> Envelope[AddedMemories] | JSONResponse:
    tenant = principal.tenant
    command = body.command(default_user)
    if run_async:  # validated exactly as above; the job runs the same command (services/jobs.py)
        jobs = job_runner(services)
        job = await asyncio.to_thread(jobs.submit, tenant, command)
        jobs.wake()
        accepted = ok(JobAccepted(job_id=job.id, state="queued", status_url=status_url(job.id)), "Add queued")
        return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": status_url(job.id)})
    added = AddedMemories.of(await engine.add(tenant, command, caller=principal.key_id))
    noun = "memory" if added.count == 1 else "memories"
    return ok(added, f"{added.count} {noun} stored")


@router.get("/search", summary="Search memories", responses=error_responses(401, 429))
async def search_memories(
    request: Request,
    principal: CurrentPrincipal,
    engine: EngineDep,
    settings: SettingsDep,
    query: Annotated[
        str,
        Query(
            min_length=1,
            max_length=10_000,
            description="What to look for (not blank)",
            json_schema_extra={"pattern": NOT_BLANK_PATTERN},
        ),
    ],
    user_id: IdQuery = None,
    agent_id: IdQuery = None,
    run_id: IdQuery = None,
    limit: Annotated[int, Query(ge=1, description="At most SEARCH_LIMIT (default 50); 400 above")] = 10,
    threshold: Annotated[float | None, Query(ge=0, le=1, description="Minimum similarity (0-1)")] = None,
    filters: Annotated[
        str | None, Query(description='JSON metadata filters, e.g. {"source": {"in": ["chat", "api"]}}')
    ] = None,
    graph_boost: Annotated[bool, Query(description="Boost memories sharing entities with the query")] = False,
    include_embedding: IncludeEmbedding = False,
) -> Envelope[SearchResults]:
    if not query.strip():
        raise InvalidRequest("query must not be blank", {"field": "query"})
    if limit > settings.search_limit:
        raise InvalidRequest(
            f"limit must be at most {settings.search_limit} (SEARCH_LIMIT)",
            {"field": "limit", "max": settings.search_limit},
        )
    params = request.query_params
    shorthand = {
        name.removeprefix("metadata."): params.getlist(name) for name in params if name.startswith("metadata.")
    }
    metadata_filters = parse_search_filters(filters, shorthand)
    scope = Scope(principal.tenant, user_id or settings.default_user_id, agent_id, run_id)
    records = await engine.search(
        scope,
        query,
        limit=limit,
        threshold=threshold,
        filters=metadata_filters,
        graph_boost=graph_boost,
        include_embedding=include_embedding,
        caller=principal.key_id,
    )
    memories = [MemoryOut.of(r) for r in records]
    return ok(SearchResults(memories=memories, count=len(memories), query=query), f"{len(memories)} found")


@router.get("/user/{user_id}", summary="Get user memories", responses=error_responses(401, 429))
async def list_user_memories(
    user_id: UserIdPath,
    principal: CurrentPrincipal,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page")] = None,
    agent_id: IdQuery = None,
    run_id: IdQuery = None,
) -> Envelope[MemoryList]:
    page = await engine.list_user(Scope(principal.tenant, user_id, agent_id, run_id), limit=limit, cursor=cursor)
    return ok(
        MemoryList(
            memories=[MemoryOut.of(r) for r in page.items],
            total=page.total,
            limit=limit,
            next_cursor=page.next_cursor,
        )
    )


@router.delete("/user/{user_id}", summary="Erase all memories of a user", responses=error_responses(401, 429))
async def erase_user_memories(user_id: UserIdPath, principal: CurrentPrincipal, engine: EngineDep) -> Envelope[Erased]:
    count = await engine.erase_user(Scope(principal.tenant, user_id))
    return ok(Erased(user_id=user_id, deleted_count=count), f"{count} memories erased")


@router.get("/{memory_id}", summary="Get specific memory", responses=error_responses(401, 404, 429))
async def get_memory(
    memory_id: str,
    principal: CurrentPrincipal,
    engine: EngineDep,
    include_embedding: IncludeEmbedding = False,
) -> Envelope[MemoryOut]:
    record = await engine.get(principal.tenant, memory_id, include_embedding=include_embedding)
    return ok(MemoryOut.of(record))


@router.put("/{memory_id}", summary="Update memory", responses=error_responses(401, 404, 413, 429))
async def update_memory(
    memory_id: str,
    body: UpdateMemoryRequest,
    principal: CurrentPrincipal,
    engine: EngineDep,
    settings: SettingsDep,
) -> Envelope[MemoryOut]:
    if body.content is None and body.metadata is None:
        raise InvalidRequest("give content, metadata or both", {"fields": ["content", "metadata"]})
    check_sizes(settings.max_memory_size, [body.content] if body.content else [], body.metadata)
    record = await engine.update(principal.tenant, memory_id, body.content, body.metadata)
    return ok(MemoryOut.of(record), "Memory updated")


@router.delete("/{memory_id}", summary="Delete memory", responses=error_responses(401, 404, 429))
async def delete_memory(memory_id: str, principal: CurrentPrincipal, engine: EngineDep) -> Envelope[Deleted]:
    await engine.delete(principal.tenant, memory_id)
    return ok(Deleted(id=memory_id), "Memory deleted")


@router.get("/{memory_id}/history", summary="History of a memory", responses=error_responses(401, 404, 429))
async def memory_history(memory_id: str, principal: CurrentPrincipal, engine: EngineDep) -> Envelope[MemoryHistory]:
    entries = await engine.history(principal.tenant, memory_id)
    return ok(MemoryHistory(memory_id=memory_id, history=[HistoryOut.of(e) for e in entries]))

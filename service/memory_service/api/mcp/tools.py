"""The MCP tools: the REST API's memory operations, described for a model to choose between.

Each tool calls what the REST route calls (the engine, the graph service, the add shared with the
job runner), with the same checks, so the two surfaces cannot drift apart. Arguments are typed
so the SDK publishes JSON Schemas that validate them; a tool raises the service's own errors
(`memory_service.errors`), which `server.py` turns into tool errors carrying the contract's code.

Whose memories: every call is confined to the key's tenant. Within it, a tool acts for the
`user_id` argument, else the user the connection is pinned to (`X-User-ID`), else
DEFAULT_USER_ID; a pinned connection may not name another user, and reads or changes by memory
id only reach the pinned user's memories.
"""

# No `from __future__ import annotations`: the SDK reads the tools' signatures, whose types are
# built in `register` from the settings, so they must be evaluated where they are defined.
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from memory_service.api.schemas import (
    AddedMemories,
    AddMemoryRequest,
    EntityList,
    EntityOut,
    Erased,
    HistoryOut,
    MemoryHistory,
    MemoryList,
    MemoryOut,
    MessageIn,
    SearchResults,
    UpdateMemoryRequest,
    check_sizes,
)
from memory_service.core.ids import ID_PATTERN
from memory_service.domain.memories.filters import check_filters
from memory_service.errors import Forbidden, InvalidRequest, MemoryNotFound, Unauthorized
from memory_service.models.keys import Principal
from memory_service.models.memory import MemoryRecord
from memory_service.models.scope import Scope
from memory_service.services.container import Services
from memory_service.settings import Settings

MemoryId = Annotated[
    str, Field(min_length=1, max_length=128, description="A memory's `id`, as returned by the other tools")
]
AgentId = Annotated[str | None, Field(pattern=ID_PATTERN, description="Only memories stored for this agent (optional)")]
RunId = Annotated[
    str | None, Field(pattern=ID_PATTERN, description="Only memories stored for this run or conversation (optional)")
]
Metadata = Annotated[
    dict[str, Any] | None,
    Field(description='Your own key-value labels, e.g. {"source": "chat", "topic": "travel"}; searchable by filters'),
]


class DeletedMemories(BaseModel):
    deleted: list[str] = Field(description="Ids that were deleted")
    not_found: list[str] = Field(description="Ids with no memory this caller can reach (nothing was deleted)")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling /mcp: set on the request by the endpoint, after authentication."""

    principal: Principal
    services: Services
    pinned_user: str | None = None

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def scope(self, user_id: str | None, agent_id: str | None = None, run_id: str | None = None) -> Scope:
        if self.pinned_user is not None and user_id is not None and user_id != self.pinned_user:
            raise Forbidden(
                f"This connection is pinned to user '{self.pinned_user}' (X-User-ID) and cannot act for '{user_id}'; "
                "omit user_id",
                {"pinned_user_id": self.pinned_user, "user_id": user_id},
            )
        user = user_id or self.pinned_user or self.settings.default_user_id
        return Scope(self.principal.tenant, user, agent_id, run_id)

    async def owned(self, memory_id: str) -> MemoryRecord:
        """The memory, if this caller may reach it (the tenant's, and the pinned user's if pinned)."""
        record = await self.services.engine.get(self.principal.tenant, memory_id)
        if self.pinned_user is not None and record.user_id != self.pinned_user:
            raise MemoryNotFound(memory_id)
        return record

    async def check_reach(self, memory_id: str) -> None:
        """On a pinned connection, MEMORY_NOT_FOUND for another user's memory; the engine checks the tenant."""
        if self.pinned_user is not None:
            await self.owned(memory_id)


CALLER_STATE = "mcp_caller"


def caller_of(ctx: Context) -> Caller:
    request = ctx.request_context.request
    caller = getattr(getattr(request, "state", None), CALLER_STATE, None)
    if not isinstance(caller, Caller):  # only the authenticated /mcp route runs tools
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'")
    return caller


def result(model: BaseModel) -> CallToolResult:
    """Compact JSON for the model to read, and the same object as structured content."""
    data = model.model_dump(mode="json")
    return CallToolResult(content=[TextContent(type="text", text=orjson.dumps(data).decode())], structured_content=data)


def register(server: MCPServer, settings: Settings) -> None:
    """Add the tools to `server`; limits and defaults in their schemas come from `settings`."""
    default_user = settings.default_user_id
    UserId = Annotated[
        str | None,
        Field(
            pattern=ID_PATTERN,
            description=f"Whose memories (letters, digits, _ . : @ + = ~ -). Omit for the connection's user: the one "
            f"it is pinned to, else '{default_user}'.",
        ),
    ]

    async def add_memories(
        ctx: Context,
        text: Annotated[
            str | None, Field(min_length=1, description="One fact or note to remember, in plain language")
        ] = None,
        messages: Annotated[
            list[MessageIn] | None,
            Field(
                min_length=1,
                max_length=100,
                description="A conversation to remember from, instead of text: its user messages are stored, or "
                "with inference the facts the server's LLM finds in it",
            ),
        ] = None,
        user_id: UserId = None,
        agent_id: AgentId = None,
        run_id: RunId = None,
        metadata: Metadata = None,
        infer: Annotated[
            bool | None,
            Field(description="Extract facts with the server's LLM (default: on when the server has one)"),
        ] = None,
    ) -> Annotated[CallToolResult, AddedMemories]:
        if (text is None) == (messages is None):
            raise InvalidRequest("Give either text or messages (exactly one)", {"fields": ["text", "messages"]})
        caller = caller_of(ctx)
        scope = caller.scope(user_id, agent_id, run_id)
        body = AddMemoryRequest(
            messages=messages or [MessageIn(role="user", content=text or "", name=None)],
            user_id=scope.user_id,
            agent_id=agent_id,
            run_id=run_id,
            metadata=metadata,
            infer=infer,
        )
        check_sizes(caller.settings.max_memory_size, [m.content for m in body.messages], body.metadata)
        if not any(m.role == "user" for m in body.messages):
            raise InvalidRequest("messages must contain at least one message with role 'user'", {"field": "messages"})
        command = body.command(caller.settings.default_user_id)
        added = await caller.services.engine.add(caller.principal.tenant, command, caller=caller.principal.key_id)
        return result(AddedMemories.of(added))

    async def search_memories(
        ctx: Context,
        query: Annotated[
            str, Field(min_length=1, max_length=10_000, description="What to look for, in natural language")
        ],
        user_id: UserId = None,
        agent_id: AgentId = None,
        run_id: RunId = None,
        limit: Annotated[
            int, Field(ge=1, le=settings.search_limit, description="Most memories to return, best first")
        ] = 10,
        threshold: Annotated[
            float | None, Field(ge=0, le=1, description="Leave out memories less similar than this (0-1)")
        ] = None,
        filters: Annotated[
            dict[str, Any] | None,
            Field(
                description='Match metadata: {"source": "chat"} or operators eq, ne, gt, gte, lt, lte, in, nin, '
                'contains, icontains, e.g. {"priority": {"gte": 3}, "topic": {"in": ["ai", "ml"]}}'
            ),
        ] = None,
        graph_boost: Annotated[
            bool, Field(description="Rank higher the memories that mention the same entities as the query")
        ] = False,
    ) -> Annotated[CallToolResult, SearchResults]:
        if not query.strip():
            raise InvalidRequest("query must not be blank", {"field": "query"})
        caller = caller_of(ctx)
        scope = caller.scope(user_id, agent_id, run_id)
        records = await caller.services.engine.search(
            scope,
            query,
            limit=limit,
            threshold=threshold,
            filters=check_filters(filters or {}),
            graph_boost=graph_boost,
            caller=caller.principal.key_id,
        )
        memories = [MemoryOut.of(r) for r in records]
        return result(SearchResults(memories=memories, count=len(memories), query=query))

    async def list_memories(
        ctx: Context,
        user_id: UserId = None,
        agent_id: AgentId = None,
        run_id: RunId = None,
        limit: Annotated[int, Field(ge=1, le=100, description="Memories per page, newest first")] = 20,
        cursor: Annotated[
            str | None, Field(max_length=512, description="`next_cursor` of the previous page, for the next one")
        ] = None,
    ) -> Annotated[CallToolResult, MemoryList]:
        caller = caller_of(ctx)
        scope = caller.scope(user_id, agent_id, run_id)
        page = await caller.services.engine.list_user(scope, limit=limit, cursor=cursor)
        memories = [MemoryOut.of(r) for r in page.items]
        return result(MemoryList(memories=memories, total=page.total, limit=limit, next_cursor=page.next_cursor))

    async def get_memory(ctx: Context, memory_id: MemoryId) -> Annotated[CallToolResult, MemoryOut]:
        return result(MemoryOut.of(await caller_of(ctx).owned(memory_id)))

    async def update_memory(
        ctx: Context,
        memory_id: MemoryId,
        content: Annotated[str | None, Field(min_length=1, description="The memory's new text (replaces it)")] = None,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="Labels to set or change; others stay as they are")
        ] = None,
    ) -> Annotated[CallToolResult, MemoryOut]:
        if content is None and metadata is None:
            raise InvalidRequest("Give content, metadata or both", {"fields": ["content", "metadata"]})
        caller = caller_of(ctx)
        body = UpdateMemoryRequest(content=content, metadata=metadata)
        check_sizes(caller.settings.max_memory_size, [body.content] if body.content else [], body.metadata)
        await caller.check_reach(memory_id)
        updated = await caller.services.engine.update(caller.principal.tenant, memory_id, body.content, body.metadata)
        return result(MemoryOut.of(updated))

    async def delete_memories(
        ctx: Context,
        memory_ids: Annotated[
            list[MemoryId], Field(min_length=1, max_length=100, description="Ids of the memories to delete")
        ],
    ) -> Annotated[CallToolResult, DeletedMemories]:
        caller = caller_of(ctx)
        deleted: list[str] = []
        not_found: list[str] = []
        for memory_id in dict.fromkeys(memory_ids):
            try:
                await caller.check_reach(memory_id)
                await caller.services.engine.delete(caller.principal.tenant, memory_id)
            except MemoryNotFound:
                not_found.append(memory_id)
            else:
                deleted.append(memory_id)
        return result(DeletedMemories(deleted=deleted, not_found=not_found))

    async def delete_all_memories(
        ctx: Context,
        confirm: Annotated[
            bool,
            Field(description="Must be true: erasing is permanent. Ask the user before you set it."),
        ],
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, Erased]:
        caller = caller_of(ctx)
        scope = caller.scope(user_id)
        if confirm is not True:
            raise InvalidRequest(
                f"Nothing was erased: set confirm to true to erase every memory of user '{scope.user_id}'",
                {"field": "confirm"},
            )
        count = await caller.services.engine.erase_user(scope)
        return result(Erased(user_id=scope.user_id, deleted_count=count))

    async def list_entities(
        ctx: Context,
        user_id: UserId = None,
        limit: Annotated[int, Field(ge=1, le=500, description="Most entities to return, most mentioned first")] = 50,
    ) -> Annotated[CallToolResult, EntityList]:
        caller = caller_of(ctx)
        scope = caller.scope(user_id)
        entities, source = await caller.services.graph.entities(scope, limit)
        out = [
            EntityOut(name=e.name, key=e.key, memory_count=e.memory_count, confidence=e.confidence) for e in entities
        ]
        return result(EntityList(user_id=scope.user_id, entities=out, count=len(out), source=source))

    async def memory_history(ctx: Context, memory_id: MemoryId) -> Annotated[CallToolResult, MemoryHistory]:
        caller = caller_of(ctx)
        await caller.check_reach(memory_id)
        entries = await caller.services.engine.history(caller.principal.tenant, memory_id)
        return result(MemoryHistory(memory_id=memory_id, history=[HistoryOut.of(e) for e in entries]))

    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
    destructive = ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
    )
    server.add_tool(
        add_memories,
        title="Remember",
        description="Store something worth remembering about the user for later conversations: a fact, a "
        "preference, a decision, a plan. Pass `text` for one note, or `messages` (a conversation) to store its "
        "user messages. Returns the stored memories with their ids. Store durable facts, not small talk; search "
        "first if it may already be known.",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False),
    )
    server.add_tool(
        search_memories,
        title="Search memories",
        description="Find the memories most relevant to a question, by meaning rather than exact words. Use it "
        "before answering anything that may depend on what you know about the user (preferences, history, "
        "projects, people). Returns memories with a similarity `score`, best first.",
        annotations=read_only,
    )
    server.add_tool(
        list_memories,
        title="List memories",
        description="List a user's memories, newest first, one page at a time (pass `next_cursor` back as "
        "`cursor` for the next page). Use it to review everything stored; to find something specific, "
        "search_memories is better.",
        annotations=read_only,
    )
    server.add_tool(
        get_memory,
        title="Get a memory",
        description="Read one memory by its id, with its metadata, entities and timestamps.",
        annotations=read_only,
    )
    server.add_tool(
        update_memory,
        title="Update a memory",
        description="Correct or replace one memory's text, or change its metadata labels, by id. Use it when "
        "something the user told you has changed, rather than adding a contradicting memory. The old text stays "
        "in the memory's history.",
        annotations=destructive,
    )
    server.add_tool(
        delete_memories,
        title="Delete memories",
        description="Delete specific memories by id (up to 100), e.g. when the user asks you to forget something. "
        "Returns which ids were deleted and which were not found. Deleting is permanent.",
        annotations=destructive,
    )
    server.add_tool(
        delete_all_memories,
        title="Erase all of a user's memories",
        description="Permanently erase every memory of one user. Only when the user explicitly asks to forget "
        "everything; `confirm` must be true. Returns how many memories were erased.",
        annotations=destructive,
    )
    server.add_tool(
        list_entities,
        title="List entities",
        description="List the people, places, organisations, technologies and other entities a user's memories "
        "mention, with how many memories mention each. Use it to get an overview of what is known about the user.",
        annotations=read_only,
    )
    server.add_tool(
        memory_history,
        title="Memory history",
        description="Show how one memory changed over time (added, updated, deleted, with old and new text), by id.",
        annotations=read_only,
    )

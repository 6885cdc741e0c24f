"""The mem0 Platform dialect's bodies: requests as mem0's clients send them, responses as they read them.

Requests are strict (an unknown field is a 400, a flag must be a JSON boolean, as the document
says), with three exceptions, all named here:
parameters the clients send that change nothing here (accepted: `output_format`, `version`,
`enable_graph`, `rerank`, ...), parameters that ask for a Platform feature this server does not
offer (refused with a 400 naming them), and the Platform's `org_id`/`project_id` (the key decides
the tenant). Responses are plain JSON in the Platform's shapes (`memory_object` and friends),
written with orjson; the pydantic models below document them in OpenAPI.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, cast

import orjson
from fastapi import Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator
from pydantic.config import JsonDict

from memory_service.api.schemas import (
    ID_SCHEMA,
    MAX_MESSAGES,
    METADATA_DESCRIPTION,
    METADATA_SCHEMA,
    NO_NUL_PATTERN,
    NOT_BLANK_PATTERN,
    _check_metadata,
)
from memory_service.core.ids import validate_user_id
from memory_service.models.memory import HistoryEntry, MemoryRecord

MAX_BATCH = 1000
# Pages beyond any real listing; bounded so that the row offset stays a Postgres bigint.
MAX_PAGE = 1_000_000
# The Platform's org_id/project_id in a query: accepted and ignored (the key decides the tenant), and
# left out of the document like any other unknown query parameter, which changes nothing either.
IgnoredQuery = Annotated[str | None, Query(include_in_schema=False)]
# Parameters of Platform features this server does not offer, and why.
REFUSED = {
    "custom_categories": "categories are assigned by the mem0 Platform's LLM",
    "custom_instructions": "custom extraction instructions are a mem0 Platform feature",
    "agent_custom_instructions": "custom extraction instructions are a mem0 Platform feature",
    "includes": "extraction hints are a mem0 Platform feature",
    "excludes": "extraction hints are a mem0 Platform feature",
    "structured_data_schema": "structured extraction is a mem0 Platform feature",
    "expiration_date": "memory expiration is a mem0 Platform feature",
    "timestamp": "backdated memories are a mem0 Platform feature",
    "immutable": "immutable memories are a mem0 Platform feature",
    "prompt_profile_id": "prompt profiles are a mem0 Platform feature",
    "categories": "categories are assigned by the mem0 Platform's LLM",
    "reference_date": "temporal reasoning is a mem0 Platform feature",
    "temporal_reasoning": "temporal reasoning is a mem0 Platform feature",
    "observation_date": "temporal reasoning is a mem0 Platform feature",
    "observation_datetime": "temporal reasoning is a mem0 Platform feature",
}
MEMORY_FIELDS = (
    "id", "memory", "user_id", "agent_id", "app_id", "run_id", "session_id", "metadata", "categories",
    "expiration_date", "created_at", "updated_at", "score",
)  # fmt: skip


ENTITY_IDS = ("user_id", "agent_id", "run_id", "app_id")
# A date (YYYY-MM-DD) or an ISO 8601 date-time (naive = UTC), as filters.py reads created_at.
DATE_SCHEMA: JsonDict = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}, {"type": "null"}]
}
TEXT_SCHEMA: JsonDict = {"type": "string", "minLength": 1, "pattern": NOT_BLANK_PATTERN}
FILTERS_DESCRIPTION = (
    "mem0's filter language (docs/mem0-compat.md): entity ids, created_at/updated_at, keywords, memory_ids, "
    'metadata keys with eq, ne, in, nin, gt, gte, lt, lte, contains, icontains or "*", under AND/OR/NOT; '
    "a filter that does not parse is a 400 naming the part"
)


def _one_of_given(*names: str) -> list[dict[str, Any]]:
    return [{"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in names]


def _given(*names: str) -> JsonDict:
    """The schema of "at least one of these, not null" (the models' validators enforce it)."""
    return cast(JsonDict, {"anyOf": _one_of_given(*names)})


# An add names at least one entity id, at the top level or in `filters`, each in one place (the
# same value in both is tolerated, different values are a 400).
_ADD_RULES: dict[str, Any] = {
    "allOf": [
        {
            "anyOf": [
                *_one_of_given(*ENTITY_IDS),
                {"required": ["filters"], "properties": {"filters": {"type": "object", "minProperties": 1}}},
            ]
        },
        *(
            {
                "not": {
                    "required": [name, "filters"],
                    "properties": {name: {"type": "string"}, "filters": {"required": [name]}},
                }
            }
            for name in ENTITY_IDS
        ),
    ]
}


def refuse_platform_only(data: Any) -> Any:
    """A 400 that names the first Platform-only parameter given (absent or null ones are fine)."""
    if isinstance(data, dict):
        for name, reason in REFUSED.items():
            if data.get(name) not in (None, [], {}, False):
                raise ValueError(f"'{name}' is not offered by this server: {reason}")
    return data


def _check_id(value: str | None, field: str) -> str | None:
    return None if value is None else validate_user_id(value, field)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _refuse(cls, data: Any) -> Any:
        return refuse_platform_only(data)


class _Ignored(_Strict):
    """Parameters mem0's clients may send that change nothing here."""

    output_format: str | None = Field(None, description="Accepted; responses are always the v1.1 shapes")
    version: str | None = Field(None, description="Accepted and ignored")
    enable_graph: StrictBool | None = Field(None, description="Accepted; entities are always extracted here")
    org_id: str | None = Field(None, description="Ignored: the key decides the tenant")
    project_id: str | None = Field(None, description="Ignored: the key decides the tenant")


class PlatformMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant", "system"]
    content: Any = Field(
        description="Text, not blank; at most MAX_MEMORY_SIZE bytes (413 above); multimodal content is a 400",
        json_schema_extra=TEXT_SCHEMA,
    )
    name: str | None = Field(None, max_length=128, json_schema_extra={"pattern": NO_NUL_PATTERN})

    @field_validator("content")
    @classmethod
    def _text(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("multimodal message content (images, documents) is a mem0 Platform feature not offered")
        if not value.strip():
            raise ValueError("content must not be blank")
        return value


class AddRequest(_Ignored):
    """`POST /v3/memories/add/`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"messages": [{"role": "user", "content": "I love tea"}], "user_id": "alice"}],
            **_ADD_RULES,
        },
    )
    messages: str | PlatformMessage | list[PlatformMessage] = Field(
        description=(
            f"Text (one user message), one message with role `user`, or 1-{MAX_MESSAGES} messages of which at "
            "least one has role `user`"
        ),
        json_schema_extra={
            "anyOf": [
                TEXT_SCHEMA,
                {"$ref": "#/components/schemas/PlatformMessage", "properties": {"role": {"const": "user"}}},
                {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/PlatformMessage"},
                    "minItems": 1,
                    "maxItems": MAX_MESSAGES,
                    "contains": {"type": "object", "properties": {"role": {"const": "user"}}},
                },
            ]
        },
    )
    user_id: str | None = Field(None, json_schema_extra=ID_SCHEMA)
    agent_id: str | None = Field(None, json_schema_extra=ID_SCHEMA)
    run_id: str | None = Field(None, json_schema_extra=ID_SCHEMA)
    app_id: str | None = Field(None, json_schema_extra=ID_SCHEMA)
    filters: dict[str, Any] | None = Field(
        None,
        description="Entity ids, as mem0's Python client's options carry them",
        json_schema_extra={
            "properties": cast(JsonDict, {name: {"type": "string", **ID_SCHEMA} for name in ENTITY_IDS}),
            "additionalProperties": False,
        },
    )
    metadata: dict[str, Any] | None = Field(None, description=METADATA_DESCRIPTION, json_schema_extra=METADATA_SCHEMA)
    infer: StrictBool | None = None
    async_mode: StrictBool = Field(False, description="Queue the add; poll GET /v1/event/{event_id}/")

    @field_validator("user_id", "agent_id", "run_id", "app_id")
    @classmethod
    def _ids(cls, value: str | None, info: Any) -> str | None:
        return _check_id(value, info.field_name)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_metadata(value)

    @model_validator(mode="after")
    def _entities_from_filters(self) -> AddRequest:
        for key, value in (self.filters or {}).items():
            if key not in ("user_id", "agent_id", "run_id", "app_id") or not isinstance(value, str):
                raise ValueError("filters of an add may hold only user_id, agent_id, run_id and app_id values")
            given = getattr(self, key)
            if given is not None and given != value:
                raise ValueError(f"{key} is given twice, with different values")
            setattr(self, key, _check_id(value, key))
        if not any((self.user_id, self.agent_id, self.run_id, self.app_id)):
            raise ValueError("give at least one of user_id, agent_id, run_id or app_id")
        return self

    def message_list(self) -> list[PlatformMessage]:
        if isinstance(self.messages, str):
            return [PlatformMessage(role="user", content=self.messages, name=None)]
        return [self.messages] if isinstance(self.messages, PlatformMessage) else self.messages

    @field_validator("messages")
    @classmethod
    def _count(cls, value: Any) -> Any:
        if isinstance(value, list) and not 1 <= len(value) <= MAX_MESSAGES:
            raise ValueError(f"messages must hold 1 to {MAX_MESSAGES} messages")
        if isinstance(value, str) and not value.strip():
            raise ValueError("messages must not be blank")
        return value


class _Listing(_Ignored):
    filters: dict[str, Any] | None = Field(None, description=FILTERS_DESCRIPTION)
    fields: list[str] | None = Field(
        None,
        description="Return only these fields of each memory",
        json_schema_extra={"items": {"type": "string", "enum": list(MEMORY_FIELDS)}},
    )
    show_expired: StrictBool | None = Field(None, description="Accepted; memories do not expire here")
    latest_only: StrictBool | None = Field(None, description="Accepted; memories are never superseded here")

    @field_validator("fields")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        unknown = sorted(set(value or ()) - set(MEMORY_FIELDS))
        if unknown:
            raise ValueError(f"unknown fields {unknown}; a memory has {', '.join(MEMORY_FIELDS)}")
        return value


class SearchRequest(_Listing):
    """`POST /v3/memories/search/`."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"query": "tea", "filters": {"user_id": "alice"}}]}
    )
    query: str = Field(
        min_length=1, max_length=10_000, description="Not blank", json_schema_extra={"pattern": NOT_BLANK_PATTERN}
    )
    top_k: int = Field(
        10, ge=1, description="At most SEARCH_LIMIT (default 50; the document states the setting); 400 above"
    )
    threshold: float = Field(
        0.1, ge=0, le=1, description="Minimum semantic relevance (default 0.1, as on the Platform)"
    )
    metadata: dict[str, Any] | None = Field(
        None, description="Only memories with these metadata values (metadata conditions of the filter language)"
    )
    rerank: StrictBool | None = Field(None, description="Accepted; results are ranked by mem0's hybrid score")
    keyword_search: StrictBool | None = Field(None, description="Accepted; keyword matches always count here")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query must not be blank")
        return value


class ListRequest(_Listing):
    """`POST /v3/memories/` (get_all)."""

    page: int | None = Field(None, ge=1, le=MAX_PAGE)
    page_size: int | None = Field(None, ge=1, le=200)
    start_date: str | None = Field(
        None, description="Created on or after (a date or date-time)", json_schema_extra=DATE_SCHEMA
    )
    end_date: str | None = Field(
        None, description="Created on or before (a date or date-time)", json_schema_extra=DATE_SCHEMA
    )
    keywords: str | None = Field(None, description="Only memories whose text contains this (any case)")


class UpdateRequest(_Strict):
    """`PUT /v1/memories/{memory_id}/`: text, metadata or both (400 when neither is given)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_given("text", "metadata"))
    text: str | None = Field(
        None,
        min_length=1,
        description="At most MAX_MEMORY_SIZE bytes (413 above)",
        json_schema_extra={"pattern": NO_NUL_PATTERN},
    )
    metadata: dict[str, Any] | None = Field(None, description=METADATA_DESCRIPTION, json_schema_extra=METADATA_SCHEMA)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_metadata(value)


class BatchUpdateItem(UpdateRequest):
    """One update of a batch: a memory, and its text, metadata or both (400 when neither is given)."""

    memory_id: str = Field(description="A memory of this tenant (404 otherwise)")


class BatchDeleteItem(_Strict):
    memory_id: str


def _batch(items: list[Any], verb: str) -> list[Any]:
    if not items:
        raise ValueError("memories must not be empty")
    if len(items) > MAX_BATCH:
        raise ValueError(f"Maximum of {MAX_BATCH} memories can be {verb} in a single request, not {len(items)}")
    return items


class BatchUpdateRequest(_Strict):
    """`PUT /v1/batch/`."""

    memories: list[BatchUpdateItem] = Field(json_schema_extra={"minItems": 1, "maxItems": MAX_BATCH})

    @field_validator("memories")
    @classmethod
    def _size(cls, value: list[BatchUpdateItem]) -> list[BatchUpdateItem]:
        return _batch(value, "updated")


class BatchDeleteRequest(_Strict):
    """`DELETE /v1/batch/`."""

    memories: list[BatchDeleteItem] = Field(json_schema_extra={"minItems": 1, "maxItems": MAX_BATCH})

    @field_validator("memories")
    @classmethod
    def _size(cls, value: list[BatchDeleteItem]) -> list[BatchDeleteItem]:
        return _batch(value, "deleted")


class ExportCreateRequest(_Ignored):
    """`POST /v1/exports/`: `schema` as an object or a JSON string (mem0's Python client sends one)."""

    export_schema: Any = Field(
        alias="schema",
        description="A JSON object, or a string holding one (as mem0's Python client sends it)",
        json_schema_extra={"type": "object"},  # the string form's grammar is JSON, which a schema cannot state
    )
    filters: dict[str, Any] | None = Field(None, description=FILTERS_DESCRIPTION)

    @field_validator("export_schema")
    @classmethod
    def _schema(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise ValueError("schema must be a JSON object (or a string holding one)") from None
        if not isinstance(value, dict):
            raise ValueError("schema must be a JSON object (or a string holding one)")
        return value


class ExportGetRequest(_Ignored):
    """`POST /v1/exports/get/`: by `memory_export_id` or by `filters` (400 when neither is given)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_given("memory_export_id", "filters"))
    memory_export_id: str | None = None
    filters: dict[str, Any] | None = Field(None, description=FILTERS_DESCRIPTION)


class FeedbackRequest(_Strict):
    """`POST /v1/feedback/`."""

    memory_id: str
    feedback: Literal["POSITIVE", "NEGATIVE", "VERY_NEGATIVE"] | None = None
    feedback_reason: str | None = Field(None, max_length=2000)


# -- responses ------------------------------------------------------------------------------------


def _orjson_native(value: Any) -> Any:
    """What orjson makes of a value the stdlib cannot write (datetimes, UUIDs, dataclasses)."""
    return orjson.loads(orjson.dumps(value))


class PlatformJSON(JSONResponse):
    """A body already in the Platform's shape, written with orjson (no model pass on the way out);
    a JSONResponse, so OpenAPI documents each route's `response_model`."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:  # an integer beyond 64 bits (stored metadata may hold one): the stdlib writes it
            return json.dumps(
                content, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_orjson_native
            ).encode()


def memory_object(record: MemoryRecord, fields: list[str] | None = None) -> dict[str, Any]:
    """A memory as the Platform shows it; `run_id` and `session_id` are the same value (the
    Platform names it differently per route), `score` only in search results."""
    shape: dict[str, Any] = {
        "id": record.id,
        "memory": record.content,
        "user_id": record.user_id,
        "agent_id": record.agent_id,
        "app_id": record.app_id,
        "run_id": record.run_id,
        "session_id": record.run_id,
        "metadata": record.client_metadata,
        "categories": [],
        "expiration_date": None,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
    if record.score is not None:
        shape["score"] = record.score
    return {k: v for k, v in shape.items() if k in fields} if fields else shape


def added_object(record: MemoryRecord) -> dict[str, Any]:
    """An add's result: the v1.1 `memory` and the v3 `data.memory` side by side."""
    return {**memory_object(record), "event": "ADD", "data": {"memory": record.content}}


def history_object(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "memory_id": entry.memory_id,
        "input": [],
        "old_memory": entry.old_content,
        "new_memory": entry.new_content,
        "event": entry.event,
        "user_id": entry.user_id,
        "agent_id": None,
        "app_id": None,
        "session_id": None,
        "categories": [],
        "metadata": None,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
    }


class MemoryObject(BaseModel):
    """A memory in the Platform dialect (documentation of `memory_object`)."""

    id: str
    memory: str
    user_id: str
    agent_id: str | None
    app_id: str | None
    run_id: str | None
    session_id: str | None = Field(description="The run id, as the Platform's get and list name it")
    metadata: dict[str, Any] = Field(description="As the client stored it")
    categories: list[str] = Field(description="Always empty: categories are a Platform feature")
    expiration_date: None
    created_at: str
    updated_at: str
    score: float | None = Field(None, description="Search results only")


def _none_required(schema: JsonDict) -> None:
    schema.pop("required", None)


class SelectedMemoryObject(MemoryObject):
    """A memory in a list or search: every field, or only those the request's `fields` names."""

    model_config = ConfigDict(json_schema_extra=_none_required)


class AddedMemory(MemoryObject):
    event: Literal["ADD"]
    data: dict[str, str]


class AddResponse(BaseModel):
    status: Literal["SUCCEEDED", "PENDING"]
    message: str
    results: list[AddedMemory] | None = Field(None, description="Synchronous adds")
    event_id: str | None = Field(None, description="async_mode: poll GET /v1/event/{event_id}/")


class SearchResponse(BaseModel):
    results: list[SelectedMemoryObject]


class PageResponse(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[SelectedMemoryObject]


class HistoryObject(BaseModel):
    id: str
    memory_id: str
    input: list[dict[str, str]] = Field(description="Always empty: the messages are not kept per change")
    old_memory: str | None
    new_memory: str | None
    event: Literal["ADD", "UPDATE", "DELETE"]
    user_id: str | None
    agent_id: None
    app_id: None
    session_id: None
    categories: list[str]
    metadata: None
    created_at: str | None
    updated_at: str | None


class EventObject(BaseModel):
    id: str
    event_type: Literal["ADD"]
    status: Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED"]
    payload: dict[str, Any] = Field(description="The add as it was queued")
    results: list[AddedMemory] = Field(description="When SUCCEEDED: the stored memories (as they are now)")
    error: str | None
    created_at: str
    updated_at: str
    started_at: str | None
    completed_at: str | None
    latency: float | None = Field(description="Milliseconds from start to completion")


class PingResponse(BaseModel):
    status: Literal["ok"]
    org_id: str = Field(description="The key's tenant")
    project_id: str = Field(description="The key's tenant")
    user_email: None
    role: Literal["user", "admin", "operator"]


class EntityObject(BaseModel):
    id: str = Field(examples=["user:alice"])
    name: str
    type: Literal["user", "agent", "app", "run"]
    owner: str = Field(description="The tenant")
    metadata: None
    total_memories: int
    created_at: str | None = Field(description="Its first memory's creation")
    updated_at: str | None = Field(description="Its latest memory change")


class EntitiesResponse(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[EntityObject]
    total_users: int
    total_agents: int
    total_apps: int
    total_runs: int


class ExportCreated(BaseModel):
    message: str
    id: str


class ExportResponse(BaseModel):
    id: str
    schema_: dict[str, Any] = Field(alias="schema", description="As it was given")
    filters: dict[str, Any] | None
    created_at: str
    count: int = Field(description="Memories the filters name now")
    memories: list[MemoryObject] = Field(description="At most 10,000, newest first")


class FeedbackResponse(BaseModel):
    id: str
    memory_id: str
    feedback: Literal["POSITIVE", "NEGATIVE", "VERY_NEGATIVE"] | None
    feedback_reason: str | None


class MessageResponse(BaseModel):
    message: str


class PlatformError(BaseModel):
    """Every error of the Platform dialect; 429s add retry_after, limit and window_seconds."""

    detail: str
    code: str


def platform_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Invalid request (ValidationError in mem0's clients)",
        401: "Missing or unknown key (AuthenticationError)",
        403: "Not allowed for this key's role: webhooks need an admin key (MemoryError)",
        404: "No such memory, export, event or entity for this tenant (MemoryNotFoundError)",
        413: "A message over MAX_MEMORY_SIZE bytes (MemoryQuotaExceededError)",
        429: "Over the key's rate limit; Retry-After (RateLimitError)",
        500: "A bug; the X-Request-ID of the response finds it in the logs (MemoryError)",
        501: "A mem0 Platform feature this server does not offer (MemoryError)",
        503: "A backend is down (NetworkError)",
    }
    return {
        s: {"model": PlatformError, "description": descriptions[s]}
        for s in sorted({400, 401, 429, 500, 503, *statuses})
    }

"""Request and response bodies (the `data` of the envelope), with the validation the API promises.

Size limits that must answer 413 (content over MAX_MEMORY_SIZE) are checked in `check_sizes`
rather than by pydantic, whose failures are 400s.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_validator, model_serializer
from pydantic.config import JsonDict, JsonValue

from memory_service.core.ids import ID_PATTERN, TENANT_PATTERN, validate_user_id
from memory_service.domain.auth.keys import MAX_RATE_LIMIT_PER_MINUTE
from memory_service.domain.memories.commands import AddCommand, AddOutcome, Message
from memory_service.domain.memories.metadata import (
    MAX_ENTITY_LENGTH,
    MAX_KEY_LENGTH,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEYS,
    check_metadata_size,
    metadata_problem,
)
from memory_service.errors import PayloadTooLarge
from memory_service.models.memory import RESERVED_METADATA_KEYS, HistoryEntry, MemoryRecord, UserStats

MAX_MESSAGES = 100
# Text the service stores: no NUL (Postgres cannot store it), and not blank.
NO_NUL_PATTERN = "^[^\\u0000]*$"
NOT_BLANK_PATTERN = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
ID_SCHEMA: JsonDict = {"pattern": ID_PATTERN, "minLength": 1, "maxLength": 128}
METADATA_DESCRIPTION = (
    f"Your keys (1-{MAX_KEY_LENGTH} characters, not reserved) and JSON values: at most {MAX_METADATA_DEPTH} levels "
    f"of nesting, {MAX_METADATA_KEYS} keys in all, {MAX_METADATA_BYTES} bytes as JSON (413 above), no NUL characters. "
    f"`entities`: a list of names (1-{MAX_ENTITY_LENGTH} characters each)."
)
METADATA_SCHEMA: JsonDict = {
    "maxProperties": MAX_METADATA_KEYS,
    "propertyNames": {
        "minLength": 1,
        "maxLength": MAX_KEY_LENGTH,
        "pattern": NO_NUL_PATTERN,
        "not": {"enum": list[JsonValue](sorted(RESERVED_METADATA_KEYS))},
    },
    "properties": {
        "entities": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": MAX_ENTITY_LENGTH, "pattern": NO_NUL_PATTERN},
        }
    },
}


def _check_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and (problem := metadata_problem(value)) is not None:
        raise ValueError(problem)
    return value


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant", "system"]
    # The patterns document what the validators and the middleware enforce (api/middleware.py
    # refuses NUL in every body); they are not run here, on up to MAX_MEMORY_SIZE bytes.
    content: str = Field(
        min_length=1,
        description="Not blank; at most MAX_MEMORY_SIZE bytes (UTF-8, 413 above)",
        json_schema_extra={"pattern": NOT_BLANK_PATTERN},
    )
    name: str | None = Field(None, max_length=128, json_schema_extra={"pattern": NO_NUL_PATTERN})

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("content must not be blank")
        return value


class AddMemoryRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "messages": [{"role": "user", "content": "I love building AI applications with FastAPI"}],
                    "user_id": "test_user_123",
                    "metadata": {"source": "external_test"},
                }
            ]
        },
    )
    messages: list[MessageIn] = Field(
        min_length=1,
        max_length=MAX_MESSAGES,
        description="At least one message with role `user` (each becomes a memory without inference)",
        json_schema_extra={"contains": {"type": "object", "properties": {"role": {"const": "user"}}}},
    )
    user_id: str | None = Field(None, description="Default: DEFAULT_USER_ID", json_schema_extra=ID_SCHEMA)
    agent_id: str | None = Field(None, json_schema_extra=ID_SCHEMA)
    run_id: str | None = Field(None, json_schema_extra=ID_SCHEMA)
    metadata: dict[str, Any] | None = Field(None, description=METADATA_DESCRIPTION, json_schema_extra=METADATA_SCHEMA)
    infer: bool | None = Field(
        None, description="Extract facts with the LLM (default: true when Ollama is configured, else false)"
    )

    @field_validator("user_id", "agent_id", "run_id")
    @classmethod
    def _ids(cls, value: str | None) -> str | None:
        return None if value is None else validate_user_id(value)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_metadata(value)

    def command(self, default_user_id: str) -> AddCommand:
        return AddCommand(
            user_id=self.user_id or default_user_id,
            messages=tuple(Message(m.role, m.content, m.name) for m in self.messages),
            agent_id=self.agent_id,
            run_id=self.run_id,
            metadata=dict(self.metadata or {}),
            infer=self.infer,
        )


class UpdateMemoryRequest(BaseModel):
    """Content, metadata or both (400 when neither is given)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"content": "Loves FastAPI and Litestar"}],
            "anyOf": [
                {"required": ["content"], "properties": {"content": {"type": "string"}}},
                {"required": ["metadata"], "properties": {"metadata": {"type": "object"}}},
            ],
        },
    )
    content: str | None = Field(
        None,
        min_length=1,
        description="Not blank; at most MAX_MEMORY_SIZE bytes (UTF-8, 413 above)",
        json_schema_extra={"pattern": NOT_BLANK_PATTERN},
    )
    metadata: dict[str, Any] | None = Field(
        None,
        description=f"Merged into the memory's metadata. {METADATA_DESCRIPTION}",
        json_schema_extra=METADATA_SCHEMA,
    )

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("content must not be blank")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_metadata(value)


def check_sizes(max_memory_size: int, contents: list[str], metadata: dict[str, Any] | None) -> None:
    """413 for content over MAX_MEMORY_SIZE bytes (UTF-8) or metadata over MAX_METADATA_BYTES."""
    for content in contents:
        size = len(content.encode())
        if size > max_memory_size:
            raise PayloadTooLarge(
                f"Memory content is {size} bytes; the limit is {max_memory_size} (MAX_MEMORY_SIZE)",
                {"size": size, "limit": max_memory_size},
            )
    if metadata is not None:
        check_metadata_size(metadata)


class RelationshipOut(BaseModel):
    type: str = Field(examples=["mentions"])
    entity: str = Field(examples=["AI applications"])
    confidence: float = Field(examples=[0.95])


class MemoryOut(BaseModel):
    """The seed's memory object, plus timestamps; `score` on search, `embedding` on request."""

    id: str
    content: str
    user_id: str
    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any] = Field(
        examples=[{"source": "chat", "timestamp": "2025-07-30T20:15:00Z", "entities": ["AI", "local models"]}]
    )
    relationships: list[RelationshipOut]
    created_at: str | None
    updated_at: str | None
    score: float | None = None
    embedding: list[float] | None = None

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for optional in ("score", "embedding"):
            if data.get(optional) is None:
                data.pop(optional, None)
        return data

    @classmethod
    def of(cls, record: MemoryRecord) -> MemoryOut:
        return cls.model_validate(record, from_attributes=True)


class AddedMemories(BaseModel):
    memories: list[MemoryOut]
    count: int
    inference: Literal["none", "extracted", "fallback"] = Field(
        description="none: stored as given; extracted: facts from the LLM; fallback: LLM gave nothing, stored as given"
    )

    @classmethod
    def of(cls, outcome: AddOutcome) -> AddedMemories:
        memories = [MemoryOut.of(r) for r in outcome.memories]
        return cls(memories=memories, count=len(memories), inference=outcome.inference)


class SearchResults(BaseModel):
    memories: list[MemoryOut]
    count: int
    query: str


class MemoryList(BaseModel):
    memories: list[MemoryOut]
    total: int
    limit: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class Deleted(BaseModel):
    id: str
    deleted: bool = True


class Erased(BaseModel):
    user_id: str
    deleted_count: int


class HistoryOut(BaseModel):
    id: str
    memory_id: str
    event: str
    old_content: str | None
    new_content: str | None
    created_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryOut:
        return cls.model_validate(entry, from_attributes=True)


class MemoryHistory(BaseModel):
    memory_id: str
    history: list[HistoryOut]


class UserStatsOut(BaseModel):
    user_id: str
    memory_count: int
    first_write: str | None
    last_write: str | None
    sources: dict[str, int]
    entity_count: int

    @classmethod
    def of(cls, stats: UserStats) -> UserStatsOut:
        return cls.model_validate(stats, from_attributes=True)


class EntityOut(BaseModel):
    name: str = Field(examples=["FastAPI"])
    key: str = Field(examples=["fastapi"], description="Normalised name: entities differing in case are one")
    memory_count: int
    confidence: float = Field(description="Highest confidence of a mention")


class EntityList(BaseModel):
    user_id: str
    entities: list[EntityOut]
    count: int
    source: Literal["neo4j", "postgres"] = Field(description="Which store answered")


class EntityMemories(BaseModel):
    user_id: str
    entity: str
    memories: list[MemoryOut]
    count: int
    source: Literal["neo4j", "postgres"]


class DependencyState(BaseModel):
    up: bool
    latency_ms: float | None = None
    checked_at: str | None = None
    error: str | None = None


class Saturation(BaseModel):
    """How busy this process is: its engine threads, the calls queued for one, admission per key
    and the database pool. Reported, never a reason for /health to fail."""

    threads: int = Field(description="Engine threads (one per pooled connection: DB_POOL_SIZE)")
    threads_busy: int = Field(description="Threads running an engine call")
    queued: int = Field(description="Engine calls waiting for a thread")
    stragglers: int = Field(description="Calls cancelled at their deadline whose thread has not stopped yet")
    keys_at_limit: int = Field(description="API keys holding all KEY_CONCURRENCY slots")
    waiting: int = Field(description="Requests waiting for one of their key's slots")
    db_connections: int = Field(description="Open pooled database connections")
    db_connections_idle: int = Field(description="Of those, idle")
    db_waiting: int = Field(description="Requests waiting for a database connection")


class HealthOut(BaseModel):
    status: Literal["ok", "degraded", "draining"]
    version: str
    dependencies: dict[str, DependencyState]
    saturation: Saturation | None = None


class ProbeOut(BaseModel):
    """Liveness or readiness: `status` is `alive`/`ready` or why not."""

    status: str
    reasons: list[str] = Field(default_factory=list)


class StatusOut(BaseModel):
    version: str
    uptime_seconds: float
    profile: str
    environment: str
    providers: dict[str, str]
    dependencies: dict[str, DependencyState]
    memory_count: int
    tenant: str


class CreateKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str = Field(
        description="An admin key may name only its own tenant; an operator key any",
        json_schema_extra={"pattern": TENANT_PATTERN, "minLength": 1, "maxLength": 64},
    )
    role: Literal["user", "admin", "operator"] = Field(
        "user", description="`operator` only with the bootstrap key (API_KEY); see docs/api.md"
    )
    name: str | None = Field(None, max_length=200, json_schema_extra={"pattern": NO_NUL_PATTERN})
    rate_limit: int | None = Field(
        None, ge=1, le=MAX_RATE_LIMIT_PER_MINUTE, description="Requests per minute for this key"
    )


class KeyOut(BaseModel):
    id: str
    prefix: str
    tenant: str
    role: str
    name: str | None
    rate_limit_per_minute: int | None
    well_known: bool
    created_at: str
    revoked_at: str | None


class KeyCreated(KeyOut):
    key: str = Field(description="Shown once; only its hash is stored")


class KeyList(BaseModel):
    keys: list[KeyOut]
    count: int

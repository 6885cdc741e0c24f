"""The memory record as the service sees it, built from mem0's stored payload.

mem0 keeps a memory's text, ids and metadata side by side in one JSON payload. This module
decides which keys are ours (internal, never shown or writable as metadata) and which are the
client's, and turns a payload into the seed's memory object fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memory_service.core.json_rules import clamp_depth
from memory_service.core.timefmt import rfc3339
from memory_service.models.scope import split_user_key

# Keys mem0 or the service write into the payload; clients can neither set nor see them as metadata.
INTERNAL_KEYS = frozenset(
    {
        "data",
        "hash",
        "created_at",
        "updated_at",
        "text_lemmatized",
        "user_id",
        "agent_id",
        "run_id",
        "app_id",
        "actor_id",
        "role",
        "attributed_to",
        "expiration_date",
        "memory_type",
        "tenant_id",
        "entities",
        "entity_keys",
        "relationships",
        "metadata_defaults",
    }
)
# Metadata keys a client may not send: ours, plus the ones the service sets and shows.
RESERVED_METADATA_KEYS = (INTERNAL_KEYS - {"entities"}) | {"id", "content", "score", "inference"}
# Deepest metadata a read returns as stored. Writes are limited to far less (MAX_METADATA_DEPTH in
# domain/memories/metadata.py); deeper documents stored before that limit existed are returned
# with their deepest parts replaced by a marker, since the JSON encoder gives up near 255 levels
# and one such memory made every list and search of its owner fail.
READ_MAX_DEPTH = 64


@dataclass(slots=True)
class MemoryRecord:
    id: str
    content: str
    user_id: str
    agent_id: str | None
    run_id: str | None
    metadata: dict[str, Any]
    relationships: list[dict[str, Any]]
    created_at: str | None
    updated_at: str | None
    score: float | None = None
    embedding: list[float] | None = None
    tenant: str = field(default="", repr=False)
    sort_key: str = field(default="", repr=False)  # created_at as stored: the pagination order
    app_id: str | None = None
    # Metadata keys the service filled in (source, timestamp) rather than the client: the mem0
    # Platform dialect shows a memory's metadata as its client stored it.
    defaulted: tuple[str, ...] = field(default=(), repr=False)

    @property
    def client_metadata(self) -> dict[str, Any]:
        """The metadata as the client gave it: without the entities and defaults the service adds."""
        return {k: v for k, v in self.metadata.items() if k != "entities" and k not in self.defaulted}

    @classmethod
    def from_payload(cls, memory_id: str, payload: dict[str, Any], score: float | None = None) -> MemoryRecord:
        tenant, user_id = split_user_key(str(payload.get("user_id", "")))
        metadata = clamp_depth({k: v for k, v in payload.items() if k not in INTERNAL_KEYS}, READ_MAX_DEPTH)
        metadata["entities"] = list(payload.get("entities") or [])
        defaulted = {str(k) for k in payload.get("metadata_defaults") or ()}
        for key, value in (("source", "api"), ("timestamp", rfc3339(payload.get("created_at")))):
            if key not in metadata:
                metadata[key] = value
                defaulted.add(key)
        return cls(
            id=str(memory_id),
            content=str(payload.get("data", "")),
            user_id=user_id,
            agent_id=payload.get("agent_id"),
            run_id=payload.get("run_id"),
            metadata=metadata,
            relationships=list(payload.get("relationships") or []),
            created_at=rfc3339(payload.get("created_at")),
            updated_at=rfc3339(payload.get("updated_at")),
            score=score,
            tenant=tenant,
            sort_key=str(payload.get("created_at") or ""),
            app_id=payload.get("app_id"),
            defaulted=tuple(sorted(defaulted)),
        )

    def to_json(self) -> dict[str, Any]:
        """The public fields (the contract's memory object), for stored job results."""
        return {
            "id": self.id,
            "content": self.content,
            "user_id": self.user_id,
            "agent_id": self.agent_id,
            "run_id": self.run_id,
            "metadata": self.metadata,
            "relationships": self.relationships,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(slots=True)
class MemoryPage:
    items: list[MemoryRecord]
    total: int
    next_cursor: str | None


@dataclass(slots=True)
class UserStats:
    user_id: str
    memory_count: int
    first_write: str | None
    last_write: str | None
    sources: dict[str, int]
    entity_count: int


@dataclass(frozen=True, slots=True)
class UserSummary:
    """One user of a tenant, as the console lists them."""

    user_id: str
    memory_count: int
    last_write: str | None


@dataclass(slots=True)
class UserPage:
    users: list[UserSummary]
    total: int
    next_after: str | None  # the last user id of this page, when there is a next one


@dataclass(slots=True)
class HistoryEntry:
    id: str
    memory_id: str
    event: str
    old_content: str | None
    new_content: str | None
    created_at: str | None
    updated_at: str | None
    recorded_at: str | None
    user_id: str | None = None

"""Typed results: the `data` of the service's envelope, one model per shape.

Models accept fields they do not know (`extra="allow"`), so a newer service that adds a field
does not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Relationship(_Model):
    type: str
    entity: str
    confidence: float


class Memory(_Model):
    """The contract's memory object. `score` is set on search hits, `embedding` when asked for."""

    id: str
    content: str
    user_id: str
    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    relationships: list[Relationship] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    score: float | None = None
    embedding: list[float] | None = None


class AddResult(_Model):
    memories: list[Memory]
    count: int
    inference: Literal["none", "extracted", "fallback"] | str


class SearchResult(_Model):
    memories: list[Memory]
    count: int
    query: str


class MemoryPage(_Model):
    """One page of a user's memories, newest first; `next_cursor` is None on the last page."""

    memories: list[Memory]
    total: int
    limit: int
    next_cursor: str | None = None


class Deleted(_Model):
    id: str
    deleted: bool = True


class Erased(_Model):
    user_id: str
    deleted_count: int


class HistoryEntry(_Model):
    id: str
    memory_id: str
    event: str
    old_content: str | None = None
    new_content: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class UserStats(_Model):
    user_id: str
    memory_count: int
    first_write: datetime | None = None
    last_write: datetime | None = None
    sources: dict[str, int] = Field(default_factory=dict)
    entity_count: int


class Entity(_Model):
    name: str
    key: str
    memory_count: int
    confidence: float


class EntityList(_Model):
    user_id: str
    entities: list[Entity]
    count: int
    source: str


class EntityMemories(_Model):
    user_id: str
    entity: str
    memories: list[Memory]
    count: int
    source: str


class ErrorInfo(_Model):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


JobState = Literal["queued", "running", "succeeded", "failed"]


class JobAccepted(_Model):
    """What `add(..., async_mode=True)` returns: poll it with `job()` or `wait_for_job()`."""

    job_id: str
    state: JobState
    status_url: str


class Job(_Model):
    job_id: str
    kind: str
    state: JobState
    attempts: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    status_url: str
    result: AddResult | None = None
    error: ErrorInfo | None = None

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed")


class DependencyState(_Model):
    up: bool
    latency_ms: float | None = None
    checked_at: datetime | None = None
    error: str | None = None


class Health(_Model):
    status: Literal["ok", "degraded"] | str
    version: str
    dependencies: dict[str, DependencyState] = Field(default_factory=dict)


class Status(_Model):
    version: str
    uptime_seconds: float
    profile: str
    environment: str
    providers: dict[str, str]
    dependencies: dict[str, DependencyState]
    memory_count: int
    tenant: str


class ApiKey(_Model):
    id: str
    prefix: str
    tenant: str
    role: Literal["user", "admin"] | str
    name: str | None = None
    rate_limit_per_minute: int | None = None
    well_known: bool = False
    created_at: datetime
    revoked_at: datetime | None = None


class CreatedKey(ApiKey):
    key: str = Field(description="The secret; shown once, only its hash is stored")


# -- webhooks ----------------------------------------------------------------------------------------

WebhookEventType = Literal[
    "memory.created", "memory.updated", "memory.deleted", "user.erased", "job.completed", "job.failed"
]
WebhookFormat = Literal["standard", "mem0"]
DeliveryState = Literal["pending", "succeeded", "dead"]


class Webhook(_Model):
    """An endpoint of the key's tenant. `event_types` and `format` are plain strings so a newer
    service's additions still parse; `WebhookEventType` names the ones this client knows."""

    id: str
    url: str
    description: str | None = None
    event_types: list[str]
    enabled: bool
    format: str
    created_at: datetime
    updated_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        None, description="During a rotation's overlap: until when deliveries are also signed with the previous secret"
    )


class CreatedWebhook(Webhook):
    secret: str = Field(description="The signing secret (whsec_...); shown only this once")


class RotatedSecret(_Model):
    webhook: Webhook
    secret: str = Field(description="The new signing secret; shown only this once")


class Delivery(_Model):
    """One event on its way to one webhook. `event_id` is the `webhook-id` header of every
    attempt (a redelivery too): receivers deduplicate on it."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    state: DeliveryState | str
    attempts: int
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_duration_ms: float | None = None
    last_error: str | None = None
    last_response_excerpt: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


class DeliveryPage(_Model):
    """One page of a webhook's deliveries, newest first; `next_cursor` is None on the last page."""

    deliveries: list[Delivery]
    limit: int
    next_cursor: str | None = None

"""Webhook events and endpoints as the rest of the service sees them.

An event is built where the change happens (storage write paths, in the change's own
transaction), so its body is fixed there: a stable id (the `webhook-id` of every attempt, which
receivers deduplicate on), the type, the time of the change, the tenant, the user and what
changed. The memory is the contract's memory object; a deleted memory is named by its id. No key
material, and no secret, is ever part of a body.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from memory_service.core.timefmt import now_rfc3339, rfc3339
from memory_service.models.memory import MemoryRecord
from memory_service.models.scope import split_user_key


class EventType(StrEnum):
    MEMORY_CREATED = "memory.created"
    MEMORY_UPDATED = "memory.updated"
    MEMORY_DELETED = "memory.deleted"
    USER_ERASED = "user.erased"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)
# Sent only by the test-delivery route, to one webhook, whatever it subscribes to.
TEST_EVENT = "webhook.test"


class PayloadFormat(StrEnum):
    """How a webhook's bodies are shaped: ours, or the mem0 Platform's (for its dialect)."""

    STANDARD = "standard"
    MEM0 = "mem0"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be recorded with the change it describes."""

    tenant: str
    type: str
    body: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.body["id"])


def new_event(type_: str, tenant: str, user_id: str | None, data: dict[str, Any]) -> NewEvent:
    body = {
        "id": str(uuid.uuid4()),
        "type": type_,
        "timestamp": now_rfc3339(),
        "tenant": tenant,
        "user_id": user_id,
        "data": data,
    }
    return NewEvent(tenant, type_, body)


def memory_event(type_: EventType, memory_id: str, payload: dict[str, Any]) -> NewEvent:
    """memory.created / memory.updated from the stored payload: the memory as the API shows it."""
    record = MemoryRecord.from_payload(memory_id, payload)
    return new_event(type_, record.tenant, record.user_id, {"memory": record.to_json()})


def memory_deleted(memory_id: str, user_key: str) -> NewEvent:
    tenant, user_id = split_user_key(user_key)
    return new_event(EventType.MEMORY_DELETED, tenant, user_id, {"memory_id": memory_id})


def user_erased(user_key: str, deleted_count: int) -> NewEvent:
    tenant, user_id = split_user_key(user_key)
    return new_event(EventType.USER_ERASED, tenant, user_id, {"deleted_count": deleted_count})


def job_finished(
    job_id: str,
    tenant: str,
    user_id: str | None,
    state: str,
    attempts: int,
    result: dict[str, Any] | None,
    error: dict[str, Any] | None,
) -> NewEvent:
    type_ = EventType.JOB_COMPLETED if state == "succeeded" else EventType.JOB_FAILED
    data: dict[str, Any] = {"job_id": job_id, "kind": "add", "state": state, "attempts": attempts}
    if type_ is EventType.JOB_COMPLETED:
        data["result"] = result
    else:
        data["error"] = error
    return new_event(type_, tenant, user_id, data)


def webhook_test_event(tenant: str, webhook_id: str) -> NewEvent:
    return new_event(TEST_EVENT, tenant, None, {"webhook_id": webhook_id, "message": "Test delivery"})


@dataclass(slots=True)
class Webhook:
    """An endpoint of a tenant; the secrets never leave the service except once, when made."""

    id: str
    tenant: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    format: str
    created_at: datetime
    updated_at: datetime
    previous_secret_expires_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "description": self.description,
            "event_types": list(self.event_types),
            "enabled": self.enabled,
            "format": self.format,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "previous_secret_expires_at": rfc3339(self.previous_secret_expires_at),
        }


@dataclass(slots=True)
class Delivery:
    """One event on its way to one webhook: the attempts so far and what the receiver said."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    state: str  # pending, succeeded, dead
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status: int | None
    last_duration_ms: float | None
    last_error: str | None
    last_response: str | None
    created_at: datetime
    finished_at: datetime | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "webhook_id": self.webhook_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "state": self.state,
            "attempts": self.attempts,
            "next_attempt_at": rfc3339(self.next_attempt_at) if self.state == "pending" else None,
            "last_attempt_at": rfc3339(self.last_attempt_at),
            "last_status_code": self.last_status,
            "last_duration_ms": None if self.last_duration_ms is None else round(self.last_duration_ms, 1),
            "last_error": self.last_error,
            "last_response_excerpt": self.last_response,
            "created_at": rfc3339(self.created_at),
            "finished_at": rfc3339(self.finished_at),
        }


@dataclass(slots=True)
class DeliveryPage:
    items: list[Delivery]
    next_cursor: str | None


@dataclass(slots=True)
class ClaimedDelivery:
    """What a worker needs to send one delivery: where, how to sign it, and the event."""

    id: str
    claim: str
    webhook_id: str
    url: str
    format: str
    secrets: list[str] = field(default_factory=list)  # current first, then one in its overlap window
    event_id: str = ""
    event_type: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    retry_from: datetime | None = None

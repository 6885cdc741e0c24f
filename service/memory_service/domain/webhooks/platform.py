"""The mem0 Platform's webhook vocabulary, mapped onto this service's webhooks.

The Platform dialect (api/platform/) exposes `get_webhooks`, `create_webhook`, `update_webhook`
and `delete_webhook` of mem0's official clients over the same WebhookService: it only renames
events (`memory:add` is `memory.created`, ...), names (`name` is the description) and asks for
the Platform's body shape (PayloadFormat.MEM0, rendered by `platform_body`). Everything else
(validation, targets, signing, retries, limits) is shared.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from memory_service.errors import InvalidRequest
from memory_service.models.webhooks import EventType

# The Platform writes these both as `memory:add` and (in older docs and clients) `memory_add`.
PLATFORM_EVENTS: dict[str, EventType] = {
    "memory:add": EventType.MEMORY_CREATED,
    "memory:update": EventType.MEMORY_UPDATED,
    "memory:delete": EventType.MEMORY_DELETED,
}
_PLATFORM_ACTIONS = {
    EventType.MEMORY_CREATED.value: "ADD",
    EventType.MEMORY_UPDATED.value: "UPDATE",
    EventType.MEMORY_DELETED.value: "DELETE",
}


def from_platform_events(names: Iterable[str]) -> list[str]:
    """The service's event types for the Platform's names; 400 naming any unknown one."""
    result: list[str] = []
    for name in names:
        event = PLATFORM_EVENTS.get(name.replace("_", ":", 1))
        if event is None:
            allowed = ", ".join(PLATFORM_EVENTS)
            raise InvalidRequest(f"unknown event type '{name}' (allowed: {allowed})", {"field": "event_types"})
        if event.value not in result:
            result.append(event.value)
    return result


def to_platform_events(event_types: Iterable[str]) -> list[str]:
    names = {event.value: name for name, event in PLATFORM_EVENTS.items()}
    return [names[t] for t in event_types if t in names]


def platform_body(body: dict[str, Any]) -> dict[str, Any] | None:
    """The Platform's body for a memory event (`{"event_details": {id, data: {memory}, event}}`),
    or None for events the Platform has no shape for (those keep the standard body)."""
    action = _PLATFORM_ACTIONS.get(str(body.get("type")))
    if action is None:
        return None
    data = body.get("data") or {}
    memory = data.get("memory") or {}
    memory_id = memory.get("id") or data.get("memory_id")
    details: dict[str, Any] = {"id": memory_id, "event": action, "data": {"memory": memory.get("content")}}
    return {"event_details": details}

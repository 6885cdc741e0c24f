"""The mem0 Platform's webhook vocabulary and body shape."""

from __future__ import annotations

import pytest
from memory_service.domain.webhooks.platform import from_platform_events, platform_body, to_platform_events
from memory_service.errors import InvalidRequest
from memory_service.models.webhooks import EventType, memory_deleted, memory_event


def test_event_names_map_both_ways() -> None:
    names = ["memory:add", "memory_update", "memory:delete", "memory:add"]
    assert from_platform_events(names) == ["memory.created", "memory.updated", "memory.deleted"]
    assert to_platform_events(["memory.deleted", "user.erased", "memory.created"]) == ["memory:delete", "memory:add"]
    with pytest.raises(InvalidRequest):
        from_platform_events(["memory:categorize"])


def test_platform_bodies_for_memory_events_only() -> None:
    payload = {"data": "Name is Alex", "user_id": "acme/alex", "created_at": "2026-01-01T00:00:00+00:00"}
    created = memory_event(EventType.MEMORY_CREATED, "m1", payload).body
    assert platform_body(created) == {"event_details": {"id": "m1", "event": "ADD", "data": {"memory": "Name is Alex"}}}
    deleted = memory_deleted("m1", "acme/alex").body
    assert platform_body(deleted) == {"event_details": {"id": "m1", "event": "DELETE", "data": {"memory": None}}}
    assert platform_body({"type": "user.erased", "data": {}}) is None

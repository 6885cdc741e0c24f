"""A stored payload becomes the contract's memory object: ids, the client's metadata only, RFC 3339 Z."""

from __future__ import annotations

import json

from memory_service.core.json_rules import TRUNCATED, depth_exceeds
from memory_service.models.memory import INTERNAL_KEYS, READ_MAX_DEPTH, RESERVED_METADATA_KEYS, MemoryRecord
from memory_service.models.scope import Scope, split_user_key, user_key

MEMORY_ID = "6f1c0a52-5f0e-4a55-9d2e-2a6b7b1f3c11"


def stored_payload() -> dict[str, object]:
    """A payload as mem0 and the service write it."""
    return {
        "data": "User loves FastAPI",
        "hash": "5d41402abc4b2a76b9719d911017c592",
        "user_id": "acme/alice",
        "agent_id": "bot",
        "run_id": None,
        "created_at": "2025-07-30T13:15:00.250000-07:00",
        "updated_at": "2025-07-31T08:00:00+00:00",
        "text_lemmatized": "user love fastapi",
        "tenant_id": "acme",
        "entities": ["FastAPI"],
        "entity_keys": ["fastapi"],
        "relationships": [{"type": "mentions", "entity": "FastAPI", "confidence": 0.85}],
        "source": "chat",
        "priority": 3,
    }


def test_a_payload_becomes_the_memory_object() -> None:
    record = MemoryRecord.from_payload(MEMORY_ID, stored_payload(), score=0.42)
    assert record.to_json() == {
        "id": MEMORY_ID,
        "content": "User loves FastAPI",
        "user_id": "alice",  # the plain id: the tenant never shows
        "agent_id": "bot",
        "run_id": None,
        "metadata": {
            "source": "chat",
            "priority": 3,
            "entities": ["FastAPI"],
            "timestamp": "2025-07-30T20:15:00.250000Z",
        },
        "relationships": [{"type": "mentions", "entity": "FastAPI", "confidence": 0.85}],
        "created_at": "2025-07-30T20:15:00.250000Z",
        "updated_at": "2025-07-31T08:00:00Z",
    }
    assert record.score == 0.42
    assert record.tenant == "acme"
    assert record.sort_key == "2025-07-30T13:15:00.250000-07:00"  # as stored: the pagination order


def test_a_minimal_payload_gets_the_defaults() -> None:
    record = MemoryRecord.from_payload(MEMORY_ID, {"data": "x", "user_id": "acme/bob"})
    assert record.metadata == {"entities": [], "source": "api", "timestamp": None}
    assert (record.created_at, record.updated_at, record.relationships) == (None, None, [])
    assert (record.agent_id, record.run_id, record.score, record.embedding) == (None, None, None, None)


def test_the_clients_own_source_and_timestamp_are_kept() -> None:
    payload = {**stored_payload(), "source": "email", "timestamp": "yesterday"}
    assert MemoryRecord.from_payload(MEMORY_ID, payload).metadata["timestamp"] == "yesterday"
    assert MemoryRecord.from_payload(MEMORY_ID, payload).metadata["source"] == "email"


def test_no_internal_key_leaks_into_metadata() -> None:
    metadata = MemoryRecord.from_payload(MEMORY_ID, stored_payload()).metadata
    assert set(metadata) == {"source", "priority", "entities", "timestamp"}
    assert not (set(metadata) - {"entities"}) & INTERNAL_KEYS


def test_clients_may_not_send_the_keys_the_service_sets_or_shows() -> None:
    for key in ("user_id", "tenant_id", "hash", "created_at", "id", "content", "score", "inference"):
        assert key in RESERVED_METADATA_KEYS
    assert "entities" not in RESERVED_METADATA_KEYS  # a client may name entities itself
    assert "source" not in RESERVED_METADATA_KEYS


def test_the_user_key_qualifies_the_user_with_its_tenant() -> None:
    assert Scope("acme", "alice", "bot").user_key == "acme/alice"
    assert user_key("acme", "a:b@c") == "acme/a:b@c"
    assert split_user_key("acme/alice") == ("acme", "alice")
    assert split_user_key("acme/x/y") == ("acme", "x/y")  # only the first `/` separates: tenants have none
    assert split_user_key("legacy") == ("legacy", "")


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def _payload(**metadata: object) -> dict:
    return {"data": "hello", "user_id": "acme/bob", "created_at": "2025-07-30T20:15:00+00:00", **metadata}


def test_a_deep_legacy_document_is_clamped_not_fatal() -> None:
    record = MemoryRecord.from_payload("id-1", _payload(deep=_nested(300), plain="kept"))
    assert record.metadata["plain"] == "kept"
    assert not depth_exceeds(record.metadata, READ_MAX_DEPTH)
    assert TRUNCATED in json.dumps(record.metadata)
    assert record.content == "hello"
    assert (record.tenant, record.user_id) == ("acme", "bob")


def test_ordinary_metadata_is_returned_as_stored() -> None:
    nested = _nested(READ_MAX_DEPTH - 1)
    record = MemoryRecord.from_payload("id-2", _payload(source="chat", nested=nested))
    assert record.metadata["nested"] == nested
    assert record.metadata["source"] == "chat"

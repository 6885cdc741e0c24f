"""The rules for a memory's metadata, checked before anything is stored, whatever the surface.

Metadata is free-form JSON that is stored in the payload, returned on every read and filtered on
in SQL, so it is bounded: a document nested hundreds of levels deep was once stored and then made
every list and search of its owner fail. The HTTP bodies check these rules in their validators
(so the error names the field); the engine checks them again before a write, so that every other
way in (queued jobs, other dialects) is held to the same rules.
"""

from __future__ import annotations

import json
from typing import Any

from memory_service.core.json_rules import value_problem
from memory_service.errors import InvalidRequest, PayloadTooLarge
from memory_service.models.memory import RESERVED_METADATA_KEYS

MAX_METADATA_BYTES = 64 * 1024  # serialized as compact JSON, UTF-8; 413 above
MAX_METADATA_DEPTH = 10  # levels of objects and arrays, the metadata object itself included
MAX_METADATA_KEYS = 128  # keys over every nested object
MAX_KEY_LENGTH = 64  # top-level keys (they are filterable)
MAX_ENTITY_LENGTH = 200


def metadata_problem(value: dict[str, Any]) -> str | None:
    """Why this metadata must be refused with 400, or None. (Size is separate: it is a 413.)"""
    for key in value:
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            return f"metadata keys must be 1-{MAX_KEY_LENGTH} characters"
        if key in RESERVED_METADATA_KEYS:
            return f"metadata key '{key}' is reserved"
    problem = value_problem(value, max_depth=MAX_METADATA_DEPTH, max_keys=MAX_METADATA_KEYS)
    if problem is not None:
        return problem
    entities = value.get("entities")
    if entities is not None and (
        not isinstance(entities, list)
        or not all(isinstance(e, str) and 0 < len(e) <= MAX_ENTITY_LENGTH for e in entities)
    ):
        return f"metadata.entities must be a list of names (strings of 1-{MAX_ENTITY_LENGTH} characters)"
    return None


def metadata_size(value: dict[str, Any]) -> int:
    """Bytes of the metadata as compact JSON (call after metadata_problem: it is then serializable)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def check_metadata_size(value: dict[str, Any]) -> None:
    size = metadata_size(value)
    if size > MAX_METADATA_BYTES:
        raise PayloadTooLarge(
            f"metadata is {size} bytes; the limit is {MAX_METADATA_BYTES}",
            {"size": size, "limit": MAX_METADATA_BYTES},
        )


def validate_metadata(value: dict[str, Any] | None) -> None:
    """400 INVALID_REQUEST or 413 PAYLOAD_TOO_LARGE for metadata that must not be stored."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise InvalidRequest("metadata must be an object", {"field": "metadata"})
    problem = metadata_problem(value)
    if problem is not None:
        raise InvalidRequest(f"metadata: {problem}", {"field": "metadata"})
    check_metadata_size(value)

"""domain/memories/metadata.py: the limits every surface holds metadata to before storing it."""

from __future__ import annotations

import pytest
from memory_service.domain.memories.metadata import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEYS,
    metadata_problem,
    validate_metadata,
)
from memory_service.errors import InvalidRequest, PayloadTooLarge


def _nested(depth: int) -> dict:
    value: dict = {"leaf": "x"}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_ordinary_metadata_passes() -> None:
    metadata = {"source": "chat", "priority": 3, "tags": ["a", "b"], "nested": {"k": [1, 2.5, None, True]}}
    assert metadata_problem(metadata) is None
    validate_metadata(metadata)
    validate_metadata(None)


def test_depth_limit_is_inclusive() -> None:
    assert metadata_problem(_nested(MAX_METADATA_DEPTH)) is None
    assert "levels" in (metadata_problem(_nested(MAX_METADATA_DEPTH + 1)) or "")
    with pytest.raises(InvalidRequest) as raised:
        validate_metadata(_nested(260))  # the depth that once broke its owner's reads
    assert raised.value.details == {"field": "metadata"}


def test_key_count_over_all_levels() -> None:
    flat = {f"k{i}": i for i in range(MAX_METADATA_KEYS)}
    assert metadata_problem(flat) is None
    spread = {"a": {f"k{i}": i for i in range(MAX_METADATA_KEYS)}}  # 1 + 128 keys
    assert "keys" in (metadata_problem(spread) or "")


@pytest.mark.parametrize(
    "metadata",
    [
        {"user_id": "someone-else"},
        {"tenant_id": "other"},
        {"": 1},
        {"k" * 65: 1},
        {"entities": "not a list"},
        {"entities": [""]},
        {"note": "a\x00b"},
        {"nested": {"k\x00": 1}},
        {"n": float("nan")},
        {"n": [float("inf")]},
    ],
)
def test_refused_metadata(metadata: dict) -> None:
    assert metadata_problem(metadata) is not None
    with pytest.raises(InvalidRequest):
        validate_metadata(metadata)


def test_size_over_the_limit_is_413() -> None:
    validate_metadata({"blob": "x" * (MAX_METADATA_BYTES - 20)})
    with pytest.raises(PayloadTooLarge) as raised:
        validate_metadata({"blob": "x" * MAX_METADATA_BYTES})
    assert raised.value.details["limit"] == MAX_METADATA_BYTES

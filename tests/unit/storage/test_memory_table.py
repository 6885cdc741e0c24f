"""The list cursor: opaque to clients, a round trip for the service, and a 400 for anything forged."""

from __future__ import annotations

import base64
import json

import pytest
from memory_service.errors import InvalidRequest
from memory_service.storage.memory_table import decode_cursor, encode_cursor

MEMORY_ID = "6f1c0a52-5f0e-4a55-9d2e-2a6b7b1f3c11"
CREATED = "2025-07-30T20:15:00.123456+00:00"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_cursor_round_trips() -> None:
    assert decode_cursor(encode_cursor(CREATED, MEMORY_ID)) == (CREATED, MEMORY_ID)


def test_the_cursor_is_url_safe_base64_of_the_sort_key_without_padding() -> None:
    cursor = encode_cursor(CREATED, MEMORY_ID)
    assert cursor == _b64(json.dumps([CREATED, MEMORY_ID], separators=(",", ":")).encode())
    assert "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_padding_is_optional_on_the_way_in() -> None:
    padded = base64.urlsafe_b64encode(json.dumps([CREATED, MEMORY_ID]).encode()).decode()
    assert padded.endswith("=")
    assert decode_cursor(padded) == (CREATED, MEMORY_ID)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "abc",  # not base64 of anything
        _b64(b"\xff\xfe"),  # not UTF-8
        _b64(b"not json"),
        _b64(b"null"),
        _b64(b'"ab"'),  # a string unpacks into two characters, neither a uuid
        _b64(b'{"a": 1}'),
        _b64(b'["x"]'),
        _b64(b'["a", "b", "c"]'),
        _b64(b'["x", "not-a-uuid"]'),
        _b64(json.dumps([1, MEMORY_ID]).encode()),  # created_at must be a string
        _b64(json.dumps([["x"], MEMORY_ID]).encode()),
        _b64(json.dumps([CREATED, 5]).encode()),  # the id must be a string (was an AttributeError: a 500)
        _b64(json.dumps([CREATED, [MEMORY_ID]]).encode()),
        _b64(json.dumps([CREATED, {"id": MEMORY_ID}]).encode()),
    ],
)
def test_a_forged_cursor_is_a_400_on_the_cursor_field(cursor: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_cursor(cursor)
    assert caught.value.message == "cursor is not valid"
    assert caught.value.details == {"field": "cursor"}

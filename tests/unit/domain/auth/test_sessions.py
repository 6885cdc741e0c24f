"""Console session rules that need no database: the stored id hash and the CSRF token check."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from memory_service.domain.auth.sessions import ConsoleSession, hash_session_id
from memory_service.models.keys import Principal, Role

TOKEN = "k3Jz0b8fQeXz1mV2yW4tN6pR8sT0uV2wX4yZ6aB8cD0"


def _session() -> ConsoleSession:
    return ConsoleSession("h", Principal("key", "acme", Role.USER), TOKEN, datetime.now(UTC))


def test_only_the_sha256_of_a_session_id_is_stored() -> None:
    assert hash_session_id("abc") == hashlib.sha256(b"abc").hexdigest()
    assert hash_session_id("abc") != hash_session_id("abd")


def test_the_right_token_matches() -> None:
    assert _session().csrf_matches(TOKEN)


@pytest.mark.parametrize("token", [None, "", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), " " + TOKEN, "é" * 10])
def test_any_other_token_does_not(token: str | None) -> None:
    assert not _session().csrf_matches(token)

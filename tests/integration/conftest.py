"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.ollama_server import FakeOllama, start_ollama


@pytest.fixture(scope="module")
def ollama() -> Iterator[FakeOllama]:
    """The Ollama-speaking test server (or a proxy to a real Ollama), one per test module."""
    server = start_ollama()
    yield server
    server.close()

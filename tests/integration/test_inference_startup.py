"""With Ollama, the service refuses to start on what an operator must fix, and says what to do:
a missing model (never pulled implicitly), an embedding dimension that does not match
EMBEDDING_DIMS or the stored collection, an unreachable Ollama, a context too small for mem0."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ollama_server import (
    REAL,
    TEST_EMBED_DIMS,
    TEST_EMBED_MODEL,
    TEST_LLM_MODEL,
    FakeOllama,
    service_env,
)
from tests.support.server import ServiceProcess, free_port, start_fails


@pytest.fixture(autouse=True)
def _fresh(ollama: FakeOllama) -> Iterator[None]:
    ollama.reset()
    yield
    ollama.reset()


def test_a_missing_embedding_model_is_reported_not_pulled(tmp_path: Path, ollama: FakeOllama) -> None:
    ollama.faults.hidden.add(TEST_EMBED_MODEL)
    output = start_fails(tmp_path, service_env(ollama))
    assert f"ollama pull {TEST_EMBED_MODEL}" in output
    assert "OLLAMA_EMBED_MODEL" in output
    assert ollama.recorded("/api/tags")  # it looked
    assert not ollama.recorded("/api/pull")  # and did not pull (mem0's provider would have)
    assert not ollama.recorded("/api/embed")


def test_a_missing_llm_is_reported_not_pulled(tmp_path: Path, ollama: FakeOllama) -> None:
    ollama.faults.hidden.add(TEST_LLM_MODEL)
    output = start_fails(tmp_path, service_env(ollama))
    assert f"ollama pull {TEST_LLM_MODEL}" in output
    assert "OLLAMA_LLM_MODEL" in output
    assert not ollama.recorded("/api/pull")


def test_embedding_dims_other_than_the_models_refuse_to_start(tmp_path: Path, ollama: FakeOllama) -> None:
    wrong = TEST_EMBED_DIMS // 2
    output = start_fails(tmp_path, service_env(ollama, EMBEDDING_DIMS=str(wrong)))
    assert f"EMBEDDING_DIMS={wrong}" in output
    assert f"produces {TEST_EMBED_DIMS}-dimensional vectors" in output
    assert f"Set EMBEDDING_DIMS={TEST_EMBED_DIMS}" in output


def test_a_collection_of_another_dimension_refuses_to_start_and_says_what_to_do(
    tmp_path: Path, ollama: FakeOllama
) -> None:
    data = tmp_path / "data"
    embedded = ServiceProcess(data, {}).start()  # the embedded profile: ONNX MiniLM, 384 dimensions
    try:
        with embedded.client() as client:
            added = client.post("/v1/memories", json={"messages": [{"role": "user", "content": "I like tea"}]})
            assert added.status_code == 201
    finally:
        embedded.stop()

    output = start_fails(data, service_env(ollama))
    assert "stores 384-dimensional vectors" in output
    assert f"produces {TEST_EMBED_DIMS}" in output
    assert "COLLECTION_NAME" in output

    # What the message says works: a new collection for the Ollama vectors, the old one untouched.
    moved = ServiceProcess(data, service_env(ollama, COLLECTION_NAME="memories_ollama")).start()
    try:
        with moved.client() as client:
            assert client.get("/v1/memories/user/default").json()["data"]["total"] == 0
            added = client.post("/v1/memories", json={"messages": [{"role": "user", "content": "I like coffee"}]})
            assert added.status_code == 201, added.text
    finally:
        moved.stop()


def test_an_unreachable_ollama_refuses_to_start_within_its_timeout(tmp_path: Path) -> None:
    env = {
        "OLLAMA_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "EMBEDDER": "ollama",
        "EMBEDDING_DIMS": "768",
        "OLLAMA_TIMEOUT": "2",
    }
    started = time.monotonic()
    output = start_fails(tmp_path, env)
    assert "cannot connect to Ollama" in output
    assert "OLLAMA_BASE_URL" in output
    assert time.monotonic() - started < 60  # Postgres start plus OLLAMA_TIMEOUT of waiting for Ollama


def test_a_context_too_small_for_mem0s_prompt_refuses_to_start(tmp_path: Path, ollama: FakeOllama) -> None:
    output = start_fails(tmp_path, service_env(ollama, OLLAMA_NUM_CTX="4096"))
    assert "OLLAMA_NUM_CTX=4096 is too small" in output
    assert "16384" in output


@pytest.mark.skipif(REAL, reason="checks the fake's deterministic facts")
def test_extraction_with_the_embedded_embedder(tmp_path: Path, ollama: FakeOllama) -> None:
    """OLLAMA_BASE_URL with EMBEDDER=onnx: the LLM extracts, ONNX MiniLM embeds."""
    env = service_env(ollama)
    env["EMBEDDER"] = "onnx"
    env.pop("EMBEDDING_DIMS")
    service = ServiceProcess(tmp_path, env).start()
    try:
        with service.client() as client:
            added = client.post("/v1/memories", json={"messages": [{"role": "user", "content": "I play chess."}]})
            assert added.status_code == 201, added.text
            assert [m["content"] for m in added.json()["data"]["memories"]] == ["User plays chess"]
            assert client.get("/v1/status").json()["data"]["providers"]["embedder"] == "onnx-minilm"
        assert not ollama.recorded("/api/embed")
        assert len(ollama.chats()) == 1
    finally:
        service.stop()

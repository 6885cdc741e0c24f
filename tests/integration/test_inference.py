"""Fact extraction and embeddings with Ollama, through mem0's providers and the real ollama client.

The service runs as a subprocess against the Ollama-speaking test server (tests/support/
ollama_server.py), or against a real Ollama behind it when OLLAMA_TEST_URL is set. What is
asserted is what the service did: the requests it sent to Ollama, the memories it stored (read
back over the API), its metrics.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest

from tests.support.api import assert_error
from tests.support.ollama_server import (
    NEEDS_FAKE,
    REAL,
    TEST_EMBED_DIMS,
    TEST_EMBED_MODEL,
    TEST_LLM_MODEL,
    FakeOllama,
    extract_facts,
    metric,
    service_env,
)
from tests.support.server import ADMIN_KEY, ServiceProcess, tenant_client

NUM_CTX = 20480
CONVERSATION = [
    {"role": "system", "content": "You are a travel assistant."},
    {"role": "user", "content": "I love hiking in the Alps. My sister is called Ana."},
    {"role": "assistant", "content": "The Alps are wonderful in September; want trail ideas?"},
    {"role": "user", "content": "I am allergic to peanuts."},
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, ollama: FakeOllama) -> Iterator[ServiceProcess]:
    env = service_env(ollama, OLLAMA_NUM_CTX=str(NUM_CTX), OLLAMA_RETRIES="2")
    proc = ServiceProcess(tmp_path_factory.mktemp("inference"), env).start()
    yield proc
    proc.stop()


@pytest.fixture
def client(service: ServiceProcess, ollama: FakeOllama) -> Iterator[httpx.Client]:
    ollama.reset()
    with tenant_client(service, "inf") as c:
        yield c
    ollama.reset()


@pytest.fixture
def admin(service: ServiceProcess) -> Iterator[httpx.Client]:
    with service.client(ADMIN_KEY) as c:
        yield c


def _add(client: httpx.Client, messages: list[dict[str, str]], user_id: str = "u1", **extra: object) -> dict:
    response = client.post("/v1/memories", json={"messages": messages, "user_id": user_id, **extra})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def test_extracted_facts_become_memories(client: httpx.Client, ollama: FakeOllama) -> None:
    data = _add(client, CONVERSATION)
    assert data["inference"] == "extracted"
    assert data["count"] == len(data["memories"]) >= 1
    stored = {m["id"]: client.get(f"/v1/memories/{m['id']}").json()["data"] for m in data["memories"]}
    assert [stored[m["id"]]["content"] for m in data["memories"]] == [m["content"] for m in data["memories"]]
    for memory in stored.values():
        assert memory["user_id"] == "u1"
        assert "inference" not in memory["metadata"]  # only fallbacks are marked
    listed = client.get("/v1/memories/user/u1").json()["data"]
    assert listed["total"] == data["count"]

    chats = ollama.chats()
    assert len(chats) == 1
    chat = chats[0]
    assert chat["model"] == TEST_LLM_MODEL
    assert chat["format"] == "json"
    assert chat["stream"] is False
    assert chat["options"]["num_ctx"] == NUM_CTX  # OLLAMA_NUM_CTX, on every chat request
    assert sum(len(m["content"]) for m in chat["messages"]) > 30_000  # mem0's prompt: why num_ctx matters
    embeds = ollama.recorded("/api/embed")
    assert embeds
    assert {r.body["model"] for r in embeds} == {TEST_EMBED_MODEL}
    assert not ollama.recorded("/api/pull")

    if not REAL:
        # The facts are the model's (the test server's) rewording of the user messages only.
        prompt = chat["messages"][-1]["content"]
        assert sorted(stored[i]["content"] for i in stored) == sorted(extract_facts(prompt))
        assert {m["content"] for m in stored.values()} == {
            "User loves hiking in the Alps",
            "User's sister is called Ana",
            "User is allergic to peanuts",
        }
        found = client.get("/v1/memories/search", params={"query": "hiking trips", "user_id": "u1"}).json()["data"]
        assert found["memories"][0]["content"] == "User loves hiking in the Alps"
        with_vector = client.get(f"/v1/memories/{found['memories'][0]['id']}", params={"include_embedding": True})
        assert len(with_vector.json()["data"]["embedding"]) == TEST_EMBED_DIMS


@pytest.mark.parametrize("mode", ["invalid_json", "empty", "no_facts", "unexpected_json"])
def test_unusable_model_output_falls_back_without_loss(
    client: httpx.Client, admin: httpx.Client, ollama: FakeOllama, mode: str
) -> None:
    reason = {"empty": "empty_response"}.get(mode, mode)
    before = metric(admin, "memory_inference_fallbacks_total", reason=reason)
    ollama.faults.chat_mode = mode
    data = _add(client, CONVERSATION, user_id="fb")
    assert data["inference"] == "fallback"
    assert len(ollama.chats()) == 1  # the model was asked, once
    user_messages = [m["content"] for m in CONVERSATION if m["role"] == "user"]
    stored = [client.get(f"/v1/memories/{m['id']}").json()["data"] for m in data["memories"]]
    assert [m["content"] for m in stored] == user_messages  # as given, assistant and system not stored
    assert all(m["metadata"]["inference"] == "fallback" for m in stored)
    assert client.get("/v1/memories/user/fb").json()["data"]["total"] == len(user_messages)
    assert metric(admin, "memory_inference_fallbacks_total", reason=reason) == before + 1


@pytest.mark.parametrize("mode", ["strings", "fenced"])
def test_facts_in_other_shapes_are_kept(client: httpx.Client, ollama: FakeOllama, mode: str) -> None:
    """Small models answer `{"memory": ["..."]}` or fenced `{"facts": [...]}`: mem0 alone drops or crashes on those."""
    ollama.faults.chat_mode = mode
    data = _add(client, CONVERSATION[:2], user_id="shapes")
    assert data["inference"] == "extracted"
    contents = sorted(m["content"] for m in data["memories"])
    assert contents == ["User loves hiking in the Alps", "User's sister is called Ana"]


@pytest.mark.skipif(REAL, reason=NEEDS_FAKE)
def test_known_facts_are_neither_stored_twice_nor_a_fallback(client: httpx.Client, admin: httpx.Client) -> None:
    first = _add(client, CONVERSATION[1:2], user_id="dup")
    assert first["count"] == 2
    fallbacks = metric(admin, "memory_inference_fallbacks_total", reason="no_facts")
    again = _add(client, CONVERSATION[1:2], user_id="dup")
    assert again["inference"] == "extracted"
    assert again["count"] == 0
    assert client.get("/v1/memories/user/dup").json()["data"]["total"] == 2
    assert metric(admin, "memory_inference_fallbacks_total", reason="no_facts") == fallbacks


def test_infer_false_stores_messages_as_given_without_the_model(client: httpx.Client, ollama: FakeOllama) -> None:
    data = _add(client, CONVERSATION, user_id="raw", infer=False)
    assert data["inference"] == "none"
    assert [m["content"] for m in data["memories"]] == [m["content"] for m in CONVERSATION if m["role"] == "user"]
    assert ollama.chats() == []


def test_a_conversation_too_long_for_the_context_is_stored_not_truncated(
    client: httpx.Client, admin: httpx.Client, ollama: FakeOllama
) -> None:
    before = metric(admin, "memory_inference_fallbacks_total", reason="context_overflow")
    long_message = "I keep a diary of every walk. " * 1500  # ~45,000 characters: over NUM_CTX with mem0's prompt
    data = _add(client, [{"role": "user", "content": long_message}], user_id="long")
    assert data["inference"] == "fallback"
    assert ollama.chats() == []  # never sent: Ollama would have cut it silently
    stored = client.get(f"/v1/memories/{data['memories'][0]['id']}").json()["data"]
    assert stored["content"] == long_message
    assert metric(admin, "memory_inference_fallbacks_total", reason="context_overflow") == before + 1


def test_transient_errors_are_retried_with_backoff(client: httpx.Client, ollama: FakeOllama) -> None:
    ollama.faults.errors["/api/chat"] = [500, 503]
    data = _add(client, CONVERSATION[1:2], user_id="retry")
    assert data["inference"] == "extracted"
    assert data["count"] >= 1
    attempts = ollama.recorded("/api/chat")
    assert len(attempts) == 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.1  # back-off: 0.25 s (jittered down to half at most), then 0.5 s
    assert gaps[1] >= 0.2


@pytest.mark.skipif(REAL, reason=NEEDS_FAKE + ": the faults are placed by the number of facts")
def test_facts_ollama_fails_to_embed_are_not_dropped(client: httpx.Client, ollama: FakeOllama) -> None:
    """mem0 logs and skips a fact whose embedding fails; the service answers 503 instead, stores
    nothing of that add (a refused write is never stored, issue 19), and the retry stores every
    fact, once."""
    # The query embedding passes; the facts' batch fails, then the first fact alone passes, the second fails.
    ollama.faults.errors["/api/embed"] = [0, 400, 0, 400]
    response = client.post("/v1/memories", json={"messages": CONVERSATION[1:2], "user_id": "emb"})
    error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert error["details"]["dependency"] == "ollama"
    assert "failed to embed 1 extracted fact" in error["message"]
    assert "nothing was stored" in error["message"]
    assert client.get("/v1/memories/user/emb").json()["data"]["total"] == 0

    retry = _add(client, CONVERSATION[1:2], user_id="emb")
    assert retry["inference"] == "extracted"
    listed = client.get("/v1/memories/user/emb").json()["data"]
    assert listed["total"] == 2
    assert len({m["content"] for m in listed["memories"]}) == 2
    assert retry["count"] == 2


def test_a_client_error_is_not_retried(client: httpx.Client, ollama: FakeOllama) -> None:
    ollama.faults.fail_always["/api/chat"] = 400
    response = client.post("/v1/memories", json={"messages": CONVERSATION[1:2], "user_id": "c4xx"})
    error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert error["details"]["dependency"] == "ollama"
    assert "Ollama answered 400" in error["message"]
    assert len(ollama.recorded("/api/chat")) == 1
    assert client.get("/v1/memories/user/c4xx").json()["data"]["total"] == 0


def test_a_model_removed_at_run_time_says_so(client: httpx.Client, ollama: FakeOllama) -> None:
    ollama.faults.hidden.add(TEST_LLM_MODEL)
    response = client.post("/v1/memories", json={"messages": CONVERSATION[1:2], "user_id": "gone"})
    error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert error["details"]["dependency"] == "ollama"
    assert "404" in error["message"]
    assert "pull" in error["message"]
    assert len(ollama.recorded("/api/chat")) == 1  # a 404 is not transient
    assert not ollama.recorded("/api/pull")


def test_status_and_health_name_the_ollama_providers(client: httpx.Client) -> None:
    status = client.get("/v1/status").json()["data"]
    assert status["providers"]["llm"] == f"ollama:{TEST_LLM_MODEL}"
    assert status["providers"]["embedder"] == f"ollama:{TEST_EMBED_MODEL}"
    health = client.get("/health").json()["data"]
    assert health["dependencies"]["ollama"]["up"] is True

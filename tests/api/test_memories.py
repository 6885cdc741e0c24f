"""Memory routes through HTTP against the real service on the embedded Postgres."""

from __future__ import annotations

import json

import httpx

from tests.support.api import add_memory, assert_error

SEED_MESSAGE = "I love building AI applications with FastAPI"


def test_add_returns_the_seed_memory_object(client: httpx.Client) -> None:
    response = client.post(
        "/v1/memories",
        json={
            "messages": [{"role": "user", "content": SEED_MESSAGE}],
            "user_id": "test_user_123",
            "metadata": {"source": "external_test", "priority": 3},
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True
    assert body["timestamp"].endswith("Z")
    memory = body["data"]["memories"][0]
    assert body["data"]["count"] == 1
    assert set(memory) >= {"id", "content", "user_id", "metadata", "relationships", "created_at", "updated_at"}
    assert "embedding" not in memory
    assert "score" not in memory
    assert memory["content"] == SEED_MESSAGE
    assert memory["user_id"] == "test_user_123"
    assert memory["metadata"]["source"] == "external_test"
    assert memory["metadata"]["priority"] == 3
    assert memory["metadata"]["timestamp"].endswith("Z")
    assert "FastAPI" in memory["metadata"]["entities"]
    fastapi = [r for r in memory["relationships"] if r["entity"] == "FastAPI"]
    assert fastapi
    assert fastapi[0]["type"] == "mentions"
    assert 0 < fastapi[0]["confidence"] <= 1
    assert memory["created_at"].endswith("Z")
    assert memory["created_at"] == memory["updated_at"]


def test_get_reads_back_and_embedding_only_on_request(client: httpx.Client) -> None:
    created = add_memory(client, "My favourite database is Postgres")
    plain = client.get(f"/v1/memories/{created['id']}")
    assert plain.status_code == 200
    assert plain.json()["data"] == created
    with_vector = client.get(f"/v1/memories/{created['id']}", params={"include_embedding": "true"}).json()["data"]
    assert len(with_vector["embedding"]) == 384
    norm = sum(v * v for v in with_vector["embedding"]) ** 0.5
    assert abs(norm - 1.0) < 1e-3  # MiniLM vectors are L2-normalised


def test_user_messages_become_memories_others_do_not(client: httpx.Client) -> None:
    response = client.post(
        "/v1/memories",
        json={
            "messages": [
                {"role": "system", "content": "You are helpful"},
                {"role": "user", "content": "I moved to Lisbon"},
                {"role": "assistant", "content": "Lisbon is lovely"},
                {"role": "user", "content": "I work as a data engineer"},
            ],
            "user_id": "mixed",
        },
    )
    assert response.status_code == 201
    contents = [m["content"] for m in response.json()["data"]["memories"]]
    assert contents == ["I moved to Lisbon", "I work as a data engineer"]
    assert response.json()["data"]["inference"] == "none"


def test_messages_without_a_user_message_are_refused(client: httpx.Client) -> None:
    response = client.post("/v1/memories", json={"messages": [{"role": "assistant", "content": "hi"}]})
    assert_error(response, 400, "INVALID_REQUEST")


def test_user_id_defaults_to_default_user(client: httpx.Client) -> None:
    response = client.post("/v1/memories", json={"messages": [{"role": "user", "content": "No user given"}]})
    assert response.status_code == 201
    assert response.json()["data"]["memories"][0]["user_id"] == "default"


def test_search_ranks_the_relevant_memory_first_with_scores(client: httpx.Client) -> None:
    for text in ("I play tennis every Sunday", SEED_MESSAGE, "My cat is called Miso", "I drink green tea"):
        add_memory(client, text, "searcher")
    response = client.get("/v1/memories/search", params={"query": "web framework for AI apps", "user_id": "searcher"})
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["count"] == 4
    assert data["memories"][0]["content"] == SEED_MESSAGE
    scores = [m["score"] for m in data["memories"]]
    assert scores == sorted(scores, reverse=True)
    limited = client.get("/v1/memories/search", params={"query": "tennis", "user_id": "searcher", "limit": 2})
    assert limited.json()["data"]["count"] == 2


def test_search_is_scoped_to_the_user(client: httpx.Client) -> None:
    add_memory(client, "Alice likes jazz", "alice")
    add_memory(client, "Bob likes metal", "bob")
    found = client.get("/v1/memories/search", params={"query": "music", "user_id": "alice"}).json()["data"]
    assert [m["content"] for m in found["memories"]] == ["Alice likes jazz"]


def test_search_threshold_drops_weak_matches(client: httpx.Client) -> None:
    add_memory(client, "I have two dogs", "th")
    add_memory(client, "Quantum chromodynamics lecture notes", "th")
    everything = client.get("/v1/memories/search", params={"query": "pets", "user_id": "th"}).json()["data"]
    strict = client.get("/v1/memories/search", params={"query": "pets", "user_id": "th", "threshold": 0.3})
    assert everything["count"] == 2
    assert [m["content"] for m in strict.json()["data"]["memories"]] == ["I have two dogs"]


def test_search_metadata_filters_both_spellings(client: httpx.Client) -> None:
    add_memory(client, "Note from chat about holidays", "f", metadata={"source": "chat", "priority": 1})
    add_memory(client, "Note from email about holidays", "f", metadata={"source": "email", "priority": 5})
    add_memory(client, "Note from sms about holidays", "f", metadata={"source": "sms", "priority": 9})

    def contents(params: dict[str, str]) -> set[str]:
        response = client.get("/v1/memories/search", params={"query": "holidays", "user_id": "f", **params})
        assert response.status_code == 200, response.text
        return {m["metadata"]["source"] for m in response.json()["data"]["memories"]}

    assert contents({"metadata.source": "chat"}) == {"chat"}
    assert contents({"filters": json.dumps({"source": {"in": ["chat", "sms"]}})}) == {"chat", "sms"}
    assert contents({"filters": json.dumps({"priority": {"gte": 5}})}) == {"email", "sms"}
    assert contents({"filters": json.dumps({"source": {"ne": "chat"}}), "metadata.priority": "9"}) == {"sms"}


def test_update_content_and_metadata_keeps_history(client: httpx.Client) -> None:
    created = add_memory(client, "I live in Berlin", metadata={"source": "chat"})
    response = client.put(f"/v1/memories/{created['id']}", json={"content": "I live in Munich", "metadata": {"x": 1}})
    assert response.status_code == 200, response.text
    updated = response.json()["data"]
    assert updated["content"] == "I live in Munich"
    assert updated["metadata"]["x"] == 1
    assert updated["metadata"]["source"] == "chat"
    assert "Munich" in updated["metadata"]["entities"]
    assert "Berlin" not in updated["metadata"]["entities"]
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] > created["updated_at"]
    found = client.get("/v1/memories/search", params={"query": "Munich", "user_id": "u1", "limit": 1}).json()
    assert found["data"]["memories"][0]["id"] == created["id"]  # re-embedded, so the new text is found
    history = client.get(f"/v1/memories/{created['id']}/history").json()["data"]["history"]
    assert [(h["event"], h["old_content"], h["new_content"]) for h in history] == [
        ("ADD", None, "I live in Berlin"),
        ("UPDATE", "I live in Berlin", "I live in Munich"),
    ]


def test_update_needs_a_change(client: httpx.Client) -> None:
    created = add_memory(client, "Something")
    assert_error(client.put(f"/v1/memories/{created['id']}", json={}), 400, "INVALID_REQUEST")


def test_delete_removes_and_records_history(client: httpx.Client) -> None:
    created = add_memory(client, "Temporary memory")
    deleted = client.delete(f"/v1/memories/{created['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["data"] == {"id": created["id"], "deleted": True}
    assert_error(client.get(f"/v1/memories/{created['id']}"), 404, "MEMORY_NOT_FOUND")
    assert_error(client.delete(f"/v1/memories/{created['id']}"), 404, "MEMORY_NOT_FOUND")
    events = [h["event"] for h in client.get(f"/v1/memories/{created['id']}/history").json()["data"]["history"]]
    assert events == ["ADD", "DELETE"]


def test_list_user_memories_paginates_newest_first(client: httpx.Client) -> None:
    created = [add_memory(client, f"paged memory {i}", "pager")["id"] for i in range(23)]
    add_memory(client, "someone else", "other")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        data = client.get("/v1/memories/user/pager", params=params).json()["data"]
        assert data["total"] == 23
        seen += [m["id"] for m in data["memories"]]
        pages += 1
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(created))


def test_list_rejects_a_forged_cursor(client: httpx.Client) -> None:
    for cursor in ("not-a-cursor", "W10", "eyJhIjoxfQ"):
        assert_error(client.get("/v1/memories/user/u1", params={"cursor": cursor}), 400, "INVALID_REQUEST")


def test_erase_user_deletes_everything_of_that_user_only(client: httpx.Client) -> None:
    ids = [add_memory(client, f"erase me {i}", "leaver")["id"] for i in range(5)]
    keep = add_memory(client, "keep me", "stayer")
    response = client.delete("/v1/memories/user/leaver")
    assert response.status_code == 200
    assert response.json()["data"] == {"user_id": "leaver", "deleted_count": 5}
    assert client.get("/v1/memories/user/leaver").json()["data"]["total"] == 0
    for memory_id in ids:
        assert_error(client.get(f"/v1/memories/{memory_id}/history"), 404, "MEMORY_NOT_FOUND")
    assert client.get(f"/v1/memories/{keep['id']}").status_code == 200
    assert client.delete("/v1/memories/user/leaver").json()["data"]["deleted_count"] == 0


def test_user_stats(client: httpx.Client) -> None:
    first = add_memory(client, "one stat about Rust", "stat", metadata={"source": "chat"})
    add_memory(client, "two stats about Haskell", "stat", metadata={"source": "chat"})
    last = add_memory(client, "three stats about Python", "stat", metadata={"source": "email"})
    data = client.get("/v1/users/stat/stats").json()["data"]
    assert data["user_id"] == "stat"
    assert data["memory_count"] == 3
    assert data["sources"] == {"chat": 2, "email": 1}
    assert data["first_write"].startswith(first["created_at"][:19])
    assert data["last_write"].startswith(last["created_at"][:19])
    assert data["entity_count"] == 3  # Rust, Haskell, Python
    empty = client.get("/v1/users/nobody/stats").json()["data"]
    assert empty["memory_count"] == 0
    assert empty["first_write"] is None


def test_metadata_numbers_beyond_64_bits_survive_storage(client: httpx.Client) -> None:
    """Payloads are decoded with orjson, which refuses integers beyond 64 bits: the fallback keeps them."""
    big = 2**70 + 1
    created = add_memory(
        client, "A ledger entry with a very large counter", user_id="ledger", metadata={"counter": big, "n": 1.5}
    )
    read = client.get(f"/v1/memories/{created['id']}").json()["data"]
    assert read["metadata"]["counter"] == big
    assert read["metadata"]["n"] == 1.5
    found = client.get("/v1/memories/search", params={"query": "ledger counter", "user_id": "ledger"})
    assert found.status_code == 200, found.text
    assert [m["metadata"]["counter"] for m in found.json()["data"]["memories"]] == [big]


def test_keyword_matches_count_in_the_score(client: httpx.Client) -> None:
    """mem0's hybrid score: with keyword hits, the score is (semantic + keyword) / 2, so a memory
    without every query word scores at most half its similarity. Without the keyword query it
    would score its full similarity: this catches a keyword search that quietly finds nothing."""
    exact = add_memory(client, "quantum chromodynamics lectures every tuesday", user_id="hybrid")
    near = add_memory(client, "lessons on quantum chromodynamics", user_id="hybrid")
    response = client.get(
        "/v1/memories/search", params={"query": "quantum chromodynamics lectures", "user_id": "hybrid"}
    )
    scores = {m["id"]: m["score"] for m in response.json()["data"]["memories"]}
    assert max(scores, key=scores.__getitem__) == exact["id"]
    assert scores[near["id"]] <= 0.5

"""The service searches and stores as mem0's own Memory.search and Memory.add do.

The engine runs mem0's steps itself (domain/memories/engine.py: `_hybrid_search`, one SQL round
trip for the vector and keyword queries; `_store_messages`, a request's messages embedded in one
batch and written in one transaction). The oracle here is mem0 2.2's own code: a Memory with
mem0's pgvector provider, connected to the running service's database. Searches: the same
tenant-qualified user with the same filters; each user owns fewer memories than mem0's
over-fetch (60), so both candidate sets are all of the user's matching rows, and the ids, order
and scores (semantic + BM25 fused) must agree. Adds: mem0 stores the same message with the same
metadata, and both rows (payload and vector) must be equal but for the id and mem0's clock.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from memory_service.providers.onnx import OnnxMiniLMEmbedder  # sets MEM0_TELEMETRY=False before mem0 loads

from tests.support.server import ServiceProcess, embedded_conninfo

FOODS = ["pasta", "risotto", "curry", "tacos", "ramen", "paella", "dumplings", "lasagne"]
PLACES = ["Lisbon", "Kyoto", "Oaxaca", "Bergen", "Hanoi"]


def _memories() -> list[tuple[str, dict[str, Any], str | None]]:
    rows: list[tuple[str, dict[str, Any], str | None]] = []
    for i in range(40):
        food, place = FOODS[i % len(FOODS)], PLACES[i % len(PLACES)]
        text = [
            f"Cooked {food} for dinner with friends on day {i}",
            f"Planning a weekend trip to {place} in month {i % 12 + 1}",
            f"Favourite {food} place is near the station in {place}",
            f"Reminder {i}: renew the passport before the {place} flight",
        ][i % 4]
        rows.append((text, {"kind": "ab"[i % 2], "priority": i % 5}, "planner" if i % 3 == 0 else None))
    return rows


@pytest.fixture(scope="module")
def stored(service: ServiceProcess, admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.support.server import new_tenant_key

    tenant = f"eq-{tmp_path_factory.mktemp('eq').name[-8:].lower()}"
    with service.client(new_tenant_key(admin, tenant)) as client:
        for text, metadata, agent in _memories():
            body: dict[str, Any] = {"messages": [{"role": "user", "content": text}], "user_id": "alice"}
            body["metadata"] = metadata
            if agent:
                body["agent_id"] = agent
            assert client.post("/v1/memories", json=body).status_code == 201
        other = {"messages": [{"role": "user", "content": "Cooked pasta for dinner"}], "user_id": "bob"}
        assert client.post("/v1/memories", json=other).status_code == 201
        yield client, tenant, _mem0_memory(service, tmp_path_factory.mktemp("mem0")), service


def _mem0_memory(service: ServiceProcess, tmp: Path) -> Any:
    from mem0 import Memory
    from mem0.configs.base import MemoryConfig

    parts = dict(item.split("=", 1) for item in embedded_conninfo(service.data_dir).split())
    options = urllib.parse.quote("-c hnsw.iterative_scan=relaxed_order -c plan_cache_mode=force_custom_plan")
    uri = f"postgresql://{parts['user']}@/{parts['dbname']}?host={parts['host']}&port={parts['port']}&options={options}"
    config = MemoryConfig(
        vector_store={
            "provider": "pgvector",
            "config": {"connection_string": uri, "collection_name": "memories", "embedding_model_dims": 384},
        },
        llm={"provider": "ollama", "config": {"model": "none", "ollama_base_url": "http://127.0.0.1:9"}},
        embedder={"provider": "openai", "config": {"api_key": "unused", "embedding_dims": 384}},
        history_db_path=str(tmp / "history.db"),
    )
    memory = Memory(config)
    memory.embedding_model = OnnxMiniLMEmbedder(runners=4, max_batch=1)
    return memory


CASES: list[dict[str, Any]] = [
    {"query": "pasta", "limit": 5},
    {"query": "pasta dinner", "limit": 10},
    {"query": "  what are my weekend plans  ", "limit": 3},
    {"query": "Kyoto", "limit": 50},
    {"query": "passport", "limit": 8, "threshold": 0.2},
    {"query": "curry", "limit": 6, "filters": {"kind": "a"}},
    {"query": "trip", "limit": 10, "filters": {"priority": {"gte": 3}}},
    {"query": "dinner", "limit": 10, "filters": {"kind": {"in": ["b"]}, "priority": {"ne": 2}}},
    {"query": "ramen Hanoi", "limit": 20, "agent_id": "planner"},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["query"].strip())
def test_the_service_ranks_and_scores_as_mem0_does(stored: Any, case: dict[str, Any]) -> None:
    client, tenant, memory, _ = stored
    params: dict[str, Any] = {"query": case["query"], "user_id": "alice", "limit": case["limit"]}
    filters: dict[str, Any] = {"user_id": f"{tenant}/alice"}
    if "threshold" in case:
        params["threshold"] = case["threshold"]
    if "filters" in case:
        params["filters"] = json.dumps(case["filters"])
        filters.update(case["filters"])
    if "agent_id" in case:
        params["agent_id"] = case["agent_id"]
        filters["agent_id"] = case["agent_id"]
    response = client.get("/v1/memories/search", params=params)
    assert response.status_code == 200, response.text
    ours = [(m["id"], m["score"]) for m in response.json()["data"]["memories"]]
    found = memory.search(case["query"], top_k=case["limit"], filters=filters, threshold=case.get("threshold", 0.0))
    theirs = [(r["id"], r["score"]) for r in found["results"]]
    assert ours, "the case must find something, or it compares nothing"
    assert [i for i, _ in ours] == [i for i, _ in theirs]
    assert [s for _, s in ours] == pytest.approx([s for _, s in theirs], abs=1e-6)


def test_the_cases_exercise_the_keyword_scores(stored: Any) -> None:
    """The control: mem0 fuses keyword (BM25) scores into these cases, so a service that left
    them out (or got them wrong) would differ above, not agree by accident."""
    _, tenant, memory, _ = stored
    found = memory.search("pasta", top_k=5, filters={"user_id": f"{tenant}/alice"}, threshold=0.0, explain=True)
    details = [r["score_details"] for r in found["results"]]
    assert details
    assert all(d["bm25_score"] > 0 and d["max_possible_score"] == 2.0 for d in details)


MEM0_KEYS = {"user_id", "agent_id", "run_id", "role", "actor_id", "data", "hash", "updated_at", "text_lemmatized"}


def _row(service: ServiceProcess, memory_id: str) -> tuple[dict[str, Any], list[float]]:
    with psycopg.connect(embedded_conninfo(service.data_dir)) as conn:
        row = conn.execute("SELECT payload, vector::text FROM memories WHERE id = %s", (memory_id,)).fetchone()
    assert row is not None
    payload, vector = row
    return payload, json.loads(vector)


def test_a_stored_memory_is_what_mem0s_own_add_stores(stored: Any) -> None:
    client, _, memory, service = stored
    message = {"role": "user", "content": "Ada prefers green tea in the morning, not coffee", "name": "ada"}
    body = {"messages": [message], "user_id": "carol", "agent_id": "planner", "run_id": "r-1"}
    body["metadata"] = {"source": "chat", "mood": "calm", "entities": ["Ada"]}
    response = client.post("/v1/memories", json=body)
    assert response.status_code == 201, response.text
    ours, our_vector = _row(service, response.json()["data"]["memories"][0]["id"])
    # What the engine hands mem0 as metadata: everything in the payload that mem0 does not add.
    metadata = {k: v for k, v in ours.items() if k not in MEM0_KEYS}
    added = memory.add(
        [message],
        user_id=ours["user_id"],
        agent_id=ours["agent_id"],
        run_id=ours["run_id"],
        metadata=metadata,
        infer=False,
    )
    theirs, their_vector = _row(service, added["results"][0]["id"])
    assert theirs == ours
    assert our_vector == pytest.approx(their_vector, abs=1e-6)
    assert ours["actor_id"] == "ada"  # mem0's own fields are there, not just equally missing
    assert ours["hash"]
    assert ours["text_lemmatized"]

"""mem0's filter language through the official Python client: each case returns exactly the memories
it names, through `get_all` and through `search`, and bad filters are a ValidationError, never a 500.

One tenant holds seven memories with overlapping users, agents, runs, apps and metadata (among them
a non-numeric `priority`, which numeric comparisons must skip rather than fail on).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mem0 import MemoryClient
from mem0.exceptions import ValidationError

from tests.support.server import ServiceProcess, new_tenant_key

SEEDS: dict[str, dict[str, Any]] = {
    "m1": {"text": "Alice plans a trip to Lisbon", "user_id": "alice",
           "metadata": {"source": "chat", "priority": 1, "topic": "Travel plans"}},
    "m2": {"text": "Alice has a quarterly review", "user_id": "alice",
           "metadata": {"source": "email", "priority": 5, "topic": "work"}},
    "m3": {"text": "Alice bought hiking boots", "user_id": "alice", "metadata": {"source": "sms", "priority": "high"}},
    "m4": {"text": "Bob likes jazz", "user_id": "bob", "metadata": {"source": "chat", "priority": 3}},
    "m5": {"text": "The planner prefers morning meetings", "agent_id": "planner", "metadata": {"source": "chat"}},
    "m6": {"text": "Bob flies to Rome", "user_id": "bob", "run_id": "r1",
           "metadata": {"priority": 9, "topic": "TRAVEL"}},
    "m7": {"text": "Alice reads science fiction", "user_id": "alice", "app_id": "a1"},
}  # fmt: skip


class Seeded:
    def __init__(self, client: MemoryClient, ids: dict[str, str], created: dict[str, str]) -> None:
        self.client, self.ids, self.created = client, ids, created
        self.names = {v: k for k, v in ids.items()}

    def names_of(self, results: list[dict[str, Any]]) -> set[str]:
        return {self.names[m["id"]] for m in results}


@pytest.fixture(scope="module")
def seeded(service: ServiceProcess, admin: httpx.Client) -> Iterator[Seeded]:
    client = MemoryClient(api_key=new_tenant_key(admin, f"f-{uuid.uuid4().hex[:12]}"), host=service.url)
    ids: dict[str, str] = {}
    created: dict[str, str] = {}
    for name, seed in SEEDS.items():
        scope = {k: seed[k] for k in ("user_id", "agent_id", "run_id", "app_id") if k in seed}
        (result,) = client.add(seed["text"], metadata=seed.get("metadata"), **scope)["results"]
        ids[name] = result["id"]
        created[name] = client.get(result["id"])["created_at"]
    yield Seeded(client, ids, created)
    client.client.close()


def id_filter(names: list[str]) -> Any:
    return lambda s: {"memory_ids": [s.ids[n] for n in names]}


def nested(levels: int, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    """`levels` ANDs, one inside the other, around one condition."""
    nested_condition: dict[str, Any] = condition or {"user_id": "a"}
    for _ in range(levels):
        nested_condition = {"AND": [nested_condition]}
    return nested_condition


CASES: list[tuple[str, Any, set[str]]] = [
    ("eq user", {"user_id": "alice"}, {"m1", "m2", "m3", "m7"}),
    ("AND", {"AND": [{"user_id": "alice"}, {"metadata": {"source": "chat"}}]}, {"m1"}),
    ("OR across users and agents", {"OR": [{"user_id": "bob"}, {"agent_id": "planner"}]}, {"m4", "m5", "m6"}),
    ("NOT", {"AND": [{"user_id": "alice"}, {"NOT": [{"metadata": {"source": "chat"}}]}]}, {"m2", "m3", "m7"}),
    ("NOT of several: none of them", {"NOT": [{"user_id": "alice"}, {"user_id": "bob"}]}, {"m5"}),
    ("nested", {"AND": [{"OR": [{"user_id": "alice"}, {"user_id": "bob"}]},
                        {"NOT": {"OR": [{"source": "chat"}, {"priority": {"gte": 9}}]}}]}, {"m2", "m3", "m7"}),
    ("gt skips a non-number", {"user_id": {"in": ["alice", "bob"]}, "priority": {"gt": 2}}, {"m2", "m4", "m6"}),
    ("gte", {"priority": {"gte": 5}}, {"m2", "m6"}),
    ("lt", {"priority": {"lt": 3}}, {"m1"}),
    ("lte", {"metadata": {"priority": {"lte": 3}}}, {"m1", "m4"}),
    ("range in one object", {"metadata": {"priority": {"gt": 1, "lt": 9}}}, {"m2", "m4"}),
    ("eq operator", {"priority": {"eq": 5}}, {"m2"}),
    ("eq compares text", {"metadata": {"priority": "5"}}, {"m2"}),
    ("ne keeps memories without the key", {"source": {"ne": "chat"}}, {"m2", "m3", "m6", "m7"}),
    ("in", {"source": {"in": ["sms", "email"]}}, {"m2", "m3"}),
    ("nin", {"source": {"nin": ["chat"]}}, {"m2", "m3", "m6", "m7"}),
    ("contains is case-sensitive", {"topic": {"contains": "ravel"}}, {"m1"}),
    ("icontains", {"metadata": {"topic": {"icontains": "TRAVEL"}}}, {"m1", "m6"}),
    ("wildcard metadata", {"topic": "*"}, {"m1", "m2", "m6"}),
    ("wildcard agent", {"agent_id": "*"}, {"m5"}),
    ("wildcard user", {"user_id": "*"}, {"m1", "m2", "m3", "m4", "m5", "m6", "m7"}),
    ("run", {"run_id": "r1"}, {"m6"}),
    ("app", {"app_id": "a1"}, {"m7"}),
    ("ne user", {"user_id": {"ne": "alice"}}, {"m4", "m5", "m6"}),
    ("nin user", {"user_id": {"nin": ["alice", "default"]}}, {"m4", "m6"}),
    ("keywords", {"keywords": {"icontains": "ALICE"}}, {"m1", "m2", "m3", "m7"}),
    ("memory ids", id_filter(["m2", "m4"]), {"m2", "m4"}),
    ("created_at gte", lambda s: {"created_at": {"gte": s.created["m4"]}}, {"m4", "m5", "m6", "m7"}),
    ("eight levels deep", nested(8, {"user_id": "bob"}), {"m4", "m6"}),
    ("created_at lt", lambda s: {"AND": [{"user_id": "alice"}, {"created_at": {"lt": s.created["m2"]}}]}, {"m1"}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "filters", "expected"), CASES, ids=[c[0] for c in CASES])
def test_filter_returns_exactly_the_named_memories(seeded: Seeded, name: str, filters: Any, expected: set[str]) -> None:
    concrete = filters(seeded) if callable(filters) else filters
    listed = seeded.client.get_all(filters=concrete, page_size=200)
    assert seeded.names_of(listed["results"]) == expected
    assert listed["count"] == len(expected)
    found = seeded.client.search("Alice Bob plans travel", filters=concrete, top_k=50, threshold=0.0)
    assert seeded.names_of(found["results"]) == expected


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"priority": {"gt": "high"}}, "number"),
        ({"source": {"regex": ".*"}}, "regex"),
        ({"categories": {"in": ["travel"]}}, "categories"),
        ({"tenant_id": "someone-else"}, "tenant_id"),
        ({"OR": {"user_id": "alice"}}, "OR"),
        ({"created_at": {"gte": "last tuesday"}}, "created_at"),
        ({"source": {"in": []}}, "non-empty list"),
        (nested(9), "deep"),
    ],
)  # fmt: skip
def test_bad_filters_are_validation_errors(seeded: Seeded, filters: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        seeded.client.get_all(filters=filters)
    with pytest.raises(ValidationError, match=message):
        seeded.client.search("anything", filters=filters)


def test_the_contracts_numeric_filters_skip_non_numbers_too(service: ServiceProcess, seeded: Seeded) -> None:
    """The contract's route shares the filter model: a string `priority` is no match, not a 500."""
    with service.client(seeded.client.api_key) as contract:
        response = contract.get(
            "/v1/memories/search",
            params={"query": "Alice", "user_id": "alice", "filters": '{"priority": {"gte": 1}}', "threshold": 0},
        )
    assert response.status_code == 200, response.text
    assert {seeded.names[m["id"]] for m in response.json()["data"]["memories"]} == {"m1", "m2"}

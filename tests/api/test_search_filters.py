"""Search filters against the real store: what Postgres does with the conditions the API builds."""

from __future__ import annotations

import json

import httpx

from tests.support.api import add_memory, assert_error


def _sources(client: httpx.Client, user_id: str, **params: str) -> list[str]:
    response = client.get("/v1/memories/search", params={"query": "note", "user_id": user_id, **params})
    assert response.status_code == 200, response.text
    return sorted(m["metadata"]["source"] for m in response.json()["data"]["memories"])


def test_a_range_filter_skips_values_that_are_not_numbers(client: httpx.Client) -> None:
    """One memory with priority "high" used to fail every `priority >= 3` search of its user (500)."""
    for source, priority in (("words", "high"), ("low", 1), ("number", 5), ("text", "7"), ("none", None)):
        metadata = {"source": source} if priority is None else {"source": source, "priority": priority}
        add_memory(client, f"note {source}", "ranges", metadata=metadata, infer=False)
    assert _sources(client, "ranges", filters=json.dumps({"priority": {"gte": 3}})) == ["number", "text"]
    assert _sources(client, "ranges", filters=json.dumps({"priority": {"lt": 3}})) == ["low"]


def test_a_star_is_compared_as_a_value(client: httpx.Client) -> None:
    for source in ("*", "chat"):
        add_memory(client, f"note {source}", "stars", metadata={"source": source}, infer=False)
    add_memory(client, "note without a source", "stars", infer=False)
    assert _sources(client, "stars", **{"metadata.source": "*"}) == ["*"]


def test_mem0s_logical_keys_are_a_400(client: httpx.Client) -> None:
    response = client.get(
        "/v1/memories/search", params={"query": "note", "user_id": "x", "filters": json.dumps({"$or": {"eq": "x"}})}
    )
    assert assert_error(response, 400, "INVALID_REQUEST")["details"] == {"field": "filters"}

"""Every non-2xx answer is the error envelope with the seed's codes; never a bare 500."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.api import add_memory, assert_error


def test_unknown_route_is_a_404_envelope(client: httpx.Client) -> None:
    error = assert_error(client.get("/v1/nothing-here"), 404, "NOT_FOUND")
    assert "/v1/nothing-here" in error["message"]


def test_wrong_method_is_a_405_envelope(client: httpx.Client) -> None:
    assert_error(client.patch("/v1/memories/search"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("memory_id", ["abc123", "mem_abc123def456", "1' OR '1'='1", str(uuid.uuid4())])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_malformed_or_unknown_ids_are_memory_not_found(client: httpx.Client, method: str, memory_id: str) -> None:
    body = {"content": "x"} if method == "PUT" else None
    response = client.request(method, f"/v1/memories/{memory_id}", json=body)
    assert_error(response, 404, "MEMORY_NOT_FOUND")


def test_history_of_unknown_id_is_not_found(client: httpx.Client) -> None:
    assert_error(client.get("/v1/memories/not-a-uuid/history"), 404, "MEMORY_NOT_FOUND")


def test_validation_errors_name_the_field(client: httpx.Client) -> None:
    error = assert_error(client.post("/v1/memories", json={"user_id": "u"}), 400, "INVALID_REQUEST")
    assert any(e["field"] == "messages" for e in error["details"]["errors"])
    error = assert_error(
        client.post("/v1/memories", json={"messages": [{"role": "robot", "content": "x"}]}), 400, "INVALID_REQUEST"
    )
    assert error["details"]["errors"][0]["field"] == "messages.0.role"


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": [{"role": "user", "content": ""}]},
        {"messages": [{"role": "user", "content": "   "}]},
        {"messages": [{"role": "user", "content": "x"}], "user_id": "has space"},
        {"messages": [{"role": "user", "content": "x"}], "user_id": "a/b"},
        {"messages": [{"role": "user", "content": "x"}], "user_id": ""},
        {"messages": [{"role": "user", "content": "x"}], "metadata": {"user_id": "someone-else"}},
        {"messages": [{"role": "user", "content": "x"}], "metadata": {"tenant_id": "other"}},
        {"messages": [{"role": "user", "content": "x"}], "metadata": {"entities": "not a list"}},
        {"messages": [{"role": "user", "content": "x"}], "metadata": "not an object"},
        {"messages": [{"role": "user", "content": "x"}], "unexpected": True},
        {"messages": "hello"},
    ],
)
def test_bad_bodies_are_400(client: httpx.Client, body: dict) -> None:
    assert_error(client.post("/v1/memories", json=body), 400, "INVALID_REQUEST")


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post("/v1/memories", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "INVALID_REQUEST")


def test_content_over_max_memory_size_is_413(client: httpx.Client) -> None:
    # The session service runs with MAX_MEMORY_SIZE=20000 bytes.
    error = assert_error(
        client.post("/v1/memories", json={"messages": [{"role": "user", "content": "é" * 10_001}]}),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    assert error["details"] == {"size": 20_002, "limit": 20_000}
    ok = client.post("/v1/memories", json={"messages": [{"role": "user", "content": "a" * 20_000}]})
    assert ok.status_code == 201
    created = ok.json()["data"]["memories"][0]["id"]
    too_big = client.put(f"/v1/memories/{created}", json={"content": "b" * 20_001})
    assert_error(too_big, 413, "PAYLOAD_TOO_LARGE")


def test_huge_body_is_refused_before_parsing(client: httpx.Client) -> None:
    response = client.post("/v1/memories", content=b"x" * 2_000_000, headers={"Content-Type": "application/json"})
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"query": "x", "limit": 51}, "limit"),
        ({"query": "x", "limit": 0}, "limit"),
        ({"query": "x", "limit": "ten"}, "limit"),
        ({"query": "x", "threshold": 1.5}, "threshold"),
        ({}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x", "user_id": "bad user"}, "user_id"),
        ({"query": "x", "filters": "{oops"}, "filters"),
        ({"query": "x", "filters": '{"user_id": "victim"}'}, "filters"),
        ({"query": "x", "filters": '{"source": {"regex": ".*"}}'}, "filters"),
        ({"query": "x", "filters": '{"n": {"gt": "abc"}}'}, "filters"),
        ({"query": "x", "metadata.tenant_id": "other"}, "filters"),
    ],
)
def test_bad_search_parameters_are_400(client: httpx.Client, params: dict, field: str) -> None:
    error = assert_error(client.get("/v1/memories/search", params=params), 400, "INVALID_REQUEST")
    fields = {error["details"].get("field")} | {e["field"] for e in error["details"].get("errors", [])}
    assert field in fields


def test_limit_equal_to_search_limit_is_accepted(client: httpx.Client) -> None:
    add_memory(client, "only one")
    response = client.get("/v1/memories/search", params={"query": "one", "user_id": "u1", "limit": 50})
    assert response.status_code == 200


def test_request_id_is_echoed_or_generated(client: httpx.Client) -> None:
    given = client.get("/v1/memories/search", params={"query": "x"}, headers={"X-Request-ID": "trace-me-42"})
    assert given.headers["x-request-id"] == "trace-me-42"
    generated = client.get("/v1/nothing")
    assert len(generated.headers["x-request-id"]) == 32
    unsafe = client.get("/v1/nothing", headers={"X-Request-ID": "bad id\twith tab"})
    assert unsafe.headers["x-request-id"] != "bad id\twith tab"

"""Hostile input gets a 4xx in the envelope and is never stored: issue 19, defects 2, 3, 4 and 7.

Each case here answered 500 (or a plain-text 400, or 400 instead of 413) before the fix; see
tests/api/test_http_limits.py for the limits on reading a request (timeouts, sizes).
"""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.support.api import add_memory, assert_error
from tests.support.server import ServiceProcess, embedded_conninfo


def _nested_text(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _raw_add(client: httpx.Client, body: str, params: dict | None = None) -> httpx.Response:
    return client.post(
        "/v1/memories", content=body.encode(), params=params, headers={"Content-Type": "application/json"}
    )


def _user_memories(client: httpx.Client, user_id: str) -> list[dict]:
    response = client.get(f"/v1/memories/user/{user_id}")
    assert response.status_code == 200, response.text
    return response.json()["data"]["memories"]


# -- defect 2: metadata limits, and reads that survive a deep document --------------------------


@pytest.mark.parametrize("depth", [11, 260, 900])
@pytest.mark.parametrize("route", ["sync", "async", "update"])
def test_deeply_nested_metadata_is_refused_before_storage(client: httpx.Client, depth: int, route: str) -> None:
    body = '{"messages":[{"role":"user","content":"deep"}],"user_id":"deep","metadata":{"x":%s}}'
    if route == "update":
        memory = add_memory(client, "shallow", user_id="deep")
        response = client.put(
            f"/v1/memories/{memory['id']}",
            content=f'{{"metadata":{{"x":{_nested_text(depth)}}}}}'.encode(),
            headers={"Content-Type": "application/json"},
        )
    else:
        response = _raw_add(client, body % _nested_text(depth), {"async": "true"} if route == "async" else None)
    error = assert_error(response, 400, "INVALID_REQUEST")
    assert "levels" in error["message"]
    stored = _user_memories(client, "deep")
    assert all(m["content"] != "deep" for m in stored)
    assert all("x" not in m["metadata"] for m in stored)
    assert client.get("/v1/memories/search", params={"query": "deep", "user_id": "deep"}).status_code == 200


def test_metadata_within_the_limits_is_stored(client: httpx.Client) -> None:
    nested: dict = {"leaf": "ok"}
    for _ in range(8):  # nine levels here; the metadata object itself is the tenth
        nested = {"a": nested}
    memory = add_memory(client, "ten levels", metadata={"x": nested, **{f"k{i}": i for i in range(100)}})
    assert memory["metadata"]["x"] == nested


def test_too_many_metadata_keys_are_refused(client: httpx.Client) -> None:
    metadata = {"group": {f"k{i}": i for i in range(128)}}  # 129 keys in all
    response = client.post("/v1/memories", json={"messages": [{"role": "user", "content": "x"}], "metadata": metadata})
    assert "keys" in assert_error(response, 400, "INVALID_REQUEST")["message"]


def test_metadata_over_64_kib_is_413(client: httpx.Client) -> None:
    metadata = {"blob": "x" * 70_000}
    response = client.post("/v1/memories", json={"messages": [{"role": "user", "content": "x"}], "metadata": metadata})
    assert assert_error(response, 413, "PAYLOAD_TOO_LARGE")["details"]["limit"] == 65_536


@pytest.fixture
def legacy_deep_memory(service: ServiceProcess, client: httpx.Client) -> dict:
    """A memory whose stored metadata is nested 300 levels deep, as the service once accepted."""
    memory = add_memory(client, "an old memory about gardening", user_id="legacy")
    deep: dict = {"leaf": 1}
    for _ in range(299):
        deep = {"a": deep}
    with psycopg.connect(embedded_conninfo(service.data_dir), autocommit=True) as conn:
        conn.execute("UPDATE memories SET payload = payload || %s WHERE id = %s", (Jsonb({"deep": deep}), memory["id"]))
    return memory


def test_a_stored_deep_document_does_not_break_its_owner(client: httpx.Client, legacy_deep_memory: dict) -> None:
    listed = _user_memories(client, "legacy")
    assert [m["id"] for m in listed] == [legacy_deep_memory["id"]]
    assert "truncated" in json.dumps(listed[0]["metadata"]["deep"])
    found = client.get("/v1/memories/search", params={"query": "gardening", "user_id": "legacy"})
    assert found.status_code == 200, found.text
    assert [m["id"] for m in found.json()["data"]["memories"]] == [legacy_deep_memory["id"]]
    one = client.get(f"/v1/memories/{legacy_deep_memory['id']}")
    assert one.status_code == 200, one.text
    assert one.json()["data"]["content"] == "an old memory about gardening"


# -- defect 3: filters -------------------------------------------------------------------------


def test_numeric_comparison_skips_non_numbers(client: httpx.Client) -> None:
    add_memory(client, "priority unknown", user_id="f", metadata={"priority": "high"})
    add_memory(client, "priority as a list", user_id="f", metadata={"priority": [1, 2]})
    add_memory(client, "priority as an object", user_id="f", metadata={"priority": {"v": 9}})
    add_memory(client, "priority as a flag", user_id="f", metadata={"priority": True})
    five = add_memory(client, "priority five", user_id="f", metadata={"priority": 5})
    two = add_memory(client, "priority two", user_id="f", metadata={"priority": 2.5})
    add_memory(client, "no priority at all", user_id="f")
    cases = [({"gt": 3}, {five["id"]}), ({"lte": 2.5}, {two["id"]}), ({"gte": 2, "lt": 10}, {five["id"], two["id"]})]
    for condition, expected in cases:
        response = client.get(
            "/v1/memories/search",
            params={"query": "priority", "user_id": "f", "limit": 50, "filters": json.dumps({"priority": condition})},
        )
        assert response.status_code == 200, response.text
        assert {m["id"] for m in response.json()["data"]["memories"]} == expected, condition


@pytest.mark.parametrize(
    "filters",
    [
        {"$or": 3},
        {"$or": [{"priority": {"gt": 1}}]},
        {"$not": "x"},
        {"$not": [{"a": 1}]},
        {"OR": [1]},
        {"AND": 3},
        {"NOT": {"a": 1}},
    ],
)
def test_logical_operators_of_any_shape_are_400(client: httpx.Client, filters: dict) -> None:
    response = client.get("/v1/memories/search", params={"query": "x", "filters": json.dumps(filters)})
    assert assert_error(response, 400, "INVALID_REQUEST")["details"]["field"] == "filters"


@pytest.mark.parametrize(
    "raw", ['{"n": {"gt": NaN}}', '{"n": {"lt": Infinity}}', '{"n": {"gte": 1e999}}', '{"n": "a\\u0000"}']
)
def test_non_finite_or_nul_filters_are_400(client: httpx.Client, raw: str) -> None:
    response = client.get("/v1/memories/search", params={"query": "x", "filters": raw})
    assert_error(response, 400, "INVALID_REQUEST")


# -- defect 4: NUL characters and non-finite numbers, on every surface -------------------------


def _forged_cursor() -> str:
    raw = json.dumps(["2025-01-01T00:00:00\u0000", str(uuid.uuid4())]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _add_body(content: str = "a", name: str | None = None, **metadata: object) -> dict:
    message = {"role": "user", "content": content} | ({"name": name} if name else {})
    return {"messages": [message], "metadata": metadata}


NUL_REQUESTS = {
    "message content": ("POST", "/v1/memories", _add_body("a\u0000b"), None),
    "message name": ("POST", "/v1/memories", _add_body(name="n\u0000"), None),
    "metadata value": ("POST", "/v1/memories", _add_body(k="\u0000"), None),
    "metadata key": ("POST", "/v1/memories", _add_body(**{"k\u0000": 1}), None),
    "nested metadata": ("POST", "/v1/memories", _add_body(k=[{"x": "\u0000"}]), None),
    "entities": ("POST", "/v1/memories", _add_body(entities=["a\u0000"]), None),
    "query": ("GET", "/v1/memories/search", None, {"query": "a\u0000b"}),
    "metadata filter": ("GET", "/v1/memories/search", None, {"query": "a", "metadata.k": "\u0000"}),
    "cursor": ("GET", "/v1/memories/user/u1", None, {"cursor": _forged_cursor()}),
    "user id in the path": ("GET", "/v1/memories/user/u%001", None, None),
    "entity name": ("GET", "/v1/users/u1/entities/a%00b/memories", None, None),
    "memory id": ("GET", "/v1/memories/%00", None, None),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(NUL_REQUESTS))
def test_nul_is_refused_on_every_surface(client: httpx.Client, case: str) -> None:
    method, path, body, params = NUL_REQUESTS[case]
    response = client.request(method, path, json=body, params=params)
    assert_error(response, 400, "INVALID_REQUEST")
    assert _user_memories(client, "default") == []


@pytest.mark.parametrize("field", ["content", "metadata"])
def test_nul_in_an_update_is_refused(client: httpx.Client, field: str) -> None:
    memory = add_memory(client, "before")
    body = {"content": "after\u0000"} if field == "content" else {"metadata": {"k": "\u0000"}}
    assert_error(client.put(f"/v1/memories/{memory['id']}", json=body), 400, "INVALID_REQUEST")
    assert client.get(f"/v1/memories/{memory['id']}").json()["data"]["content"] == "before"


@pytest.mark.parametrize("request_", ["key name", "tenant query", "tenant body"])
def test_nul_on_admin_surfaces_is_refused(admin: httpx.Client, request_: str) -> None:
    if request_ == "key name":
        response = admin.post("/v1/admin/keys", json={"tenant": "acme-nul", "name": "a\u0000"})
    elif request_ == "tenant body":
        response = admin.post("/v1/admin/keys", json={"tenant": "acme\u0000"})
    else:
        response = admin.get("/v1/admin/keys", params={"tenant": "acme\u0000"})
    assert_error(response, 400, "INVALID_REQUEST")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1E+400"])
@pytest.mark.parametrize("route", ["add", "update"])
def test_non_finite_numbers_are_refused(client: httpx.Client, number: str, route: str) -> None:
    if route == "add":
        body = f'{{"messages":[{{"role":"user","content":"n"}}],"metadata":{{"score":{number}}}}}'
        assert_error(_raw_add(client, body), 400, "INVALID_REQUEST")
        assert _user_memories(client, "default") == []
    else:
        memory = add_memory(client, "finite")
        response = client.put(
            f"/v1/memories/{memory['id']}",
            content=f'{{"metadata":{{"score":[{number}]}}}}'.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert_error(response, 400, "INVALID_REQUEST")


def test_threshold_must_be_a_finite_number(client: httpx.Client) -> None:
    for value in ("NaN", "Infinity", "-inf"):
        response = client.get("/v1/memories/search", params={"query": "x", "threshold": value})
        assert_error(response, 400, "INVALID_REQUEST")


def _raw(service: ServiceProcess, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _envelope_of(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


def test_nul_in_a_header_is_an_envelope(service: ServiceProcess) -> None:
    status, headers, body = _envelope_of(_raw(service, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Note: a\x00b\r\n\r\n"))
    assert status == 400
    assert body["success"] is False
    assert body["error"]["code"] == "INVALID_REQUEST"
    assert len(headers["x-request-id"]) == 32


# -- defect 7: ids matched to the end, on every id surface -------------------------------------


@pytest.mark.parametrize("field", ["user_id", "agent_id", "run_id"])
def test_trailing_newline_in_body_ids_is_refused(client: httpx.Client, field: str) -> None:
    body = {"messages": [{"role": "user", "content": "newline"}], field: "bob\n"}
    assert (
        assert_error(client.post("/v1/memories", json=body), 400, "INVALID_REQUEST")["details"]["errors"][0]["field"]
        == field
    )
    assert_error(client.post("/v1/memories", params={"async": "true"}, json=body), 400, "INVALID_REQUEST")
    assert client.get("/v1/memories/user/bob").json()["data"]["total"] == 0


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/memories/user/bob%0A", None),
        ("/v1/memories/user/bob%0A", {"limit": 5}),
        ("/v1/users/bob%0A/stats", None),
        ("/v1/users/bob%0A/entities", None),
        ("/v1/users/bob%0A/entities/x/memories", None),
        ("/v1/memories/search", {"query": "x", "user_id": "bob\n"}),
        ("/v1/memories/search", {"query": "x", "agent_id": "bob\n"}),
        ("/v1/memories/search", {"query": "x", "run_id": "bob\n"}),
        ("/v1/memories/user/bob", {"agent_id": "a\n"}),
        ("/v1/memories/user/bob", {"run_id": "r\n"}),
    ],
)
def test_trailing_newline_in_path_and_query_ids_is_refused(client: httpx.Client, path: str, params: dict) -> None:
    assert_error(client.get(path, params=params), 400, "INVALID_REQUEST")
    assert_error(client.delete("/v1/memories/user/bob%0A"), 400, "INVALID_REQUEST")


def test_trailing_newline_in_tenants_is_refused(admin: httpx.Client) -> None:
    error = assert_error(admin.post("/v1/admin/keys", json={"tenant": "acme\n"}), 400, "INVALID_REQUEST")
    assert error["details"]["field"] == "tenant"
    assert_error(admin.get("/v1/admin/keys", params={"tenant": "acme\n"}), 400, "INVALID_REQUEST")


# -- defect 7: bodies of every size and shape get the right status -----------------------------


def test_an_oversized_chunked_body_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(12):  # 1.2 MB, over the session service's 1,080,000-byte body limit
            yield b" " * 100_000

    response = client.post("/v1/memories", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_a_chunked_body_within_the_limit_is_read_whole(client: httpx.Client) -> None:
    payload = json.dumps({"messages": [{"role": "user", "content": "sent in chunks"}], "user_id": "chunky"}).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 7):
            yield payload[i : i + 7]

    response = client.post("/v1/memories", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert [m["content"] for m in _user_memories(client, "chunky")] == ["sent in chunks"]

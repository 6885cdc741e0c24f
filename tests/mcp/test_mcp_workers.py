"""/mcp on the production serving path: gunicorn with two workers sharing Redis, traced over OTLP.

The endpoint is stateless, so an MCP connection's requests may land on either worker; the limits
of a key hold across both; every tool call is traced and logged like a REST request.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.support.api import add_memory
from tests.support.mcp import TOOLS, Mode, Responses, mcp_client, result_data, run, tool_error
from tests.support.otlp import OtlpReceiver
from tests.support.redis import RedisServer
from tests.support.server import ADMIN_KEY, ServiceProcess, new_tenant_key

pytestmark = pytest.mark.redis
ALLOWED_ORIGIN = "https://console.example"


@dataclass
class Deployment:
    service: ServiceProcess
    traces: OtlpReceiver

    def key(self, rate_limit: int | None = None) -> str:
        with self.service.client(ADMIN_KEY) as admin:
            return new_tenant_key(admin, f"w-{uuid.uuid4().hex[:10]}", rate_limit=rate_limit)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    redis_server = RedisServer(tmp_path_factory.mktemp("mcp-redis")).start()
    receiver = OtlpReceiver().start()
    env = {
        "RATE_LIMIT_STORAGE_URI": redis_server.url,
        "RATE_LIMIT_PER_MINUTE": "100000",
        "RATE_LIMIT_BURST": "100000",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "GUNICORN_GRACEFUL_TIMEOUT": "10",
        "CORS_ORIGINS": ALLOWED_ORIGIN,
    }
    # Two workers importing the service at once on a shared 2-core machine: more than the default 90 s.
    service = ServiceProcess(tmp_path_factory.mktemp("mcp-workers"), env, workers=2).start(timeout=240)
    yield Deployment(service, receiver)
    service.stop()
    receiver.stop()
    redis_server.stop()


def test_connections_spread_over_both_workers_work_end_to_end(deployment: Deployment) -> None:
    """Six concurrent connections, a new TCP connection per request: each one's requests are
    served by whichever worker accepts them, the handshake on one and the calls on the other."""
    key, other = deployment.key(), deployment.key()
    url = deployment.service.url
    responses = Responses()

    async def one(index: int, mode: Mode) -> None:
        user = f"user-{index}"
        async with mcp_client(url, key, mode=mode, responses=responses, keepalive=False) as mcp:
            assert {t.name for t in (await mcp.list_tools()).tools} == TOOLS
            added = result_data(await mcp.call_tool("add_memories", {"text": f"Fact {index}: tea", "user_id": user}))
            memory_id = added["memories"][0]["id"]
            found = result_data(await mcp.call_tool("search_memories", {"query": "tea", "user_id": user}))
            assert [m["id"] for m in found["memories"]] == [memory_id]
            result_data(
                await mcp.call_tool("update_memory", {"memory_id": memory_id, "content": f"Fact {index}: coffee"})
            )
            history = result_data(await mcp.call_tool("memory_history", {"memory_id": memory_id}))
            assert [h["event"] for h in history["history"]] == ["ADD", "UPDATE"]
            listed = result_data(await mcp.call_tool("list_memories", {"user_id": user}))
            assert listed["total"] == 1
            result_data(await mcp.call_tool("list_entities", {"user_id": user}))
        async with mcp_client(url, other, mode=mode, keepalive=False) as intruder:
            tool_error(await intruder.call_tool("get_memory", {"memory_id": memory_id}), "MEMORY_NOT_FOUND")

    async def body() -> None:
        async with anyio.create_task_group() as group:
            for index in range(6):
                group.start_soon(one, index, "legacy" if index % 2 else "auto")

    run(body)
    assert set(responses.statuses) <= {200, 202}
    with deployment.service.client(key) as rest:
        contents = {rest.get(f"/v1/memories/user/user-{i}").json()["data"]["memories"][0]["content"] for i in range(6)}
    assert contents == {f"Fact {i}: coffee" for i in range(6)}


def test_a_keys_limit_is_exact_across_both_workers(deployment: Deployment) -> None:
    key = deployment.key(rate_limit=6)
    responses = Responses()
    refusals: list[dict[str, Any]] = []

    async def one() -> None:
        try:
            async with mcp_client(deployment.service.url, key, responses=responses, keepalive=False) as mcp:
                for _ in range(3):
                    result_data(await mcp.call_tool("list_memories", {}))
        except MCPError as exc:
            refusals.append(exc.error.data)

    async def body() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(one)

    run(body)
    admitted = [s for s in responses.statuses if s != 429]
    assert len(admitted) == 6  # of 4 x 5 requests, one key's minute admits exactly six
    assert {d["code"] for d in refusals} == {"RATE_LIMIT_EXCEEDED"}
    assert len(refusals) >= 3  # a connection may have had all five of its requests admitted


def test_tool_calls_are_traced_and_logged_like_requests(deployment: Deployment) -> None:
    tenant = f"traced-{uuid.uuid4().hex[:8]}"
    with deployment.service.client(ADMIN_KEY) as admin:
        key = new_tenant_key(admin, tenant)
    marker = f"marker-{uuid.uuid4().hex}"
    request_id = f"mcp-{uuid.uuid4().hex[:12]}"
    with deployment.service.client(key) as rest:
        add_memory(rest, f"The vault code is {marker}", "tracer")

    async def body() -> None:
        async with mcp_client(deployment.service.url, key, headers={"X-Request-ID": request_id}) as mcp:
            result_data(await mcp.call_tool("search_memories", {"query": marker, "user_id": "tracer"}))

    run(body)
    lines = [json.loads(line) for line in deployment.service.logs().splitlines() if line.startswith("{")]
    logged = next(
        line for line in lines if line.get("event") == "mcp tool call" and line.get("request_id") == request_id
    )
    assert logged["tool"] == "search_memories"
    assert logged["outcome"] == "success"
    assert logged["tenant"] == tenant
    assert logged["duration_ms"] >= 0
    text = deployment.service.logs()
    assert marker not in text  # never the query or the content
    assert key not in text

    trace_id = logged["trace_id"]  # the call's log line and its spans are one trace, with the HTTP request's
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        in_trace = {s.name for s in deployment.traces.spans if s.trace_id == trace_id}
        if {"tools/call search_memories", "memory.search", "vector.search"} <= in_trace:
            break
        time.sleep(0.3)
    assert {"tools/call search_memories", "memory.search", "vector.search"} <= in_trace
    assert any(name.startswith("POST /mcp") for name in in_trace)


def test_a_browser_client_on_an_allowed_origin_gets_through_cors(deployment: Deployment) -> None:
    url = f"{deployment.service.url}/mcp"
    preflight = httpx.options(
        url,
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, mcp-protocol-version, x-user-id",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "mcp-protocol-version", "x-user-id"} <= allowed
    headers = {
        "Authorization": f"Bearer {deployment.key()}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
        "Origin": ALLOWED_ORIGIN,
    }
    listed = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers)
    assert listed.status_code == 200
    assert listed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert {t["name"] for t in listed.json()["result"]["tools"]} == TOOLS

"""MCP tools take the REST API's domain path: per-key admission refuses a key's extra concurrent
adds, and every write emits the webhook events a REST write emits (a real, signature-checking
receiver on loopback). One service for the module, with the Ollama stand-in so an inferred add
can be made slow.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from mcp_types import CallToolResult

from tests.support.mcp import mcp_client, result_data, run, tool_error
from tests.support.ollama_server import FakeOllama, service_env, start_ollama
from tests.support.server import ADMIN_KEY, ServiceProcess, new_tenant_key
from tests.support.webhooks import Received, Receiver


@dataclass
class Tenant:
    name: str
    user_key: str
    admin: httpx.Client
    rest: httpx.Client


@pytest.fixture(scope="module")
def ollama() -> Iterator[FakeOllama]:
    server = start_ollama()
    yield server
    server.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, ollama: FakeOllama) -> Iterator[ServiceProcess]:
    env = service_env(
        ollama,
        EMBEDDER="onnx",  # searches and plain adds do not wait on the stand-in
        EMBEDDING_DIMS="384",
        KEY_CONCURRENCY="1",
        KEY_CONCURRENCY_WAIT="0.3",
        OLLAMA_TIMEOUT="15",
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",  # the receiver is on loopback
        WEBHOOK_POLL_INTERVAL="0.2",
    )
    proc = ServiceProcess(tmp_path_factory.mktemp("mcp-domain"), env).start(timeout=240.0)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rx = Receiver().start()
    yield rx
    rx.stop()


@pytest.fixture
def tenant(service: ServiceProcess) -> Iterator[Tenant]:
    name = f"mcpd-{uuid.uuid4().hex[:10]}"
    with service.client(ADMIN_KEY) as root:
        admin_key = new_tenant_key(root, name, role="admin")
        user_key = new_tenant_key(root, name)
    with service.client(admin_key) as admin, service.client(user_key) as rest:
        yield Tenant(name, user_key, admin, rest)


def test_a_key_over_its_concurrency_gets_the_rate_limit_error_as_a_tool_error(
    service: ServiceProcess, ollama: FakeOllama, tenant: Tenant
) -> None:
    """KEY_CONCURRENCY=1: of three inferred adds at once on one key, one is admitted (it waits on
    the slow LLM) and two wait KEY_CONCURRENCY_WAIT for its slot, then get RATE_LIMIT_EXCEEDED."""
    results: list[CallToolResult] = []
    ready: list[int] = []
    all_ready, go = anyio.Event(), anyio.Event()

    async def one(index: int) -> None:
        async with mcp_client(service.url, tenant.user_key) as mcp:
            ready.append(index)
            if len(ready) == 3:
                all_ready.set()
            await go.wait()  # the three calls leave together, whenever each connection was ready
            arguments = {"text": f"I cook slowly, note {index}", "user_id": "slow", "infer": True}
            results.append(await mcp.call_tool("add_memories", arguments))

    async def body() -> None:
        async with anyio.create_task_group() as group:
            for index in range(3):
                group.start_soon(one, index)
            with anyio.fail_after(60):
                await all_ready.wait()
            go.set()

    ollama.reset()
    ollama.faults.delays["/api/chat"] = 4.0
    try:
        run(body)
    finally:
        ollama.reset()
    refused = [r for r in results if r.is_error]
    assert len(results) == 3
    assert len(refused) == 2, [r.content for r in results]
    for result in refused:
        assert tool_error(result, "RATE_LIMIT_EXCEEDED")["details"]["limit"] == "concurrency"
    stored = tenant.rest.get("/v1/memories/user/slow").json()["data"]
    assert stored["total"] >= 1  # the admitted add stored its facts; the refused ones nothing more
    (admitted,) = [r for r in results if not r.is_error]
    assert {m["id"] for m in result_data(admitted)["memories"]} == {m["id"] for m in stored["memories"]}


def test_every_mcp_write_emits_the_webhook_event_a_rest_write_emits(
    service: ServiceProcess, receiver: Receiver, tenant: Tenant
) -> None:
    hook = tenant.admin.post("/v1/webhooks", json={"url": receiver.url("mcp")})
    assert hook.status_code == 201, hook.text
    receiver.trust("mcp", hook.json()["data"]["secret"])

    async def body() -> dict[str, Any]:
        async with mcp_client(service.url, tenant.user_key) as mcp:
            added = result_data(
                await mcp.call_tool("add_memories", {"text": "I live in Oslo", "user_id": "alice", "infer": False})
            )
            (memory,) = added["memories"]
            updated = result_data(
                await mcp.call_tool("update_memory", {"memory_id": memory["id"], "content": "I live in Bergen"})
            )
            second = result_data(
                await mcp.call_tool("add_memories", {"text": "I like tea", "user_id": "alice", "infer": False})
            )["memories"][0]
            result_data(await mcp.call_tool("delete_memories", {"memory_ids": [second["id"]]}))
            result_data(await mcp.call_tool("add_memories", {"text": "Bob rows", "user_id": "bob", "infer": False}))
            erased = result_data(await mcp.call_tool("delete_all_memories", {"user_id": "bob", "confirm": True}))
            return {"memory": memory, "updated": updated, "second": second, "erased": erased}

    seen = run(body)
    bodies = _events(receiver, "mcp", 6)  # created 3, updated, deleted, erased
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in bodies:
        assert event["tenant"] == tenant.name
        by_type.setdefault(event["type"], []).append(event)
    assert sorted(by_type) == ["memory.created", "memory.deleted", "memory.updated", "user.erased"]
    created = {e["data"]["memory"]["id"]: e for e in by_type["memory.created"]}
    assert len(created) == 3
    assert created[seen["memory"]["id"]]["data"]["memory"] == seen["memory"], "the memory as the tool returned it"
    (update,) = by_type["memory.updated"]
    assert update["data"]["memory"] == seen["updated"]
    (deletion,) = by_type["memory.deleted"]
    assert (deletion["user_id"], deletion["data"]) == ("alice", {"memory_id": seen["second"]["id"]})
    (erasure,) = by_type["user.erased"]
    assert (erasure["user_id"], erasure["data"]) == ("bob", {"deleted_count": seen["erased"]["deleted_count"]})
    assert seen["erased"]["deleted_count"] == 1


def _events(receiver: Receiver, name: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Distinct events delivered to /hooks/<name>, each verified with its webhook's secret."""
    deadline = time.monotonic() + timeout
    while True:
        items: list[Received] = receiver.delivered(name)
        for item in items:
            assert item.verified, f"no secret to verify {item.path} with"
            assert all(item.verified.values()), f"signature did not verify: {item.headers}"
        distinct = {item.event_id: item.body for item in items}
        if len(distinct) >= count:
            return list(distinct.values())
        assert time.monotonic() < deadline, f"{len(distinct)} of {count} events arrived: {list(distinct.values())}"
        time.sleep(0.05)

"""`memory-service mcp-stdio`: a stdio MCP server that forwards to a deployed service's /mcp,
driven by the `mcp` package's own stdio client (as Claude Desktop would spawn it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import TenantKey
from tests.support.api import add_memory
from tests.support.mcp import TOOLS, leaf, mcp_client, result_data, run, tool_error
from tests.support.server import BIN, ServiceProcess, new_tenant_key


@asynccontextmanager
async def bridge(
    service: ServiceProcess, args: list[str], errlog: Path, env: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """Spawn the bridge the way a desktop client does and open an MCP session over its stdio."""
    parameters = StdioServerParameters(
        command=str(BIN / "memory-service"),
        args=["mcp-stdio", "--base-url", service.url, *args],
        env={"PATH": os.environ["PATH"], **(env or {})},
    )
    with errlog.open("w") as stderr:
        try:
            async with stdio_client(parameters, errlog=stderr) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                yield session
        except BaseExceptionGroup as group:  # the SDK's task groups wrap what a call raised: unwrap it
            raise leaf(group) from None


def test_the_bridge_serves_the_remote_tools_over_stdio(
    service: ServiceProcess, tenant_key: TenantKey, tmp_path: Path
) -> None:
    rest = tenant_key.rest
    bobs = add_memory(rest, "Bob's bike is blue", "bob")

    async def body() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with mcp_client(service.url, tenant_key.key) as http:
            remote = [t.model_dump(mode="json") for t in (await http.list_tools()).tools]
        async with bridge(service, ["--api-key", tenant_key.key, "--user-id", "alice"], tmp_path / "err") as mcp:
            local = [t.model_dump(mode="json") for t in (await mcp.list_tools()).tools]
            added = result_data(await mcp.call_tool("add_memories", {"text": "Alice rides a red scooter"}))
            assert added["memories"][0]["user_id"] == "alice"
            found = result_data(await mcp.call_tool("search_memories", {"query": "what does alice ride"}))
            assert [m["id"] for m in found["memories"]] == [added["memories"][0]["id"]]
            tool_error(await mcp.call_tool("get_memory", {"memory_id": bobs["id"]}), "MEMORY_NOT_FOUND")  # pinned
            tool_error(await mcp.call_tool("list_memories", {"user_id": "bob"}), "FORBIDDEN")
            tool_error(await mcp.call_tool("search_memories", {"query": "x", "limit": 0}), "INVALID_REQUEST")
        return remote, local

    remote, local = run(body)
    assert {t["name"] for t in local} == TOOLS
    assert local == remote  # descriptions, input and output schemas, annotations: forwarded unchanged
    assert [m["content"] for m in rest.get("/v1/memories/user/alice").json()["data"]["memories"]] == [
        "Alice rides a red scooter"
    ]


def test_the_bridge_takes_its_key_from_the_environment_and_passes_refusals_on(
    service: ServiceProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    key = new_tenant_key(admin, f"bridge-{uuid.uuid4().hex[:8]}", rate_limit=6)

    async def body() -> tuple[int, MCPError]:
        async with bridge(service, [], tmp_path / "err", env={"MEMORY_SERVICE_API_KEY": key}) as mcp:
            for calls in range(7):
                try:
                    result_data(await mcp.call_tool("list_memories", {}))
                except MCPError as refused:
                    return calls, refused
        raise AssertionError("seven calls on a key of six requests a minute were all admitted")

    calls, error = run(body)
    assert 1 <= calls < 6  # connecting took some of the key's six requests
    assert error.error.data["code"] == "RATE_LIMIT_EXCEEDED"
    assert "Rate limit exceeded" in error.error.message


def test_a_wrong_key_stops_the_bridge_with_a_clear_message(service: ServiceProcess, tmp_path: Path) -> None:
    async def body() -> None:
        async with bridge(service, ["--api-key", "m0sk_wrong"], tmp_path / "err"):
            pass

    with pytest.raises(MCPError, match="Connection closed"):
        run(body)
    message = " ".join((tmp_path / "err").read_text().split())
    assert "UNAUTHORIZED: Invalid API key" in message
    assert "m0sk_wrong" not in message
    assert "Traceback" not in message

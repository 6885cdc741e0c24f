"""MCP clients for the tests: the `mcp` package's own streamable HTTP and stdio clients.

`mcp_client` connects the way desktop clients do: `legacy` is the initialize handshake
(protocol 2025-11-25, what Claude Desktop, Claude Code and Cursor speak today), `auto` is the
SDK's default (it discovers the server and picks the stateless 2026-07-28 protocol). Every HTTP
response the client receives is recorded, so a test can see the statuses and headers behind an
MCP error.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import httpx2
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

TOOLS = {
    "add_memories",
    "search_memories",
    "list_memories",
    "get_memory",
    "update_memory",
    "delete_memories",
    "delete_all_memories",
    "list_entities",
    "memory_history",
}
Mode = Literal["legacy", "auto"]
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


@dataclass
class Responses:
    """The HTTP responses behind an MCP connection, in order."""

    seen: list[httpx2.Response] = field(default_factory=list)

    async def record(self, response: httpx2.Response) -> None:
        await response.aread()
        self.seen.append(response)

    @property
    def statuses(self) -> list[int]:
        return [r.status_code for r in self.seen]


@asynccontextmanager
async def mcp_client(
    url: str,
    key: str | None,
    *,
    mode: Mode = "legacy",
    headers: dict[str, str] | None = None,
    responses: Responses | None = None,
    keepalive: bool = True,
) -> AsyncIterator[Any]:
    """An MCP connection to `url`/mcp with `key`; yields a ClientSession (legacy) or a Client (auto).

    Both answer `list_tools()` and `call_tool(name, arguments)`.
    """
    all_headers = {"Authorization": f"Bearer {key}"} if key else {}
    all_headers.update(headers or {})
    hooks = {"response": [responses.record]} if responses is not None else {}
    limits = httpx2.Limits() if keepalive else httpx2.Limits(max_keepalive_connections=0)
    timeout = httpx2.Timeout(60.0)
    try:
        async with httpx2.AsyncClient(headers=all_headers, timeout=timeout, event_hooks=hooks, limits=limits) as http:
            transport = streamable_http_client(f"{url}/mcp", http_client=http)
            if mode == "auto":
                async with Client(transport, cache=None) as client:
                    yield client
            else:
                async with transport as (read, write), ClientSession(read, write) as session:
                    await session.initialize()
                    yield session
    except BaseExceptionGroup as group:  # the SDK's task groups wrap what a call raised: unwrap it
        raise leaf(group) from None


def leaf(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run an async test body on its own event loop (the tests themselves are plain functions)."""
    return anyio.run(fn)


def result_data(result: CallToolResult) -> Any:
    """A successful tool result: its compact JSON text, which must equal its structured content."""
    text = _text(result)
    assert not result.is_error, text
    assert not re.search(r"\s", _STRING.sub('""', text)), "results are compact JSON"
    data = json.loads(text)
    assert result.structured_content == data
    return data


def tool_error(result: CallToolResult, code: str) -> dict[str, Any]:
    """A tool error carrying the contract's error code, readable by a model, with no stack trace."""
    text = _text(result)
    assert result.is_error, text
    assert "Traceback" not in text
    assert 'File "' not in text
    body = json.loads(text)
    error = body["error"]
    assert error["code"] == code, text
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], dict)
    return dict(error)


def _text(result: CallToolResult) -> str:
    assert len(result.content) == 1, result
    block = result.content[0]
    assert block.type == "text"
    return str(block.text)

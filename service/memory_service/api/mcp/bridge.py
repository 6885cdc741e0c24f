"""`memory-service mcp-stdio`: an MCP server on stdio that forwards to a deployed service's /mcp.

For clients that only start local servers (Claude Desktop's config file, for one). It is an MCP
server on stdio (the SDK's low-level Server) and an MCP client of the remote endpoint (the SDK's
Client over streamable HTTP) at once: tools are listed once at start and forwarded as they are;
each call is forwarded and its result, tool error or refusal (an MCP error with the contract's
code, e.g. RATE_LIMIT_EXCEEDED) comes back unchanged. It connects before it serves, so a wrong
URL or key ends it at once with a message on stderr, where desktop clients show server logs.
stdout carries the protocol and nothing else.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx2
import orjson
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
)

from memory_service import __version__

USER_HEADER = "X-User-ID"


class BridgeError(Exception):
    """The remote service cannot be used; the message says why, for a person to fix."""


def endpoint(base_url: str) -> str:
    """The /mcp URL of a service, given its base URL (or the /mcp URL itself)."""
    url = base_url.rstrip("/")
    return url if url.endswith("/mcp") else f"{url}/mcp"


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: MCPError) -> str:
    data = exc.error.data if isinstance(exc.error.data, dict) else {}
    code = data.get("code")
    return f"{code}: {exc.error.message}" if code else exc.error.message


def _unavailable(url: str, exc: Exception) -> CallToolResult:
    """A transport failure mid-session, as a tool error the model can read (and retry later)."""
    message = f"The memory service at {url} did not answer ({exc.__class__.__name__}); retry later"
    body = {"error": {"code": "SERVICE_UNAVAILABLE", "message": message, "details": {"dependency": "memory-service"}}}
    return CallToolResult(content=[TextContent(type="text", text=orjson.dumps(body).decode())], is_error=True)


async def serve(base_url: str, api_key: str, user_id: str | None = None) -> None:
    """Serve stdio until the client closes it; BridgeError when the service refuses or is unreachable."""
    url = endpoint(base_url)
    headers = {"Authorization": f"Bearer {api_key}"}
    if user_id:
        headers[USER_HEADER] = user_id
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
        )
        try:
            remote = await stack.enter_async_context(Client(streamable_http_client(url, http_client=http)))
            tools = (await remote.list_tools()).tools
        except Exception as exc:  # the SDK's task groups wrap the cause in exception groups
            cause = _leaf(exc)
            if isinstance(cause, MCPError):
                raise BridgeError(f"{url} refused the connection: {_describe(cause)}") from None
            if isinstance(cause, httpx2.HTTPError):
                raise BridgeError(f"{url} is unreachable: {cause.__class__.__name__}: {cause}") from None
            raise

        async def list_tools(_ctx: Any, _params: PaginatedRequestParams | None) -> ListToolsResult:
            return ListToolsResult(tools=tools)

        async def call_tool(_ctx: Any, params: CallToolRequestParams) -> CallToolResult:
            try:
                return await remote.call_tool(params.name, params.arguments)
            except httpx2.HTTPError as exc:
                return _unavailable(url, exc)

        server: Server[Any] = Server(
            "memory-service",
            version=__version__,
            title="Mem0 Memory System",
            instructions=remote.instructions,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
        )
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

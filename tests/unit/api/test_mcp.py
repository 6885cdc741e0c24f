"""The MCP server in-process: its tool schemas follow the settings; refusals and URLs are shaped right."""

from __future__ import annotations

import json

import anyio
from jsonschema import Draft202012Validator
from memory_service.api.mcp.bridge import endpoint
from memory_service.api.mcp.endpoint import REFUSED, refusal
from memory_service.api.mcp.server import MemoryMCP
from memory_service.errors import RateLimitExceeded, Unauthorized
from memory_service.main import create_app
from memory_service.settings import Settings


def test_tool_schemas_take_their_limits_and_default_user_from_the_settings() -> None:
    server = MemoryMCP(Settings(search_limit=7, default_user_id="someone"))
    tools = {tool.name: tool for tool in anyio.run(server.list_tools)}
    search = tools["search_memories"].input_schema
    assert search["properties"]["limit"]["maximum"] == 7
    assert "'someone'" in search["properties"]["user_id"]["description"]
    assert not Draft202012Validator(search).is_valid({"query": "x", "limit": 8})
    assert tools["delete_all_memories"].input_schema["required"] == ["confirm"]


def test_a_refusal_is_a_json_rpc_error_carrying_the_contracts_error() -> None:
    limited = refusal(RateLimitExceeded("Rate limit exceeded", {"limit": 20}, 7, {"X-RateLimit-Remaining": "0"}))
    body = json.loads(bytes(limited.body))
    assert limited.status_code == 429
    assert body["error"]["code"] == REFUSED
    assert body["error"]["data"] == {
        "code": "RATE_LIMIT_EXCEEDED",
        "message": "Rate limit exceeded",
        "details": {"limit": 20},
    }
    assert limited.headers["retry-after"] == "7"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    unauthorized = refusal(Unauthorized("Invalid API key"))
    assert unauthorized.status_code == 401
    assert unauthorized.headers["www-authenticate"].startswith("Bearer")


def test_the_bridge_accepts_the_service_url_or_its_mcp_url() -> None:
    assert endpoint("https://memory.example.com") == "https://memory.example.com/mcp"
    assert endpoint("https://memory.example.com/") == "https://memory.example.com/mcp"
    assert endpoint("https://memory.example.com/mcp/") == "https://memory.example.com/mcp"
    assert endpoint("http://10.0.0.5:8080/base") == "http://10.0.0.5:8080/base/mcp"


def test_mcp_is_not_an_openapi_operation() -> None:
    """/mcp is a JSON-RPC transport, not a REST operation: it stays out of the OpenAPI document,
    so the SDK coverage test (tests/sdk/operations.py) asks no SDK method of it."""
    paths = create_app(Settings()).openapi()["paths"]
    assert "/v1/memories" in paths  # the document is the real one
    assert not [path for path in paths if path.startswith("/mcp")]

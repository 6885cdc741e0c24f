"""The MCP endpoint (`/mcp`) through the `mcp` package's own streamable HTTP client, on the
session's single-worker service: tools and their schemas, every tool's effect seen through REST,
tenant isolation on every tool, auth and rate limits before any MCP message is served, and bad
arguments as tool errors carrying the contract's codes.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import TenantKey
from tests.support.api import add_memory
from tests.support.mcp import TOOLS, Mode, Responses, mcp_client, result_data, run, tool_error
from tests.support.server import ADMIN_KEY, ServiceProcess, new_tenant_key

READ_ONLY = {"search_memories", "list_memories", "get_memory", "list_entities", "memory_history"}
DESTRUCTIVE = {"delete_memories", "delete_all_memories", "update_memory"}


def _metric(metrics: str, family: str, **labels: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(family + "{"):
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line.rsplit(" ", 1)[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_tools_are_listed_with_schemas_that_validate(
    service: ServiceProcess, tenant_key: TenantKey, mode: Mode
) -> None:
    async def body() -> list[Any]:
        async with mcp_client(service.url, tenant_key.key, mode=mode) as client:
            return list((await client.list_tools()).tools)

    tools = {tool.name: tool for tool in run(body)}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert len(tool.description or "") > 60, tool.name  # written for a model to choose by
        Draft202012Validator.check_schema(tool.input_schema)
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None
        Draft202012Validator.check_schema(tool.output_schema)
        assert tool.annotations is not None
        assert bool(tool.annotations.read_only_hint) == (tool.name in READ_ONLY), tool.name
        assert bool(tool.annotations.destructive_hint) == (tool.name in DESTRUCTIVE), tool.name

    def valid(name: str, arguments: dict[str, Any]) -> bool:
        return Draft202012Validator(tools[name].input_schema).is_valid(arguments)

    assert valid("search_memories", {"query": "coffee"})
    assert valid("search_memories", {"query": "coffee", "limit": 50, "filters": {"source": {"in": ["chat"]}}})
    assert not valid("search_memories", {})
    assert not valid("search_memories", {"query": "coffee", "limit": 51})  # SEARCH_LIMIT
    assert not valid("search_memories", {"query": "coffee", "user_id": "has space"})
    assert valid("add_memories", {"text": "I drink oat milk"})
    assert valid("add_memories", {"messages": [{"role": "user", "content": "hi"}], "infer": False})
    assert not valid("add_memories", {"messages": [{"role": "robot", "content": "hi"}]})
    assert not valid("delete_all_memories", {"user_id": "u"})  # the confirmation is required
    assert valid("delete_all_memories", {"user_id": "u", "confirm": True})
    assert not valid("delete_memories", {"memory_ids": []})
    assert not valid("list_memories", {"limit": 101})
    assert not valid("get_memory", {})


def test_every_tool_acts_as_the_rest_api_shows(service: ServiceProcess, tenant_key: TenantKey) -> None:
    rest = tenant_key.rest

    async def body() -> None:
        async with mcp_client(service.url, tenant_key.key) as mcp:
            added = result_data(
                await mcp.call_tool(
                    "add_memories", {"text": "I love building AI applications with FastAPI", "user_id": "alice"}
                )
            )
            assert added["count"] == 1
            assert added["inference"] == "none"
            first = added["memories"][0]
            assert rest.get(f"/v1/memories/{first['id']}").json()["data"] == first

            conversation = [
                {"role": "user", "content": "My favourite editor is Neovim"},
                {"role": "assistant", "content": "Noted, Neovim it is"},
            ]
            added = result_data(
                await mcp.call_tool(
                    "add_memories",
                    {"messages": conversation, "user_id": "alice", "metadata": {"source": "mcp-test", "priority": 2}},
                )
            )
            second = added["memories"][0]
            stored = rest.get(f"/v1/memories/{second['id']}").json()["data"]
            assert stored["content"] == "My favourite editor is Neovim"
            assert stored["metadata"]["source"] == "mcp-test"
            assert stored["metadata"]["priority"] == 2
            assert rest.get("/v1/memories/user/alice").json()["data"]["total"] == 2

            found = result_data(await mcp.call_tool("search_memories", {"query": "which editor", "user_id": "alice"}))
            via_rest = rest.get("/v1/memories/search", params={"query": "which editor", "user_id": "alice"}).json()
            assert [m["id"] for m in found["memories"]] == [m["id"] for m in via_rest["data"]["memories"]]
            assert found["memories"][0]["id"] == second["id"]
            filtered = result_data(
                await mcp.call_tool(
                    "search_memories", {"query": "editor", "user_id": "alice", "filters": {"priority": {"gte": 2}}}
                )
            )
            assert [m["id"] for m in filtered["memories"]] == [second["id"]]

            page = result_data(await mcp.call_tool("list_memories", {"user_id": "alice", "limit": 1}))
            assert page["total"] == 2
            assert len(page["memories"]) == 1
            assert page["next_cursor"]
            rest_page = rest.get("/v1/memories/user/alice", params={"limit": 1}).json()["data"]
            assert page == rest_page
            page2 = result_data(
                await mcp.call_tool("list_memories", {"user_id": "alice", "limit": 1, "cursor": page["next_cursor"]})
            )
            assert {page["memories"][0]["id"], page2["memories"][0]["id"]} == {first["id"], second["id"]}
            assert page2["next_cursor"] is None

            got = result_data(await mcp.call_tool("get_memory", {"memory_id": first["id"]}))
            assert got == rest.get(f"/v1/memories/{first['id']}").json()["data"]

            updated = result_data(
                await mcp.call_tool(
                    "update_memory", {"memory_id": first["id"], "content": "I build AI apps with Litestar"}
                )
            )
            after = rest.get(f"/v1/memories/{first['id']}").json()["data"]
            assert after["content"] == "I build AI apps with Litestar"
            assert updated == after

            history = result_data(await mcp.call_tool("memory_history", {"memory_id": first["id"]}))
            assert history == rest.get(f"/v1/memories/{first['id']}/history").json()["data"]
            assert [h["event"] for h in history["history"]] == ["ADD", "UPDATE"]

            entities = result_data(await mcp.call_tool("list_entities", {"user_id": "alice"}))
            assert entities == rest.get("/v1/users/alice/entities").json()["data"]
            assert "neovim" in {e["key"] for e in entities["entities"]}

            missing = str(uuid.uuid4())
            deleted = result_data(await mcp.call_tool("delete_memories", {"memory_ids": [first["id"], missing]}))
            assert deleted == {"deleted": [first["id"]], "not_found": [missing]}
            assert rest.get(f"/v1/memories/{first['id']}").status_code == 404

            erased = result_data(await mcp.call_tool("delete_all_memories", {"user_id": "alice", "confirm": True}))
            assert erased == {"user_id": "alice", "deleted_count": 1}
            assert rest.get("/v1/memories/user/alice").json()["data"]["total"] == 0

            default = result_data(await mcp.call_tool("add_memories", {"text": "Stored for the default user"}))
            assert default["memories"][0]["user_id"] == "default"
            listed = rest.get("/v1/memories/user/default").json()["data"]["memories"]
            assert [m["id"] for m in listed] == [default["memories"][0]["id"]]

    run(body)


def test_the_stateless_protocol_serves_the_same_tools(service: ServiceProcess, tenant_key: TenantKey) -> None:
    """The SDK's default client picks the 2026-07-28 protocol: no handshake, no session."""
    responses = Responses()

    async def body() -> None:
        async with mcp_client(service.url, tenant_key.key, mode="auto", responses=responses) as mcp:
            assert mcp.protocol_version == "2026-07-28"
            added = result_data(
                await mcp.call_tool("add_memories", {"text": "Modern clients remember too", "user_id": "m"})
            )
            found = result_data(await mcp.call_tool("search_memories", {"query": "modern clients", "user_id": "m"}))
            assert [m["id"] for m in found["memories"]] == [added["memories"][0]["id"]]

    run(body)
    assert set(responses.statuses) == {200}
    assert not any("mcp-session-id" in r.headers for r in responses.seen)
    assert tenant_key.rest.get("/v1/memories/user/m").json()["data"]["total"] == 1


def test_bad_arguments_and_failures_are_tool_errors_with_the_contracts_codes(
    service: ServiceProcess, tenant_key: TenantKey
) -> None:
    memory = add_memory(tenant_key.rest, "Keep me", "bob")
    responses = Responses()

    async def body() -> None:
        async with mcp_client(service.url, tenant_key.key, responses=responses) as mcp:

            async def error(tool: str, arguments: dict[str, Any], code: str) -> dict[str, Any]:
                return tool_error(await mcp.call_tool(tool, arguments), code)

            invalid = await error("search_memories", {"query": "x", "limit": "ten"}, "INVALID_REQUEST")
            assert "limit" in invalid["message"]
            assert [e["field"] for e in invalid["details"]["errors"]] == ["limit"]
            await error("search_memories", {"query": "   "}, "INVALID_REQUEST")
            await error("search_memories", {"query": "x", "limit": 51}, "INVALID_REQUEST")
            await error("search_memories", {"query": "x", "filters": {"tenant_id": "other"}}, "INVALID_REQUEST")
            await error("search_memories", {"query": "x", "filters": {"n": {"like": "a"}}}, "INVALID_REQUEST")
            await error("search_memories", {"query": "x", "user_id": "two words"}, "INVALID_REQUEST")
            await error("search_memories", {}, "INVALID_REQUEST")
            await error("add_memories", {}, "INVALID_REQUEST")
            await error(
                "add_memories", {"text": "a", "messages": [{"role": "user", "content": "b"}]}, "INVALID_REQUEST"
            )
            await error("add_memories", {"messages": [{"role": "assistant", "content": "b"}]}, "INVALID_REQUEST")
            await error("add_memories", {"text": "x", "metadata": {"tenant_id": "other"}}, "INVALID_REQUEST")
            too_large = await error("add_memories", {"text": "x" * 20_001}, "PAYLOAD_TOO_LARGE")  # MAX_MEMORY_SIZE
            assert too_large["details"]["limit"] == 20_000
            await error("get_memory", {"memory_id": "not-an-id"}, "MEMORY_NOT_FOUND")
            await error("get_memory", {"memory_id": str(uuid.uuid4())}, "MEMORY_NOT_FOUND")
            await error("memory_history", {"memory_id": str(uuid.uuid4())}, "MEMORY_NOT_FOUND")
            await error("update_memory", {"memory_id": memory["id"]}, "INVALID_REQUEST")
            await error("update_memory", {"memory_id": str(uuid.uuid4()), "content": "x"}, "MEMORY_NOT_FOUND")
            await error("delete_memories", {"memory_ids": [memory["id"]] * 101}, "INVALID_REQUEST")
            refused = await error("delete_all_memories", {"user_id": "bob", "confirm": False}, "INVALID_REQUEST")
            assert "confirm" in refused["message"]
            await error("list_entities", {"limit": 0}, "INVALID_REQUEST")
            await error("no_such_tool", {}, "INVALID_REQUEST")

    run(body)
    assert set(responses.statuses) == {200, 202}  # tool errors, never a transport failure (202: a notification)
    assert tenant_key.rest.get(f"/v1/memories/{memory['id']}").json()["data"]["content"] == "Keep me"


def test_another_tenants_memories_are_unreachable_through_every_tool(
    service: ServiceProcess, admin: httpx.Client, tenant_key: TenantKey
) -> None:
    theirs = tenant_key.rest
    secret = add_memory(theirs, "Globex Corporation keeps the saffron recipe", "shared-user")
    intruder = new_tenant_key(admin, f"intruder-{uuid.uuid4().hex[:8]}")

    async def body() -> None:
        async with mcp_client(service.url, intruder) as mcp:
            own = result_data(await mcp.call_tool("add_memories", {"text": "I like pizza", "user_id": "shared-user"}))
            found = result_data(
                await mcp.call_tool("search_memories", {"query": "saffron recipe Globex", "user_id": "shared-user"})
            )
            assert [m["id"] for m in found["memories"]] == [own["memories"][0]["id"]]
            listed = result_data(await mcp.call_tool("list_memories", {"user_id": "shared-user"}))
            assert [m["id"] for m in listed["memories"]] == [own["memories"][0]["id"]]
            entities = result_data(await mcp.call_tool("list_entities", {"user_id": "shared-user"}))
            assert "globex corporation" not in {e["key"] for e in entities["entities"]}
            for tool, arguments in (
                ("get_memory", {"memory_id": secret["id"]}),
                ("update_memory", {"memory_id": secret["id"], "content": "hijacked"}),
                ("memory_history", {"memory_id": secret["id"]}),
            ):
                tool_error(await mcp.call_tool(tool, arguments), "MEMORY_NOT_FOUND")
            deleted = result_data(await mcp.call_tool("delete_memories", {"memory_ids": [secret["id"]]}))
            assert deleted == {"deleted": [], "not_found": [secret["id"]]}
            erased = result_data(
                await mcp.call_tool("delete_all_memories", {"user_id": "shared-user", "confirm": True})
            )
            assert erased["deleted_count"] == 1  # its own pizza, not the recipe

    run(body)
    kept = theirs.get(f"/v1/memories/{secret['id']}").json()["data"]
    assert kept == secret
    assert [h["event"] for h in theirs.get(f"/v1/memories/{secret['id']}/history").json()["data"]["history"]] == ["ADD"]
    assert [m["id"] for m in theirs.get("/v1/memories/user/shared-user").json()["data"]["memories"]] == [secret["id"]]


def test_a_connection_pinned_to_a_user_reaches_no_other_user(service: ServiceProcess, tenant_key: TenantKey) -> None:
    rest = tenant_key.rest
    bobs = add_memory(rest, "Bob's locker code is 4711", "bob")

    async def body() -> None:
        async with mcp_client(service.url, tenant_key.key, headers={"X-User-ID": "alice"}) as mcp:
            added = result_data(await mcp.call_tool("add_memories", {"text": "Alice prefers tea"}))
            assert added["memories"][0]["user_id"] == "alice"
            same = result_data(await mcp.call_tool("list_memories", {"user_id": "alice"}))
            assert same["total"] == 1
            for tool, arguments in (
                ("search_memories", {"query": "locker code", "user_id": "bob"}),
                ("list_memories", {"user_id": "bob"}),
                ("add_memories", {"text": "x", "user_id": "bob"}),
                ("list_entities", {"user_id": "bob"}),
                ("delete_all_memories", {"user_id": "bob", "confirm": True}),
            ):
                forbidden = tool_error(await mcp.call_tool(tool, arguments), "FORBIDDEN")
                assert "alice" in forbidden["message"]
            found = result_data(await mcp.call_tool("search_memories", {"query": "locker code"}))
            assert bobs["id"] not in {m["id"] for m in found["memories"]}
            for tool, arguments in (
                ("get_memory", {"memory_id": bobs["id"]}),
                ("update_memory", {"memory_id": bobs["id"], "content": "0000"}),
                ("memory_history", {"memory_id": bobs["id"]}),
            ):
                tool_error(await mcp.call_tool(tool, arguments), "MEMORY_NOT_FOUND")
            deleted = result_data(await mcp.call_tool("delete_memories", {"memory_ids": [bobs["id"]]}))
            assert deleted["not_found"] == [bobs["id"]]

    run(body)
    assert rest.get(f"/v1/memories/{bobs['id']}").json()["data"] == bobs
    assert rest.get("/v1/memories/user/bob").json()["data"]["total"] == 1


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("key", [None, "m0sk_not-a-real-key"])
def test_missing_and_wrong_keys_are_refused_with_401_before_any_mcp_message(
    service: ServiceProcess, key: str | None, mode: Mode
) -> None:
    responses = Responses()

    async def body() -> MCPError:
        with pytest.raises(MCPError) as refused:
            async with mcp_client(service.url, key, mode=mode, responses=responses) as mcp:
                await mcp.list_tools()
        return refused.value

    error = run(body)
    assert error.error.data["code"] == "UNAUTHORIZED"
    assert "API key" in error.error.message
    assert responses.statuses
    assert set(responses.statuses) == {401}
    first = responses.seen[0]
    assert first.headers["www-authenticate"].startswith("Bearer")
    assert first.headers["x-request-id"]
    assert "mcp-session-id" not in first.headers
    refusal = json.loads(first.text)
    assert refusal["jsonrpc"] == "2.0"
    assert refusal["error"]["data"]["code"] == "UNAUTHORIZED"


def test_a_foreign_origin_a_bad_user_pin_and_other_methods_are_refused_before_mcp(
    service: ServiceProcess, tenant_key: TenantKey
) -> None:
    """DNS rebinding: a page on another origin must not drive the endpoint, even with a key."""
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {
        "Authorization": f"Bearer {tenant_key.key}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }
    foreign = httpx.post(f"{service.url}/mcp", json=message, headers={**headers, "Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert foreign.json()["error"]["data"]["code"] == "FORBIDDEN"
    bad_pin = httpx.post(f"{service.url}/mcp", json=message, headers={**headers, "X-User-ID": "two words"})
    assert bad_pin.status_code == 400
    assert bad_pin.json()["error"]["data"]["code"] == "INVALID_REQUEST"
    for method in ("GET", "DELETE"):  # no event stream, no session to end
        assert httpx.request(method, f"{service.url}/mcp", headers=headers).status_code == 405
    listed = httpx.post(f"{service.url}/mcp", json=message, headers=headers)  # the same request, without them
    assert listed.status_code == 200
    assert {t["name"] for t in listed.json()["result"]["tools"]} == TOOLS


def test_a_key_over_its_limit_is_refused_with_the_rate_limit_error(
    service: ServiceProcess, admin: httpx.Client
) -> None:
    key = new_tenant_key(admin, f"limited-{uuid.uuid4().hex[:8]}", rate_limit=4)  # 4 requests per minute
    responses = Responses()

    async def body() -> MCPError:
        async with mcp_client(service.url, key, responses=responses) as mcp:  # initialize + initialized: 2
            await mcp.list_tools()  # 3 (the client reads the output schemas it validates results with)
            result_data(await mcp.call_tool("list_memories", {}))  # 4
            with pytest.raises(MCPError) as refused:
                await mcp.call_tool("list_memories", {})
            return refused.value

    error = run(body)
    assert error.error.data["code"] == "RATE_LIMIT_EXCEEDED"
    assert error.error.data["details"]["limit"] == 4
    assert responses.statuses == [200, 202, 200, 200, 429]
    refusal = responses.seen[-1]
    assert 1 <= int(refusal.headers["retry-after"]) <= 60
    assert refusal.headers["x-ratelimit-remaining"] == "0"
    assert [r.headers["x-ratelimit-remaining"] for r in responses.seen[:4]] == ["3", "2", "1", "0"]
    with service.client(key) as rest:  # one budget for REST and MCP
        assert rest.get("/v1/memories/user/default").status_code == 429


def test_tool_calls_are_counted_with_a_bounded_tool_label(service: ServiceProcess, tenant_key: TenantKey) -> None:
    with service.client(ADMIN_KEY) as admin:
        before = admin.get("/v1/metrics").text

    async def body() -> None:
        async with mcp_client(service.url, tenant_key.key) as mcp:
            result_data(await mcp.call_tool("list_memories", {}))
            tool_error(await mcp.call_tool("get_memory", {"memory_id": str(uuid.uuid4())}), "MEMORY_NOT_FOUND")
            for _ in range(3):
                tool_error(await mcp.call_tool(f"made_up_{uuid.uuid4().hex}", {}), "INVALID_REQUEST")

    run(body)
    with service.client(ADMIN_KEY) as admin:
        after = admin.get("/v1/metrics").text
    family = "memory_mcp_tool_calls_total"

    def delta(**labels: str) -> float:
        return _metric(after, family, **labels) - _metric(before, family, **labels)

    assert delta(tool="list_memories", outcome="success") == 1
    assert delta(tool="get_memory", outcome="not_found") == 1
    assert delta(tool="<unknown>", outcome="invalid") == 3
    tools = {labels for labels in re.findall(r'memory_mcp_tool_calls_total\{[^}]*tool="([^"]*)"', after)}
    assert tools <= TOOLS | {"<unknown>"}
    assert _metric(after, "memory_mcp_tool_duration_seconds_count", tool="list_memories") >= 1
    assert _metric(after, "memory_http_requests_total", route="/mcp", method="POST", status="200") >= 5


def test_nul_characters_and_non_finite_numbers_in_arguments_are_tool_errors(
    service: ServiceProcess, tenant_key: TenantKey
) -> None:
    """What the REST API refuses at the door (400) is, through MCP, a tool error the model can act on."""
    memory = add_memory(tenant_key.rest, "Tea at five", "nul-user")
    responses = Responses()

    async def body() -> None:
        async with mcp_client(service.url, tenant_key.key, responses=responses) as mcp:
            for tool, arguments in (
                ("add_memories", {"text": "tea\x00time", "user_id": "nul-user"}),
                ("add_memories", {"text": "tea", "user_id": "nul-user", "metadata": {"k\x00": "v"}}),
                ("update_memory", {"memory_id": memory["id"], "content": "tea\x00time"}),
                ("search_memories", {"query": "tea\x00", "user_id": "nul-user"}),
            ):
                refused = tool_error(await mcp.call_tool(tool, arguments), "INVALID_REQUEST")
                assert "NUL" in refused["message"], tool

    run(body)
    assert set(responses.statuses) == {200, 202}  # tool errors, not a refused request
    # The SDK's client writes non-finite numbers as null, so these go as raw JSON-RPC text.
    headers = {
        "Authorization": f"Bearer {tenant_key.key}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2025-11-25",
    }
    for number in ("1e999", "NaN", "-Infinity"):
        raw = (
            '{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "add_memories", "arguments": '
            '{"text": "tea", "user_id": "nul-user", "metadata": {"cups": ' + number + "}}}}"
        )
        answer = httpx.post(f"{service.url}/mcp", content=raw, headers=headers)
        assert answer.status_code == 200, answer.text
        result = answer.json()["result"]
        assert result["isError"] is True
        assert json.loads(result["content"][0]["text"])["error"]["code"] == "INVALID_REQUEST", number
    stored = tenant_key.rest.get("/v1/memories/user/nul-user").json()["data"]
    assert [m["id"] for m in stored["memories"]] == [memory["id"]]
    assert stored["memories"][0]["content"] == "Tea at five"

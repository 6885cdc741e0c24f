"""mem0's own Python `AsyncMemoryClient` (PyPI mem0ai 2.2.1), unmodified, against the real service.

The async twin shares the sync client's wire format but not its code (its own httpx.AsyncClient,
its ping through `requests`), so every memory method is driven once here, in one event loop.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from mem0 import AsyncMemoryClient
from mem0.exceptions import MemoryError as Mem0MemoryError
from mem0.exceptions import MemoryNotFoundError, RateLimitError, ValidationError

from tests.compat.conftest import wait_for_event
from tests.support.server import ServiceProcess, new_tenant_key


def test_a_wrong_key_fails_at_construction(service: ServiceProcess) -> None:
    with pytest.raises(ValueError, match="Invalid API key"):
        AsyncMemoryClient(api_key="m0sk_not-a-real-key", host=service.url)


def test_every_memory_method(service: ServiceProcess, key: str, other_key: str, tenant: str) -> None:
    async def scenario() -> None:
        async with (
            AsyncMemoryClient(api_key=key, host=service.url) as client,
            AsyncMemoryClient(api_key=other_key, host=service.url) as other,
        ):
            assert (client.org_id, client.project_id) == (tenant, tenant)
            added = await client.add("I collect vintage cameras", user_id="vera", metadata={"hobby": "photo"})
            (first,) = [r["id"] for r in added["results"]]
            more = await client.add(
                [{"role": "user", "content": "I live in Oslo"}, {"role": "user", "content": "I cycle to work"}],
                user_id="vera",
                agent_id="concierge",
            )
            second, third = [r["id"] for r in more["results"]]
            queued = await client.add("I started learning Norwegian", user_id="vera", async_mode=True)
            assert (queued["status"], bool(queued["event_id"])) == ("PENDING", True)
            event = await asyncio.to_thread(wait_for_event, service, key, queued["event_id"])
            (late,) = event["results"]
            assert (await client.get(late["id"]))["memory"] == "I started learning Norwegian"

            assert (await client.get(first))["metadata"] == {"hobby": "photo"}
            page = await client.get_all(filters={"AND": [{"user_id": "vera"}, {"agent_id": "concierge"}]})
            assert {m["id"] for m in page["results"]} == {second, third}
            found = await client.search("cameras", filters={"user_id": "vera"}, top_k=1)
            assert [m["id"] for m in found["results"]] == [first]

            assert (await client.update(first, text="I collect vintage film cameras"))["memory"].endswith("cameras")
            assert [h["event"] for h in await client.history(first)] == ["ADD", "UPDATE"]
            await client.batch_update([{"memory_id": second, "metadata": {"city": "Oslo"}}])
            assert (await client.get(second))["metadata"] == {"city": "Oslo"}
            await client.feedback(first, "NEGATIVE", "outdated")

            export = await client.create_memory_export(
                schema=json.dumps({"type": "object"}), filters={"AND": [{"user_id": "vera"}]}
            )
            assert first in {
                m["id"] for m in (await client.get_memory_export(memory_export_id=export["id"]))["memories"]
            }

            with pytest.raises(MemoryNotFoundError):
                await other.get(first)
            with pytest.raises(MemoryNotFoundError):
                await other.feedback(first, "POSITIVE")
            with pytest.raises(ValidationError):
                await client.search("x", filters={"priority": {"gt": "high"}})
            with pytest.raises(Mem0MemoryError, match="does not offer"):
                await client.get_summary(filters={"user_id": "vera"})

            await client.batch_delete([{"memory_id": third}])
            await client.delete(second)
            for gone in (second, third):
                with pytest.raises(MemoryNotFoundError):
                    await client.get(gone)
            entities = {(e["type"], e["name"]) for e in (await client.users())["results"]}
            assert ("user", "vera") in entities
            await client.delete_all(user_id="vera")
            await client.add("Walt's note", user_id="walt")
            await client.delete_users(user_id="walt")
            assert (await client.users())["results"] == []

    asyncio.run(scenario())


def test_rate_limit_error_carries_the_retry_time(service: ServiceProcess, admin: httpx.Client, tenant: str) -> None:
    async def scenario() -> None:
        async with AsyncMemoryClient(
            api_key=new_tenant_key(admin, tenant, rate_limit=2), host=service.url
        ) as client:  # the ping is the first request
            await client.users()
            with pytest.raises(RateLimitError) as raised:
                await client.users()
            assert raised.value.debug_info["retry_after"] >= 1

    asyncio.run(scenario())

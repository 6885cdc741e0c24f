"""Every method of `MemoryClient` and `AsyncMemoryClient` against the real service, and the
coverage check: the requests they send reach every operation of the OpenAPI document that is
not deliberately left out (tests/sdk/operations.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
import mem0_client
import pytest
from mem0_client import (
    AddResult,
    AsyncMemoryClient,
    JobAccepted,
    MemoryClient,
    MemoryNotFoundError,
    NotFoundError,
)

from tests.sdk.operations import LEFT_OUT, missing, operations, template_of
from tests.support.server import ServiceProcess

Recorded = set[tuple[str, str]]


def _recorder(ops: set[tuple[str, str]], reached: Recorded, unknown: list[str]) -> Callable[[httpx.Request], None]:
    def record(request: httpx.Request) -> None:
        raw = request.url.raw_path.decode()
        op = template_of(request.method, raw, ops)
        if op is None:
            unknown.append(f"{request.method} {raw}")
        else:
            reached.add(op)

    return record


def _sync_tour(client: MemoryClient, admin: MemoryClient, user: str) -> None:
    assert client.health().status == "ok"
    status = client.status()
    assert status.profile == "embedded"
    assert status.memory_count == 0

    first = client.add("I love building AI applications with FastAPI", user_id=user, metadata={"source": "chat"})
    assert isinstance(first, AddResult)
    assert first.count == 1
    assert first.inference == "none"
    memory = first.memories[0]
    assert memory.user_id == user
    assert memory.metadata["source"] == "chat"
    assert "FastAPI" in [r.entity for r in memory.relationships]
    assert memory.created_at is not None

    conversation = client.add(
        [
            {"role": "user", "content": "My sister Ana lives in Lisbon"},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "I hike in the Alps every summer"},
        ],
        user_id=user,
        agent_id="planner",
        metadata={"priority": 3},
    )
    assert conversation.count == 2  # one memory per user message without an LLM
    assert {m.agent_id for m in conversation.memories} == {"planner"}

    accepted = client.add("Queued memory about Litestar", user_id=user, async_mode=True)
    assert isinstance(accepted, JobAccepted)
    assert accepted.state == "queued"
    job = client.wait_for_job(accepted.job_id, timeout=30, poll_interval=0.1)
    assert job.state == "succeeded", job.error
    assert job.result is not None
    assert job.result.memories[0].content == "Queued memory about Litestar"
    assert client.job(accepted.job_id).state == "succeeded"

    found = client.search("FastAPI", user_id=user, limit=2, include_embedding=True)
    assert found.memories[0].id == memory.id
    assert found.memories[0].score is not None
    assert found.memories[0].embedding is not None
    assert found.count == len(found.memories) <= 2
    assert [m.id for m in client.search("hiking", user_id=user, filters={"priority": {"gte": 3}}).memories]
    by_source = client.search("anything", user_id=user, metadata={"source": ["chat", "nothing"]})
    assert [m.id for m in by_source.memories] == [memory.id]

    fetched = client.get(memory.id, include_embedding=True)
    assert fetched.content == memory.content
    assert fetched.embedding is not None
    assert len(fetched.embedding) > 100
    assert client.get(memory.id).embedding is None

    updated = client.update(memory.id, "Loves FastAPI and Litestar", metadata={"source": "edit"})
    assert updated.content == "Loves FastAPI and Litestar"
    assert updated.metadata["source"] == "edit"
    assert updated.updated_at is not None
    assert updated.updated_at >= memory.updated_at  # type: ignore[operator]
    events = [(h.event, h.old_content, h.new_content) for h in client.history(memory.id)]
    assert events[0][0] == "ADD"
    assert events[-1] == ("UPDATE", memory.content, "Loves FastAPI and Litestar")

    page = client.get_page(user, limit=2)
    assert page.total == 4
    assert len(page.memories) == 2
    assert page.next_cursor is not None
    assert [m.id for p in client.pages(user, page_size=3) for m in p.memories] == [m.id for m in client.get_all(user)]

    stats = client.user_stats(user)
    assert stats.memory_count == 4
    assert stats.sources["edit"] == 1
    entities = client.entities(user, limit=100)
    assert entities.source == "postgres"
    names = {e.key: e for e in entities.entities}
    assert "fastapi" in names
    mentions = client.entity_memories(user, "fastapi")
    assert [m.id for m in mentions.memories] == [memory.id]

    assert client.delete(memory.id).deleted is True
    with pytest.raises(MemoryNotFoundError) as gone:
        client.get(memory.id)
    assert gone.value.status == 404
    assert client.delete_all(user).deleted_count == 3
    assert list(client.get_all(user)) == []

    tenant = f"sdk-tour-{uuid.uuid4().hex[:8]}"
    created = admin.admin.create_key(tenant, role="user", name="tour", rate_limit=100)
    assert created.key.startswith(created.prefix)
    assert created.rate_limit_per_minute == 100
    assert [k.id for k in admin.admin.list_keys(tenant=tenant)] == [created.id]
    revoked = admin.admin.revoke_key(created.id)
    assert revoked.revoked_at is not None
    assert admin.admin.list_keys(tenant=tenant) == []
    assert [k.id for k in admin.admin.list_keys(tenant=tenant, include_revoked=True)] == [created.id]
    with pytest.raises(NotFoundError) as unknown_key:
        admin.admin.revoke_key(str(uuid.uuid4()))
    assert unknown_key.value.code == "NOT_FOUND"
    assert "memory_http_requests_total" in admin.admin.metrics()


def test_sync_client_every_method_and_every_operation(
    sdk_service: ServiceProcess, admin_key: str, new_key: Callable[..., str]
) -> None:
    ops = operations(sdk_service.url)
    reached: Recorded = set()
    unknown: list[str] = []
    with httpx.Client(event_hooks={"request": [_recorder(ops, reached, unknown)]}) as http:
        client = MemoryClient(new_key(), sdk_service.url, http_client=http)
        admin = MemoryClient(admin_key, f"{sdk_service.url}/v1", http_client=http)
        _sync_tour(client, admin, "tour-user")
    assert unknown == []
    assert missing(reached, ops) == set(), "operations without a Python SDK method (or a LEFT_OUT reason)"
    assert not reached & set(LEFT_OUT)


async def _async_tour(client: AsyncMemoryClient, admin: AsyncMemoryClient, user: str) -> None:
    assert (await client.health()).status == "ok"
    assert (await client.status()).memory_count == 0
    added = await client.add("I use FastAPI every day", user_id=user)
    memory = added.memories[0]
    accepted = await client.add({"role": "user", "content": "Queued async memory"}, user_id=user, async_mode=True)
    job = await client.wait_for_job(accepted.job_id, timeout=30, poll_interval=0.1)
    assert job.state == "succeeded"
    assert (await client.job(accepted.job_id)).result is not None
    assert (await client.search("FastAPI", user_id=user)).memories[0].id == memory.id
    assert (await client.get(memory.id)).content == "I use FastAPI every day"
    assert (await client.update(memory.id, metadata={"source": "async"})).metadata["source"] == "async"
    assert [h.event for h in await client.history(memory.id)] == ["ADD", "UPDATE"]
    page = await client.get_page(user, limit=1)
    assert page.total == 2
    assert page.next_cursor is not None
    pages = [p async for p in client.pages(user, page_size=1)]
    assert len(pages) == 2
    assert [m.id async for m in client.get_all(user, page_size=1)] == [m.id for p in pages for m in p.memories]
    assert (await client.user_stats(user)).memory_count == 2
    assert "fastapi" in [e.key for e in (await client.entities(user)).entities]
    assert [m.id for m in (await client.entity_memories(user, "FastAPI")).memories] == [memory.id]
    assert (await client.delete(memory.id)).id == memory.id
    assert (await client.delete_all(user)).deleted_count == 1
    tenant = f"sdk-async-{uuid.uuid4().hex[:8]}"
    created = await admin.admin.create_key(tenant)
    assert [k.id for k in await admin.admin.list_keys(tenant=tenant)] == [created.id]
    assert (await admin.admin.revoke_key(created.id)).revoked_at is not None
    assert "memory_http_requests_total" in await admin.admin.metrics()


def test_async_client_every_method_and_every_operation(
    sdk_service: ServiceProcess, admin_key: str, new_key: Callable[..., str]
) -> None:
    ops = operations(sdk_service.url)
    reached: Recorded = set()
    unknown: list[str] = []
    record = _recorder(ops, reached, unknown)

    async def hook(request: httpx.Request) -> None:
        record(request)

    async def main() -> None:
        async with (
            httpx.AsyncClient(event_hooks={"request": [hook]}) as http,
            AsyncMemoryClient(new_key(), sdk_service.url, http_client=http) as client,
        ):
            admin = AsyncMemoryClient(admin_key, sdk_service.url, http_client=http)
            await _async_tour(client, admin, "async-user")

    asyncio.run(main())
    assert unknown == []
    assert missing(reached, ops) == set(), "operations without an async SDK method (or a LEFT_OUT reason)"


def test_key_and_url_fall_back_to_the_environment(
    sdk_service: ServiceProcess, new_key: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(mem0_client.API_KEY_ENV, new_key())
    monkeypatch.setenv(mem0_client.BASE_URL_ENV, f"{sdk_service.url}/v1/")
    with MemoryClient() as client:
        assert client.status().memory_count == 0
    monkeypatch.delenv(mem0_client.API_KEY_ENV)
    with pytest.raises(ValueError, match="MEM0_API_KEY"):
        MemoryClient()


def test_get_all_walks_more_than_three_pages(client: MemoryClient) -> None:
    messages = [{"role": "user", "content": f"paged memory number {i}"} for i in range(7)]
    assert client.add(messages, user_id="paged").count == 7
    pages = list(client.pages("paged", page_size=2))
    assert [len(p.memories) for p in pages] == [2, 2, 2, 1]
    assert [p.next_cursor is None for p in pages] == [False, False, False, True]
    walked = [m.id for m in client.get_all("paged", page_size=2)]
    assert walked == [m.id for p in pages for m in p.memories]
    assert len(set(walked)) == 7

    async def walk() -> list[str]:
        async with AsyncMemoryClient(client.api_key, client.base_url) as aclient:
            return [m.id async for m in aclient.get_all("paged", page_size=2)]

    assert asyncio.run(walk()) == walked

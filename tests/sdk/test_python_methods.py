"""Every method of `MemoryClient` and `AsyncMemoryClient` against the real service, and the
coverage check: the requests they send reach every operation of the OpenAPI document that is
not deliberately left out (tests/sdk/operations.py).

The webhook methods run with an admin key of a tenant of their own and a real receiver on
loopback that verifies every signature with `standardwebhooks` against the secrets the SDK
returned (tests/support/webhooks.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import httpx
import mem0_client
import pytest
from mem0_client import (
    AddResult,
    AsyncMemoryClient,
    AsyncWebhooksAPI,
    Delivery,
    JobAccepted,
    MemoryClient,
    MemoryNotFoundError,
    NotFoundError,
    WebhooksAPI,
)

from tests.sdk.conftest import BIG_LIMIT
from tests.sdk.operations import LEFT_OUT, missing, operations, template_of
from tests.support.server import ServiceProcess
from tests.support.webhooks import Received, Receiver

Recorded = set[tuple[str, str]]
DELIVERY_WAIT = 30.0  # seconds; a delivery normally lands well within one worker poll (0.2 s)


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


def _settled(fetch: Callable[[], Delivery], what: str) -> Delivery:
    """The delivery once the service has recorded its outcome (the receiver sees the request first)."""
    deadline = time.monotonic() + DELIVERY_WAIT
    while (delivery := fetch()).state == "pending":
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} still pending after {DELIVERY_WAIT} s: {delivery}")
        time.sleep(0.05)
    return delivery


def _arrivals(receiver: Receiver, name: str, count: int) -> list[Received]:
    return receiver.wait_for(name, lambda got: len(got) >= count, DELIVERY_WAIT, f"{count} deliveries to {name}")


def _sync_webhooks_tour(hooks: WebhooksAPI, receiver: Receiver) -> None:
    name = f"sdk-sync-{uuid.uuid4().hex[:8]}"
    url = receiver.url(name)
    created = hooks.create(url, event_types=["memory.created"], description="sdk tour")
    assert created.secret.startswith("whsec_")
    assert (created.url, created.event_types, created.enabled) == (url, ["memory.created"], True)
    assert created.format == "standard"
    receiver.trust(name, created.secret)
    assert [w.id for w in hooks.list()] == [created.id]
    fetched = hooks.get(created.id)
    assert fetched.description == "sdk tour"
    assert "secret" not in fetched.model_dump()  # shown once, at creation

    hooks.update(created.id, event_types=["memory.created", "memory.deleted"], description="changed", enabled=False)
    changed = hooks.get(created.id)
    assert (changed.event_types, changed.description, changed.enabled) == (
        ["memory.created", "memory.deleted"],
        "changed",
        False,
    )
    assert changed.updated_at > created.updated_at
    assert hooks.update(created.id, clear_description=True, enabled=True).description is None
    assert hooks.get(created.id).description is None

    queued = hooks.test(created.id)
    assert (queued.webhook_id, queued.event_type, queued.state) == (created.id, "webhook.test", "pending")
    [first] = _arrivals(receiver, name, 1)
    assert first.event_id == queued.event_id
    assert first.verified == {created.secret: True}
    assert first.body["type"] == "webhook.test"
    done = _settled(lambda: hooks.deliveries(created.id).deliveries[0], "the test delivery")
    assert (done.id, done.state, done.attempts, done.last_status_code) == (queued.id, "succeeded", 1, 200)

    again = hooks.redeliver(created.id, queued.id)
    assert (again.id, again.event_id) == (queued.id, queued.event_id)
    second = _arrivals(receiver, name, 2)[1]
    assert second.event_id == queued.event_id  # the same event: a receiver deduplicates on it
    assert second.verified == {created.secret: True}
    assert _settled(lambda: hooks.deliveries(created.id).deliveries[0], "the redelivery").attempts == 2

    rotated = hooks.rotate_secret(created.id, overlap_seconds=600)
    assert rotated.secret.startswith("whsec_")
    assert rotated.secret != created.secret
    assert rotated.webhook.previous_secret_expires_at is not None
    receiver.trust(name, created.secret, rotated.secret)
    after = hooks.test(created.id)
    third = _arrivals(receiver, name, 3)[2]
    assert third.event_id == after.event_id
    assert third.verified == {created.secret: True, rotated.secret: True}  # both during the overlap
    _settled(lambda: hooks.deliveries(created.id).deliveries[0], "the test after rotation")

    page = hooks.deliveries(created.id, limit=1)
    assert [d.id for d in page.deliveries] == [after.id]
    assert page.next_cursor is not None
    assert [d.id for d in hooks.deliveries(created.id, limit=1, cursor=page.next_cursor).deliveries] == [queued.id]
    assert [d.id for d in hooks.iter_deliveries(created.id, page_size=1)] == [after.id, queued.id]
    assert hooks.deliveries(created.id, state="dead").deliveries == []

    assert hooks.delete(created.id).deleted is True
    with pytest.raises(NotFoundError) as gone:
        hooks.get(created.id)
    assert gone.value.status == 404
    assert hooks.list() == []
    with pytest.raises(NotFoundError):
        hooks.test(created.id)


def test_sync_client_every_method_and_every_operation(
    sdk_service: ServiceProcess, admin_key: str, new_key: Callable[..., str], receiver: Receiver
) -> None:
    ops = operations(sdk_service.url)
    reached: Recorded = set()
    unknown: list[str] = []
    with httpx.Client(event_hooks={"request": [_recorder(ops, reached, unknown)]}) as http:
        client = MemoryClient(new_key(), sdk_service.url, http_client=http)
        admin = MemoryClient(admin_key, f"{sdk_service.url}/v1", http_client=http)
        _sync_tour(client, admin, "tour-user")
        hooks_key = admin.admin.create_key(f"sdk-hooks-{uuid.uuid4().hex[:8]}", role="admin", rate_limit=BIG_LIMIT)
        with MemoryClient(hooks_key.key, sdk_service.url, http_client=http) as tenant_admin:
            _sync_webhooks_tour(tenant_admin.webhooks, receiver)
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


async def _async_webhooks_tour(hooks: AsyncWebhooksAPI, receiver: Receiver) -> None:
    name = f"sdk-async-{uuid.uuid4().hex[:8]}"
    created = await hooks.create(receiver.url(name), description="async tour")
    assert len(created.event_types) == 6  # every event type by default
    receiver.trust(name, created.secret)
    assert [w.id for w in await hooks.list()] == [created.id]
    assert (await hooks.update(created.id, format="mem0")).format == "mem0"
    assert (await hooks.get(created.id)).format == "mem0"

    async def latest() -> Delivery:
        page = await hooks.deliveries(created.id, limit=1)
        return page.deliveries[0]

    async def settled(what: str) -> Delivery:
        deadline = time.monotonic() + DELIVERY_WAIT
        while (delivery := await latest()).state == "pending":
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} still pending after {DELIVERY_WAIT} s: {delivery}")
            await asyncio.sleep(0.05)
        return delivery

    queued = await hooks.test(created.id)
    [first] = await asyncio.to_thread(_arrivals, receiver, name, 1)
    assert (first.event_id, first.verified) == (queued.event_id, {created.secret: True})
    assert (await settled("the test delivery")).last_status_code == 200
    assert (await hooks.redeliver(created.id, queued.id)).id == queued.id
    second = (await asyncio.to_thread(_arrivals, receiver, name, 2))[1]
    assert second.event_id == queued.event_id
    assert (await settled("the redelivery")).attempts == 2
    rotated = await hooks.rotate_secret(created.id, overlap_seconds=0)
    receiver.trust(name, created.secret, rotated.secret)
    await hooks.test(created.id)
    third = (await asyncio.to_thread(_arrivals, receiver, name, 3))[2]
    assert third.verified == {created.secret: False, rotated.secret: True}  # no overlap asked for
    await settled("the test after rotation")
    assert len([d async for d in hooks.iter_deliveries(created.id, page_size=1)]) == 2
    assert (await hooks.delete(created.id)).id == created.id
    with pytest.raises(NotFoundError):
        await hooks.get(created.id)


def test_async_client_every_method_and_every_operation(
    sdk_service: ServiceProcess, admin_key: str, new_key: Callable[..., str], receiver: Receiver
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
            tenant = f"sdk-hooks-{uuid.uuid4().hex[:8]}"
            hooks_key = await admin.admin.create_key(tenant, role="admin", rate_limit=BIG_LIMIT)
            async with AsyncMemoryClient(hooks_key.key, sdk_service.url, http_client=http) as tenant_admin:
                await _async_webhooks_tour(tenant_admin.webhooks, receiver)

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

"""`MemoryClient` (blocking) and `AsyncMemoryClient` (asyncio), with the same methods.

Method names follow mem0's own clients where the operation is the same (`add`, `search`, `get`,
`get_all`, `update`, `delete`, `delete_all`, `history`). Every call is retried on 429, 503 and
connection failures, honouring Retry-After; every add carries an `Idempotency-Key`, the same for
all attempts of one call, so a retried add never stores twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import httpx

from mem0_client import _base as b
from mem0_client.errors import JobTimeoutError, Mem0Error
from mem0_client.models import (
    AddResult,
    ApiKey,
    CreatedKey,
    CreatedWebhook,
    Deleted,
    Delivery,
    DeliveryPage,
    DeliveryState,
    EntityList,
    EntityMemories,
    Erased,
    Health,
    HistoryEntry,
    Job,
    JobAccepted,
    Memory,
    MemoryPage,
    RotatedSecret,
    SearchResult,
    Status,
    UserStats,
    Webhook,
    WebhookEventType,
    WebhookFormat,
)

T = TypeVar("T")
_Self = TypeVar("_Self", bound="_ClientBase")
Role = Literal["user", "admin"]
MetadataFilter = Mapping[str, b.QueryValue | Sequence[b.QueryValue]]


class _ClientBase:
    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout: float | None,
        max_retries: int,
        max_retry_wait: float,
    ) -> None:
        self.api_key, self.base_url = b.resolve_config(api_key, base_url)
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._options = b.Options(timeout, max_retries, max_retry_wait)

    @property
    def timeout(self) -> float | None:
        return self._options.timeout

    @property
    def max_retries(self) -> int:
        return self._options.max_retries

    def _copy(self: _Self, timeout: float | Literal[False] | None, max_retries: int | None) -> _Self:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        changes: dict[str, Any] = {}
        if timeout is not False:
            changes["timeout"] = timeout
        if max_retries is not None:
            changes["max_retries"] = max_retries
        clone._options = replace(self._options, **changes)
        return clone


class MemoryClient(_ClientBase):
    """Blocking client. `api_key` falls back to MEM0_API_KEY, `base_url` to MEM0_BASE_URL
    (default http://localhost:8080; a trailing /v1 is accepted). `timeout` is per attempt, in
    seconds (None: no timeout). Use as a context manager, or call `close()`."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | None = b.DEFAULT_TIMEOUT,
        max_retries: int = b.DEFAULT_MAX_RETRIES,
        max_retry_wait: float = b.DEFAULT_MAX_RETRY_WAIT,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries, max_retry_wait)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client()
        self._headers = b.default_headers(self.api_key)
        self.admin = AdminAPI(self)
        self.webhooks = WebhooksAPI(self)

    def with_options(
        self, *, timeout: float | Literal[False] | None = False, max_retries: int | None = None
    ) -> MemoryClient:
        """A client sharing this one's connections with another timeout or retry budget."""
        clone = self._copy(timeout, max_retries)
        clone.admin = AdminAPI(clone)
        clone.webhooks = WebhooksAPI(clone)
        return clone

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _send(self, call: b.Call[T]) -> T:
        options = self._options
        headers = {**self._headers, **b.request_headers(call)}
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    call.method,
                    self.base_url + call.path,
                    params=call.params,
                    json=call.json,
                    headers=headers,
                    timeout=options.timeout,
                )
                return b.parse_response(call, response)
            except httpx.HTTPError as exc:
                error: Mem0Error = b.transport_error(call, exc)
                cause: BaseException = exc
            except Mem0Error as exc:
                error, cause = exc, exc
            delay = b.decide_retry(error, attempt, options, call)
            if delay is None:
                if error is cause:
                    raise error
                raise error from cause
            time.sleep(delay)
            attempt += 1

    # -- memories ---------------------------------------------------------------------------------

    @overload
    def add(
        self,
        messages: b.Messages,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        infer: bool | None = None,
        async_mode: Literal[False] = False,
        idempotency_key: str | None = None,
    ) -> AddResult: ...

    @overload
    def add(
        self,
        messages: b.Messages,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        infer: bool | None = None,
        async_mode: Literal[True],
        idempotency_key: str | None = None,
    ) -> JobAccepted: ...

    def add(
        self,
        messages: b.Messages,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        infer: bool | None = None,
        async_mode: bool = False,
        idempotency_key: str | None = None,
    ) -> AddResult | JobAccepted:
        """Store memories from messages (a string, one message or a list). With `async_mode=True`
        the service queues the add and this returns the job to poll (`job`, `wait_for_job`)."""
        body = b.add_body(messages, user_id, agent_id, run_id, metadata, infer)
        if async_mode:
            return self._send(b.add_async_call(body, idempotency_key))
        return self._send(b.add_call(body, idempotency_key))

    def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        limit: int | None = None,
        threshold: float | None = None,
        filters: Mapping[str, Any] | None = None,
        metadata: MetadataFilter | None = None,
        graph_boost: bool | None = None,
        include_embedding: bool | None = None,
    ) -> SearchResult:
        """Memories ranked by relevance. `filters`: mem0's operator syntax
        (`{"priority": {"gte": 3}}`); `metadata`: equality, a list meaning any of."""
        return self._send(
            b.search_call(
                query, user_id, agent_id, run_id, limit, threshold, filters, metadata, graph_boost, include_embedding
            )
        )

    def get(self, memory_id: str, *, include_embedding: bool | None = None) -> Memory:
        return self._send(b.get_call(memory_id, include_embedding))

    def get_page(
        self,
        user_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> MemoryPage:
        """One page of a user's memories, newest first; pass `next_cursor` back as `cursor`."""
        return self._send(b.page_call(user_id, limit, cursor, agent_id, run_id))

    def pages(
        self, user_id: str, *, page_size: int = 100, agent_id: str | None = None, run_id: str | None = None
    ) -> Iterator[MemoryPage]:
        """Every page of a user's memories, fetched as the iteration reaches it."""
        cursor: str | None = None
        while True:
            page = self.get_page(user_id, limit=page_size, cursor=cursor, agent_id=agent_id, run_id=run_id)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_all(
        self, user_id: str, *, page_size: int = 100, agent_id: str | None = None, run_id: str | None = None
    ) -> Iterator[Memory]:
        """Every memory of a user, newest first, across all pages (lazily)."""
        for page in self.pages(user_id, page_size=page_size, agent_id=agent_id, run_id=run_id):
            yield from page.memories

    def update(
        self, memory_id: str, content: str | None = None, *, metadata: Mapping[str, Any] | None = None
    ) -> Memory:
        """New content (re-embedded) and/or metadata (keys given replace theirs, others stay)."""
        return self._send(b.update_call(memory_id, content, metadata))

    def delete(self, memory_id: str) -> Deleted:
        return self._send(b.delete_call(memory_id))

    def delete_all(self, user_id: str) -> Erased:
        """Erase every memory of a user, their history and message log."""
        return self._send(b.delete_all_call(user_id))

    def history(self, memory_id: str) -> list[HistoryEntry]:
        return self._send(b.history_call(memory_id))

    # -- users ------------------------------------------------------------------------------------

    def user_stats(self, user_id: str) -> UserStats:
        return self._send(b.user_stats_call(user_id))

    def entities(self, user_id: str, *, limit: int | None = None) -> EntityList:
        return self._send(b.entities_call(user_id, limit))

    def entity_memories(self, user_id: str, name: str, *, limit: int | None = None) -> EntityMemories:
        return self._send(b.entity_memories_call(user_id, name, limit))

    # -- jobs -------------------------------------------------------------------------------------

    def job(self, job_id: str) -> Job:
        return self._send(b.job_call(job_id))

    def wait_for_job(self, job_id: str, *, timeout: float = 60.0, poll_interval: float = 0.5) -> Job:
        """Poll until the job has succeeded or failed (check `state`); JobTimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job.done:
                return job
            if time.monotonic() + poll_interval > deadline:
                raise JobTimeoutError(f"job {job_id} still {job.state} after {timeout} s")
            time.sleep(poll_interval)

    # -- service ----------------------------------------------------------------------------------

    def health(self) -> Health:
        return self._send(b.health_call())

    def status(self) -> Status:
        return self._send(b.status_call())


class AdminAPI:
    """`client.admin`: key management and metrics (an admin key's operations)."""

    def __init__(self, client: MemoryClient) -> None:
        self._client = client

    def create_key(
        self,
        tenant: str,
        *,
        role: Literal["user", "admin"] = "user",
        name: str | None = None,
        rate_limit: int | None = None,
    ) -> CreatedKey:
        """A new key; `key` in the result is its secret, shown only this once."""
        return self._client._send(b.create_key_call(tenant, role, name, rate_limit))

    def list_keys(self, *, tenant: str | None = None, include_revoked: bool | None = None) -> list[ApiKey]:
        return self._client._send(b.list_keys_call(tenant, include_revoked))

    def revoke_key(self, key_id: str) -> ApiKey:
        return self._client._send(b.revoke_key_call(key_id))

    def metrics(self) -> str:
        """The Prometheus exposition text."""
        return self._client._send(b.metrics_call())


class WebhooksAPI:
    """`client.webhooks`: the webhooks of the key's tenant (an admin key's operations).

    Deliveries are signed with the Standard Webhooks scheme; verify them on the receiving side
    with the `standardwebhooks` package and the secret `create` (or `rotate_secret`) returned.
    """

    def __init__(self, client: MemoryClient) -> None:
        self._client = client

    def create(
        self,
        url: str,
        *,
        event_types: Sequence[WebhookEventType] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        format: WebhookFormat | None = None,
    ) -> CreatedWebhook:
        """A new webhook (every event type unless `event_types` says otherwise). `secret` in the
        result signs its deliveries and is shown only this once: store it now. Not resent after
        a connection failure (`APIConnectionError`; the service may have made it): check `list()`."""
        return self._client._send(b.create_webhook_call(url, event_types, description, enabled, format))

    def list(self) -> list[Webhook]:
        return self._client._send(b.list_webhooks_call())

    def get(self, webhook_id: str) -> Webhook:
        return self._client._send(b.get_webhook_call(webhook_id))

    def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        event_types: Sequence[WebhookEventType] | None = None,
        description: str | None = None,
        clear_description: bool = False,
        enabled: bool | None = None,
        format: WebhookFormat | None = None,
    ) -> Webhook:
        """Change what is given, keep the rest; `clear_description=True` removes the description."""
        call = b.update_webhook_call(webhook_id, url, event_types, description, clear_description, enabled, format)
        return self._client._send(call)

    def delete(self, webhook_id: str) -> Deleted:
        """Delete it; deliveries still waiting for it are dropped."""
        return self._client._send(b.delete_webhook_call(webhook_id))

    def rotate_secret(self, webhook_id: str, *, overlap_seconds: float | None = None) -> RotatedSecret:
        """A new secret (shown only this once). For `overlap_seconds` (default: the service's
        WEBHOOK_SECRET_OVERLAP_SECONDS) deliveries carry signatures by both, so receivers can
        switch without losing any. Not resent after a connection failure: a second rotation
        would replace the secret this call never returned."""
        return self._client._send(b.rotate_secret_call(webhook_id, overlap_seconds))

    def test(self, webhook_id: str) -> Delivery:
        """Queue a `webhook.test` event to this webhook; the returned delivery shows the outcome
        once a worker has sent it (`deliveries`)."""
        return self._client._send(b.send_test_call(webhook_id))

    def deliveries(
        self,
        webhook_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        state: DeliveryState | None = None,
    ) -> DeliveryPage:
        """One page of the webhook's deliveries, newest first; pass `next_cursor` back as `cursor`."""
        return self._client._send(b.deliveries_call(webhook_id, limit, cursor, state))

    def iter_deliveries(
        self, webhook_id: str, *, page_size: int = 100, state: DeliveryState | None = None
    ) -> Iterator[Delivery]:
        """Every delivery of the webhook, newest first, across all pages (lazily)."""
        cursor: str | None = None
        while True:
            page = self.deliveries(webhook_id, limit=page_size, cursor=cursor, state=state)
            yield from page.deliveries
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery:
        """Send a delivery again now, whatever its state, with the same event id."""
        return self._client._send(b.redeliver_call(webhook_id, delivery_id))


class AsyncMemoryClient(_ClientBase):
    """The asyncio twin of `MemoryClient`: the same methods, awaited; `async with` closes it.
    `get_all` and `pages` are async iterators. Cancelling the task cancels the request."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | None = b.DEFAULT_TIMEOUT,
        max_retries: int = b.DEFAULT_MAX_RETRIES,
        max_retry_wait: float = b.DEFAULT_MAX_RETRY_WAIT,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries, max_retry_wait)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient()
        self._headers = b.default_headers(self.api_key)
        self.admin = AsyncAdminAPI(self)
        self.webhooks = AsyncWebhooksAPI(self)

    def with_options(
        self, *, timeout: float | Literal[False] | None = False, max_retries: int | None = None
    ) -> AsyncMemoryClient:
        clone = self._copy(timeout, max_retries)
        clone.admin = AsyncAdminAPI(clone)
        clone.webhooks = AsyncWebhooksAPI(clone)
        return clone

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncMemoryClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _send(self, call: b.Call[T]) -> T:
        options = self._options
        headers = {**self._headers, **b.request_headers(call)}
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.method,
                    self.base_url + call.path,
                    params=call.params,
                    json=call.json,
                    headers=headers,
                    timeout=options.timeout,
                )
                return b.parse_response(call, response)
            except httpx.HTTPError as exc:
                error: Mem0Error = b.transport_error(call, exc)
                cause: BaseException = exc
            except Mem0Error as exc:
                error, cause = exc, exc
            delay = b.decide_retry(error, attempt, options, call)
            if delay is None:
                if error is cause:
                    raise error
                raise error from cause
            await asyncio.sleep(delay)
            attempt += 1

    @overload
    async def add(
        self,
        messages: b.Messages,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        infer: bool | None = None,
        async_mode: Literal[False] = False,
        idempotency_key: str | None = None,
    ) -> AddResult: ...

    @overload
    async def add(
        self,
        messages: b.Messages,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        infer: bool | None = None,
        async_mode: Literal[True],
        idempotency_key: str | None = None,
    ) -> JobAccepted: ...

    async def add(
        self,
        messages: b.Messages,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        infer: bool | None = None,
        async_mode: bool = False,
        idempotency_key: str | None = None,
    ) -> AddResult | JobAccepted:
        body = b.add_body(messages, user_id, agent_id, run_id, metadata, infer)
        if async_mode:
            return await self._send(b.add_async_call(body, idempotency_key))
        return await self._send(b.add_call(body, idempotency_key))

    async def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        limit: int | None = None,
        threshold: float | None = None,
        filters: Mapping[str, Any] | None = None,
        metadata: MetadataFilter | None = None,
        graph_boost: bool | None = None,
        include_embedding: bool | None = None,
    ) -> SearchResult:
        return await self._send(
            b.search_call(
                query, user_id, agent_id, run_id, limit, threshold, filters, metadata, graph_boost, include_embedding
            )
        )

    async def get(self, memory_id: str, *, include_embedding: bool | None = None) -> Memory:
        return await self._send(b.get_call(memory_id, include_embedding))

    async def get_page(
        self,
        user_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> MemoryPage:
        return await self._send(b.page_call(user_id, limit, cursor, agent_id, run_id))

    async def pages(
        self, user_id: str, *, page_size: int = 100, agent_id: str | None = None, run_id: str | None = None
    ) -> AsyncIterator[MemoryPage]:
        cursor: str | None = None
        while True:
            page = await self.get_page(user_id, limit=page_size, cursor=cursor, agent_id=agent_id, run_id=run_id)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get_all(
        self, user_id: str, *, page_size: int = 100, agent_id: str | None = None, run_id: str | None = None
    ) -> AsyncIterator[Memory]:
        async for page in self.pages(user_id, page_size=page_size, agent_id=agent_id, run_id=run_id):
            for memory in page.memories:
                yield memory

    async def update(
        self, memory_id: str, content: str | None = None, *, metadata: Mapping[str, Any] | None = None
    ) -> Memory:
        return await self._send(b.update_call(memory_id, content, metadata))

    async def delete(self, memory_id: str) -> Deleted:
        return await self._send(b.delete_call(memory_id))

    async def delete_all(self, user_id: str) -> Erased:
        return await self._send(b.delete_all_call(user_id))

    async def history(self, memory_id: str) -> list[HistoryEntry]:
        return await self._send(b.history_call(memory_id))

    async def user_stats(self, user_id: str) -> UserStats:
        return await self._send(b.user_stats_call(user_id))

    async def entities(self, user_id: str, *, limit: int | None = None) -> EntityList:
        return await self._send(b.entities_call(user_id, limit))

    async def entity_memories(self, user_id: str, name: str, *, limit: int | None = None) -> EntityMemories:
        return await self._send(b.entity_memories_call(user_id, name, limit))

    async def job(self, job_id: str) -> Job:
        return await self._send(b.job_call(job_id))

    async def wait_for_job(self, job_id: str, *, timeout: float = 60.0, poll_interval: float = 0.5) -> Job:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if job.done:
                return job
            if time.monotonic() + poll_interval > deadline:
                raise JobTimeoutError(f"job {job_id} still {job.state} after {timeout} s")
            await asyncio.sleep(poll_interval)

    async def health(self) -> Health:
        return await self._send(b.health_call())

    async def status(self) -> Status:
        return await self._send(b.status_call())


class AsyncAdminAPI:
    def __init__(self, client: AsyncMemoryClient) -> None:
        self._client = client

    async def create_key(
        self,
        tenant: str,
        *,
        role: Literal["user", "admin"] = "user",
        name: str | None = None,
        rate_limit: int | None = None,
    ) -> CreatedKey:
        return await self._client._send(b.create_key_call(tenant, role, name, rate_limit))

    async def list_keys(self, *, tenant: str | None = None, include_revoked: bool | None = None) -> list[ApiKey]:
        return await self._client._send(b.list_keys_call(tenant, include_revoked))

    async def revoke_key(self, key_id: str) -> ApiKey:
        return await self._client._send(b.revoke_key_call(key_id))

    async def metrics(self) -> str:
        return await self._client._send(b.metrics_call())


class AsyncWebhooksAPI:
    """The asyncio twin of `WebhooksAPI`."""

    def __init__(self, client: AsyncMemoryClient) -> None:
        self._client = client

    async def create(
        self,
        url: str,
        *,
        event_types: Sequence[WebhookEventType] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        format: WebhookFormat | None = None,
    ) -> CreatedWebhook:
        return await self._client._send(b.create_webhook_call(url, event_types, description, enabled, format))

    async def list(self) -> list[Webhook]:
        return await self._client._send(b.list_webhooks_call())

    async def get(self, webhook_id: str) -> Webhook:
        return await self._client._send(b.get_webhook_call(webhook_id))

    async def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        event_types: Sequence[WebhookEventType] | None = None,
        description: str | None = None,
        clear_description: bool = False,
        enabled: bool | None = None,
        format: WebhookFormat | None = None,
    ) -> Webhook:
        call = b.update_webhook_call(webhook_id, url, event_types, description, clear_description, enabled, format)
        return await self._client._send(call)

    async def delete(self, webhook_id: str) -> Deleted:
        return await self._client._send(b.delete_webhook_call(webhook_id))

    async def rotate_secret(self, webhook_id: str, *, overlap_seconds: float | None = None) -> RotatedSecret:
        return await self._client._send(b.rotate_secret_call(webhook_id, overlap_seconds))

    async def test(self, webhook_id: str) -> Delivery:
        return await self._client._send(b.send_test_call(webhook_id))

    async def deliveries(
        self,
        webhook_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        state: DeliveryState | None = None,
    ) -> DeliveryPage:
        return await self._client._send(b.deliveries_call(webhook_id, limit, cursor, state))

    async def iter_deliveries(
        self, webhook_id: str, *, page_size: int = 100, state: DeliveryState | None = None
    ) -> AsyncIterator[Delivery]:
        cursor: str | None = None
        while True:
            page = await self.deliveries(webhook_id, limit=page_size, cursor=cursor, state=state)
            for delivery in page.deliveries:
                yield delivery
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery:
        return await self._client._send(b.redeliver_call(webhook_id, delivery_id))

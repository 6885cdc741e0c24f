"""`MemoryClient` (blocking) and `AsyncMemoryClient` (asyncio), with the same methods.

Method names follow mem0's own clients where the operation is the same (`add`, `search`, `get`,
`get_all`, `update`, `delete`, `delete_all`, `history`). Every call is retried on 429, 503 and
connection failures, honouring Retry-After; every add carries an `Idempotency-Key`, the same for
all attempts of one call, so a retried add never stores twice.

Each operation is written once: `_base` builds its request (a `Call`) from the public
signature, and one `Operation` per method, declared once in a mixin both clients share, binds it
to the client's send: blocking in `_Sync`, awaited in `_Async`. What cannot be shared (waiting,
iterating pages) is the only code written twice.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any, Generic, Literal, ParamSpec, Protocol, TypeVar, cast, overload

import httpx

from mem0_client import _base as b
from mem0_client.errors import JobTimeoutError, Mem0Error
from mem0_client.models import (
    AddResult,
    Delivery,
    DeliveryState,
    Job,
    JobAccepted,
    Memory,
    MemoryPage,
)

T = TypeVar("T")
P = ParamSpec("P")
H = TypeVar("H", httpx.Client, httpx.AsyncClient)
_Self = TypeVar("_Self", bound="_ClientBase[Any]")
_Stored = TypeVar("_Stored", covariant=True)
_Queued = TypeVar("_Queued", covariant=True)
Role = b.Role
MetadataFilter = b.MetadataFilter
Build = Callable[..., b.Call[Any]]


# -- binding an operation to a transport ---------------------------------------------------------


class _Sync:
    """Sends calls blocking: an operation on a `_Sync` object is a plain method."""

    def _send(self, call: b.Call[T]) -> T:
        raise NotImplementedError

    def _bind(self, build: Build) -> Callable[..., Any]:
        def method(*args: Any, **kwargs: Any) -> Any:
            return self._send(build(*args, **kwargs))

        return method


class _Async:
    """Sends calls awaited: an operation on an `_Async` object is a coroutine method."""

    async def _send(self, call: b.Call[T]) -> T:
        raise NotImplementedError

    def _bind(self, build: Build) -> Callable[..., Any]:
        async def method(*args: Any, **kwargs: Any) -> Any:
            return await self._send(build(*args, **kwargs))

        return method


class _Operation:
    """A method described once by its `_base` builder: on a `_Sync` object it sends blocking, on
    an `_Async` one awaited. Name, docstring and signature are the builder's, for help() and IDEs."""

    def __init__(self, build: Build) -> None:
        self._build = build
        self.__doc__ = build.__doc__
        signature = inspect.signature(build)
        # The builder returns `Call[X]` (the annotation is a string: postponed evaluation); the method, X.
        returns = str(signature.return_annotation).split(" | ")
        unwrapped = " | ".join(r.removeprefix("Call[").removesuffix("]") for r in returns)
        self._signature = signature.replace(return_annotation=unwrapped)
        self._name = build.__name__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    def _dress(self, method: Callable[..., Any], owner: type[Any], signature: inspect.Signature) -> Any:
        method.__name__, method.__qualname__ = self._name, f"{owner.__name__}.{self._name}"
        method.__doc__, method.__module__ = self.__doc__, owner.__module__
        setattr(method, "__signature__", signature)  # noqa: B010 (a function type has no such field)
        return method

    def _get(self, obj: object, owner: type[Any]) -> Any:
        if obj is not None:
            return self._dress(cast(_Sync, obj)._bind(self._build), owner, self._signature)
        # Looked up on the class (help(), `MemoryClient.search(client, ...)`): an unbound function.
        name = self._name
        if issubclass(owner, _Async):

            async def unbound_async(client: Any, *args: Any, **kwargs: Any) -> Any:
                return await getattr(client, name)(*args, **kwargs)

            unbound: Callable[..., Any] = unbound_async
        else:

            def unbound(client: Any, *args: Any, **kwargs: Any) -> Any:
                return getattr(client, name)(*args, **kwargs)

        first = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        signature = self._signature.replace(parameters=[first, *self._signature.parameters.values()])
        return self._dress(unbound, owner, signature)


class Operation(_Operation, Generic[P, T]):
    def __init__(self, build: Callable[P, b.Call[T]]) -> None:
        super().__init__(build)

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Callable[..., Any]: ...
    @overload
    def __get__(self, obj: _Sync, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: _Async, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, obj: object, owner: type[Any]) -> Any:
        return self._get(obj, owner)


class AddMethod(Protocol[_Stored, _Queued]):
    """`add`'s signature: its result type follows `async_mode`, which a ParamSpec cannot carry."""

    @overload
    def __call__(
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
    ) -> _Stored: ...

    @overload
    def __call__(
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
    ) -> _Queued: ...


class AddOperation(_Operation):
    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Callable[..., Any]: ...
    @overload
    def __get__(self, obj: _Sync, owner: type[Any]) -> AddMethod[AddResult, JobAccepted]: ...
    @overload
    def __get__(
        self, obj: _Async, owner: type[Any]
    ) -> AddMethod[Coroutine[Any, Any, AddResult], Coroutine[Any, Any, JobAccepted]]: ...
    def __get__(self, obj: object, owner: type[Any]) -> Any:
        return self._get(obj, owner)


# -- the operations, each declared once ----------------------------------------------------------


class _MemoryOperations:
    add = AddOperation(b.add_call)
    search = Operation(b.search_call)
    get = Operation(b.get_call)
    get_page = Operation(b.page_call)
    update = Operation(b.update_call)
    delete = Operation(b.delete_call)
    delete_all = Operation(b.delete_all_call)
    history = Operation(b.history_call)
    user_stats = Operation(b.user_stats_call)
    entities = Operation(b.entities_call)
    entity_memories = Operation(b.entity_memories_call)
    job = Operation(b.job_call)
    health = Operation(b.health_call)
    status = Operation(b.status_call)


class _AdminOperations:
    create_key = Operation(b.create_key_call)
    list_keys = Operation(b.list_keys_call)
    revoke_key = Operation(b.revoke_key_call)
    metrics = Operation(b.metrics_call)


class _WebhookOperations:
    create = Operation(b.create_webhook_call)
    list = Operation(b.list_webhooks_call)
    get = Operation(b.get_webhook_call)
    update = Operation(b.update_webhook_call)
    delete = Operation(b.delete_webhook_call)
    rotate_secret = Operation(b.rotate_secret_call)
    test = Operation(b.send_test_call)
    deliveries = Operation(b.deliveries_call)
    redeliver = Operation(b.redeliver_call)


# -- the clients ---------------------------------------------------------------------------------


class _ClientBase(Generic[H]):
    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | None = b.DEFAULT_TIMEOUT,
        max_retries: int = b.DEFAULT_MAX_RETRIES,
        max_retry_wait: float = b.DEFAULT_MAX_RETRY_WAIT,
        http_client: H | None = None,
    ) -> None:
        self.api_key, self.base_url = b.resolve_config(api_key, base_url)
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._options = b.Options(timeout, max_retries, max_retry_wait)
        self._owns_http = http_client is None
        self._http: H = http_client or self._new_http()
        self._headers = b.default_headers(self.api_key)
        self._attach()

    def _new_http(self) -> H:
        raise NotImplementedError

    def _attach(self) -> None:
        """Make `admin` and `webhooks` for this client (again in a copy)."""
        raise NotImplementedError

    def _attempts(self, call: b.Call[Any]) -> b.Attempts:
        return b.Attempts(self._http, self.base_url, self._headers, call, self._options)

    @property
    def timeout(self) -> float | None:
        return self._options.timeout

    @property
    def max_retries(self) -> int:
        return self._options.max_retries

    def with_options(
        self: _Self, *, timeout: float | Literal[False] | None = False, max_retries: int | None = None
    ) -> _Self:
        """A client sharing this one's connections with another timeout or retry budget."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        changes: dict[str, Any] = {}
        if timeout is not False:
            changes["timeout"] = timeout
        if max_retries is not None:
            changes["max_retries"] = max_retries
        clone._options = replace(self._options, **changes)
        clone._attach()
        return clone


class MemoryClient(_ClientBase[httpx.Client], _MemoryOperations, _Sync):
    """Blocking client. `api_key` falls back to MEM0_API_KEY, `base_url` to MEM0_BASE_URL
    (default http://localhost:8080; a trailing /v1 is accepted). `timeout` is per attempt, in
    seconds (None: no timeout). Use as a context manager, or call `close()`."""

    admin: AdminAPI
    webhooks: WebhooksAPI

    def _new_http(self) -> httpx.Client:
        return httpx.Client()

    def _attach(self) -> None:
        self.admin = AdminAPI(self)
        self.webhooks = WebhooksAPI(self)

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
        attempts = self._attempts(call)
        while True:
            try:
                return b.parse_response(call, self._http.send(attempts.request()))
            except (httpx.HTTPError, Mem0Error) as exc:
                time.sleep(attempts.wait_after(exc))

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


class AsyncMemoryClient(_ClientBase[httpx.AsyncClient], _MemoryOperations, _Async):
    """The asyncio twin of `MemoryClient`: the same methods, awaited; `async with` closes it.
    `get_all` and `pages` are async iterators. Cancelling the task cancels the request."""

    admin: AsyncAdminAPI
    webhooks: AsyncWebhooksAPI

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient()

    def _attach(self) -> None:
        self.admin = AsyncAdminAPI(self)
        self.webhooks = AsyncWebhooksAPI(self)

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
        attempts = self._attempts(call)
        while True:
            try:
                return b.parse_response(call, await self._http.send(attempts.request()))
            except (httpx.HTTPError, Mem0Error) as exc:
                await asyncio.sleep(attempts.wait_after(exc))

    async def pages(
        self, user_id: str, *, page_size: int = 100, agent_id: str | None = None, run_id: str | None = None
    ) -> AsyncIterator[MemoryPage]:
        """Every page of a user's memories, fetched as the iteration reaches it."""
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
        """Every memory of a user, newest first, across all pages (lazily)."""
        async for page in self.pages(user_id, page_size=page_size, agent_id=agent_id, run_id=run_id):
            for memory in page.memories:
                yield memory

    async def wait_for_job(self, job_id: str, *, timeout: float = 60.0, poll_interval: float = 0.5) -> Job:
        """Poll until the job has succeeded or failed (check `state`); JobTimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if job.done:
                return job
            if time.monotonic() + poll_interval > deadline:
                raise JobTimeoutError(f"job {job_id} still {job.state} after {timeout} s")
            await asyncio.sleep(poll_interval)


# -- the namespaces: `client.admin`, `client.webhooks` ---------------------------------------------


class _SyncNamespace(_Sync):
    def __init__(self, client: MemoryClient) -> None:
        self._client = client

    def _send(self, call: b.Call[T]) -> T:
        return self._client._send(call)


class _AsyncNamespace(_Async):
    def __init__(self, client: AsyncMemoryClient) -> None:
        self._client = client

    async def _send(self, call: b.Call[T]) -> T:
        return await self._client._send(call)


class AdminAPI(_AdminOperations, _SyncNamespace):
    """`client.admin`: key management and metrics (an admin key's operations)."""


class AsyncAdminAPI(_AdminOperations, _AsyncNamespace):
    """The asyncio twin of `AdminAPI`."""


class WebhooksAPI(_WebhookOperations, _SyncNamespace):
    """`client.webhooks`: the webhooks of the key's tenant (an admin key's operations).

    Deliveries are signed with the Standard Webhooks scheme; verify them on the receiving side
    with the `standardwebhooks` package and the secret `create` (or `rotate_secret`) returned.
    """

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


class AsyncWebhooksAPI(_WebhookOperations, _AsyncNamespace):
    """The asyncio twin of `WebhooksAPI`."""

    async def iter_deliveries(
        self, webhook_id: str, *, page_size: int = 100, state: DeliveryState | None = None
    ) -> AsyncIterator[Delivery]:
        """Every delivery of the webhook, newest first, across all pages (lazily)."""
        cursor: str | None = None
        while True:
            page = await self.deliveries(webhook_id, limit=page_size, cursor=cursor, state=state)
            for delivery in page.deliveries:
                yield delivery
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

"""What the sync and async clients share: configuration, the description of each call, how a
response becomes a result or an exception, and when and how long to wait before a retry.

Each operation is built once here as a `Call` (method, path, query, body, how to parse `data`);
the two clients only differ in how they send it and sleep.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from mem0_client._version import __version__
from mem0_client.errors import (
    APIConnectionError,
    APITimeoutError,
    IdempotencyInProgressError,
    Mem0Error,
    RateLimitError,
    ServiceUnavailableError,
    error_class,
)
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
M = TypeVar("M", bound=BaseModel)

API_KEY_ENV = "MEM0_API_KEY"
BASE_URL_ENV = "MEM0_BASE_URL"
DEFAULT_BASE_URL = "http://localhost:8080"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_RETRY_WAIT = 60.0
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0

Message = Mapping[str, Any]
Messages = str | Message | Sequence[Message]
QueryValue = str | int | float | bool
Params = list[tuple[str, str | int | float | bool | None]]
MetadataFilter = Mapping[str, QueryValue | Sequence[QueryValue]]
Role = Literal["user", "admin"]


@dataclass(frozen=True)
class Options:
    """Per-client settings; `with_options` makes a copy with some of them changed."""

    timeout: float | None
    max_retries: int
    max_retry_wait: float


def resolve_config(api_key: str | None, base_url: str | None) -> tuple[str, str]:
    key = api_key or os.environ.get(API_KEY_ENV)
    if not key:
        raise ValueError(f"No API key: pass api_key= or set {API_KEY_ENV}")
    url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    # The contract writes the base URL with /v1; paths here carry it, so accept both spellings.
    url = url.removesuffix("/v1")
    return key, url


def default_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": f"mem0-client-python/{__version__}"}


def segment(value: str) -> str:
    """A path segment, percent-encoded (ids and entity names may hold '/', '#', spaces)."""
    return quote(value, safe="")


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    params: Params = field(default_factory=list)
    json: Any = None
    idempotency_key: str | None = None
    text: bool = False  # the body is not the envelope (Prometheus text)
    # False for writes that must not happen twice and carry no Idempotency-Key: after a
    # connection failure the service may have acted, so the error goes back to the caller.
    resend_after_drop: bool = True


def _model(cls: type[M]) -> Callable[[Any], M]:
    return cls.model_validate


def _list_of(cls: type[M], key: str) -> Callable[[Any], list[M]]:
    adapter = TypeAdapter(list[cls])  # type: ignore[valid-type]

    def parse(data: Any) -> list[M]:
        result: list[M] = adapter.validate_python(data[key])
        return result

    return parse


def _params(**values: QueryValue | None) -> Params:
    return [(k, v) for k, v in values.items() if v is not None]


def normalise_messages(messages: Messages) -> list[dict[str, Any]]:
    """mem0's forms: a string (one user message), one message, or a list of messages."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if isinstance(messages, Mapping):
        return [dict(messages)]
    return [dict(m) for m in messages]


def add_call(
    messages: Messages,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    infer: bool | None = None,
    async_mode: bool = False,
    idempotency_key: str | None = None,
) -> Call[AddResult] | Call[JobAccepted]:
    """Store memories from messages (a string, one message or a list). With `async_mode=True`
    the service queues the add and this returns the job to poll (`job`, `wait_for_job`)."""
    body: dict[str, Any] = {"messages": normalise_messages(messages)}
    for name, value in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id), ("infer", infer)):
        if value is not None:
            body[name] = value
    if metadata is not None:
        body["metadata"] = dict(metadata)
    # One key for every attempt of this call, so a retried add never stores twice.
    key = idempotency_key or new_key()
    if async_mode:
        return Call("POST", "/v1/memories", _model(JobAccepted), [("async", "true")], body, key)
    return Call("POST", "/v1/memories", _model(AddResult), json=body, idempotency_key=key)


def new_key() -> str:
    return str(uuid.uuid4())


def search_call(
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
) -> Call[SearchResult]:
    """Memories ranked by relevance. `filters`: mem0's operator syntax
    (`{"priority": {"gte": 3}}`); `metadata`: equality, a list meaning any of."""
    params = _params(
        query=query,
        user_id=user_id,
        agent_id=agent_id,
        run_id=run_id,
        limit=limit,
        threshold=threshold,
        filters=json.dumps(dict(filters)) if filters is not None else None,
        graph_boost=_flag(graph_boost),
        include_embedding=_flag(include_embedding),
    )
    for key, value in (metadata or {}).items():
        values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        params.extend((f"metadata.{key}", _flag(v) if isinstance(v, bool) else v) for v in values)
    return Call("GET", "/v1/memories/search", _model(SearchResult), params)


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def get_call(memory_id: str, *, include_embedding: bool | None = None) -> Call[Memory]:
    params = _params(include_embedding=_flag(include_embedding))
    return Call("GET", f"/v1/memories/{segment(memory_id)}", _model(Memory), params)


def page_call(
    user_id: str,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
) -> Call[MemoryPage]:
    """One page of a user's memories, newest first; pass `next_cursor` back as `cursor`."""
    params = _params(limit=limit, cursor=cursor, agent_id=agent_id, run_id=run_id)
    return Call("GET", f"/v1/memories/user/{segment(user_id)}", _model(MemoryPage), params)


def update_call(
    memory_id: str, content: str | None = None, *, metadata: Mapping[str, Any] | None = None
) -> Call[Memory]:
    """New content (re-embedded) and/or metadata (keys given replace theirs, others stay)."""
    if content is None and metadata is None:
        raise ValueError("update needs content, metadata or both")
    body: dict[str, Any] = {}
    if content is not None:
        body["content"] = content
    if metadata is not None:
        body["metadata"] = dict(metadata)
    return Call("PUT", f"/v1/memories/{segment(memory_id)}", _model(Memory), json=body)


def delete_call(memory_id: str) -> Call[Deleted]:
    return Call("DELETE", f"/v1/memories/{segment(memory_id)}", _model(Deleted))


def delete_all_call(user_id: str) -> Call[Erased]:
    """Erase every memory of a user, their history and message log."""
    return Call("DELETE", f"/v1/memories/user/{segment(user_id)}", _model(Erased))


def history_call(memory_id: str) -> Call[list[HistoryEntry]]:
    return Call("GET", f"/v1/memories/{segment(memory_id)}/history", _list_of(HistoryEntry, "history"))


def user_stats_call(user_id: str) -> Call[UserStats]:
    return Call("GET", f"/v1/users/{segment(user_id)}/stats", _model(UserStats))


def entities_call(user_id: str, *, limit: int | None = None) -> Call[EntityList]:
    return Call("GET", f"/v1/users/{segment(user_id)}/entities", _model(EntityList), _params(limit=limit))


def entity_memories_call(user_id: str, name: str, *, limit: int | None = None) -> Call[EntityMemories]:
    path = f"/v1/users/{segment(user_id)}/entities/{segment(name)}/memories"
    return Call("GET", path, _model(EntityMemories), _params(limit=limit))


def job_call(job_id: str) -> Call[Job]:
    return Call("GET", f"/v1/jobs/{segment(job_id)}", _model(Job))


def health_call() -> Call[Health]:
    return Call("GET", "/v1/health", _model(Health))


def status_call() -> Call[Status]:
    return Call("GET", "/v1/status", _model(Status))


# -- admin -----------------------------------------------------------------------------------------


def metrics_call() -> Call[str]:
    """The Prometheus exposition text."""
    return Call("GET", "/v1/metrics", str, text=True)


def create_key_call(
    tenant: str, *, role: Role = "user", name: str | None = None, rate_limit: int | None = None
) -> Call[CreatedKey]:
    """A new key; `key` in the result is its secret, shown only this once."""
    body: dict[str, Any] = {"tenant": tenant, "role": role}
    if name is not None:
        body["name"] = name
    if rate_limit is not None:
        body["rate_limit"] = rate_limit
    return Call("POST", "/v1/admin/keys", _model(CreatedKey), json=body)


def list_keys_call(*, tenant: str | None = None, include_revoked: bool | None = None) -> Call[list[ApiKey]]:
    params = _params(tenant=tenant, include_revoked=_flag(include_revoked))
    return Call("GET", "/v1/admin/keys", _list_of(ApiKey, "keys"), params)


def revoke_key_call(key_id: str) -> Call[ApiKey]:
    return Call("DELETE", f"/v1/admin/keys/{segment(key_id)}", _model(ApiKey))


# -- webhooks ----------------------------------------------------------------------------------------


def _webhook_path(webhook_id: str, *rest: str) -> str:
    return "/".join([f"/v1/webhooks/{segment(webhook_id)}", *rest])


def create_webhook_call(
    url: str,
    *,
    event_types: Sequence[WebhookEventType] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    format: WebhookFormat | None = None,
) -> Call[CreatedWebhook]:
    """A new webhook (every event type unless `event_types` says otherwise). `secret` in the
    result signs its deliveries and is shown only this once: store it now. Not resent after
    a connection failure (`APIConnectionError`; the service may have made it): check `list()`."""
    body: dict[str, Any] = {"url": url}
    if event_types is not None:
        body["event_types"] = list(event_types)
    for name, value in (("description", description), ("enabled", enabled), ("format", format)):
        if value is not None:
            body[name] = value
    # Not resent after a dropped connection: a second create would make a second webhook.
    return Call("POST", "/v1/webhooks", _model(CreatedWebhook), json=body, resend_after_drop=False)


def list_webhooks_call() -> Call[list[Webhook]]:
    return Call("GET", "/v1/webhooks", _list_of(Webhook, "webhooks"))


def get_webhook_call(webhook_id: str) -> Call[Webhook]:
    return Call("GET", _webhook_path(webhook_id), _model(Webhook))


def update_webhook_call(
    webhook_id: str,
    *,
    url: str | None = None,
    event_types: Sequence[WebhookEventType] | None = None,
    description: str | None = None,
    clear_description: bool = False,
    enabled: bool | None = None,
    format: WebhookFormat | None = None,
) -> Call[Webhook]:
    """Change what is given, keep the rest; `clear_description=True` removes the description."""
    if clear_description and description is not None:
        raise ValueError("pass description or clear_description, not both")
    body: dict[str, Any] = {}
    if event_types is not None:
        body["event_types"] = list(event_types)
    for name, value in (("url", url), ("description", description), ("enabled", enabled), ("format", format)):
        if value is not None:
            body[name] = value
    if clear_description:
        body["description"] = None  # an explicit null removes it; an absent field keeps it
    if not body:
        raise ValueError("update_webhook needs at least one change")
    return Call("PATCH", _webhook_path(webhook_id), _model(Webhook), json=body)


def delete_webhook_call(webhook_id: str) -> Call[Deleted]:
    """Delete it; deliveries still waiting for it are dropped."""
    return Call("DELETE", _webhook_path(webhook_id), _model(Deleted))


def rotate_secret_call(webhook_id: str, *, overlap_seconds: float | None = None) -> Call[RotatedSecret]:
    """A new secret (shown only this once). For `overlap_seconds` (default: the service's
    WEBHOOK_SECRET_OVERLAP_SECONDS) deliveries carry signatures by both, so receivers can
    switch without losing any. Not resent after a connection failure: a second rotation
    would replace the secret this call never returned."""
    body = None if overlap_seconds is None else {"overlap_seconds": overlap_seconds}
    path = _webhook_path(webhook_id, "rotate-secret")
    return Call("POST", path, _model(RotatedSecret), json=body, resend_after_drop=False)


def send_test_call(webhook_id: str) -> Call[Delivery]:
    """Queue a `webhook.test` event to this webhook; the returned delivery shows the outcome
    once a worker has sent it (`deliveries`)."""
    return Call("POST", _webhook_path(webhook_id, "test"), _model(Delivery))


def deliveries_call(
    webhook_id: str, *, limit: int | None = None, cursor: str | None = None, state: DeliveryState | None = None
) -> Call[DeliveryPage]:
    """One page of the webhook's deliveries, newest first; pass `next_cursor` back as `cursor`."""
    params = _params(limit=limit, cursor=cursor, state=state)
    return Call("GET", _webhook_path(webhook_id, "deliveries"), _model(DeliveryPage), params)


def redeliver_call(webhook_id: str, delivery_id: str) -> Call[Delivery]:
    """Send a delivery again now, whatever its state, with the same event id."""
    path = _webhook_path(webhook_id, "deliveries", segment(delivery_id), "redeliver")
    return Call("POST", path, _model(Delivery))


# -- responses and retries -------------------------------------------------------------------------


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: this service never sends one; fall back to backoff


def parse_response(call: Call[T], response: httpx.Response) -> T:
    """The result of a 2xx response, or the exception its error envelope names."""
    request_id = response.headers.get("x-request-id")
    if response.is_success:
        if call.text:
            return call.parse(response.text)
        try:
            return call.parse(response.json()["data"])
        except (ValueError, KeyError, TypeError) as exc:
            raise Mem0Error(
                f"Unexpected response body for {call.method} {call.path}",
                code="INVALID_RESPONSE",
                status=response.status_code,
                request_id=request_id,
            ) from exc
    code: str | None = None
    message = f"HTTP {response.status_code}"
    details: dict[str, Any] = {}
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
        details = dict(error.get("details") or {})
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}: {response.text[:200]}"  # not the envelope: a proxy?
    raise error_class(code, response.status_code)(
        message,
        code=code,
        details=details,
        status=response.status_code,
        request_id=request_id,
        retry_after=_retry_after(response),
    )


def retryable(error: Mem0Error) -> bool:
    return isinstance(
        error, RateLimitError | ServiceUnavailableError | IdempotencyInProgressError | APIConnectionError
    ) and not isinstance(error, TimeoutError)


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds to wait before retry number `attempt` (0-based).

    With Retry-After: that long, plus up to 10% so clients refused together do not return
    together. Without: exponential backoff (0.5 s, 1 s, 2 s ... at most 8 s) with equal jitter.
    """
    if retry_after is not None:
        return retry_after + random.uniform(0, 0.1 * max(retry_after, 1.0))
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2.0**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def transport_error(call: Call[Any], exc: httpx.HTTPError) -> APIConnectionError:
    kind = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    return kind(f"{call.method} {call.path} failed: {type(exc).__name__}: {exc}")


def decide_retry(error: Mem0Error, attempt: int, options: Options, call: Call[Any]) -> float | None:
    """The wait before retrying, or None when the error is final."""
    if attempt >= options.max_retries or not retryable(error):
        return None
    if isinstance(error, APIConnectionError) and not call.resend_after_drop:
        return None
    if error.retry_after is not None and error.retry_after > options.max_retry_wait:
        return None  # the service asks for longer than the caller allows: give the error back now
    return retry_delay(attempt, error.retry_after)


class Attempts:
    """The retry loop of one call without its I/O, so the sync and async clients share it: they
    send `request`, parse the response, and on a failure sleep for `wait_after(exc)`."""

    def __init__(
        self,
        http: httpx.Client | httpx.AsyncClient,
        url: str,
        headers: Mapping[str, str],
        call: Call[Any],
        options: Options,
    ) -> None:
        self.call, self.options, self.attempt = call, options, 0
        self._http, self._url, self._headers = http, url, dict(headers)
        if call.idempotency_key:  # the same key on every attempt: a retried add stores once
            self._headers["Idempotency-Key"] = call.idempotency_key

    def request(self) -> httpx.Request:
        """The request of the next attempt (built anew each time, as `httpx.Client.request` does)."""
        call = self.call
        return self._http.build_request(
            call.method,
            self._url + call.path,
            params=call.params,
            json=call.json,
            headers=self._headers,
            timeout=self.options.timeout,
        )

    def wait_after(self, exc: httpx.HTTPError | Mem0Error) -> float:
        """Seconds to wait before the next attempt; raises the error when it is final."""
        error = transport_error(self.call, exc) if isinstance(exc, httpx.HTTPError) else exc
        delay = decide_retry(error, self.attempt, self.options, self.call)
        if delay is None:
            if error is exc:
                raise error
            raise error from exc
        self.attempt += 1
        return delay

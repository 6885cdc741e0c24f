"""The console's request checks, in process: the origin check every state-changing request passes
first, the no-JavaScript time text, and the headers on every console response."""

from __future__ import annotations

import asyncio

import pytest
from memory_service.api.console.web import SecurityHeaders, _utc_text, require_same_origin
from memory_service.errors import Forbidden
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send


def _request(headers: dict[str, str], scheme: str = "http", host: str = "console.test:8080") -> Request:
    raw = [(b"host", host.encode())] + [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "scheme": scheme, "method": "POST", "path": "/console/x", "headers": raw})


@pytest.mark.parametrize(
    ("headers", "scheme"),
    [
        ({"Origin": "http://console.test:8080"}, "http"),
        ({"Origin": "https://console.test:8080"}, "https"),
        ({"Referer": "http://console.test:8080/console/users/a"}, "http"),  # a browser that sends no Origin
    ],
)
def test_requests_from_our_own_pages_pass(headers: dict[str, str], scheme: str) -> None:
    require_same_origin(_request(headers, scheme))


@pytest.mark.parametrize(
    "headers",
    [
        {},  # neither header: refused, not assumed to be ours
        {"Origin": "null"},  # sandboxed frames, data: URLs
        {"Origin": "http://evil.test"},
        {"Origin": "https://console.test:8080"},  # another scheme is another origin
        {"Origin": "http://console.test:8081"},
        {"Origin": "http://console.test:8080.evil.test"},
        {"Origin": "http://evil.test", "Referer": "http://console.test:8080/console/"},  # Origin decides
        {"Referer": "http://evil.test/console.test:8080"},
        {"Referer": "http://console.test:8080.evil.test/"},
        {"Referer": "not a url"},
    ],
)
def test_anything_else_is_forbidden(headers: dict[str, str]) -> None:
    with pytest.raises(Forbidden):
        require_same_origin(_request(headers))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("2026-11-30T01:40:59.229584Z", "2026-11-30 01:40:59 UTC"),
        ("2026-11-30T10:40:59+09:00", "2026-11-30 01:40:59 UTC"),
        ("2026-11-30T01:40:59", "2026-11-30 01:40:59 UTC"),  # naive counts as UTC
        ("yesterday", "yesterday"),  # not a time we wrote: shown as stored
        (None, ""),
    ],
)
def test_times_read_in_utc_without_javascript(value: str | None, text: str) -> None:
    assert _utc_text(value) == text


def _headers_for(path: str, given: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": given})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "root_path": "/console", "headers": []}
    asyncio.run(SecurityHeaders(app)(scope, receive, send))
    return dict(sent[0]["headers"])


def test_every_console_response_carries_the_policy_and_no_store() -> None:
    headers = _headers_for("/console/users", [(b"cache-control", b"max-age=600")])
    policy = headers[b"content-security-policy"].decode()
    assert "script-src 'self'" in policy
    assert "unsafe" not in policy
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"cache-control"] == b"no-store"  # replaces what the page said


def test_static_files_may_be_revalidated_but_keep_the_policy() -> None:
    headers = _headers_for("/console/static/console.js", [])
    assert headers[b"cache-control"] == b"no-cache"
    assert b"content-security-policy" in headers

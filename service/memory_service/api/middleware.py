"""One pure-ASGI middleware for what every request needs: id, input rules, metrics, log, headers.

Pure ASGI (not BaseHTTPMiddleware) because it runs on every request and must stay cheap. It
also catches what escaped every handler, so even a 500 carries the envelope and X-Request-ID.

It is also the one place where input every route would otherwise have to refuse is refused, for
every route, present and future: NUL characters in the path, the query or a header, and in a body
(with NaN, Infinity and numbers that overflow; core/json_rules.py) are a 400; a body over the
limit is a 413 however it is sent (declared or chunked); a body that does not arrive within
REQUEST_BODY_TIMEOUT is a 408. The body is read here, whole, before the route sees it.
A route that answers in another protocol (`/mcp`: JSON-RPC, where bad arguments are tool errors a
model can act on) is listed in `own_body_rules`: its body still has the size limit and deadline,
and the route applies the same content rules (core/json_rules.py) itself.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memory_service.api.dialects import dialect_of
from memory_service.api.errors import error_response, internal_error_response
from memory_service.core.context import dialect as dialect_context
from memory_service.core.json_rules import body_problem
from memory_service.observability.metrics import HTTP_DURATION, HTTP_IN_PROGRESS, HTTP_REQUESTS

access_log = structlog.get_logger("memory_service.access")
log = logging.getLogger(__name__)
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"


class _BodyTooLarge(Exception):
    pass


class _BodyTimeout(Exception):
    pass


class _Disconnected(Exception):
    pass


CLIENT_CLOSED = 499  # the client left before its body arrived: no response, not a server error


def head_problem(scope: Scope) -> str | None:
    """Why the request line or headers must be refused with 400, or None: NUL characters, which
    no text column can store and no id, name or query may contain."""
    if "\x00" in scope.get("path", ""):
        return "NUL characters are not allowed in the path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        return "NUL characters are not allowed in the query"
    for _, value in scope.get("headers", ()):
        if b"\x00" in value:
            return "NUL characters are not allowed in headers"
    return None


def _has_body(scope: Scope) -> bool:
    declared = _header(scope, b"content-length")
    if declared is not None:
        return declared.strip() not in ("", "0")
    return _header(scope, b"transfer-encoding") is not None


def _header(scope: Scope, name: bytes) -> str | None:
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _literal(text: str) -> Callable[[re.Match[str]], str]:
    """A re.sub replacement that inserts `text` as is (a replacement string would expand backslashes)."""
    return lambda _match: text


def route_template(scope: Scope) -> str:
    """The matched route's full template (with the /v1 prefix of an included router), or a
    fixed label for unmatched paths: metric labels never carry ids or raw paths."""
    route: Any = scope.get("route")
    path: str | None = getattr(route, "path", None)
    if not path:
        return UNMATCHED_ROUTE
    rendered = path
    for name, value in (scope.get("path_params") or {}).items():
        rendered = re.sub(r"\{" + re.escape(name) + r"(:[^}]*)?\}", _literal(str(value)), rendered)
    request_path = scope.get("path", "")
    prefix = request_path[: -len(rendered)] if rendered and request_path.endswith(rendered) else ""
    return prefix + path if prefix in ("", "/v1", "/console") else path


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        body_timeout: float = 30.0,
        own_body_rules: Collection[str] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.own_body_rules = frozenset(own_body_rules)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _VALID_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        dialect = dialect_of(scope.get("path", ""))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id, dialect=dialect)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.append((b"x-request-id", request_id.encode()))
                ratelimit = scope.get("state", {}).get("ratelimit")
                if ratelimit is not None and b"x-ratelimit-limit" not in present:
                    headers.extend((k.lower().encode(), v.encode()) for k, v in ratelimit.headers().items())
                message["headers"] = headers
            await send(message)

        HTTP_IN_PROGRESS.inc()
        try:
            with dialect_context(dialect):
                declared = _header(scope, b"content-length")
                if (problem := head_problem(scope)) is not None:
                    await self._refuse(scope, receive, send_wrapper, 400, "INVALID_REQUEST", problem)
                elif declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                    await self._too_large(scope, receive, send_wrapper)
                elif _has_body(scope):
                    body = await self._read_body(receive)
                    if scope.get("path") not in self.own_body_rules and (problem := body_problem(body)) is not None:
                        await self._refuse(
                            scope, receive, send_wrapper, 400, "INVALID_REQUEST", f"Invalid body: {problem}"
                        )
                    else:
                        await self.app(scope, _replay(body, receive), send_wrapper)
                else:
                    await self.app(scope, receive, send_wrapper)
        except _BodyTooLarge:
            if not response_started:
                await self._too_large(scope, receive, send_wrapper)
        except _BodyTimeout:
            await self._refuse(
                scope,
                receive,
                send_wrapper,
                408,
                "REQUEST_TIMEOUT",
                f"The request body did not arrive within {self.body_timeout:g}s (REQUEST_BODY_TIMEOUT)",
            )
        except _Disconnected:
            status = CLIENT_CLOSED
        except Exception:
            log.exception("unhandled error")
            if not response_started:
                await internal_error_response(dialect)(scope, receive, send_wrapper)
        finally:
            HTTP_IN_PROGRESS.dec()
            self._record(scope, status, time.perf_counter() - started, dialect)

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole body, within the size limit and the deadline (a slow client cannot hold a
        worker's connection open by trickling its body)."""
        chunks: list[bytes] = []
        received = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Disconnected
                    chunk = message.get("body", b"")
                    received += len(chunk)
                    if received > self.max_body_bytes:
                        raise _BodyTooLarge
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise _BodyTimeout from None

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str) -> None:
        """An error before the route ran, in the request's dialect; 408 and 413 also close the
        connection, whose unread body would otherwise be taken for the next request."""
        headers = {"Connection": "close"} if status in (408, 413) else None
        dialect = dialect_of(scope.get("path", ""))
        await error_response(status, code, message, headers=headers, dialect=dialect)(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "PAYLOAD_TOO_LARGE",
            f"Request body exceeds {self.max_body_bytes} bytes",
            {"limit": self.max_body_bytes},
            {"Connection": "close"},
            dialect=dialect_of(scope.get("path", "")),
        )
        await response(scope, receive, send)

    @staticmethod
    def _record(scope: Scope, status: int, duration: float, dialect: str) -> None:
        template = route_template(scope)
        method = scope.get("method", "GET")
        HTTP_REQUESTS.labels(template, method, str(status), dialect).inc()
        HTTP_DURATION.labels(template, method).observe(duration)
        client = scope.get("client")
        access_log.info(
            "request",
            method=method,
            # The TCP peer, or the X-Forwarded-For address when the peer is a trusted proxy.
            client=client[0] if client else None,
            route=template,
            status=status,
            duration_ms=round(duration * 1000, 2),
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read by the middleware, as the route's first receive(); later calls (waiting for
    a disconnect) go to the server."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

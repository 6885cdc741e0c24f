"""One pure-ASGI middleware for what every request needs: id, size limit, metrics, log, headers.

Pure ASGI (not BaseHTTPMiddleware) because it runs on every request and must stay cheap. It
also catches what escaped every handler, so even a 500 carries the envelope and X-Request-ID.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memory_service.api.errors import error_response, internal_error_response
from memory_service.observability.metrics import HTTP_DURATION, HTTP_IN_PROGRESS, HTTP_REQUESTS

access_log = structlog.get_logger("memory_service.access")
log = logging.getLogger(__name__)
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED_ROUTE = "<unmatched>"


class _BodyTooLarge(Exception):
    pass


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
    return prefix + path if prefix in ("", "/v1") else path


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
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

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        HTTP_IN_PROGRESS.inc()
        try:
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                await self._too_large(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive_limited, send_wrapper)
        except _BodyTooLarge:
            if not response_started:
                await self._too_large(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error")
            if not response_started:
                await internal_error_response()(scope, receive, send_wrapper)
        finally:
            HTTP_IN_PROGRESS.dec()
            self._record(scope, status, time.perf_counter() - started)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "PAYLOAD_TOO_LARGE",
            f"Request body exceeds {self.max_body_bytes} bytes",
            {"limit": self.max_body_bytes},
        )
        await response(scope, receive, send)

    @staticmethod
    def _record(scope: Scope, status: int, duration: float) -> None:
        template = route_template(scope)
        method = scope.get("method", "GET")
        HTTP_REQUESTS.labels(template, method, str(status)).inc()
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

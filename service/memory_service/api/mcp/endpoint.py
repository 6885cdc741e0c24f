"""`POST /mcp`: the REST API's keys, limits and tenant, then the SDK's streamable HTTP transport.

Stateless, with JSON responses: each POST carries one JSON-RPC message and is answered on its
own, with no session to remember, so any worker behind gunicorn or a load balancer can serve
any request of a connection. GET (a server-to-client event stream) and DELETE (ending a session)
have nothing to do here and answer 405.

The request is checked exactly as a REST request is, by the same functions: the Origin (a page
on another site must not drive the endpoint with a key it got hold of: DNS rebinding), the key
(401), the key's rate limit (429, one budget with REST), then an optional `X-User-ID` pin. A
refusal happens before the SDK sees the request, so no MCP message is served; its body is a
JSON-RPC error whose `data` is the contract's error object (`code`, `message`, `details`), so
MCP clients show the reason, with the REST API's headers (Retry-After, X-RateLimit-*,
X-Request-ID, WWW-Authenticate).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from memory_service.api.deps import authenticate, bearer, rate_limited, services_of
from memory_service.api.mcp.server import MemoryMCP
from memory_service.api.mcp.tools import CALLER_STATE, Caller
from memory_service.core.ids import validate_user_id
from memory_service.errors import Forbidden, InvalidRequest, ServiceError
from memory_service.settings import Settings

MCP_PATH = "/mcp"
USER_HEADER = "x-user-id"
REFUSED = -32010
"""JSON-RPC error code of a request refused before MCP served it (`error.data.code` says why)."""


class _Delegate(Response):
    """A response that hands the request on to an ASGI app: the SDK's transport answers it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def refusal(error: ServiceError) -> JSONResponse:
    headers: dict[str, str] = dict(getattr(error, "headers", {}) or {})
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if error.status_code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="memory-service"'
    data = {"code": error.code, "message": error.message, "details": error.details}
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": REFUSED, "message": error.message, "data": data}}
    return JSONResponse(body, status_code=error.status_code, headers=headers)


def _check_origin(request: Request, settings: Settings) -> None:
    """Browsers send Origin; MCP clients do not. A browser page may only call from an allowed origin."""
    origin = request.headers.get("origin")
    if origin is None or origin in settings.cors_origins:
        return
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin != own:
        raise Forbidden(f"Origin {origin!r} may not call /mcp (CORS_ORIGINS lists the allowed ones)")


def _pinned_user(request: Request) -> str | None:
    value = request.headers.get(USER_HEADER)
    if value is None:
        return None
    try:
        return validate_user_id(value, "X-User-ID")
    except ValueError as exc:
        raise InvalidRequest(str(exc), {"header": "X-User-ID"}) from None


class McpEndpoint:
    """The MCP surface of one application: its server, its transport, its route and lifespan."""

    def __init__(self, settings: Settings, max_body_bytes: int) -> None:
        self.settings = settings
        self.server = MemoryMCP(settings)
        # The SDK's own app is not mounted (the route below is), only its transport is used. Its
        # Host/Origin check would need every deployment's host names: the Origin is checked here.
        self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            max_request_body_size=max_body_bytes,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.transport: StreamableHTTPSessionManager = self.server.session_manager
        self.router = APIRouter()
        self.router.add_api_route(MCP_PATH, self.handle, methods=["POST"], include_in_schema=False)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the transport's task group for the application's lifetime (from the lifespan)."""
        async with self.transport.run():
            yield

    async def handle(self, request: Request) -> Response:
        try:
            _check_origin(request, self.settings)
            principal = await rate_limited(request, await authenticate(request, await bearer(request)))
            pinned = _pinned_user(request)
        except ServiceError as exc:
            return refusal(exc)
        setattr(request.state, CALLER_STATE, Caller(principal, services_of(request), pinned))
        return _Delegate(self.transport.handle_request)

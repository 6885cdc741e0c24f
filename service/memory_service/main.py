"""The application: routes under /v1 (health, status and metrics also at the root, as the seed
calls them), the MCP endpoint at /mcp, the error mapping, the request middleware, and a lifespan
that opens every backend before the first request and closes them after the last.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse

from memory_service import __version__
from memory_service.api import errors, platform
from memory_service.api.console import mount_console
from memory_service.api.dialects import PLATFORM_TAG
from memory_service.api.mcp.endpoint import MCP_PATH, McpEndpoint
from memory_service.api.middleware import RequestContextMiddleware
from memory_service.api.openapi import install_openapi
from memory_service.api.routes import admin, health, jobs, memories, metrics, users, webhooks
from memory_service.errors import StartupError
from memory_service.observability.logging import configure_logging
from memory_service.observability.tracing import configure_tracing, shutdown_tracing
from memory_service.services.container import Services
from memory_service.settings import Settings, get_settings

DESCRIPTION = """
Long-term memory for AI agents: store memories from chat messages, then search, read, update and
delete them per user. Every response uses the envelope `{success, data, message, timestamp}` or
`{success: false, error: {code, message, details}, timestamp}`. Authenticate with
`Authorization: Bearer <key>`; each key belongs to a tenant and sees only that tenant's memories.
Rate limits: 100 requests per minute and 20 per 10 seconds per key, reported in `X-RateLimit-*`
headers (the window closest to running out).

The same port also speaks the mem0 Platform's dialect (the routes tagged "mem0 Platform
compatible", every path ending with `/`), so mem0's own Python and npm clients work unmodified;
see docs/mem0-compat.md.
"""

TAGS = [
    {
        "name": PLATFORM_TAG,
        "description": "The mem0 Platform's REST dialect, as mem0's own clients (PyPI and npm `mem0ai`) speak it: "
        "`Authorization: Token <key>` (or Bearer), the Platform's bodies and errors (`{detail, code}`), every path "
        "ending with `/`. Same keys, tenants, rate limits and engine as the rest of the API.",
    }
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    max_body_bytes = 4 * settings.max_memory_size + 1_000_000
    mcp = McpEndpoint(settings, max_body_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            services = await Services.open(settings)
        except StartupError as exc:
            logging.getLogger("memory_service").critical("refusing to start: %s", exc)
            raise
        app.state.services = services
        try:
            async with mcp.running():
                yield
        finally:
            await services.close()
            shutdown_tracing()

    app = FastAPI(
        title="Mem0 Memory System",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Off in production unless DOCS_ENABLED=true: the document maps every route and rule.
        docs_url="/docs" if settings.serve_docs else None,
        openapi_url="/openapi.json" if settings.serve_docs else None,
        redoc_url=None,
        openapi_tags=TAGS,
        # `/x` and `/x/` are two dialects (api/dialects.py): a redirect between them would hand a
        # request to the other one, so an unknown path is a 404 (or 405) in its own dialect instead.
        redirect_slashes=False,
    )
    errors.install(app)
    install_openapi(app, settings)

    v1 = APIRouter(prefix="/v1")
    v1.include_router(memories.router)
    v1.include_router(jobs.router)
    v1.include_router(users.router)
    v1.include_router(admin.router)
    v1.include_router(webhooks.router)
    v1.include_router(health.router)
    v1.include_router(metrics.router)
    app.include_router(v1)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(mcp.router)
    if settings.console_enabled:
        mount_console(app)  # /console: HTML pages with their own error pages and security headers

        @app.get("/console", include_in_schema=False)
        async def console_root() -> RedirectResponse:
            """The console's address as typed; the one redirect kept (redirect_slashes is off)."""
            return RedirectResponse("/console/")

    app.include_router(platform.router)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            # MCP-Protocol-Version and X-User-ID: browser MCP clients on /mcp (docs/mcp.md).
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-Request-ID",
                "Idempotency-Key",
                "MCP-Protocol-Version",
                "X-User-ID",
            ],
            expose_headers=[
                "X-Request-ID",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After",
                "Idempotent-Replayed",
            ],
        )
    # Outermost, so ids, metrics and the 500 envelope cover everything inside.
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=max_body_bytes,
        body_timeout=settings.request_body_timeout,
        own_body_rules=(MCP_PATH,),  # its arguments are checked per tool call (api/mcp/server.py)
    )
    configure_tracing(settings, app)
    return app

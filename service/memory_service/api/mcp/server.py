"""The MCP server: the SDK's MCPServer with the service's tools, errors, metrics and logs.

Every tool call ends in a result the model can read. A failure is a tool error (`isError`) whose
text is `{"error": {"code", "message", "details"}}` with the contract's code: bad arguments are
INVALID_REQUEST with the field errors (NUL characters and non-finite numbers too: /mcp checks its own
bodies, api/middleware.py), the service's own errors keep their code (MEMORY_NOT_FOUND,
PAYLOAD_TOO_LARGE, SERVICE_UNAVAILABLE...), anything unexpected is INTERNAL_ERROR with nothing
of its internals (the log has the traceback, under the request id). Each call is counted by tool
(unknown names share one label, so the label stays bounded) and outcome, timed, and logged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import structlog
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult, TextContent
from pydantic import ValidationError

from memory_service import __version__
from memory_service.api.mcp.tools import register
from memory_service.core.json_rules import value_problem
from memory_service.errors import InvalidRequest, MemoryNotFound, NotFound, ServiceError, ServiceUnavailable
from memory_service.observability.metrics import MCP_TOOL_CALLS, MCP_TOOL_DURATION
from memory_service.settings import Settings

log = logging.getLogger(__name__)
tool_log = structlog.get_logger("memory_service.mcp")
UNKNOWN_TOOL = "<unknown>"
OUTCOMES = ("success", "invalid", "not_found", "unavailable", "error")
# Bounds of the argument walk: far above what any tool's schema admits (metadata has its own,
# tighter limits), only so that a hostile document costs bounded work before the schema check.
ARGUMENT_DEPTH = 32
ARGUMENT_KEYS = 10_000

INSTRUCTIONS = """\
Long-term memory about the user, kept across conversations. Search it (search_memories) before
answering anything that may depend on the user's preferences, history, projects or people; store
durable facts the user shares (add_memories); correct what changed (update_memory) instead of
adding a contradiction; delete only what the user asks you to forget. Memories belong to one
user (user_id; omit it for the connection's own user). Results are JSON; a failed call returns
{"error": {"code", "message", "details"}}: fix the arguments on INVALID_REQUEST, and retry later
on SERVICE_UNAVAILABLE.
"""


class InternalError(ServiceError):
    """What the client sees of a failure nobody anticipated."""

    def __init__(self) -> None:
        super().__init__("Internal error; the request id identifies it in the service's logs")


def invalid_arguments(exc: ValidationError) -> InvalidRequest:
    """Argument validation failures, field by field, as the REST API reports body errors."""
    errors = [
        {
            "field": ".".join(str(part) for part in err.get("loc", ())),
            "message": str(err.get("msg", "")).removeprefix("Value error, "),
            "type": err.get("type"),
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]
    first = errors[0] if errors else {"field": "", "message": "invalid arguments"}
    message = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
    return InvalidRequest(f"Invalid arguments: {message}", {"errors": errors})


def error_result(error: ServiceError) -> CallToolResult:
    body = {"error": {"code": error.code, "message": error.message, "details": error.details}}
    return CallToolResult(content=[TextContent(type="text", text=orjson.dumps(body).decode())], is_error=True)


def outcome_of(error: ServiceError) -> str:
    """The memory_operations_total outcomes, so the two families read alike."""
    if isinstance(error, MemoryNotFound | NotFound):
        return "not_found"
    if isinstance(error, ServiceUnavailable):
        return "unavailable"
    return "invalid" if error.status_code < 500 else "error"


class MemoryMCP(MCPServer[Any]):
    """MCPServer whose every tool call ends as a result or a coded tool error, counted and logged."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            "memory-service",
            title="Mem0 Memory System",
            version=__version__,
            instructions=INSTRUCTIONS,
            warn_on_duplicate_tools=True,
        )
        register(self, settings)
        self.tool_names = frozenset(tool.name for tool in self._tool_manager.list_tools())
        for name in self.tool_names:  # every series exists from the start, so rate() sees the first one
            MCP_TOOL_DURATION.labels(name)
            for outcome in OUTCOMES:
                MCP_TOOL_CALLS.labels(name, outcome)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        label = name if name in self.tool_names else UNKNOWN_TOOL
        started = time.perf_counter()
        error: ServiceError | None = None
        try:
            if label == UNKNOWN_TOOL:
                error = InvalidRequest(f"Unknown tool '{name}'", {"tools": sorted(self.tool_names)})
                return error_result(error)
            # The rules the middleware applies to REST bodies (not to /mcp's): no NUL, finite numbers.
            if (problem := value_problem(arguments, max_depth=ARGUMENT_DEPTH, max_keys=ARGUMENT_KEYS)) is not None:
                error = InvalidRequest(f"Invalid arguments: {problem}", {"arguments": problem})
                return error_result(error)
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as exc:
                error = self._error_of(name, exc)
                return error_result(error)
        finally:
            duration = time.perf_counter() - started
            outcome = "success" if error is None else outcome_of(error)
            MCP_TOOL_CALLS.labels(label, outcome).inc()
            MCP_TOOL_DURATION.labels(label).observe(duration)
            tool_log.info(
                "mcp tool call",
                tool=label,
                outcome=outcome,
                code=None if error is None else error.code,
                duration_ms=round(duration * 1000, 2),
            )

    @staticmethod
    def _error_of(name: str, exc: ToolError) -> ServiceError:
        cause = exc.__cause__
        if isinstance(cause, ServiceError):
            return cause
        if isinstance(cause, ValidationError):  # the arguments, or a body built from them
            return invalid_arguments(cause)
        log.error("MCP tool %s failed", name, exc_info=cause or exc)
        return InternalError()

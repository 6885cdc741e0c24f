"""The seed's response envelope, used by every route and documented in OpenAPI.

Success: `{"success": true, "data": ..., "message": ..., "timestamp": ...}`.
Error:   `{"success": false, "error": {"code", "message", "details"}, "timestamp": ...}`.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from memory_service.core.timefmt import now_rfc3339

T = TypeVar("T")


def timestamp() -> str:
    return now_rfc3339(seconds=True)


class Envelope(BaseModel, Generic[T]):
    success: Literal[True] = True
    data: T
    message: str = "Operation completed successfully"
    timestamp: str = Field(default_factory=timestamp, examples=["2025-07-30T20:15:00Z"])


class ErrorBody(BaseModel):
    code: str = Field(examples=["MEMORY_NOT_FOUND"])
    message: str = Field(examples=["Memory with ID 'abc123' not found"])
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorEnvelope(BaseModel):
    success: Literal[False] = False
    error: ErrorBody
    timestamp: str = Field(default_factory=timestamp, examples=["2025-07-30T20:15:00Z"])


def ok(data: T, message: str = "Operation completed successfully") -> Envelope[T]:
    return Envelope[T](data=data, message=message)


_ERROR_DESCRIPTIONS = {
    400: "INVALID_REQUEST: malformed request; field errors in details",
    401: "UNAUTHORIZED: invalid or missing API key",
    403: "FORBIDDEN: the key's role may not do this",
    404: "MEMORY_NOT_FOUND (or NOT_FOUND): no such resource for this tenant",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT: the body did not arrive within REQUEST_BODY_TIMEOUT",
    409: "IDEMPOTENCY_CONFLICT (Idempotency-Key reused with another body) or IDEMPOTENCY_IN_PROGRESS",
    413: "PAYLOAD_TOO_LARGE: content over MAX_MEMORY_SIZE bytes, metadata over its limit, or a body over the limit",
    429: "RATE_LIMIT_EXCEEDED: see Retry-After and X-RateLimit-* headers",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE: a backend is down; details.dependency names it",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer with."""
    return {
        status: {"model": ErrorEnvelope, "description": _ERROR_DESCRIPTIONS[status]}
        for status in sorted({400, 500, 503, *statuses})
    }

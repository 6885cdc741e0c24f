"""Domain exceptions: raised anywhere, mapped to the error envelope in one place (api/errors.py).

Each carries the seed's error code and HTTP status, so a module deep in the engine can say what
went wrong without knowing about HTTP responses.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """Base class: a failure the client should see as a clear envelope, never a stack trace."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status_code: ClassVar[int] = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidRequest(ServiceError):
    code = "INVALID_REQUEST"
    status_code = 400


class Unauthorized(ServiceError):
    code = "UNAUTHORIZED"
    status_code = 401


class Forbidden(ServiceError):
    code = "FORBIDDEN"
    status_code = 403


class NotFound(ServiceError):
    code = "NOT_FOUND"
    status_code = 404


class MemoryNotFound(NotFound):
    code = "MEMORY_NOT_FOUND"

    def __init__(self, memory_id: str) -> None:
        super().__init__(f"Memory with ID '{memory_id}' not found", {"id": memory_id})


class NotOffered(ServiceError):
    """A mem0 Platform feature this server does not offer (api/platform/unsupported.py)."""

    code = "NOT_OFFERED"
    status_code = 501

    def __init__(self, feature: str, why: str) -> None:
        super().__init__(f"This server does not offer {feature}: {why}", {"feature": feature})


class PayloadTooLarge(ServiceError):
    code = "PAYLOAD_TOO_LARGE"
    status_code = 413


class RateLimitExceeded(ServiceError):
    code = "RATE_LIMIT_EXCEEDED"
    status_code = 429

    def __init__(
        self, message: str, details: dict[str, Any], retry_after: int, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, details)
        self.retry_after = retry_after
        self.headers = headers or {}


class ServiceUnavailable(ServiceError):
    """A backend is down or too slow; `dependency` names it for the client and the metrics."""

    code = "SERVICE_UNAVAILABLE"
    status_code = 503

    def __init__(self, dependency: str, message: str | None = None, retry_after: int = 5) -> None:
        super().__init__(
            message or f"{dependency} is unavailable; retry later",
            {"dependency": dependency},
        )
        self.dependency = dependency
        self.retry_after = retry_after


class StartupError(RuntimeError):
    """The service must not start: the message says what is wrong and what to do."""

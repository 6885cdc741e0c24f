"""One exception per error code of the service's envelope, under one base class.

Every error carries what the envelope said (`code`, `message`, `details`), the HTTP `status` and
the response's `X-Request-ID` (quote it when reporting a problem: the service's logs are keyed by
it). Transport failures have no response: `status` and `request_id` are then None.
"""

from __future__ import annotations

from typing import Any, ClassVar


class Mem0Error(Exception):
    """Base class of every error this client raises."""

    default_code: ClassVar[str] = "ERROR"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details: dict[str, Any] = details or {}
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f" (HTTP {self.status}, request {self.request_id})" if self.status is not None else ""
        return f"{self.code}: {self.message}{where}"


class APIConnectionError(Mem0Error):
    """The service could not be reached, or the connection dropped before a response."""

    default_code = "CONNECTION_ERROR"


class APITimeoutError(APIConnectionError, TimeoutError):
    """The call took longer than its timeout. Not retried: the caller's time is spent."""

    default_code = "TIMEOUT"


class JobTimeoutError(Mem0Error, TimeoutError):
    """`wait_for_job` gave up before the job finished (the job goes on running)."""

    default_code = "JOB_TIMEOUT"


class InvalidRequestError(Mem0Error):
    default_code = "INVALID_REQUEST"


class UnauthorizedError(Mem0Error):
    default_code = "UNAUTHORIZED"


class ForbiddenError(Mem0Error):
    default_code = "FORBIDDEN"


class NotFoundError(Mem0Error):
    default_code = "NOT_FOUND"


class MemoryNotFoundError(NotFoundError):
    default_code = "MEMORY_NOT_FOUND"


class MethodNotAllowedError(Mem0Error):
    default_code = "METHOD_NOT_ALLOWED"


class IdempotencyConflictError(Mem0Error):
    """The Idempotency-Key was used before with a different request body."""

    default_code = "IDEMPOTENCY_CONFLICT"


class IdempotencyInProgressError(Mem0Error):
    """The first request with this Idempotency-Key is still running; retried like a 429."""

    default_code = "IDEMPOTENCY_IN_PROGRESS"


class PayloadTooLargeError(Mem0Error):
    default_code = "PAYLOAD_TOO_LARGE"


class RateLimitError(Mem0Error):
    """Over the key's rate limit; `retry_after` is the service's Retry-After, in seconds."""

    default_code = "RATE_LIMIT_EXCEEDED"


class InternalServerError(Mem0Error):
    default_code = "INTERNAL_ERROR"


class ServiceUnavailableError(Mem0Error):
    """A backend of the service is down or too slow; `dependency` names it."""

    default_code = "SERVICE_UNAVAILABLE"

    @property
    def dependency(self) -> str | None:
        value = self.details.get("dependency")
        return value if isinstance(value, str) else None


ERRORS_BY_CODE: dict[str, type[Mem0Error]] = {
    cls.default_code: cls
    for cls in (
        InvalidRequestError,
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        MemoryNotFoundError,
        MethodNotAllowedError,
        IdempotencyConflictError,
        IdempotencyInProgressError,
        PayloadTooLargeError,
        RateLimitError,
        InternalServerError,
        ServiceUnavailableError,
    )
}
ERRORS_BY_STATUS: dict[int, type[Mem0Error]] = {
    400: InvalidRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    409: IdempotencyConflictError,
    413: PayloadTooLargeError,
    429: RateLimitError,
    500: InternalServerError,
    503: ServiceUnavailableError,
}


def error_class(code: str | None, status: int) -> type[Mem0Error]:
    """The class for an envelope's code; by HTTP status when the code is unknown or absent."""
    if code is not None and code in ERRORS_BY_CODE:
        return ERRORS_BY_CODE[code]
    return ERRORS_BY_STATUS.get(status, InternalServerError if status >= 500 else Mem0Error)

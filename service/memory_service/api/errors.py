"""The one place that turns failures into error responses, in the dialect of the request.

Domain exceptions (memory_service.errors) carry their code and status; validation errors become
400 INVALID_REQUEST with the field errors in details; unknown routes and methods become 404/405;
anything unexpected becomes 500 INTERNAL_ERROR with no internals (the log has the traceback,
keyed by the request id the client also sees).

The contract's body is the envelope `{success: false, error: {code, message, details}}`; the mem0
Platform dialect's is `{"detail": message, "code": code, ...details}` (api/dialects.py decides
which from the path): mem0's Python client raises with `detail` as the message, its npm client
with the whole body, and both pick the exception class from the status.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from memory_service.api.dialects import PLATFORM, dialect_of
from memory_service.api.envelope import ErrorBody, ErrorEnvelope
from memory_service.errors import RateLimitExceeded, ServiceError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    415: "INVALID_REQUEST",
    429: "RATE_LIMIT_EXCEEDED",
    431: "HEADERS_TOO_LARGE",
    503: "SERVICE_UNAVAILABLE",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    *,
    dialect: str | None = None,
) -> JSONResponse:
    if dialect == PLATFORM:
        return JSONResponse({**(details or {}), "detail": message, "code": code}, status_code=status, headers=headers)
    body = ErrorEnvelope(error=ErrorBody(code=code, message=message, details=details or {}))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def internal_error_response(dialect: str | None = None) -> JSONResponse:
    message = "Internal server error; the request id identifies it in the logs"
    return error_response(500, "INTERNAL_ERROR", message, dialect=dialect)


async def service_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers: dict[str, str] = dict(getattr(exc, "headers", {}) or {})
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if exc.status_code >= 500:
        log.warning("request failed: %s %s", exc.code, exc.message)
    dialect = dialect_of(request.scope["path"])
    message = exc.message
    if dialect == PLATFORM and isinstance(exc, RateLimitExceeded):
        message = f"{message}; retry after {exc.retry_after} seconds"  # mem0's npm client reads only the body
    return error_response(exc.status_code, exc.code, message, exc.details, headers, dialect=dialect)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(part) for part in err.get("loc", ())[1:]),
            "location": str(err.get("loc", ("",))[0]),
            "message": str(err.get("msg", "")).removeprefix("Value error, "),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"field": "", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
    return error_response(
        400,
        "INVALID_REQUEST",
        f"Invalid request: {message}",
        {"errors": errors},
        dialect=dialect_of(request.scope["path"]),
    )


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "INTERNAL_ERROR" if exc.status_code >= 500 else "INVALID_REQUEST")
    if exc.status_code == 404:
        message = f"No route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(
        exc.status_code, code, message, headers=getattr(exc, "headers", None), dialect=dialect_of(request.scope["path"])
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, service_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)

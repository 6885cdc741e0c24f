"""The console as an application mounted at /console: its routes, static files, HTML error pages
and security headers, apart from the API's JSON envelope and OpenAPI document."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from memory_service.api.console import admin, pages
from memory_service.api.console.web import (
    HERE,
    SESSION_COOKIE,
    SecurityHeaders,
    SignInRequired,
    clear_cookie,
    redirect,
    render,
)
from memory_service.errors import ServiceError

log = logging.getLogger(__name__)
PATH = "/console"

_TITLES = {
    400: "That request is not valid",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    413: "Too large",
    429: "Too many requests",
    503: "A backend is unavailable",
}


def _error_page(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    title = _TITLES.get(status, "Something went wrong")
    context = {"status": status, "code": code, "title": title, "message": message}
    return render(request, "error.html", context, status=status, headers=headers)


async def _sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    response = redirect(request, "/login", exc.notice)
    if exc.notice is not None:
        clear_cookie(request, response, SESSION_COOKIE)
    return response


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    headers: dict[str, str] = dict(getattr(exc, "headers", {}) or {})
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if exc.status_code >= 500:
        log.warning("console request failed: %s %s", exc.code, exc.message)
    return _error_page(request, exc.status_code, exc.code, exc.message, headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:])
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    return _error_page(request, 400, "INVALID_REQUEST", f"{where}: {message}" if where else message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return _error_page(request, 404, "NOT_FOUND", "There is no console page at this address.")
    return _error_page(request, exc.status_code, "INVALID_REQUEST", str(exc.detail))


def create_console(parent: FastAPI) -> FastAPI:
    """The console application; `parent` is the service's app, whose lifespan opens the services."""
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="Memory console")
    console.state.parent = parent
    console.add_exception_handler(SignInRequired, _sign_in)
    console.add_exception_handler(ServiceError, _service_error)
    console.add_exception_handler(RequestValidationError, _validation_error)
    console.add_exception_handler(StarletteHTTPException, _http_error)
    console.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    console.include_router(pages.router)
    console.include_router(admin.router)
    console.add_middleware(SecurityHeaders)
    return console


def mount_console(app: FastAPI) -> None:
    app.mount(PATH, create_console(app))

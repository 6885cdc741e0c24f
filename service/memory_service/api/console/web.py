"""What every console page needs: templates, security headers, sessions, CSRF, error pages.

Security model (docs/console.md):

- Sign-in exchanges an API key for a server-side session (domain/auth/sessions.py); the browser
  keeps an opaque id in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS), path /console.
- Every state-changing request is a POST that must (1) come from this origin (Origin, or Referer
  when a browser sends no Origin; neither is refused) and (2) carry the session's synchronizer
  token. Anything else is 403, before it touches any data. The sign-in form, which has no session
  yet, carries a token that must match a short-lived cookie set with the form (double submit).
- Each page of a session counts against its key's rate limits, exactly as an API request does.
- Templates autoescape everything; the Content-Security-Policy allows no inline script or style
  and no other origin, so content written by users or models can neither run nor load anything.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import jinja2
import structlog
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memory_service import __version__
from memory_service.core.json_rules import has_nul
from memory_service.domain.auth.sessions import ConsoleSession
from memory_service.errors import Forbidden, InvalidRequest, ServiceUnavailable
from memory_service.models.keys import Principal
from memory_service.observability.metrics import AUTH_FAILURES
from memory_service.services.container import Services

log = logging.getLogger(__name__)
T = TypeVar("T")
HERE = Path(__file__).parent

SESSION_COOKIE = "console_session"
SIGNIN_COOKIE = "console_signin"
SIGNIN_COOKIE_SECONDS = 3600
CSRF_FIELD = "csrf_token"
MAX_FORM_FIELDS = 20

# No inline script or style, nothing from another origin, no framing, forms only to us.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), clipboard-write=(self)"),
)

# Fixed messages shown after a redirect (`?notice=`): the URL carries a code, never user text.
NOTICES = {
    "signed-out": "You are signed out.",
    "expired": "Your session has ended (signed out, expired, or its key was revoked). Sign in again.",
    "memory-updated": "Memory updated.",
    "memory-unchanged": "Nothing to change: the text and metadata are as stored.",
    "memory-deleted": "Memory deleted.",
    "user-erased": "User erased: every memory, its history and messages are deleted.",
    "key-revoked": "Key revoked: it no longer works, and its console sessions are ended.",
    "webhook-test-queued": "Test event queued: its delivery appears below.",
    "webhook-enabled": "Webhook enabled: events are sent to it again.",
    "webhook-disabled": "Webhook disabled: no events are sent to it until it is enabled.",
    "delivery-queued": "Delivery queued to be sent again.",
    "webhook-deleted": "Webhook deleted, with the deliveries still waiting for it.",
}


class SecurityHeaders:
    """Pure ASGI: the console's security headers on every response of the console, static files
    and error pages included; `no-store` on everything but the static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root = scope.get("root_path", "")
        static = str(scope.get("path", "")).startswith(f"{root}/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                headers.extend(SECURITY_HEADERS)
                headers.append((b"cache-control", b"no-cache" if static else b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- templates --------------------------------------------------------------------------------


def _utc_text(value: str | None) -> str:
    """The no-JavaScript rendering of an RFC 3339 time (console.js shows it in the viewer's zone)."""
    if not value:
        return ""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc_text"] = _utc_text
    env.globals["version"] = __version__
    return env


templates = Jinja2Templates(env=_environment())


def prefix_of(request: Request) -> str:
    """Where the console is mounted (`/console`): links, forms and the cookie path use it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    session: ConsoleSession | None = getattr(request.state, "console_session", None)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    values: dict[str, Any] = {
        "prefix": prefix_of(request),
        "session": session,
        "principal": session.principal if session else None,
        "csrf_token": session.csrf_token if session else "",
        "notice": notice,
        "section": "",
    }
    values.update(context or {})
    return templates.TemplateResponse(request, template, values, status_code=status, headers=dict(headers or {}))


def redirect(request: Request, path: str, notice: str | None = None) -> RedirectResponse:
    """303 to a console path (after a POST: the browser then GETs it)."""
    target = f"{prefix_of(request)}{path}"
    if notice is not None:
        assert notice in NOTICES
        target += ("&" if "?" in target else "?") + f"notice={notice}"
    return RedirectResponse(target, status_code=303)


# -- services and the database -----------------------------------------------------------------


def services_of(request: Request) -> Services:
    """The service's Services; the console is a mounted app, so they are on its parent."""
    parent = request.app.state.parent
    services: Services = parent.state.services
    return services


async def blocking(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """A blocking domain call off the event loop, bounded by DB_TIMEOUT (503 after it)."""
    timeout = services_of(request).settings.db_timeout
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout)
    except TimeoutError:
        raise ServiceUnavailable("postgres", f"postgres did not answer within {timeout:g}s") from None


# -- sessions ---------------------------------------------------------------------------------


class SignInRequired(Exception):
    """No live session: the exception handler redirects to the sign-in page."""

    def __init__(self, notice: str | None = None) -> None:
        super().__init__(notice)
        self.notice = notice


async def _session(request: Request) -> ConsoleSession:
    services = services_of(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        raise SignInRequired
    session = await blocking(request, services.sessions.resume, session_id)
    if session is None:
        raise SignInRequired("expired")
    principal = session.principal
    structlog.contextvars.bind_contextvars(tenant=principal.tenant, key_id=principal.key_id)
    request.state.console_session = session
    state = await services.limiter.check(principal.key_id, "key", principal.rate_limit_per_minute)
    if state is not None:
        request.state.ratelimit = state
    return session


SessionDep = Annotated[ConsoleSession, Depends(_session)]


async def _admin_session(session: SessionDep) -> ConsoleSession:
    if not session.principal.is_admin:
        AUTH_FAILURES.labels("forbidden").inc()
        raise Forbidden("This page needs an admin key")
    return session


AdminSessionDep = Annotated[ConsoleSession, Depends(_admin_session)]


def principal_of(session: ConsoleSession) -> Principal:
    return session.principal


# -- CSRF -------------------------------------------------------------------------------------


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def require_same_origin(request: Request) -> None:
    """Refuse a state-changing request that a browser did not send from one of our pages."""
    expected = own_origin(request)
    origin = request.headers.get("origin")
    if origin is not None:
        if origin != expected:
            raise Forbidden("Cross-origin request refused", {"origin": origin[:200]})
        return
    referer = request.headers.get("referer")
    if referer is None:
        raise Forbidden("Request refused: it carries neither Origin nor Referer")
    parts = urlsplit(referer)
    if f"{parts.scheme}://{parts.netloc}" != expected:
        raise Forbidden("Cross-origin request refused")


async def _form(request: Request) -> FormData:
    """The posted fields, no files. A NUL character (`%00` in a form, which the middleware's body
    check does not see) is refused here, as the API refuses it in every body."""
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    for name, value in form.multi_items():
        if isinstance(value, str) and has_nul(value):
            raise InvalidRequest(f"NUL characters are not allowed (field '{name[:40]}')", {"field": name[:40]})
    return form


async def read_form(request: Request) -> FormData:
    """The posted fields (no files), after the origin check."""
    require_same_origin(request)
    return await _form(request)


async def _checked_form(request: Request) -> tuple[ConsoleSession, FormData]:
    """Origin first (a forged request is refused before anything is looked up), then the
    session, then its synchronizer token."""
    require_same_origin(request)
    session = await _session(request)
    form = await _form(request)
    token = form.get(CSRF_FIELD)
    if not session.csrf_matches(token if isinstance(token, str) else None):
        AUTH_FAILURES.labels("forbidden").inc()
        raise Forbidden("Request refused: the form's CSRF token is missing or wrong; reload the page")
    return session, form


PostDep = Annotated[tuple[ConsoleSession, FormData], Depends(_checked_form)]


async def _checked_admin_form(post: PostDep) -> tuple[ConsoleSession, FormData]:
    await _admin_session(post[0])
    return post


AdminPostDep = Annotated[tuple[ConsoleSession, FormData], Depends(_checked_admin_form)]


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def new_signin_token() -> str:
    return secrets.token_urlsafe(32)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=prefix_of(request) or "/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=prefix_of(request) or "/", secure=request.url.scheme == "https", httponly=True, samesite="strict"
    )

"""The console's pages for every key: sign-in, users, memories, search, edits, erasure, jobs.

Each page calls the same domain functions as the REST routes (no HTTP round trip to ourselves),
scoped to the session's tenant exactly as the API scopes a request to its key's tenant.
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from memory_service.api.console.web import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    SIGNIN_COOKIE_SECONDS,
    PostDep,
    SessionDep,
    blocking,
    clear_cookie,
    field,
    new_signin_token,
    read_form,
    redirect,
    render,
    services_of,
    set_cookie,
)
from memory_service.api.routes.jobs import JobOut
from memory_service.api.schemas import UpdateMemoryRequest, check_sizes
from memory_service.core.ids import is_valid_id
from memory_service.core.json_rules import JSONProblem, loads_strict
from memory_service.errors import Forbidden, InvalidRequest, MemoryNotFound, NotFound, ServiceUnavailable
from memory_service.models.memory import MemoryRecord
from memory_service.models.scope import Scope
from memory_service.observability.metrics import AUTH_FAILURES

router = APIRouter()

PAGE_SIZE = 20
SEARCH_LIMIT = 20
ENTITY_LIMIT = 30
MAX_QUERY = 1000
Cursor = Annotated[str | None, Query(max_length=512)]
# Keys the console does not offer for editing: entities are derived (send them explicitly to
# add names), `inference` is set by the service.
NOT_EDITABLE = frozenset({"entities", "inference"})


def _user_scope(session: SessionDep, user_id: str) -> Scope:
    if not is_valid_id(user_id):
        raise NotFound(f"No user '{user_id}'", {"user_id": user_id})
    return Scope(session.principal.tenant, user_id)


def editable_metadata(record: MemoryRecord) -> dict[str, Any]:
    return {k: v for k, v in record.metadata.items() if k not in NOT_EDITABLE}


# -- sign-in and sign-out ---------------------------------------------------------------------


@router.get("/", include_in_schema=False)
async def home(request: Request) -> RedirectResponse:
    return redirect(request, "/users")


@router.get("/login")
async def login_page(request: Request) -> Response:
    if request.cookies.get(SESSION_COOKIE):
        session = await blocking(request, services_of(request).sessions.resume, request.cookies[SESSION_COOKIE])
        if session is not None:
            return redirect(request, "/users")
    return _login_form(request)


def _login_form(request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
    token = new_signin_token()
    response = render(request, "login.html", {"signin_token": token, "error": error}, status=status)
    set_cookie(request, response, SIGNIN_COOKIE, token, SIGNIN_COOKIE_SECONDS)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Exchange the key for a session. The key travels only in this POST's body: it is never put
    in a URL, a log line or a page (the form is re-rendered empty on failure)."""
    form = await read_form(request)
    token, cookie = field(form, "signin_token"), request.cookies.get(SIGNIN_COOKIE, "")
    if not token or not cookie or not _equal(token, cookie):
        AUTH_FAILURES.labels("forbidden").inc()
        raise Forbidden("Sign-in refused: the form has expired or was not sent from this page; reload it")
    services = services_of(request)
    key = field(form, "api_key").strip()
    opened = await blocking(request, services.sessions.open, key) if key else None
    if opened is None:
        AUTH_FAILURES.labels("missing" if not key else "invalid").inc()
        state = await services.limiter.check(_address(request), "address")  # slows guessing, as the API does
        if state is not None:
            request.state.ratelimit = state
        return _login_form(request, "Enter a valid API key." if not key else "That key is not valid.", status=401)
    session_id, principal = opened
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:  # signing in again replaces the browser's session: the old one ends now
        await blocking(request, services.sessions.end, previous)
    try:
        state = await services.limiter.check(principal.key_id, "key", principal.rate_limit_per_minute)
    except BaseException:
        await blocking(request, services.sessions.end, session_id)
        raise
    if state is not None:
        request.state.ratelimit = state
    response = redirect(request, "/users")
    set_cookie(request, response, SESSION_COOKIE, session_id, int(services.sessions.lifetime_seconds))
    clear_cookie(request, response, SIGNIN_COOKIE)
    return response


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/logout")
async def logout(request: Request, post: PostDep) -> Response:
    session, _ = post
    await blocking(request, services_of(request).sessions.close, session)
    response = redirect(request, "/login", "signed-out")
    clear_cookie(request, response, SESSION_COOKIE)
    return response


# -- users and memories -----------------------------------------------------------------------


@router.get("/users")
async def users(request: Request, session: SessionDep, after: Cursor = None) -> HTMLResponse:
    engine = services_of(request).engine
    page = await engine.users(session.principal.tenant, limit=PAGE_SIZE, after=after)
    return render(request, "users.html", {"page": page, "after": after, "section": "users"})


@router.get("/users/open")
async def open_user(
    request: Request, session: SessionDep, user_id: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    """The "open a user" box: a user id typed by hand goes to that user's page."""
    user_id = user_id.strip()
    if not is_valid_id(user_id):
        raise InvalidRequest("A user id is 1-128 letters, digits and _ . : @ + = ~ - (no spaces or '/')")
    return redirect(request, f"/users/{user_id}")


@router.get("/users/{user_id}")
async def user_page(request: Request, session: SessionDep, user_id: str, cursor: Cursor = None) -> HTMLResponse:
    scope = _user_scope(session, user_id)
    services = services_of(request)
    page = await services.engine.list_user(scope, limit=PAGE_SIZE, cursor=cursor)
    if page.total == 0:
        return render(request, "user_missing.html", {"user_id": user_id, "section": "users"}, status=404)
    entities, source = await services.graph.entities(scope, ENTITY_LIMIT)
    context = {
        "user_id": user_id,
        "page": page,
        "cursor": cursor,
        "entities": entities,
        "entity_source": source,
        "section": "users",
    }
    return render(request, "user.html", context)


@router.get("/users/{user_id}/search")
async def search(
    request: Request,
    session: SessionDep,
    user_id: str,
    q: Annotated[str, Query(max_length=MAX_QUERY)] = "",
    mode: str = "semantic",
) -> HTMLResponse:
    scope = _user_scope(session, user_id)
    if mode not in ("semantic", "text"):
        raise InvalidRequest("mode is 'semantic' or 'text'")
    query = q.strip()
    results: list[MemoryRecord] | None = None
    if query:
        engine = services_of(request).engine
        if mode == "semantic":
            results = await engine.search(scope, query, limit=SEARCH_LIMIT, threshold=None, filters=None)
        else:
            results = await engine.search_text(scope, query, limit=SEARCH_LIMIT)
    context = {"user_id": user_id, "query": query, "mode": mode, "results": results, "section": "users"}
    return render(request, "search.html", context)


@router.get("/memories/{memory_id}")
async def memory_page(request: Request, session: SessionDep, memory_id: str) -> HTMLResponse:
    record = await services_of(request).engine.get(session.principal.tenant, memory_id)
    return await _memory_view(request, session, record)


async def _memory_view(
    request: Request,
    session: SessionDep,
    record: MemoryRecord,
    *,
    error: str | None = None,
    content: str | None = None,
    metadata_text: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The memory with its metadata, entities, relationships, history and the edit form (with
    what was typed, and why it was refused, when an edit is refused)."""
    try:
        history = await services_of(request).engine.history(session.principal.tenant, record.id)
    except MemoryNotFound:  # a memory older than its history (no recorded owner): show none
        history = []
    if metadata_text is None:
        metadata_text = json.dumps(editable_metadata(record), indent=2, ensure_ascii=False, sort_keys=True)
    context = {
        "memory": record,
        "history": history,
        "metadata_json": json.dumps(record.metadata, indent=2, ensure_ascii=False, sort_keys=True),
        "edit_content": record.content if content is None else content,
        "edit_metadata": metadata_text,
        "error": error,
        "section": "users",
    }
    return render(request, "memory.html", context, status=status)


@router.post("/memories/{memory_id}")
async def edit_memory(request: Request, post: PostDep, memory_id: str) -> Response:
    """Change the text and/or metadata (merged into the stored metadata, as PUT /v1/memories/{id})."""
    session, form = post
    services = services_of(request)
    tenant = session.principal.tenant
    current = await services.engine.get(tenant, memory_id)
    content_text = field(form, "content")
    metadata_text = field(form, "metadata")

    async def again(message: str, status: int = 400) -> HTMLResponse:
        return await _memory_view(
            request, session, current, error=message, content=content_text, metadata_text=metadata_text, status=status
        )

    try:
        submitted = loads_strict(metadata_text) if metadata_text.strip() else {}
    except JSONProblem as exc:  # NaN, Infinity, NUL: what the API refuses in every body
        return await again(f"Metadata cannot be stored: {exc}.")
    except ValueError as exc:
        return await again(f"Metadata is not valid JSON: {exc}")
    if not isinstance(submitted, dict):
        return await again('Metadata must be a JSON object, like {"source": "chat"}.')
    stored = editable_metadata(current)
    removed = sorted(set(stored) - set(submitted))
    if removed:
        return await again(
            f"Metadata is merged into what is stored, so keys cannot be removed here: {', '.join(removed)}."
        )
    changes = {k: v for k, v in submitted.items() if stored.get(k, object()) != v}
    content = content_text if content_text != current.content else None
    if content is not None and not content.strip():
        return await again("The text must not be empty.")
    if content is None and not changes:
        return redirect(request, f"/memories/{current.id}", "memory-unchanged")
    try:
        body = UpdateMemoryRequest(content=content, metadata=changes or None)
    except ValidationError as exc:
        return await again("; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors()))
    check_sizes(services.settings.max_memory_size, [body.content] if body.content else [], body.metadata)
    await services.engine.update(tenant, current.id, body.content, body.metadata)
    return redirect(request, f"/memories/{current.id}", "memory-updated")


@router.post("/memories/{memory_id}/delete")
async def delete_memory(request: Request, post: PostDep, memory_id: str) -> Response:
    session, _ = post
    engine = services_of(request).engine
    record = await engine.get(session.principal.tenant, memory_id)
    await engine.delete(session.principal.tenant, record.id)
    return redirect(request, f"/users/{record.user_id}", "memory-deleted")


@router.get("/users/{user_id}/erase")
async def erase_page(request: Request, session: SessionDep, user_id: str) -> HTMLResponse:
    scope = _user_scope(session, user_id)
    stats = await services_of(request).engine.stats(scope)
    return render(request, "erase.html", {"user_id": user_id, "stats": stats, "error": None, "section": "users"})


@router.post("/users/{user_id}/erase")
async def erase_user(request: Request, post: PostDep, user_id: str) -> Response:
    """Erase every memory of the user, once the user id has been typed to confirm."""
    session, form = post
    scope = _user_scope(session, user_id)
    engine = services_of(request).engine
    if field(form, "confirm").strip() != user_id:
        stats = await engine.stats(scope)
        error = "The confirmation does not match the user id; nothing was erased."
        context = {"user_id": user_id, "stats": stats, "error": error, "section": "users"}
        return render(request, "erase.html", context, status=400)
    await engine.erase_user(scope)
    return redirect(request, "/users", "user-erased")


# -- jobs -------------------------------------------------------------------------------------


@router.get("/jobs")
async def jobs(request: Request, session: SessionDep, before: Cursor = None) -> HTMLResponse:
    runner = services_of(request).jobs
    if runner is None:
        raise ServiceUnavailable("jobs", "asynchronous jobs are not running in this process")
    listed, next_before = await blocking(request, runner.recent, session.principal.tenant, PAGE_SIZE, before)
    rows = [JobOut.of(job) for job in listed]
    return render(request, "jobs.html", {"jobs": rows, "before": before, "next_before": next_before, "section": "jobs"})


@router.get("/jobs/{job_id}")
async def job_page(request: Request, session: SessionDep, job_id: str) -> HTMLResponse:
    runner = services_of(request).jobs
    if runner is None:
        raise ServiceUnavailable("jobs", "asynchronous jobs are not running in this process")
    job = await blocking(request, runner.get, session.principal.tenant, job_id)
    return render(request, "job.html", {"job": JobOut.of(job), "section": "jobs"})

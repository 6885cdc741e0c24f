"""The console's admin pages: API keys (create, shown once; list; revoke), their rate limits,
webhooks and their deliveries, and the health panel. Everything is limited to the signed-in
key's own tenant (the key service's tenant filter, the webhook service's tenant argument): an
admin key administers its tenant, not the service.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from memory_service import __version__
from memory_service.api.console.web import AdminPostDep, AdminSessionDep, blocking, field, redirect, render, services_of
from memory_service.errors import InvalidRequest, NotFound
from memory_service.models.keys import KeyInfo, Role
from memory_service.models.webhooks import EVENT_TYPES

router = APIRouter(prefix="/admin")

MAX_NAME = 200
CREATABLE_ROLES = (Role.USER, Role.ADMIN)


async def _tenant_keys(request: Request, tenant: str) -> list[KeyInfo]:
    """The tenant's user and admin keys, active first: the keys an admin key may manage (a key
    of any other role, such as a service-wide operator key, is neither listed nor revocable)."""
    keys = await blocking(request, services_of(request).keys.list_keys, tenant, True)
    managed = [k for k in keys if k.role in CREATABLE_ROLES]
    return sorted(managed, key=lambda k: (k.revoked_at is not None, k.created_at))


@router.get("/keys")
async def keys_page(request: Request, session: AdminSessionDep) -> HTMLResponse:
    keys = await _tenant_keys(request, session.principal.tenant)
    return _keys_view(request, keys)


def _keys_view(
    request: Request,
    keys: list[KeyInfo],
    *,
    error: str | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    settings = services_of(request).settings
    context = {
        "keys": keys,
        "roles": [r.value for r in CREATABLE_ROLES],
        "default_limit": settings.rate_limit_per_minute,
        "default_burst": settings.rate_limit_burst,
        "burst_seconds": settings.rate_limit_burst_seconds,
        "error": error,
        "form": form or {"name": "", "role": "user", "rate_limit": ""},
        "section": "keys",
    }
    return render(request, "keys.html", context, status=status)


@router.post("/keys")
async def create_key(request: Request, post: AdminPostDep) -> Response:
    """Create a key in this tenant; the answer shows it once (only its hash is stored)."""
    session, form = post
    tenant = session.principal.tenant
    values = {"name": field(form, "name").strip(), "role": field(form, "role"), "rate_limit": field(form, "rate_limit")}
    try:
        role = Role(values["role"])
        if role not in CREATABLE_ROLES:
            raise ValueError(role)
    except ValueError:
        raise InvalidRequest("role must be 'user' or 'admin'") from None
    error = None
    rate_limit: int | None = None
    if len(values["name"]) > MAX_NAME:
        error = f"The name is at most {MAX_NAME} characters."
    elif values["rate_limit"].strip():
        try:
            rate_limit = int(values["rate_limit"])
        except ValueError:
            rate_limit = 0
        if rate_limit < 1:
            error = "The rate limit is a whole number of requests per minute, 1 or more (empty: the default)."
    if error is not None:
        return _keys_view(request, await _tenant_keys(request, tenant), error=error, status=400, form=values)
    keys = services_of(request).keys
    key, info = await blocking(request, keys.create, tenant, role, values["name"] or None, rate_limit)
    return render(request, "key_created.html", {"key": key, "info": info, "section": "keys"}, status=201)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, post: AdminPostDep, key_id: str) -> Response:
    session, _ = post
    services = services_of(request)
    owned = {k.id for k in await _tenant_keys(request, session.principal.tenant)}
    if key_id not in owned:  # another tenant's key is as unknown as a key that does not exist
        raise NotFound(f"API key '{key_id}' not found", {"id": key_id})
    await blocking(request, services.keys.revoke, key_id)
    await blocking(request, services.sessions.key_revoked, key_id)
    return redirect(request, "/admin/keys", "key-revoked")


@router.get("/health")
async def health_page(request: Request, session: AdminSessionDep) -> HTMLResponse:
    services = services_of(request)
    settings = services.settings
    queues: list[tuple[str, int | None, str]] = []
    if services.jobs is not None:
        depths = await blocking(request, services.jobs.depths, session.principal.tenant)
        queues.append(("Asynchronous adds queued", depths["queued"], "this tenant"))
        queues.append(("Asynchronous adds running", depths["running"], "this tenant"))
    if services.projector is not None:
        queues.append(
            ("Graph changes waiting for Neo4j", await blocking(request, services.projector.pending), "service")
        )
    context = {
        "healthy": services.health.healthy,
        "dependencies": sorted(services.health.results.items()),
        "version": __version__,
        "profile": settings.profile,
        "environment": settings.app_env,
        "uptime_seconds": int(time.monotonic() - services.started_at),
        "providers": sorted(services.providers.items()),
        "queues": queues,
        "grafana_url": settings.grafana_url,
        "section": "health",
    }
    return render(request, "health.html", context)


# -- webhooks -----------------------------------------------------------------------------------
# The tenant's webhooks and their deliveries, through the same WebhookService as /v1/webhooks.

DELIVERY_PAGE = 20


@router.get("/webhooks")
async def webhooks_page(request: Request, session: AdminSessionDep) -> HTMLResponse:
    return await _webhooks_view(request, session)


async def _webhooks_view(
    request: Request, session: AdminSessionDep, *, error: str | None = None, form: dict[str, Any] | None = None
) -> HTMLResponse:
    webhooks = await services_of(request).webhooks.list_webhooks(session.principal.tenant)
    context = {
        "webhooks": webhooks,
        "event_types": EVENT_TYPES,
        "error": error,
        "form": form or {"url": "", "description": "", "event_types": list(EVENT_TYPES)},
        "section": "webhooks",
    }
    return render(request, "webhooks.html", context, status=400 if error else 200)


@router.post("/webhooks")
async def create_webhook(request: Request, post: AdminPostDep) -> Response:
    """Create a webhook; the answer shows its signing secret once."""
    session, form = post
    url, description = field(form, "url").strip(), field(form, "description").strip()
    event_types = [v for v in form.getlist("event_types") if isinstance(v, str)]
    values: dict[str, Any] = {"url": url, "description": description, "event_types": event_types}
    if not event_types:
        return await _webhooks_view(request, session, error="Choose at least one event type.", form=values)
    try:
        webhook, secret = await services_of(request).webhooks.create(
            session.principal.tenant, url, event_types, description=description or None
        )
    except InvalidRequest as exc:
        return await _webhooks_view(request, session, error=exc.message, form=values)
    return render(
        request, "webhook_created.html", {"webhook": webhook, "secret": secret, "section": "webhooks"}, status=201
    )


@router.get("/webhooks/{webhook_id}")
async def webhook_page(
    request: Request,
    session: AdminSessionDep,
    webhook_id: str,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> HTMLResponse:
    service = services_of(request).webhooks
    tenant = session.principal.tenant
    webhook = await service.get(tenant, webhook_id)
    page = await service.deliveries(tenant, webhook.id, limit=DELIVERY_PAGE, cursor=cursor)
    context = {"webhook": webhook, "page": page, "cursor": cursor, "section": "webhooks"}
    return render(request, "webhook.html", context)


@router.post("/webhooks/{webhook_id}/test")
async def test_webhook(request: Request, post: AdminPostDep, webhook_id: str) -> Response:
    session, _ = post
    await services_of(request).webhooks.send_test(session.principal.tenant, webhook_id)
    return redirect(request, f"/admin/webhooks/{webhook_id}", "webhook-test-queued")


@router.post("/webhooks/{webhook_id}/enabled")
async def toggle_webhook(request: Request, post: AdminPostDep, webhook_id: str) -> Response:
    session, form = post
    enabled = field(form, "enabled") == "true"
    await services_of(request).webhooks.update(session.principal.tenant, webhook_id, enabled=enabled)
    return redirect(request, f"/admin/webhooks/{webhook_id}", "webhook-enabled" if enabled else "webhook-disabled")


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(request: Request, post: AdminPostDep, webhook_id: str, delivery_id: str) -> Response:
    session, _ = post
    await services_of(request).webhooks.redeliver(session.principal.tenant, webhook_id, delivery_id)
    return redirect(request, f"/admin/webhooks/{webhook_id}", "delivery-queued")


@router.post("/webhooks/{webhook_id}/delete")
async def delete_webhook(request: Request, post: AdminPostDep, webhook_id: str) -> Response:
    session, _ = post
    await services_of(request).webhooks.delete(session.principal.tenant, webhook_id)
    return redirect(request, "/admin/webhooks", "webhook-deleted")

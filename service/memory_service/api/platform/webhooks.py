"""Webhooks in the mem0 Platform dialect: `get_webhooks`, `create_webhook`, `update_webhook` and
`delete_webhook` of mem0's official clients, over the same WebhookService as `/v1/webhooks`.

Only the vocabulary differs (domain/webhooks/platform.py): the Platform's event names
(`memory_add`, `memory:add`, ...), `name` for the description, `is_active` for enabled, and a
Platform project, which here is the key's tenant (the ping answers it as `project_id`). Webhooks
made here send the Platform's body (`{"event_details": ...}`, PayloadFormat.MEM0), signed like
every other. Admin keys only, as on `/v1/webhooks`: a webhook sends the tenant's memories to a
URL of the caller's choosing. Another tenant's webhook or project answers 404 like an unknown one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field, StrictBool
from pydantic.config import JsonDict

from memory_service.api.deps import AdminPrincipal, services_of
from memory_service.api.dialects import PLATFORM_TAG
from memory_service.api.platform.schemas import PlatformJSON, _Strict, platform_errors
from memory_service.core.timefmt import rfc3339
from memory_service.domain.webhooks.platform import PLATFORM_EVENTS, from_platform_events, to_platform_events
from memory_service.domain.webhooks.service import WebhookService
from memory_service.errors import NotFound
from memory_service.models.webhooks import PayloadFormat, Webhook

router = APIRouter(tags=[PLATFORM_TAG], default_response_class=PlatformJSON)
EVENT_NAMES = ", ".join(PLATFORM_EVENTS)
# The Platform's names and their `memory_add` spelling, as from_platform_events accepts them.
EVENT_TYPES_SCHEMA: JsonDict = {
    "items": {"type": "string", "enum": [*PLATFORM_EVENTS, *(name.replace(":", "_") for name in PLATFORM_EVENTS)]}
}


async def get_webhooks(request: Request) -> WebhookService:
    return services_of(request).webhooks


WebhooksDep = Annotated[WebhookService, Depends(get_webhooks)]
ProjectId = Annotated[str, Path(max_length=200, description="The key's tenant (the ping's `project_id`)")]
WebhookId = Annotated[str, Path(max_length=100)]


class ProjectNotFound(NotFound):
    def __init__(self, project_id: str) -> None:
        super().__init__(
            f"No project '{project_id}' for this key: its project is its tenant (the ping's project_id)",
            {"project_id": project_id},
        )


class CreateWebhookRequest(_Strict):
    """`POST /api/v1/webhooks/projects/{project_id}/` (mem0 client: create_webhook)."""

    url: str = Field(min_length=1, max_length=2048, description="https URL (http only where the operator allows)")
    name: str = Field(min_length=1, max_length=500, description="Kept as the webhook's description")
    event_types: list[str] = Field(
        min_length=1,
        max_length=10,
        description=f"Of {EVENT_NAMES} (or memory_add, ...)",
        json_schema_extra=EVENT_TYPES_SCHEMA,
    )


class UpdateWebhookRequest(_Strict):
    """`PUT /api/v1/webhooks/{webhook_id}/` (mem0 client: update_webhook); what is given changes."""

    url: str | None = Field(None, min_length=1, max_length=2048)
    name: str | None = Field(None, min_length=1, max_length=500)
    event_types: list[str] | None = Field(None, min_length=1, max_length=10, json_schema_extra=EVENT_TYPES_SCHEMA)
    is_active: StrictBool | None = None


class PlatformWebhook(BaseModel):
    webhook_id: str
    name: str | None
    url: str
    project: str = Field(description="The key's tenant")
    event_types: list[str] = Field(examples=[["memory:add", "memory:delete"]])
    is_active: bool
    created_at: str | None
    updated_at: str | None


class CreatedWebhook(PlatformWebhook):
    secret: str = Field(description="The signing secret (Standard Webhooks, whsec_...), shown this once")


class UpdatedWebhook(PlatformWebhook):
    message: str


class WebhookMessage(BaseModel):
    message: str


def webhook_object(webhook: Webhook) -> dict[str, Any]:
    return {
        "webhook_id": webhook.id,
        "name": webhook.description,
        "url": webhook.url,
        "project": webhook.tenant,
        "event_types": to_platform_events(webhook.event_types),
        "is_active": webhook.enabled,
        "created_at": rfc3339(webhook.created_at),
        "updated_at": rfc3339(webhook.updated_at),
    }


def _own_project(principal_tenant: str, project_id: str) -> None:
    if project_id != principal_tenant:
        raise ProjectNotFound(project_id)


@router.get(
    "/api/v1/webhooks/projects/{project_id}/", summary="The tenant's webhooks (mem0 client: get_webhooks)",
    response_model=list[PlatformWebhook], responses=platform_errors(403, 404),
)  # fmt: skip
async def list_webhooks(project_id: ProjectId, principal: AdminPrincipal, webhooks: WebhooksDep) -> PlatformJSON:
    _own_project(principal.tenant, project_id)
    return PlatformJSON([webhook_object(w) for w in await webhooks.list_webhooks(principal.tenant)])


@router.post(
    "/api/v1/webhooks/projects/{project_id}/", summary="Create a webhook (mem0 client: create_webhook)",
    response_model=CreatedWebhook, status_code=201, responses=platform_errors(403, 404),
)  # fmt: skip
async def create_webhook(
    project_id: ProjectId, body: CreateWebhookRequest, principal: AdminPrincipal, webhooks: WebhooksDep
) -> PlatformJSON:
    _own_project(principal.tenant, project_id)
    webhook, secret = await webhooks.create(
        principal.tenant,
        body.url,
        from_platform_events(body.event_types),
        description=body.name,
        format_=PayloadFormat.MEM0,
    )
    return PlatformJSON({**webhook_object(webhook), "secret": secret}, status_code=201)


@router.put(
    "/api/v1/webhooks/{webhook_id}/", summary="Change a webhook (mem0 client: update_webhook)",
    response_model=UpdatedWebhook, responses=platform_errors(403, 404),
)  # fmt: skip
async def update_webhook(
    webhook_id: WebhookId, body: UpdateWebhookRequest, principal: AdminPrincipal, webhooks: WebhooksDep
) -> PlatformJSON:
    webhook = await webhooks.update(
        principal.tenant,
        webhook_id,
        url=body.url,
        event_types=from_platform_events(body.event_types) if body.event_types is not None else None,
        description=body.name,
        enabled=body.is_active,
    )
    return PlatformJSON({"message": "Webhook updated successfully", **webhook_object(webhook)})


@router.delete(
    "/api/v1/webhooks/{webhook_id}/", summary="Delete a webhook (mem0 client: delete_webhook)",
    response_model=WebhookMessage, responses=platform_errors(403, 404),
)  # fmt: skip
async def delete_webhook(webhook_id: WebhookId, principal: AdminPrincipal, webhooks: WebhooksDep) -> PlatformJSON:
    await webhooks.delete(principal.tenant, webhook_id)
    return PlatformJSON({"message": "Webhook deleted successfully"})

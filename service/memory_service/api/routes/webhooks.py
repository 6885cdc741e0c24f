"""Webhooks of the caller's tenant: manage them, test them, see and redrive their deliveries.

Admin keys only: a webhook sends every memory of the tenant to a URL of the caller's choosing,
which is more than a user key (one integration's key) should be able to arrange. Every route is
scoped to the key's tenant; another tenant's webhook id answers 404 like an unknown one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from memory_service.api.deps import AdminPrincipal, services_of
from memory_service.api.envelope import Envelope, error_responses, ok
from memory_service.domain.webhooks.service import WebhookService
from memory_service.models.webhooks import EVENT_TYPES, Delivery, PayloadFormat, Webhook

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

EventTypeName = Literal[
    "memory.created", "memory.updated", "memory.deleted", "user.erased", "job.completed", "job.failed"
]
FormatName = Literal["standard", "mem0"]
assert get_args(EventTypeName) == EVENT_TYPES, "the documented event types are the model's"


def _every_event_type() -> list[EventTypeName]:
    return list(get_args(EventTypeName))


DeliveryState = Literal["pending", "succeeded", "dead"]


async def get_webhooks(request: Request) -> WebhookService:
    return services_of(request).webhooks


WebhooksDep = Annotated[WebhookService, Depends(get_webhooks)]


class CreateWebhookRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/memories",
                    "event_types": ["memory.created", "memory.deleted"],
                    "description": "sync to the CRM",
                }
            ]
        },
    )
    url: str = Field(min_length=1, max_length=2048, description="https URL (http only where allowed)")
    event_types: list[EventTypeName] = Field(
        default_factory=_every_event_type, min_length=1, description="Default: every event type"
    )
    description: str | None = Field(None, max_length=500)
    enabled: bool = True
    format: FormatName = Field("standard", description="standard; mem0: the mem0 Platform's body for memory events")


class UpdateWebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}]})
    url: str | None = Field(None, min_length=1, max_length=2048)
    event_types: list[EventTypeName] | None = Field(None, min_length=1)
    description: str | None = Field(None, max_length=500, description="null removes it")
    enabled: bool | None = None
    format: FormatName | None = None


class RotateSecretRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap_seconds: float | None = Field(
        None,
        ge=0,
        le=30 * 86_400,
        description="How long the previous secret stays valid (default WEBHOOK_SECRET_OVERLAP_SECONDS)",
    )


class WebhookOut(BaseModel):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    format: str
    created_at: str
    updated_at: str
    previous_secret_expires_at: str | None = Field(
        description="During a rotation's overlap: until when deliveries are also signed with the previous secret"
    )

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookOut:
        return cls(**webhook.public())


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="Signing secret (whsec_...), shown only once", examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
    )


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]
    count: int


class WebhookDeleted(BaseModel):
    id: str
    deleted: bool = True


class SecretRotated(BaseModel):
    webhook: WebhookOut
    secret: str = Field(description="The new signing secret, shown only once")


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str
    event_id: str = Field(description="The `webhook-id` header of every attempt: receivers deduplicate on it")
    event_type: str
    state: DeliveryState
    attempts: int
    next_attempt_at: str | None = Field(description="While pending: when the next attempt is due")
    last_attempt_at: str | None
    last_status_code: int | None
    last_duration_ms: float | None
    last_error: str | None
    last_response_excerpt: str | None = Field(description="The start of the receiver's last answer (200 characters)")
    created_at: str
    finished_at: str | None

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(**delivery.public())


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]
    limit: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


def _accepted(delivery: Delivery, message: str) -> JSONResponse:
    body: Envelope[Any] = ok(DeliveryOut.of(delivery), message)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a webhook",
    responses=error_responses(401, 403, 429),
)
async def create_webhook(
    body: CreateWebhookRequest, admin: AdminPrincipal, webhooks: WebhooksDep
) -> Envelope[WebhookCreated]:
    webhook, secret = await webhooks.create(
        admin.tenant,
        body.url,
        body.event_types,
        description=body.description,
        enabled=body.enabled,
        format_=PayloadFormat(body.format),
    )
    return ok(WebhookCreated(secret=secret, **webhook.public()), "Webhook created; its secret is shown only once")


@router.get("", summary="List webhooks", responses=error_responses(401, 403, 429))
async def list_webhooks(admin: AdminPrincipal, webhooks: WebhooksDep) -> Envelope[WebhookList]:
    found = await webhooks.list_webhooks(admin.tenant)
    return ok(WebhookList(webhooks=[WebhookOut.of(w) for w in found], count=len(found)))


@router.get("/{webhook_id}", summary="Get a webhook", responses=error_responses(401, 403, 404, 429))
async def get_webhook(webhook_id: str, admin: AdminPrincipal, webhooks: WebhooksDep) -> Envelope[WebhookOut]:
    return ok(WebhookOut.of(await webhooks.get(admin.tenant, webhook_id)))


@router.patch("/{webhook_id}", summary="Change a webhook", responses=error_responses(401, 403, 404, 429))
async def update_webhook(
    webhook_id: str, body: UpdateWebhookRequest, admin: AdminPrincipal, webhooks: WebhooksDep
) -> Envelope[WebhookOut]:
    given = body.model_fields_set
    webhook = await webhooks.update(
        admin.tenant,
        webhook_id,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        enabled=body.enabled,
        format_=PayloadFormat(body.format) if body.format is not None else None,
        clear_description="description" in given and body.description is None,
    )
    return ok(WebhookOut.of(webhook), "Webhook updated")


@router.delete("/{webhook_id}", summary="Delete a webhook", responses=error_responses(401, 403, 404, 429))
async def delete_webhook(webhook_id: str, admin: AdminPrincipal, webhooks: WebhooksDep) -> Envelope[WebhookDeleted]:
    await webhooks.delete(admin.tenant, webhook_id)
    return ok(WebhookDeleted(id=webhook_id), "Webhook deleted; deliveries still waiting for it are dropped")


@router.post(
    "/{webhook_id}/rotate-secret",
    summary="Rotate a webhook's signing secret",
    responses=error_responses(401, 403, 404, 429),
)
async def rotate_secret(
    webhook_id: str, admin: AdminPrincipal, webhooks: WebhooksDep, body: RotateSecretRequest | None = None
) -> Envelope[SecretRotated]:
    overlap = body.overlap_seconds if body is not None else None
    webhook, secret = await webhooks.rotate_secret(admin.tenant, webhook_id, overlap)
    return ok(
        SecretRotated(webhook=WebhookOut.of(webhook), secret=secret),
        "Secret rotated; the new one is shown only once",
    )


@router.post(
    "/{webhook_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a test event",
    response_model=Envelope[DeliveryOut],
    responses=error_responses(401, 403, 404, 429),
)
async def send_test(webhook_id: str, admin: AdminPrincipal, webhooks: WebhooksDep) -> JSONResponse:
    delivery = await webhooks.send_test(admin.tenant, webhook_id)
    return _accepted(delivery, "Test event queued; its delivery shows the outcome")


@router.get(
    "/{webhook_id}/deliveries",
    summary="Deliveries of a webhook, newest first",
    responses=error_responses(401, 403, 404, 429),
)
async def list_deliveries(
    webhook_id: str,
    admin: AdminPrincipal,
    webhooks: WebhooksDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page")] = None,
    state: Annotated[DeliveryState | None, Query(description="Only deliveries in this state")] = None,
) -> Envelope[DeliveryList]:
    page = await webhooks.deliveries(admin.tenant, webhook_id, limit=limit, cursor=cursor, state=state)
    return ok(
        DeliveryList(deliveries=[DeliveryOut.of(d) for d in page.items], limit=limit, next_cursor=page.next_cursor)
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a delivery again",
    response_model=Envelope[DeliveryOut],
    responses=error_responses(401, 403, 404, 429),
)
async def redeliver(webhook_id: str, delivery_id: str, admin: AdminPrincipal, webhooks: WebhooksDep) -> JSONResponse:
    delivery = await webhooks.redeliver(admin.tenant, webhook_id, delivery_id)
    return _accepted(delivery, "Delivery queued again")

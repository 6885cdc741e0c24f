"""Managing a tenant's webhooks: the rules every surface shares (REST routes, the Platform dialect).

Every method takes the caller's tenant and touches only that tenant's webhooks: another tenant's
id is "not found", exactly like an id that does not exist. URLs are checked (targets.py) before
anything is stored; the secret is generated here and returned once, by `create` and
`rotate_secret`, never by a read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from memory_service.domain.webhooks.signing import generate_secret
from memory_service.domain.webhooks.targets import TargetPolicy, TargetRefused, resolve
from memory_service.errors import InvalidRequest, NotFound
from memory_service.models.webhooks import (
    EVENT_TYPES,
    Delivery,
    DeliveryPage,
    PayloadFormat,
    Webhook,
    webhook_test_event,
)
from memory_service.settings import Settings
from memory_service.storage.webhooks import WebhookStore

MAX_DESCRIPTION = 500
DELIVERY_STATES = ("pending", "succeeded", "dead")


class WebhookNotFound(NotFound):
    def __init__(self, webhook_id: str) -> None:
        super().__init__(f"Webhook with ID '{webhook_id}' not found", {"id": webhook_id})


class DeliveryNotFound(NotFound):
    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"Delivery with ID '{delivery_id}' not found", {"id": delivery_id})


def check_event_types(event_types: Sequence[str]) -> list[str]:
    """Known types, each once, in the order given; 400 naming an unknown one."""
    if not event_types:
        raise InvalidRequest("event_types must name at least one event type", {"field": "event_types"})
    result: list[str] = []
    for name in event_types:
        if name not in EVENT_TYPES:
            raise InvalidRequest(
                f"unknown event type '{name}' (allowed: {', '.join(EVENT_TYPES)})",
                {"field": "event_types", "allowed": list(EVENT_TYPES)},
            )
        if name not in result:
            result.append(name)
    return result


def _check_description(description: str | None) -> str | None:
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise InvalidRequest(f"description must be at most {MAX_DESCRIPTION} characters", {"field": "description"})
    return description


class WebhookService:
    """A tenant's webhooks: create, read, change, delete, rotate, test, deliveries, redeliver."""

    def __init__(self, store: WebhookStore, settings: Settings, wake: Callable[[], None] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.policy = TargetPolicy(settings.webhook_allow_private_targets, settings.webhook_http_allowed)
        # Wakes this process's delivery worker after a test delivery or a redelivery.
        self.wake: Callable[[], None] = wake or (lambda: None)

    async def _checked_url(self, url: str) -> str:
        try:
            async with asyncio.timeout(self.settings.webhook_timeout):
                await resolve(url, self.policy)
        except TimeoutError:
            raise TargetRefused("url host does not resolve (DNS did not answer in time)", "dns", url) from None
        return url

    async def create(
        self,
        tenant: str,
        url: str,
        event_types: Sequence[str] = EVENT_TYPES,
        *,
        description: str | None = None,
        enabled: bool = True,
        format_: PayloadFormat = PayloadFormat.STANDARD,
    ) -> tuple[Webhook, str]:
        """The new webhook and its signing secret (shown to the caller this once)."""
        types = check_event_types(event_types)
        description = _check_description(description)
        await self._checked_url(url)
        secret = generate_secret()
        limit = self.settings.webhook_max_per_tenant
        webhook = await asyncio.to_thread(
            self.store.create, tenant, url, description, types, enabled, format_.value, secret, limit
        )
        if webhook is None:
            raise InvalidRequest(
                f"a tenant may have at most {limit} webhooks (WEBHOOK_MAX_PER_TENANT); delete one first",
                {"limit": limit},
            )
        return webhook, secret

    async def list_webhooks(self, tenant: str) -> list[Webhook]:
        return await asyncio.to_thread(self.store.list_webhooks, tenant)

    async def get(self, tenant: str, webhook_id: str) -> Webhook:
        webhook = await asyncio.to_thread(self.store.get, tenant, webhook_id)
        if webhook is None:
            raise WebhookNotFound(webhook_id)
        return webhook

    async def update(
        self,
        tenant: str,
        webhook_id: str,
        *,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        format_: PayloadFormat | None = None,
        clear_description: bool = False,
    ) -> Webhook:
        """Change what is given (None leaves a field as it is; `clear_description` removes it)."""
        changes: dict[str, Any] = {}
        if event_types is not None:
            changes["event_types"] = check_event_types(event_types)
        if description is not None or clear_description:
            changes["description"] = _check_description(description)
        if enabled is not None:
            changes["enabled"] = enabled
        if format_ is not None:
            changes["format"] = format_.value
        await self.get(tenant, webhook_id)  # 404 before a URL check can say anything about it
        if url is not None:
            changes["url"] = await self._checked_url(url)
        webhook = await asyncio.to_thread(self.store.update, tenant, webhook_id, changes)
        if webhook is None:
            raise WebhookNotFound(webhook_id)
        return webhook

    async def delete(self, tenant: str, webhook_id: str) -> None:
        """Delete the webhook and every delivery still waiting for it: nothing more is sent."""
        if not await asyncio.to_thread(self.store.delete, tenant, webhook_id):
            raise WebhookNotFound(webhook_id)

    async def rotate_secret(
        self, tenant: str, webhook_id: str, overlap_seconds: float | None = None
    ) -> tuple[Webhook, str]:
        """A new secret; the current one stays valid (deliveries carry both signatures) for the overlap."""
        overlap = self.settings.webhook_secret_overlap_seconds if overlap_seconds is None else overlap_seconds
        if not 0 <= overlap <= 30 * 86_400:
            raise InvalidRequest(
                "overlap_seconds must be between 0 and 2592000 (30 days)", {"field": "overlap_seconds"}
            )
        secret = generate_secret()
        webhook = await asyncio.to_thread(self.store.rotate_secret, tenant, webhook_id, secret, overlap)
        if webhook is None:
            raise WebhookNotFound(webhook_id)
        return webhook, secret

    async def send_test(self, tenant: str, webhook_id: str) -> Delivery:
        """Queue a `webhook.test` event for this webhook alone; its delivery shows the outcome."""
        delivery = await asyncio.to_thread(
            self.store.enqueue_test, tenant, webhook_id, webhook_test_event(tenant, webhook_id)
        )
        if delivery is None:
            raise WebhookNotFound(webhook_id)
        self.wake()
        return delivery

    async def deliveries(
        self, tenant: str, webhook_id: str, *, limit: int, cursor: str | None = None, state: str | None = None
    ) -> DeliveryPage:
        if state is not None and state not in DELIVERY_STATES:
            raise InvalidRequest(f"state must be one of {', '.join(DELIVERY_STATES)}", {"field": "state"})
        page = await asyncio.to_thread(
            lambda: self.store.deliveries(tenant, webhook_id, limit=limit, cursor=cursor, state=state)
        )
        if page is None:
            raise WebhookNotFound(webhook_id)
        return page

    async def redeliver(self, tenant: str, webhook_id: str, delivery_id: str) -> Delivery:
        """Send a delivery again now, whatever its state, with a fresh retry period."""
        await self.get(tenant, webhook_id)
        delivery = await asyncio.to_thread(self.store.redeliver, tenant, webhook_id, delivery_id)
        if delivery is None:
            raise DeliveryNotFound(delivery_id)
        self.wake()
        return delivery

"""The delivery worker's pure parts: the back-off schedule and the body each format sends."""

from __future__ import annotations

import json

from memory_service.models.webhooks import ClaimedDelivery, EventType, memory_event
from memory_service.services.webhooks import render_body, retry_delay


def test_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    for attempts, step in [(1, 5.0), (2, 10.0), (3, 20.0), (12, 3600.0), (40, 3600.0)]:
        delays = [retry_delay(attempts, 5.0, 3600.0) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert len(set(delays)) > 1, "jittered"


def test_each_format_renders_its_body() -> None:
    event = memory_event(EventType.MEMORY_CREATED, "m1", {"data": "hi", "user_id": "acme/u"})
    delivery = ClaimedDelivery(id="d", claim="c", webhook_id="w", url="https://x", format="standard", body=event.body)
    standard = json.loads(render_body(delivery))
    assert standard == event.body
    assert list(standard) == ["id", "type", "timestamp", "tenant", "user_id", "data"]
    delivery.format = "mem0"
    assert json.loads(render_body(delivery))["event_details"]["event"] == "ADD"

"""Signing: Standard Webhooks headers that the `standardwebhooks` verifier accepts, one signature
per valid secret (rotation), and nothing another secret accepts."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from memory_service.domain.webhooks.signing import generate_secret, signature_headers
from standardwebhooks import Webhook, WebhookVerificationError

BODY = '{"id":"e1","type":"memory.created","data":{"memory":{"content":"caf\u00e9"}}}'


def test_secrets_are_whsec_and_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


def test_each_secret_alone_verifies_a_rotation_delivery() -> None:
    new, old = generate_secret(), generate_secret()
    headers = signature_headers([new, old], "e1", datetime.now(UTC), BODY)
    assert headers["webhook-id"] == "e1"
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        assert Webhook(secret).verify(BODY, headers)["id"] == "e1"
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_a_changed_body_or_an_old_timestamp_does_not_verify() -> None:
    secret = generate_secret()
    headers = signature_headers([secret], "e1", datetime.now(UTC), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("caf", "cab"), headers)
    stale = signature_headers([secret], "e1", datetime.now(UTC) - timedelta(minutes=10), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, stale)

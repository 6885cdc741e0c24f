"""Standard Webhooks signing (https://www.standardwebhooks.com), with the `standardwebhooks` package.

Each attempt is signed afresh: `webhook-id` is the event id (the same on every attempt, which is
what receivers deduplicate on), `webhook-timestamp` the attempt's time in Unix seconds, and
`webhook-signature` a space-separated list of `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`:
one per valid secret, so during a rotation's overlap window a receiver that still has the
previous secret verifies as well as one that has the new one.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not one
SECRET_BYTES = 32


def generate_secret() -> str:
    """A new signing secret in the Standard Webhooks form: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature_headers(secrets_: Sequence[str], message_id: str, at: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt, signed with every given secret."""
    signatures = " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets_)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }

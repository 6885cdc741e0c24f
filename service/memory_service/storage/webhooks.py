"""Webhook tables: endpoints, the event outbox, and deliveries claimed with `SKIP LOCKED`.

Events are recorded by `enqueue_events` inside the caller's transaction (the memory or job write
they describe: storage/vector_store.py, memory_table.py, jobs.py), so a committed change always
has its event and a rolled-back one never does. One statement per event finds the tenant's
enabled webhooks subscribed to its type and, only if there is one, inserts the event and one
delivery per webhook: a tenant without webhooks pays one index probe.

Deliveries are claimed by UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED), which moves the
row's `next_attempt_at` one lease ahead and stamps a claim token: two workers (processes, hosts)
never take the same delivery, and a worker that dies mid-attempt leaves the row to be claimed
again after the lease (at least once). Outcomes are written only under the claim token, so a
worker whose lease ran out cannot overwrite a newer attempt. The rules (validation, signing,
retries) are in domain/webhooks and services/webhooks.py.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Json

from memory_service.core.timefmt import rfc3339
from memory_service.errors import InvalidRequest
from memory_service.models.webhooks import ClaimedDelivery, Delivery, DeliveryPage, NewEvent, Webhook
from memory_service.storage.database import Database

_FAN_OUT = """
WITH hooks AS (
    SELECT id FROM webhooks WHERE tenant = %(tenant)s AND enabled AND %(type)s = ANY (event_types)
), event AS (
    INSERT INTO webhook_events (id, tenant, type, body)
    SELECT %(id)s, %(tenant)s, %(type)s, %(body)s WHERE EXISTS (SELECT 1 FROM hooks)
    RETURNING id
)
INSERT INTO webhook_deliveries (webhook_id, event_id) SELECT hooks.id, event.id FROM hooks, event
"""


def enqueue_events(cursor: psycopg.Cursor[Any], events: Iterable[NewEvent]) -> None:
    """Record events for every subscribed, enabled webhook of their tenant, in the caller's transaction."""
    rows = [{"tenant": e.tenant, "type": e.type, "id": e.id, "body": Json(e.body)} for e in events]
    if rows:
        cursor.executemany(_FAN_OUT, rows)


_WEBHOOK_COLUMNS = (
    "id, tenant, url, description, event_types, enabled, format, created_at, updated_at,"
    " CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END"
)
_DELIVERY_COLUMNS = (
    "d.id, d.webhook_id, d.event_id, e.type, d.state, d.attempts, d.next_attempt_at, d.last_attempt_at,"
    " d.last_status, d.last_duration_ms, d.last_error, d.last_response, d.created_at, d.finished_at"
)


def _webhook(row: Sequence[Any]) -> Webhook:
    return Webhook(str(row[0]), row[1], row[2], row[3], list(row[4]), row[5], row[6], row[7], row[8], row[9])


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(str(row[0]), str(row[1]), str(row[2]), *row[3:])


def encode_cursor(created_at: str, delivery_id: str) -> str:
    raw = json.dumps([created_at, delivery_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Opaque to clients; anything that is not one of ours is a 400, never a 500."""
    try:
        created_at, delivery_id = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
        uuid.UUID(delivery_id)
        datetime.fromisoformat(created_at)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest("cursor is not valid", {"field": "cursor"}) from exc
    return str(created_at), str(delivery_id)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class QueueStats:
    due: int  # ready to be sent now
    waiting: int  # waiting for a retry (or in flight)
    oldest_pending_seconds: float  # age of the oldest undelivered delivery
    oldest_due_seconds: float  # how long the longest-ready delivery has waited for a worker


_CLAIM = """
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1, claim = %(claim)s, last_attempt_at = clock_timestamp(),
    next_attempt_at = clock_timestamp() + make_interval(secs => %(lease)s)
FROM (
    SELECT id FROM webhook_deliveries
    WHERE state = 'pending' AND next_attempt_at <= clock_timestamp()
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) due, webhooks w, webhook_events e
WHERE d.id = due.id AND w.id = d.webhook_id AND e.id = d.event_id
RETURNING d.id, d.webhook_id, w.url, w.format, w.secret,
    CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END,
    d.event_id, e.type, e.body, d.attempts, d.retry_from
"""

_FAIL = """
UPDATE webhook_deliveries SET
    claim = NULL, last_status = %(status)s, last_duration_ms = %(duration)s, last_error = %(error)s,
    last_response = %(response)s,
    state = CASE WHEN clock_timestamp() >= retry_from + make_interval(secs => %(period)s)
                 THEN 'dead' ELSE 'pending' END,
    finished_at = CASE WHEN clock_timestamp() >= retry_from + make_interval(secs => %(period)s)
                       THEN clock_timestamp() END,
    next_attempt_at = LEAST(clock_timestamp() + make_interval(secs => %(delay)s),
                            retry_from + make_interval(secs => %(period)s))
WHERE id = %(id)s AND claim = %(claim)s
RETURNING state
"""


class WebhookStore:
    """SQL over webhooks, webhook_events and webhook_deliveries; every read and write of the
    management side is scoped by tenant (another tenant's id is simply not found)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- endpoints -------------------------------------------------------------------------------

    def create(
        self,
        tenant: str,
        url: str,
        description: str | None,
        event_types: list[str],
        enabled: bool,
        format_: str,
        secret: str,
        limit: int,
    ) -> Webhook | None:
        """The new webhook, or None when the tenant already has `limit` of them (counted under
        a per-tenant lock, so concurrent creations cannot overshoot)."""
        with self.db.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('webhooks/' || %s))", (tenant,))
            row = conn.execute("SELECT count(*) FROM webhooks WHERE tenant = %s", (tenant,)).fetchone()
            if row is not None and int(row[0]) >= limit:
                return None
            created = conn.execute(
                "INSERT INTO webhooks (id, tenant, url, description, event_types, enabled, format, secret)"  # noqa: S608
                f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_WEBHOOK_COLUMNS}",
                (uuid.uuid4(), tenant, url, description, event_types, enabled, format_, secret),
            ).fetchone()
        assert created is not None
        return _webhook(created)

    def list_webhooks(self, tenant: str) -> list[Webhook]:
        with self.db.connection() as conn:
            rows = conn.execute(
                f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE tenant = %s ORDER BY created_at, id",  # noqa: S608
                (tenant,),
            ).fetchall()
        return [_webhook(r) for r in rows]

    def get(self, tenant: str, webhook_id: str) -> Webhook | None:
        parsed = _uuid(webhook_id)
        if parsed is None:
            return None
        with self.db.connection() as conn:
            row = conn.execute(
                f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE id = %s AND tenant = %s",  # noqa: S608
                (parsed, tenant),
            ).fetchone()
        return None if row is None else _webhook(row)

    def update(self, tenant: str, webhook_id: str, changes: dict[str, Any]) -> Webhook | None:
        """Set the given columns (url, description, event_types, enabled, format)."""
        parsed = _uuid(webhook_id)
        if parsed is None:
            return None
        allowed = ("url", "description", "event_types", "enabled", "format")
        names = [name for name in allowed if name in changes]
        assignments = "".join(f"{name} = %({name})s, " for name in names)
        with self.db.connection() as conn:
            row = conn.execute(
                f"UPDATE webhooks SET {assignments}updated_at = now() WHERE id = %(id)s AND tenant = %(tenant)s"  # noqa: S608 - names from a fixed list
                f" RETURNING {_WEBHOOK_COLUMNS}",
                {**{n: changes[n] for n in names}, "id": parsed, "tenant": tenant},
            ).fetchone()
        return None if row is None else _webhook(row)

    def delete(self, tenant: str, webhook_id: str) -> bool:
        """Delete the webhook and (cascade) its deliveries: nothing more is sent to it."""
        parsed = _uuid(webhook_id)
        if parsed is None:
            return False
        with self.db.connection() as conn:
            cur = conn.execute("DELETE FROM webhooks WHERE id = %s AND tenant = %s", (parsed, tenant))
            return cur.rowcount == 1

    def rotate_secret(self, tenant: str, webhook_id: str, secret: str, overlap_seconds: float) -> Webhook | None:
        """The current secret becomes the previous one, valid for `overlap_seconds` more."""
        parsed = _uuid(webhook_id)
        if parsed is None:
            return None
        with self.db.connection() as conn:
            row = conn.execute(
                "UPDATE webhooks SET previous_secret = secret, secret = %s,"  # noqa: S608 - constant columns
                " previous_secret_expires_at = now() + make_interval(secs => %s), updated_at = now()"
                f" WHERE id = %s AND tenant = %s RETURNING {_WEBHOOK_COLUMNS}",
                (secret, overlap_seconds, parsed, tenant),
            ).fetchone()
        return None if row is None else _webhook(row)

    # -- deliveries, management side -------------------------------------------------------------

    def enqueue_test(self, tenant: str, webhook_id: str, event: NewEvent) -> Delivery | None:
        """One event for one webhook, whatever it subscribes to (the test-delivery route)."""
        parsed = _uuid(webhook_id)
        if parsed is None:
            return None
        with self.db.connection() as conn:
            owned = conn.execute("SELECT 1 FROM webhooks WHERE id = %s AND tenant = %s", (parsed, tenant)).fetchone()
            if owned is None:
                return None
            conn.execute(
                "INSERT INTO webhook_events (id, tenant, type, body) VALUES (%s, %s, %s, %s)",
                (event.id, tenant, event.type, Json(event.body)),
            )
            row = conn.execute(
                "INSERT INTO webhook_deliveries (webhook_id, event_id) VALUES (%s, %s) RETURNING id",
                (parsed, event.id),
            ).fetchone()
        assert row is not None
        return self._delivery(tenant, str(row[0]))

    def deliveries(
        self, tenant: str, webhook_id: str, *, limit: int, cursor: str | None, state: str | None
    ) -> DeliveryPage | None:
        """Newest first, keyset-paginated on (created_at, id); None when the webhook is not the tenant's."""
        hook = _uuid(webhook_id)
        if hook is None or self.get(tenant, webhook_id) is None:
            return None
        conditions = ["d.webhook_id = %s"]
        params: list[Any] = [hook]
        if state is not None:
            conditions.append("d.state = %s")
            params.append(state)
        if cursor:
            created_at, last_id = decode_cursor(cursor)
            conditions.append("(d.created_at, d.id) < (%s::timestamptz, %s::uuid)")
            params += [created_at, last_id]
        query = (
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id"  # noqa: S608
            f" WHERE {' AND '.join(conditions)} ORDER BY d.created_at DESC, d.id DESC LIMIT %s"
        )
        with self.db.connection() as conn:
            rows = conn.execute(query, (*params, limit + 1)).fetchall()
        items = [_delivery(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit and items:
            next_cursor = encode_cursor(rfc3339(items[-1].created_at), items[-1].id)
        return DeliveryPage(items, next_cursor)

    def _delivery(self, tenant: str, delivery_id: str) -> Delivery | None:
        parsed = _uuid(delivery_id)
        if parsed is None:
            return None
        query = (
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id"  # noqa: S608
            " JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = %s AND w.tenant = %s"
        )
        with self.db.connection() as conn:
            row = conn.execute(query, (parsed, tenant)).fetchone()
        return None if row is None else _delivery(row)

    def redeliver(self, tenant: str, webhook_id: str, delivery_id: str) -> Delivery | None:
        """Send a delivery again now (whatever its state), with a fresh retry period."""
        hook, parsed = _uuid(webhook_id), _uuid(delivery_id)
        if hook is None or parsed is None:
            return None
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = clock_timestamp(),"
                " retry_from = clock_timestamp(), finished_at = NULL, claim = NULL"
                " WHERE id = %s AND webhook_id = %s AND webhook_id IN (SELECT id FROM webhooks WHERE tenant = %s)",
                (parsed, hook, tenant),
            )
            if cur.rowcount != 1:
                return None
        return self._delivery(tenant, delivery_id)

    # -- deliveries, worker side -----------------------------------------------------------------

    def claim(self, limit: int, lease: float) -> list[ClaimedDelivery]:
        token = uuid.uuid4()
        with self.db.connection() as conn:
            rows = conn.execute(_CLAIM, {"claim": token, "lease": lease, "limit": limit}).fetchall()
        return [
            ClaimedDelivery(
                id=str(r[0]),
                claim=str(token),
                webhook_id=str(r[1]),
                url=r[2],
                format=r[3],
                secrets=[r[4], *([r[5]] if r[5] else [])],
                event_id=str(r[6]),
                event_type=r[7],
                body=r[8],
                attempts=r[9],
                retry_from=r[10],
            )
            for r in rows
        ]

    def still_claimed(self, delivery: ClaimedDelivery) -> bool:
        """The delivery still exists and is still this claim's (not deleted with its webhook, not
        redelivered, not re-claimed after a lease that ran out)."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM webhook_deliveries WHERE id = %s AND claim = %s", (delivery.id, delivery.claim)
            ).fetchone()
        return row is not None

    def succeed(self, delivery: ClaimedDelivery, status: int, duration_ms: float, response: str | None) -> bool:
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE webhook_deliveries SET state = 'succeeded', finished_at = clock_timestamp(), claim = NULL,"
                " last_status = %s, last_duration_ms = %s, last_error = NULL, last_response = %s"
                " WHERE id = %s AND claim = %s",
                (status, duration_ms, response, delivery.id, delivery.claim),
            )
            return cur.rowcount == 1

    def fail(
        self,
        delivery: ClaimedDelivery,
        *,
        status: int | None,
        duration_ms: float | None,
        error: str,
        response: str | None,
        delay: float,
        period: float,
    ) -> str | None:
        """Record a failed attempt: retry after `delay`, or dead once the retry period is over.
        Returns the new state, or None when the claim was lost (another attempt owns the row)."""
        params = {
            "status": status,
            "duration": duration_ms,
            "error": error,
            "response": response,
            "delay": delay,
            "period": period,
            "id": delivery.id,
            "claim": delivery.claim,
        }
        with self.db.connection() as conn:
            row = conn.execute(_FAIL, params).fetchone()
        return None if row is None else str(row[0])

    def stats(self) -> QueueStats:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE next_attempt_at <= now()),"
                " count(*) FILTER (WHERE next_attempt_at > now()),"
                " coalesce(extract(epoch FROM now() - min(created_at)), 0),"
                " coalesce(extract(epoch FROM now() - min(next_attempt_at) FILTER (WHERE next_attempt_at <= now())), 0)"
                " FROM webhook_deliveries WHERE state = 'pending'"
            ).fetchone()
        assert row is not None
        return QueueStats(int(row[0]), int(row[1]), float(row[2]), float(row[3]))

    def purge(self, retention_days: int) -> int:
        """Forget finished deliveries after the retention, and events no delivery refers to."""
        with self.db.connection() as conn:
            cur = conn.execute(
                "DELETE FROM webhook_deliveries WHERE state <> 'pending'"
                " AND finished_at < now() - make_interval(days => %s)",
                (retention_days,),
            )
            purged = cur.rowcount
            conn.execute(
                "DELETE FROM webhook_events e WHERE created_at < now() - interval '1 hour'"
                " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id)"
            )
        return purged

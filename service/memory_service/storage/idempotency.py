"""Idempotent adds: an `Idempotency-Key` header on `POST /v1/memories` (and `?async=true`).

A client that did not get an answer (the connection dropped, a proxy timed out) cannot know
whether its add was stored. Sending the same key again makes the retry safe: within 24 hours the
service answers a replay with the first response (status and body) and stores nothing twice.

- Keys belong to the API key's tenant: two tenants may use the same key independently.
- The request is fingerprinted (the validated body and the async flag): the same key with a
  different request is 409 IDEMPOTENCY_CONFLICT, never a silent replay of another request.
- A replay that arrives while the first request is still running waits for it (up to
  WAIT_SECONDS), then answers its response; if it is still running after that, 409
  IDEMPOTENCY_IN_PROGRESS with Retry-After (the SDKs retry it).
- Only successes are kept. A request that fails (400, 503 ...) releases its key, so a retry runs
  the add again: nothing was stored.
- The record lives in Postgres, claimed with one INSERT ... ON CONFLICT, so it holds across
  gunicorn workers and hosts. A claim carries a lease as long as the longest an add may run
  (REQUEST_TIMEOUT, plus the Ollama budget with inference): if the first request's process died,
  or its failure could not be recorded, a replay after the lease runs the add again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg.types.json import Jsonb

from memory_service.errors import InvalidRequest, ServiceError, ServiceUnavailable
from memory_service.settings import Settings
from memory_service.storage.database import Database

log = logging.getLogger(__name__)
T = TypeVar("T")

HEADER = "Idempotency-Key"
TTL_HOURS = 24
WAIT_SECONDS = 10.0
POLL_SECONDS = 0.05
PURGE_INTERVAL = 3600.0
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # printable ASCII, no spaces: a UUID fits (OpenAPI states it)
_KEY = re.compile(KEY_PATTERN)


class IdempotencyConflict(ServiceError):
    code = "IDEMPOTENCY_CONFLICT"
    status_code = 409

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key '{key}' was already used with a different request; use a new key for a new request",
            {"idempotency_key": key},
        )


class IdempotencyInProgress(ServiceError):
    code = "IDEMPOTENCY_IN_PROGRESS"
    status_code = 409

    def __init__(self, key: str, retry_after: int = 1) -> None:
        super().__init__(
            f"A request with Idempotency-Key '{key}' is still running; retry after {retry_after} s",
            {"idempotency_key": key},
        )
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Claim:
    tenant: str
    key: str
    owner: uuid.UUID


def check_key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise InvalidRequest(
            f"{HEADER} must be 1-255 printable ASCII characters without spaces (a UUID is a good key)",
            {"field": HEADER},
        )
    return value


def fingerprint(request: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()


_CLAIM = """
INSERT INTO idempotency_keys (tenant, key, fingerprint, owner, locked_until)
VALUES (%(tenant)s, %(key)s, %(fingerprint)s, %(owner)s, now() + make_interval(secs => %(lease)s))
ON CONFLICT (tenant, key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, owner = EXCLUDED.owner, locked_until = EXCLUDED.locked_until,
        status = NULL, response = NULL, headers = NULL, created_at = now()
    WHERE idempotency_keys.created_at < now() - make_interval(hours => %(ttl)s)
       OR (idempotency_keys.status IS NULL AND idempotency_keys.locked_until < now()
           AND idempotency_keys.fingerprint = EXCLUDED.fingerprint)
RETURNING owner
"""
_EXISTING = (
    "SELECT fingerprint, status, response, headers FROM idempotency_keys "
    "WHERE tenant = %s AND key = %s AND created_at >= now() - make_interval(hours => %s)"
)


class IdempotencyStore:
    """The `idempotency_keys` table (its migration, 0002, creates it)."""

    def __init__(self, db: Database, timeout: float, lease: float) -> None:
        self.db = db
        self.timeout = timeout
        self.lease = lease

    @classmethod
    def of(cls, db: Database, settings: Settings) -> IdempotencyStore:
        add_budget = settings.request_timeout + (3 * settings.ollama_timeout if settings.inference_enabled else 0)
        return cls(db, settings.request_timeout, add_budget + 5.0)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args), self.timeout)
        except TimeoutError:
            raise ServiceUnavailable("postgres", f"postgres did not answer within {self.timeout:g}s") from None
        except psycopg.Error as exc:
            raise ServiceUnavailable("postgres") from exc

    def _claim(self, tenant: str, key: str, print_: str, owner: uuid.UUID) -> StoredResponse | bool:
        """True: claimed (run the request). False: another request holds it. Else the stored answer."""
        with self.db.connection() as conn:
            params = {"tenant": tenant, "key": key, "fingerprint": print_, "owner": owner}
            if conn.execute(_CLAIM, {**params, "lease": self.lease, "ttl": TTL_HOURS}).fetchone():
                return True
            row = conn.execute(_EXISTING, (tenant, key, TTL_HOURS)).fetchone()
        if row is None:  # expired and purged between the two statements: claim again
            return self._claim(tenant, key, print_, owner)
        stored_print, status, body, headers = row
        if stored_print != print_:
            raise IdempotencyConflict(key)
        if status is None:
            return False
        return StoredResponse(int(status), body, dict(headers or {}))

    async def begin(self, tenant: str, key: str, request: dict[str, Any]) -> Claim | StoredResponse:
        """Claim the key for this request, or the first request's stored response (waiting for it
        while it runs, up to WAIT_SECONDS)."""
        print_ = fingerprint(request)
        owner = uuid.uuid4()
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            outcome = await self._call(self._claim, tenant, key, print_, owner)
            if outcome is True:
                return Claim(tenant, key, owner)
            if isinstance(outcome, StoredResponse):
                return outcome
            if time.monotonic() >= deadline:
                raise IdempotencyInProgress(key)
            await asyncio.sleep(POLL_SECONDS)

    def _complete(self, claim: Claim, response: StoredResponse) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "UPDATE idempotency_keys SET status = %s, response = %s, headers = %s, locked_until = NULL "
                "WHERE tenant = %s AND key = %s AND owner = %s",
                (response.status, Jsonb(response.body), Jsonb(response.headers), claim.tenant, claim.key, claim.owner),
            )

    async def complete(self, claim: Claim, response: StoredResponse) -> None:
        """Keep the response for replays. The add has happened, so a failure here is logged, not
        raised: the client still gets its answer (a replay then waits for the lease to expire)."""
        try:
            await self._call(self._complete, claim, response)
        except ServiceError as exc:
            log.warning("idempotency: could not store the response for a key: %s", exc.message)

    def _release(self, claim: Claim) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "DELETE FROM idempotency_keys WHERE tenant = %s AND key = %s AND owner = %s AND status IS NULL",
                (claim.tenant, claim.key, claim.owner),
            )

    async def release(self, claim: Claim) -> None:
        """The request failed: forget the key, so a retry runs it (or the lease expires)."""
        try:
            await asyncio.shield(self._call(self._release, claim))
        except (ServiceError, asyncio.CancelledError) as exc:
            log.warning("idempotency: could not release a key: %s", exc)

    def purge(self) -> int:
        with self.db.connection() as conn:
            cur = conn.execute(
                "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => %s)", (TTL_HOURS,)
            )
            return cur.rowcount

    async def purge_loop(self) -> None:
        """Delete expired records now and then (reads ignore them already; this frees the space)."""
        while True:
            try:
                purged = await self._call(self.purge)
                if purged:
                    log.info("idempotency: purged %d expired key(s)", purged)
            except ServiceError as exc:
                log.debug("idempotency purge failed: %s", exc.message)
            await asyncio.sleep(PURGE_INTERVAL)

"""The webhook delivery worker: one per API process, sharing the deliveries table with the others.

Events are written with the change they describe (storage/webhooks.py), so this worker only ever
sends what was committed, and a crash loses nothing: a delivery stays `pending` until a receiver
answers 2xx. How it sends:

- It claims due deliveries (`FOR UPDATE SKIP LOCKED`, so processes and hosts never take the same
  one), up to WEBHOOK_CONCURRENCY at a time per process. A claim is a lease: a process that dies
  mid-attempt leaves the delivery to be claimed again when the lease ends.
- Before each attempt it resolves the URL's host again, refuses it if any address is not public
  (unless WEBHOOK_ALLOW_PRIVATE_TARGETS), and connects to the address it checked, with the name
  kept for the Host header and TLS (SNI and certificate): no DNS rebinding between check and use.
- It POSTs the event's JSON, signed the Standard Webhooks way (domain/webhooks/signing.py), with
  WEBHOOK_TIMEOUT for the whole attempt, no redirects, no proxies from the environment, and keeps
  a short excerpt of the response body only.
- 2xx is delivered. Anything else (another status, a redirect, a timeout, a refused connection,
  a refused address) is retried with exponential back-off and jitter (WEBHOOK_RETRY_BASE_SECONDS
  doubling up to WEBHOOK_RETRY_MAX_SECONDS) until WEBHOOK_RETRY_PERIOD_SECONDS after the event;
  then the delivery is `dead`, and stays visible in the deliveries list until the retention ends.

Delivery is at least once: a process killed after the receiver answered but before the outcome
was written sends again. The `webhook-id` header (the event id) is the same on every attempt,
so receivers deduplicate on it. Order is not guaranteed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import orjson

from memory_service import __version__
from memory_service.domain.webhooks.platform import platform_body
from memory_service.domain.webhooks.signing import signature_headers
from memory_service.domain.webhooks.targets import ResolvedTarget, TargetPolicy, TargetRefused, resolve
from memory_service.errors import ServiceUnavailable
from memory_service.models.webhooks import ClaimedDelivery, PayloadFormat
from memory_service.observability.metrics import (
    WEBHOOK_DELIVERIES,
    WEBHOOK_DURATION,
    WEBHOOK_ERRORS,
    WEBHOOK_OLDEST_DUE,
    WEBHOOK_OLDEST_PENDING,
    WEBHOOK_QUEUE,
)
from memory_service.settings import Settings
from memory_service.storage.webhooks import WebhookStore

log = logging.getLogger(__name__)

EXCERPT_BYTES = 512  # of a response body, read at most; stored as at most EXCERPT_CHARS characters
EXCERPT_CHARS = 200
LEASE_MARGIN = 5.0  # seconds beyond the attempt's timeout before a claimed delivery is claimable again
STATS_INTERVAL = 5.0
MAINTENANCE_INTERVAL = 3600.0
STOP_GRACE = 5.0
USER_AGENT = f"memory-service-webhooks/{__version__}"


class AttemptFailed(Exception):
    """One attempt did not deliver; `reason` is a bounded metric label, `message` is for people."""

    def __init__(self, reason: str, message: str, status: int | None = None, response: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.response = response


class Superseded(Exception):
    """The claimed delivery is gone or is no longer this claim's: the attempt is dropped."""


def retry_delay(attempts: int, base: float, maximum: float) -> float:
    """Exponential back-off with "equal jitter": half the step fixed, half random."""
    step = min(maximum, base * 2.0 ** max(0, attempts - 1))
    return step / 2 + random.uniform(0, step / 2)


def render_body(delivery: ClaimedDelivery) -> str:
    body = delivery.body
    if delivery.format == PayloadFormat.MEM0.value:
        body = platform_body(body) or body
    return orjson.dumps(body).decode()


def _addressed(target: ResolvedTarget, url: str, address: str) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """The URL pointed at one checked address, with the name kept for Host and TLS (SNI, certificate)."""
    original = httpx.URL(url)
    headers = {"Host": original.netloc.decode("ascii")}
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    return original.copy_with(host=address), headers, extensions


class WebhookDispatcher:
    """This process's delivery worker over the shared deliveries table."""

    def __init__(self, settings: Settings, store: WebhookStore) -> None:
        self.settings = settings
        self.store = store
        self.policy = TargetPolicy(settings.webhook_allow_private_targets, settings.webhook_http_allowed)
        self.lease = settings.webhook_timeout + LEASE_MARGIN
        # One TLS context for every attempt (loading the CA bundle costs tens of milliseconds);
        # the client itself is per attempt, so a connection is never reused for another host name.
        self._tls = httpx.create_ssl_context()
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="webhook-dispatcher"),
            asyncio.create_task(self._report(), name="webhook-queue-gauges"),
            asyncio.create_task(self._maintain(), name="webhook-maintenance"),
        ]

    def wake(self) -> None:
        """Something may have been queued: look now instead of at the next poll."""
        self._wake.set()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Claim nothing more; give attempts in flight `grace` seconds. One still running then is
        cancelled, and its delivery is claimed again when its lease ends (here or elsewhere)."""
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # -- the loop ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()  # before claiming: a wake from now on is not lost
            free = self.settings.webhook_concurrency - len(self._inflight)
            claimed: list[ClaimedDelivery] = []
            if free > 0:
                try:
                    claimed = await asyncio.to_thread(self.store.claim, free, self.lease)
                    failures = 0
                except Exception as exc:  # the database is down: wait, never end the loop
                    failures += 1
                    log.warning("webhook claim failed: %s", exc.__class__.__name__)
                    await asyncio.sleep(min(30.0, self.settings.webhook_poll_interval * 2**failures))
                    continue
            for delivery in claimed:
                task = asyncio.create_task(self._deliver(delivery), name=f"webhook-delivery-{delivery.id}")
                self._inflight.add(task)
                task.add_done_callback(self._finished)
            if claimed and len(claimed) == free:
                continue  # there may be more due right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.webhook_poll_interval)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()  # a slot is free

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.webhook_timeout):
                status, excerpt = await self._attempt(delivery)
        except Superseded:
            log.info("webhook delivery %s was deleted, redelivered or claimed again; not sent", delivery.id)
            return
        except AttemptFailed as failed:
            await self._failed(delivery, failed, started)
        except TimeoutError:
            message = f"no answer within {self.settings.webhook_timeout:g}s (WEBHOOK_TIMEOUT)"
            await self._failed(delivery, AttemptFailed("timeout", message), started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let one delivery end the worker; it is retried
            log.exception("webhook delivery %s failed unexpectedly", delivery.id)
            await self._failed(delivery, AttemptFailed("connection", f"{exc.__class__.__name__}"), started)
        else:
            elapsed = time.perf_counter() - started
            WEBHOOK_DURATION.observe(elapsed)
            if await self._write(lambda: self.store.succeed(delivery, status, elapsed * 1000, excerpt)):
                WEBHOOK_DELIVERIES.labels("success").inc()

    async def _attempt(self, delivery: ClaimedDelivery) -> tuple[int, str | None]:
        """One POST; returns (status, excerpt) on 2xx, raises AttemptFailed otherwise."""
        try:
            target = await resolve(delivery.url, self.policy)
        except TargetRefused as refused:
            reason = "dns" if refused.reason == "dns" else "refused_target"
            raise AttemptFailed(reason, refused.message) from None
        # Last look before sending: a delivery deleted with its webhook (or claimed again after
        # this worker's lease ran out) meanwhile is not sent.
        try:
            current = await asyncio.to_thread(self.store.still_claimed, delivery)
        except ServiceUnavailable:
            current = True  # the database blinked: send, the outcome is written when it is back
        if not current:
            raise Superseded
        body = render_body(delivery)
        signed = signature_headers(delivery.secrets, delivery.event_id, datetime.now(UTC), body)
        signed |= {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        timeout = httpx.Timeout(self.settings.webhook_timeout)  # the whole attempt is bounded too (_deliver)
        async with httpx.AsyncClient(
            verify=self._tls, follow_redirects=False, trust_env=False, timeout=timeout
        ) as client:
            for index, address in enumerate(target.addresses):  # each checked; the next one if refused
                url, headers, extensions = _addressed(target, delivery.url, address)
                request = client.build_request(
                    "POST", url, content=body.encode(), headers=headers | signed, extensions=extensions
                )
                try:
                    response = await client.send(request, stream=True)
                    break
                except httpx.ConnectError as exc:
                    if index + 1 < len(target.addresses):
                        continue
                    raise AttemptFailed("connection", f"{exc.__class__.__name__}: {exc}"[:300]) from None
                except httpx.TimeoutException:
                    raise TimeoutError from None
                except httpx.HTTPError as exc:
                    raise AttemptFailed("connection", f"{exc.__class__.__name__}: {exc}"[:300]) from None
            try:
                excerpt = await self._excerpt(response)
            finally:
                await response.aclose()
        if 200 <= response.status_code < 300:
            return response.status_code, excerpt
        if 300 <= response.status_code < 400:
            message = f"HTTP {response.status_code}: redirects are not followed"
        else:
            message = f"HTTP {response.status_code}"
        raise AttemptFailed("http_status", message, response.status_code, excerpt)

    @staticmethod
    async def _excerpt(response: httpx.Response) -> str | None:
        """The start of the body: reading stops once EXCERPT_BYTES have come."""
        chunks = bytearray()
        async for chunk in response.aiter_raw():
            chunks += chunk
            if len(chunks) >= EXCERPT_BYTES:
                break
        text = bytes(chunks[:EXCERPT_BYTES]).decode("utf-8", errors="replace").strip()
        return text[:EXCERPT_CHARS] or None

    async def _failed(self, delivery: ClaimedDelivery, failed: AttemptFailed, started: float) -> None:
        elapsed = time.perf_counter() - started
        WEBHOOK_DURATION.observe(elapsed)
        WEBHOOK_ERRORS.labels(failed.reason).inc()
        delay = retry_delay(
            delivery.attempts, self.settings.webhook_retry_base_seconds, self.settings.webhook_retry_max_seconds
        )
        state: str | None = None

        def write() -> bool:
            nonlocal state
            state = self.store.fail(
                delivery,
                status=failed.status,
                duration_ms=elapsed * 1000,
                error=failed.message[:500],
                response=failed.response,
                delay=delay,
                period=self.settings.webhook_retry_period_seconds,
            )
            return state is not None

        if await self._write(write):
            WEBHOOK_DELIVERIES.labels("dead" if state == "dead" else "retry").inc()
            level = logging.WARNING if state == "dead" else logging.INFO
            log.log(
                level, "webhook delivery %s attempt %d: %s (%s)", delivery.id, delivery.attempts, failed.message, state
            )

    async def _write(self, write: Callable[[], bool]) -> bool:
        """An outcome's write, retried through a database blip for up to the lease."""
        deadline = time.monotonic() + self.lease
        while True:
            try:
                done = bool(await asyncio.to_thread(write))
            except Exception as exc:
                if time.monotonic() + 1.0 > deadline:
                    log.error("a webhook outcome could not be recorded: %s", exc.__class__.__name__)
                    return False
                await asyncio.sleep(1.0)
                continue
            if not done:
                log.info("a webhook delivery was claimed again before its outcome was recorded")
            return done

    # -- gauges and housekeeping ------------------------------------------------------------------

    async def _report(self) -> None:
        while True:
            try:
                stats = await asyncio.to_thread(self.store.stats)
            except ServiceUnavailable:
                pass
            except Exception as exc:  # the gauges must outlive any one failed query
                log.debug("webhook queue stats failed: %s", exc)
            else:
                WEBHOOK_QUEUE.labels("due").set(stats.due)
                WEBHOOK_QUEUE.labels("waiting").set(stats.waiting)
                WEBHOOK_OLDEST_PENDING.set(stats.oldest_pending_seconds)
                WEBHOOK_OLDEST_DUE.set(stats.oldest_due_seconds)
            await asyncio.sleep(STATS_INTERVAL)

    async def _maintain(self) -> None:
        while True:
            try:
                purged = await asyncio.to_thread(self.store.purge, self.settings.webhook_retention_days)
                if purged:
                    log.info("purged %d finished webhook deliveries", purged)
            except Exception as exc:
                log.debug("webhook purge failed: %s", exc)
            await asyncio.sleep(MAINTENANCE_INTERVAL)

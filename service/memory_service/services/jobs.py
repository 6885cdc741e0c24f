"""Asynchronous adds: jobs kept in Postgres (storage/jobs.py), run by a bounded pool of workers
in every process.

`POST /v1/memories?async=true` validates the request exactly like a synchronous add, stores it as
a `queued` job and answers 202; `GET /v1/jobs/{id}` shows its state, then its result (the created
memories, as the synchronous add returns them) or its error (the envelope's code and message).

Correctness across processes and hosts (gunicorn workers, several API hosts, restarts):

- A worker claims a job with `SELECT ... FOR UPDATE SKIP LOCKED` inside the UPDATE that marks it
  `running`, so two workers never take the same job.
- A running job holds a lease (`locked_until`) that its worker renews every third of
  JOBS_LEASE_SECONDS. A process that dies stops renewing; once the lease has expired the job is
  claimable again, by any process. At start, expired `running` jobs go back to `queued`.
- Every write after the claim checks the job is still this worker's (`worker = me`), so a worker
  that lost its lease cannot overwrite what another one did.
- A job whose backend is unavailable (503: Ollama or Postgres down or too slow) is retried with
  back-off, up to JOBS_MAX_ATTEMPTS attempts in all; any other error fails it at once.

Delivery is at least once: a process killed in the middle of an add may have stored some memories
before it died, and the job runs again. Extracted facts are then not stored twice (mem0 skips a
fact whose hash it already stores); messages stored as given may be.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from memory_service.core.context import current_dialect, dialect
from memory_service.domain.memories.commands import AddCommand
from memory_service.domain.memories.engine import MemoryEngine
from memory_service.errors import ServiceError, ServiceUnavailable
from memory_service.models.jobs import Job
from memory_service.observability.metrics import JOBS
from memory_service.settings import Settings
from memory_service.storage.jobs import JobStore

log = logging.getLogger(__name__)

KIND_ADD = "add"
CONTRACT = "contract"
POLL_INTERVAL = 1.0
RETRY_BACKOFF_MAX = 60.0
STOP_GRACE = 10.0
RETENTION_DAYS = 7
MAINTENANCE_INTERVAL = 3600.0


def error_body(exc: ServiceError) -> dict[str, Any]:
    """The error as the envelope shows it."""
    return {"code": exc.code, "message": exc.message, "details": exc.details}


class JobRunner:
    """This process's job workers (JOBS_WORKERS of them) over the shared jobs table."""

    def __init__(self, settings: Settings, store: JobStore, engine: MemoryEngine) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = settings.jobs_lease_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._workers: list[asyncio.Task[None]] = []
        self._maintenance: asyncio.Task[None] | None = None

    def submit(self, tenant: str, command: AddCommand) -> Job:
        """Queue an add (blocking: call it off the event loop), then wake a worker. The request's
        dialect goes with it, so the add is counted for the dialect that asked for it."""
        return self.store.submit(tenant, KIND_ADD, {**command.to_json(), "dialect": current_dialect()})

    def get(self, tenant: str, job_id: str) -> Job:
        return self.store.get(tenant, job_id)

    def recent(self, tenant: str, limit: int, before: str | None = None) -> tuple[list[Job], str | None]:
        """A tenant's jobs, newest first (the console's list); blocking, like get()."""
        return self.store.recent(tenant, limit, before)

    def depths(self, tenant: str) -> dict[str, int]:
        return self.store.depths(tenant)

    # -- workers ----------------------------------------------------------------------------------

    async def start(self) -> None:
        recovered = await asyncio.to_thread(self.store.recover)
        if recovered:
            log.warning("%d interrupted job(s) queued again", recovered)
        self._workers = [
            asyncio.create_task(self._work(), name=f"jobs-worker-{i}") for i in range(self.settings.jobs_workers)
        ]
        self._maintenance = asyncio.create_task(self._maintain(), name="jobs-maintenance")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Take no new jobs; let running ones finish for `grace` seconds. Jobs still running after
        that keep their lease until it expires, then run again (here after a restart, or elsewhere)."""
        self._stopping = True
        self._wake.set()
        if self._maintenance is not None:
            self._maintenance.cancel()
        if self._workers:
            _, pending = await asyncio.wait(self._workers, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            if pending:
                log.warning("%d job(s) still running at shutdown; they run again after their lease", len(pending))

    async def _idle(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL)
        except TimeoutError:
            return
        self._wake.clear()

    async def _work(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                job = await asyncio.to_thread(self.store.claim, self.worker_id, self.lease)
            except Exception as exc:  # the database is down: wait, never end the worker
                failures += 1
                log.warning("job claim failed: %s", exc.__class__.__name__)
                await asyncio.sleep(min(30.0, POLL_INTERVAL * 2**failures))
                continue
            failures = 0
            if job is None:
                await self._idle()
                continue
            self._wake.set()  # another idle worker may find a further job
            await self._process(job)

    async def _heartbeat(self, job_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                if not await asyncio.to_thread(self.store.renew, job_id, self.worker_id, self.lease):
                    log.warning("job %s: lease lost", job_id)
                    return
            except Exception as exc:
                log.warning("job %s: lease renewal failed: %s", job_id, exc.__class__.__name__)

    async def _process(self, job: Job) -> None:
        with structlog.contextvars.bound_contextvars(job_id=job.id, tenant=job.tenant):
            heartbeat = asyncio.create_task(self._heartbeat(job.id), name=f"job-lease-{job.id}")
            try:
                await self._run(job)
            finally:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)

    async def _run(self, job: Job) -> None:
        max_attempts = self.settings.jobs_max_attempts
        if job.attempts > max_attempts:  # a job whose process kept dying under it
            error = {
                "code": "INTERNAL_ERROR",
                "message": f"the job was interrupted {job.attempts - 1} times (its process stopped); giving up",
                "details": {},
            }
            await self._settle(job, "failed", None, error)
            return
        try:
            with dialect(str(job.request.get("dialect", CONTRACT))):
                added = await self.engine.add(job.tenant, AddCommand.from_json(job.request))
        except asyncio.CancelledError:
            raise
        except ServiceUnavailable as exc:
            error = error_body(exc)
            if job.attempts < max_attempts:
                delay = min(RETRY_BACKOFF_MAX, 2.0**job.attempts)
                log.warning("job %s attempt %d: %s; retrying in %.0fs", job.id, job.attempts, exc.message, delay)
                await self._retrying(lambda: self.store.requeue(job.id, self.worker_id, delay, error))
                return
            await self._settle(job, "failed", None, error)
        except ServiceError as exc:
            await self._settle(job, "failed", None, error_body(exc))
        except Exception:
            log.exception("job %s failed", job.id)
            error = {"code": "INTERNAL_ERROR", "message": "Internal error; the job id identifies it in the logs"}
            await self._settle(job, "failed", None, {**error, "details": {}})
        else:
            await self._settle(job, "succeeded", added.to_json(), None)

    async def _settle(self, job: Job, state: str, result: dict[str, Any] | None, error: dict[str, Any] | None) -> None:
        if await self._retrying(lambda: self.store.finish(job.id, self.worker_id, state, result, error)):
            JOBS.labels(state).inc()
            log.info("job %s %s after %d attempt(s)", job.id, state, job.attempts)

    async def _retrying(self, write: Callable[[], bool]) -> bool:
        """A job's final write, retried through a database blip for up to one lease."""
        deadline = asyncio.get_running_loop().time() + self.lease
        while True:
            try:
                done = await asyncio.to_thread(write)
            except Exception as exc:
                if asyncio.get_running_loop().time() + 1.0 > deadline:
                    log.error("a job write failed for good: %s", exc.__class__.__name__)
                    return False
                await asyncio.sleep(1.0)
                continue
            if not done:
                log.warning("the job was no longer this worker's (lease lost); its outcome was not recorded")
            return done

    async def _maintain(self) -> None:
        while True:
            try:
                purged = await asyncio.to_thread(self.store.purge, RETENTION_DAYS)
                if purged:
                    log.info("purged %d finished job(s) older than %d days", purged, RETENTION_DAYS)
            except Exception as exc:
                log.debug("job purge failed: %s", exc)
            await asyncio.sleep(MAINTENANCE_INTERVAL)

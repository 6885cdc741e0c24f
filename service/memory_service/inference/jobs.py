"""Asynchronous adds: jobs kept in Postgres, run by a bounded pool of workers in every process.

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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from psycopg import sql
from psycopg.types.json import Jsonb

from memory_service.api.schemas import AddedMemories, AddMemoryRequest, MemoryOut
from memory_service.engine.database import Database
from memory_service.engine.memory_engine import MemoryEngine, Message
from memory_service.engine.schema import _LOCK_ID
from memory_service.engine.scope import Scope
from memory_service.errors import NotFound, ServiceError, ServiceUnavailable
from memory_service.observability.metrics import JOBS
from memory_service.settings import Settings

log = logging.getLogger(__name__)

KIND_ADD = "add"
POLL_INTERVAL = 1.0
RETRY_BACKOFF_MAX = 60.0
STOP_GRACE = 10.0
RETENTION_DAYS = 7
MAINTENANCE_INTERVAL = 3600.0

_COLUMNS = {"run_after": "timestamptz", "locked_until": "timestamptz", "worker": "text"}
_FIELDS = sql.SQL("id, tenant, kind, state, request, result, error, attempts, created_at, started_at, finished_at")
_INSERT = sql.SQL(
    "INSERT INTO jobs (id, tenant, kind, state, request) VALUES (%s, %s, %s, 'queued', %s) RETURNING {}"
).format(_FIELDS)
_SELECT = sql.SQL("SELECT {} FROM jobs WHERE id = %s AND tenant = %s").format(_FIELDS)
_CLAIM = sql.SQL(
    """
    UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = now(),
        worker = %(worker)s, locked_until = now() + make_interval(secs => %(lease)s)
    WHERE id = (
        SELECT id FROM jobs
        WHERE (state = 'queued' AND (run_after IS NULL OR run_after <= now()))
           OR (state = 'running' AND locked_until < now())
        ORDER BY created_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
    RETURNING {}
    """
).format(_FIELDS)


@dataclass(slots=True)
class Job:
    id: str
    tenant: str
    kind: str
    state: str
    request: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: tuple[Any, ...]) -> Job:
        return cls(str(row[0]), *row[1:])


class JobNotFound(NotFound):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job with ID '{job_id}' not found", {"id": job_id})


def error_body(exc: ServiceError) -> dict[str, Any]:
    """The error as the envelope shows it."""
    return {"code": exc.code, "message": exc.message, "details": exc.details}


async def run_add(engine: MemoryEngine, settings: Settings, tenant: str, body: AddMemoryRequest) -> AddedMemories:
    """One add, as the synchronous route and the job workers both run it."""
    scope = Scope(tenant, body.user_id or settings.default_user_id, body.agent_id, body.run_id)
    result = await engine.add(
        scope,
        [Message(m.role, m.content, m.name) for m in body.messages],
        dict(body.metadata or {}),
        body.infer,
    )
    memories = [MemoryOut.of(r) for r in result.memories]
    return AddedMemories(memories=memories, count=len(memories), inference=result.inference)


class JobQueue:
    """The jobs table, and this process's workers (JOBS_WORKERS of them)."""

    def __init__(self, settings: Settings, db: Database, engine: MemoryEngine) -> None:
        self.settings = settings
        self.db = db
        self.engine = engine
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = settings.jobs_lease_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._workers: list[asyncio.Task[None]] = []
        self._maintenance: asyncio.Task[None] | None = None

    # -- table ------------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Lease and retry columns on the jobs table (engine/schema.py creates the table)."""
        with self.db.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            present = {
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = 'jobs'"
                ).fetchall()
            }
            for name, kind in _COLUMNS.items():
                if name not in present:
                    conn.execute(sql.SQL("ALTER TABLE jobs ADD COLUMN {} " + kind).format(sql.Identifier(name)))

    def recover(self) -> int:
        """Running jobs whose worker is gone (lease expired) go back to the queue."""
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE jobs SET state = 'queued', worker = NULL, locked_until = NULL "
                "WHERE state = 'running' AND (locked_until IS NULL OR locked_until < now())"
            )
            return cur.rowcount

    def submit(self, tenant: str, body: AddMemoryRequest) -> Job:
        request = body.model_dump(mode="json", exclude_none=True)
        request["user_id"] = body.user_id or self.settings.default_user_id
        with self.db.connection() as conn:
            row = conn.execute(_INSERT, (uuid.uuid4(), tenant, KIND_ADD, Jsonb(request))).fetchone()
        assert row is not None
        return Job.of(row)

    def get(self, tenant: str, job_id: str) -> Job:
        try:
            parsed = uuid.UUID(job_id)
        except ValueError:
            raise JobNotFound(job_id) from None
        with self.db.connection() as conn:
            row = conn.execute(_SELECT, (parsed, tenant)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return Job.of(row)

    def _claim(self) -> Job | None:
        with self.db.connection() as conn:
            row = conn.execute(_CLAIM, {"worker": self.worker_id, "lease": self.lease}).fetchone()
        return None if row is None else Job.of(row)

    def _renew(self, job_id: str) -> bool:
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE jobs SET locked_until = now() + make_interval(secs => %s) "
                "WHERE id = %s AND worker = %s AND state = 'running'",
                (self.lease, job_id, self.worker_id),
            )
            return cur.rowcount == 1

    def _finish(self, job_id: str, state: str, result: dict[str, Any] | None, error: dict[str, Any] | None) -> bool:
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE jobs SET state = %s, result = %s, error = %s, finished_at = now(), locked_until = NULL "
                "WHERE id = %s AND worker = %s AND state = 'running'",
                (state, Jsonb(result) if result is not None else None, Jsonb(error) if error else None, job_id,
                 self.worker_id),
            )  # fmt: skip
            return cur.rowcount == 1

    def _requeue(self, job_id: str, delay: float, error: dict[str, Any]) -> bool:
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE jobs SET state = 'queued', error = %s, worker = NULL, locked_until = NULL, "
                "run_after = now() + make_interval(secs => %s) WHERE id = %s AND worker = %s AND state = 'running'",
                (Jsonb(error), delay, job_id, self.worker_id),
            )
            return cur.rowcount == 1

    def _purge(self) -> int:
        with self.db.connection() as conn:
            cur = conn.execute(
                "DELETE FROM jobs WHERE state IN ('succeeded', 'failed') "
                "AND finished_at < now() - make_interval(days => %s)",
                (RETENTION_DAYS,),
            )
            return cur.rowcount

    # -- workers ----------------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.ensure_schema)
        recovered = await asyncio.to_thread(self.recover)
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
                job = await asyncio.to_thread(self._claim)
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
                if not await asyncio.to_thread(self._renew, job_id):
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
            body = AddMemoryRequest.model_validate(job.request)
            added = await run_add(self.engine, self.settings, job.tenant, body)
        except asyncio.CancelledError:
            raise
        except ServiceUnavailable as exc:
            error = error_body(exc)
            if job.attempts < max_attempts:
                delay = min(RETRY_BACKOFF_MAX, 2.0**job.attempts)
                log.warning("job %s attempt %d: %s; retrying in %.0fs", job.id, job.attempts, exc.message, delay)
                await self._retrying(lambda: self._requeue(job.id, delay, error))
                return
            await self._settle(job, "failed", None, error)
        except ServiceError as exc:
            await self._settle(job, "failed", None, error_body(exc))
        except Exception:
            log.exception("job %s failed", job.id)
            error = {"code": "INTERNAL_ERROR", "message": "Internal error; the job id identifies it in the logs"}
            await self._settle(job, "failed", None, {**error, "details": {}})
        else:
            await self._settle(job, "succeeded", added.model_dump(mode="json"), None)

    async def _settle(self, job: Job, state: str, result: dict[str, Any] | None, error: dict[str, Any] | None) -> None:
        if await self._retrying(lambda: self._finish(job.id, state, result, error)):
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
                purged = await asyncio.to_thread(self._purge)
                if purged:
                    log.info("purged %d finished job(s) older than %d days", purged, RETENTION_DAYS)
            except Exception as exc:
                log.debug("job purge failed: %s", exc)
            await asyncio.sleep(MAINTENANCE_INTERVAL)

"""The `jobs` table: asynchronous work kept in Postgres, claimed with `FOR UPDATE SKIP LOCKED`.

A worker claims a job inside the UPDATE that marks it `running`, so two workers (processes,
hosts) never take the same one; a running job holds a lease (`locked_until`) its worker renews,
and every write after the claim checks the job is still that worker's (`worker = %s`), so a
worker that lost its lease cannot overwrite what another one did. A job's final state records its
webhook event (job.completed, job.failed) in the same transaction. The runner is
services/jobs.py.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from memory_service.errors import InvalidRequest, NotFound
from memory_service.models.jobs import Job
from memory_service.models.webhooks import job_finished
from memory_service.storage.database import Database
from memory_service.storage.webhooks import enqueue_events

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


class JobNotFound(NotFound):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job with ID '{job_id}' not found", {"id": job_id})


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def recover(self) -> int:
        """Running jobs whose worker is gone (lease expired) go back to the queue."""
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE jobs SET state = 'queued', worker = NULL, locked_until = NULL "
                "WHERE state = 'running' AND (locked_until IS NULL OR locked_until < now())"
            )
            return cur.rowcount

    def submit(self, tenant: str, kind: str, request: dict[str, Any]) -> Job:
        with self.db.connection() as conn:
            row = conn.execute(_INSERT, (uuid.uuid4(), tenant, kind, Jsonb(request))).fetchone()
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

    def recent(self, tenant: str, limit: int, before: str | None = None) -> tuple[list[Job], str | None]:
        """A tenant's jobs, newest first, keyset-paged: `before` is the last job id of the previous
        page; returns the page and the cursor of the next one (None on the last page)."""
        after = sql.SQL("")
        params: list[Any] = [tenant]
        if before is not None:
            try:
                parsed = uuid.UUID(before)
            except ValueError:
                raise InvalidRequest("cursor is not valid", {"field": "cursor"}) from None
            after = sql.SQL(" AND (created_at, id) < (SELECT created_at, id FROM jobs WHERE id = %s AND tenant = %s)")
            params += [parsed, tenant]
        query = sql.SQL("SELECT {} FROM jobs WHERE tenant = %s{} ORDER BY created_at DESC, id DESC LIMIT %s").format(
            _FIELDS, after
        )
        with self.db.connection() as conn:
            rows = conn.execute(query, [*params, limit + 1]).fetchall()
        jobs = [Job.of(r) for r in rows[:limit]]
        return jobs, (jobs[-1].id if len(rows) > limit and jobs else None)

    def depths(self, tenant: str) -> dict[str, int]:
        """How many of a tenant's jobs wait (queued) and run (running) now."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT state, count(*) FROM jobs WHERE tenant = %s AND state IN ('queued', 'running') GROUP BY state",
                (tenant,),
            ).fetchall()
        return {"queued": 0, "running": 0} | {str(state): int(n) for state, n in rows}

    def claim(self, worker: str, lease: float) -> Job | None:
        with self.db.connection() as conn:
            row = conn.execute(_CLAIM, {"worker": worker, "lease": lease}).fetchone()
        return None if row is None else Job.of(row)

    def renew(self, job_id: str, worker: str, lease: float) -> bool:
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE jobs SET locked_until = now() + make_interval(secs => %s) "
                "WHERE id = %s AND worker = %s AND state = 'running'",
                (lease, job_id, worker),
            )
            return cur.rowcount == 1

    def finish(
        self, job_id: str, worker: str, state: str, result: dict[str, Any] | None, error: dict[str, Any] | None
    ) -> bool:
        with self.db.connection() as conn, conn.cursor() as cur:
            row = cur.execute(
                "UPDATE jobs SET state = %s, result = %s, error = %s, finished_at = now(), locked_until = NULL "
                "WHERE id = %s AND worker = %s AND state = 'running' RETURNING tenant, request->>'user_id', attempts",
                (state, Jsonb(result) if result is not None else None, Jsonb(error) if error else None, job_id,
                 worker),
            ).fetchone()  # fmt: skip
            if row is None:
                return False
            tenant, user_id, attempts = row
            enqueue_events(cur, [job_finished(str(job_id), tenant, user_id, state, attempts, result, error)])
            return True

    def requeue(self, job_id: str, worker: str, delay: float, error: dict[str, Any]) -> bool:
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE jobs SET state = 'queued', error = %s, worker = NULL, locked_until = NULL, "
                "run_after = now() + make_interval(secs => %s) WHERE id = %s AND worker = %s AND state = 'running'",
                (Jsonb(error), delay, job_id, worker),
            )
            return cur.rowcount == 1

    def purge(self, retention_days: int) -> int:
        with self.db.connection() as conn:
            cur = conn.execute(
                "DELETE FROM jobs WHERE state IN ('succeeded', 'failed') "
                "AND finished_at < now() - make_interval(days => %s)",
                (retention_days,),
            )
            return cur.rowcount

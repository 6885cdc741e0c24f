"""The projector that keeps Neo4j in step with Postgres, the system of record.

Every write to a memory inserts an outbox row in the same Postgres transaction (storage/outbox.py),
so a committed change can never miss the graph, and a Neo4j outage loses
nothing: writes keep succeeding and rows accumulate. A projector in every worker claims rows
(`FOR UPDATE SKIP LOCKED`, so workers and hosts share the work without doing it twice), makes
Neo4j match the current state in Postgres, and deletes the rows in the same transaction. When
Neo4j is down the transaction rolls back, the rows stay, and the projector retries with backoff
until Neo4j is back: no restart needed.

Rows name *what* changed, not *how*: `memory` (one memory; projected as it is now, or deleted if
gone) and `user` (reconcile a user after an erasure). Replaying them is harmless, and their order
does not matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from memory_service.errors import ServiceUnavailable
from memory_service.observability.metrics import GRAPH_OUTBOX_PENDING, GRAPH_PROJECTIONS
from memory_service.storage.database import Database
from memory_service.storage.memory_table import MemoryTable
from memory_service.storage.neo4j import NEO4J_ERRORS, Neo4jGraphStore

log = logging.getLogger(__name__)
BATCH = 100
MAX_BACKOFF = 5.0


class Projector:
    """Drains the outbox into Neo4j."""

    def __init__(self, db: Database, table: MemoryTable, store: Neo4jGraphStore, idle_interval: float = 0.5) -> None:
        self.db = db
        self.table = table
        self.store = store
        self.idle_interval = idle_interval
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._schema_ready = False

    def project_batch(self) -> int:
        """Claim and project one batch; returns how many rows were done. Raises when Neo4j fails."""
        if not self._schema_ready:  # Neo4j may be down at start: create constraints when it is up
            self.store.ensure_schema()
            self._schema_ready = True
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT id, op, memory_id, user_key FROM graph_outbox ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (BATCH,),
            ).fetchall()
            if not rows:
                return 0
            memories = {str(memory_id): user_key for _, op, memory_id, user_key in rows if op == "memory"}
            current = self.table.fetch(sorted(memories)) if memories else {}
            self.store.sync_memories([(mid, user_key, current.get(mid)) for mid, user_key in sorted(memories.items())])
            for user_key in sorted({user_key for _, op, _, user_key in rows if op == "user"}):
                self.store.reconcile_user(user_key, self.table.ids_of_user(user_key))
            conn.execute("DELETE FROM graph_outbox WHERE id = ANY(%s)", ([r[0] for r in rows],))
        GRAPH_PROJECTIONS.labels("success").inc(len(rows))
        return len(rows)

    def pending(self) -> int:
        with self.db.connection() as conn:
            row = conn.execute("SELECT count(*) FROM graph_outbox").fetchone()
        return int(row[0]) if row else 0

    def _note_failure(self, exc: BaseException) -> None:
        GRAPH_PROJECTIONS.labels("error").inc()
        try:
            with self.db.connection() as conn:
                conn.execute(
                    "UPDATE graph_outbox SET attempts = attempts + 1, last_error = %s"
                    " WHERE id IN (SELECT id FROM graph_outbox ORDER BY id LIMIT %s)",
                    (f"{exc.__class__.__name__}: {exc}"[:500], BATCH),
                )
        except ServiceUnavailable:
            pass

    async def run(self) -> None:
        backoff = self.idle_interval
        while True:
            done, failed = 0, True
            try:
                done = await asyncio.to_thread(self.project_batch)
                backoff, failed = self.idle_interval, False
            except NEO4J_ERRORS as exc:
                reason = f"{exc.__class__.__name__}: {exc}"[:300]
                log.warning("graph projection failed (%s); retrying in %.1fs", reason, backoff)
                await asyncio.to_thread(self._note_failure, exc)
            except ServiceUnavailable:
                pass
            except Exception:  # the projector must outlive any single bad batch
                log.exception("graph projection failed")
            if failed:  # back off in full: a write's wake-up must not turn an outage into a retry storm
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            if done:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), backoff)

    def wake(self) -> None:
        """A write just enqueued something: project it now instead of at the next poll."""
        self._wake.set()

    async def report_pending(self, interval: float = 2.0) -> None:
        """Keep the backlog gauge current, also while a projection attempt waits on Neo4j."""
        while True:
            with contextlib.suppress(ServiceUnavailable):
                GRAPH_OUTBOX_PENDING.set(await asyncio.to_thread(self.pending))
            await asyncio.sleep(interval)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.run(), name="graph-projector"),
            asyncio.create_task(self.report_pending(), name="graph-outbox-gauge"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

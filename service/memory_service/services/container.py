"""Every backend of one process, opened in order at start and closed in reverse at shutdown.

The lifespan in main.py holds one Services; routes reach its parts through typed dependencies
(api/deps.py). Opening refuses to start (StartupError) on anything an operator must fix:
unreachable database, wrong model file, embedding dimension mismatch, well-known keys in
production.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from memory_service import __version__
from memory_service.domain.auth.keys import KeyService
from memory_service.domain.auth.sessions import SessionService
from memory_service.domain.entities.graph import GraphService
from memory_service.domain.memories.engine import MemoryEngine
from memory_service.domain.webhooks.service import WebhookService
from memory_service.observability.metrics import BUILD_INFO, STORED_MEMORIES, initialise_label_sets
from memory_service.providers.ollama import ollama_probe
from memory_service.services.factory import build_engine
from memory_service.services.health import HealthMonitor
from memory_service.services.jobs import JobRunner
from memory_service.services.projector import Projector
from memory_service.services.ratelimit import RateLimiter
from memory_service.services.webhooks import WebhookDispatcher
from memory_service.settings import Settings
from memory_service.storage.console_sessions import ConsoleSessionStore
from memory_service.storage.database import Database
from memory_service.storage.idempotency import IdempotencyStore
from memory_service.storage.jobs import JobStore
from memory_service.storage.keys import KeyRepository
from memory_service.storage.neo4j import Neo4jGraphStore
from memory_service.storage.webhooks import WebhookStore

log = logging.getLogger(__name__)
STORED_COUNT_INTERVAL = 30.0


@dataclass
class Services:
    settings: Settings
    db: Database
    engine: MemoryEngine
    keys: KeyService
    limiter: RateLimiter
    health: HealthMonitor
    graph: GraphService
    idempotency: IdempotencyStore
    webhooks: WebhookService
    sessions: SessionService
    neo4j: Neo4jGraphStore | None = None
    projector: Projector | None = None
    jobs: JobRunner | None = None
    dispatcher: WebhookDispatcher | None = None
    started_at: float = field(default_factory=time.monotonic)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        db = Database(settings)
        await asyncio.to_thread(db.open)
        try:
            engine = await asyncio.to_thread(build_engine, settings, db)
            keys = KeyService(KeyRepository(db), settings)
            await asyncio.to_thread(keys.apply_environment_policy)
        except BaseException:
            await asyncio.to_thread(db.close)
            raise
        limiter = RateLimiter(settings)
        health = HealthMonitor(settings.health_interval)
        neo4j = None
        if settings.neo4j_uri:
            password = settings.neo4j_password.get_secret_value() if settings.neo4j_password else None
            neo4j = Neo4jGraphStore(settings.neo4j_uri, settings.neo4j_user, password, settings.neo4j_timeout)
        graph = GraphService(
            engine.table,
            neo4j,
            settings.neo4j_timeout,
            lambda: health.results.get("neo4j") is None or health.results["neo4j"].up,
        )
        idempotency = IdempotencyStore.of(db, settings)  # Idempotency-Key on adds
        webhook_store = WebhookStore(db)
        dispatcher = WebhookDispatcher(settings, webhook_store)  # webhook deliveries of every process
        webhooks = WebhookService(webhook_store, settings, dispatcher.wake)
        sessions = SessionService(ConsoleSessionStore(db), keys, settings)  # the web console's sign-ins
        services = cls(
            settings,
            db,
            engine,
            keys,
            limiter,
            health,
            graph,
            idempotency,
            webhooks,
            sessions,
            neo4j,
            dispatcher=dispatcher,
        )
        if neo4j is not None:
            services.projector = Projector(db, engine.table, neo4j)
            services.projector.start()
        engine.after_write = services._after_write
        dispatcher.start()
        services._register_probes()
        await health.start()
        services._tasks.append(asyncio.create_task(services._count_loop(), name="stored-memories"))
        services._tasks.append(asyncio.create_task(services.idempotency.purge_loop(), name="idempotency-purge"))
        services.jobs = JobRunner(settings, JobStore(db), engine)  # asynchronous adds: JOBS_WORKERS workers
        await services.jobs.start()
        BUILD_INFO.labels(__version__, settings.profile).set(1)
        initialise_label_sets()
        return services

    def _after_write(self) -> None:
        """A memory write committed: its graph outbox rows and webhook events are waiting."""
        if self.projector is not None:
            self.projector.wake()
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def _register_probes(self) -> None:
        self.health.register("postgres", lambda: asyncio.to_thread(self.db.ping))
        if self.limiter.backend == "redis":
            self.health.register("redis", self.limiter.ping)
        if self.settings.ollama_base_url:
            self.health.register("ollama", ollama_probe(self.settings))
        if (neo4j := self.neo4j) is not None:
            self.health.register("neo4j", lambda: asyncio.to_thread(neo4j.ping))

    async def _count_loop(self) -> None:
        """Keep the stored-memories gauge current without a count(*) per scrape."""
        while True:
            try:
                STORED_MEMORIES.set(await self.engine.count())
            except Exception as exc:  # a failed count must not end the loop
                log.debug("memory count failed: %s", exc)
            await asyncio.sleep(STORED_COUNT_INTERVAL)

    def saturation(self) -> dict[str, int]:
        pool = self.db.pool_stats()
        return {
            **self.engine.saturation(),
            "db_connections": pool["size"],
            "db_connections_idle": pool["available"],
            "db_waiting": pool["waiting"],
        }

    def liveness(self) -> list[str]:
        """Why this process should be restarted (empty: it should not). A dependency being down
        is not a reason: a restart does not bring Postgres back (its supervision does)."""
        engine = self.engine.saturation()
        if engine["stragglers"] >= engine["threads"]:
            return [f"all {engine['threads']} engine threads are held by calls that outlived their deadline"]
        return []

    def readiness(self) -> list[str]:
        """Why this process should not get traffic now (empty: it should)."""
        reasons = self.liveness()
        if not self.health.up("postgres"):
            reasons.append("postgres is down")
        engine = self.engine.saturation()
        if engine["queued"] >= engine["threads"]:
            reasons.append(f"saturated: {engine['queued']} calls queued for {engine['threads']} engine threads")
        return reasons

    @property
    def providers(self) -> dict[str, str]:
        embedder = self.engine.memory.embedding_model
        return {
            "vector_store": "pgvector (embedded Postgres)" if self.settings.embedded_database else "pgvector",
            "embedder": getattr(embedder, "provider", "unknown"),
            "llm": f"ollama:{self.settings.ollama_llm_model}" if self.settings.inference_enabled else "none",
            "graph": "neo4j" if self.settings.neo4j_uri else "postgres",
            "rate_limit_storage": self.limiter.backend,
            "entity_extractor": self.engine.extractor.name,
        }

    async def close(self) -> None:
        if self.jobs is not None:  # first: running jobs still need the engine and the database
            await self.jobs.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.health.stop()
        if self.projector is not None:
            await self.projector.stop()
        if self.neo4j is not None:
            self.neo4j.close()
        self.engine.close()
        await asyncio.to_thread(self.db.close)

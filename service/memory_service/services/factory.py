"""Assemble the engine from settings: embedder, schema, mem0 with our store and history.

mem0 is built with a dummy embedder config (its factory is closed to new providers) and a
borrowed pool, then given the service's embedder, pgvector store and Postgres history. The LLM is
mem0's Ollama provider when OLLAMA_BASE_URL is set; without it no LLM is ever called.
"""

from __future__ import annotations

import logging
import os

from mem0 import Memory
from mem0.configs.base import MemoryConfig

from memory_service.domain.entities.extractor import make_extractor
from memory_service.domain.memories.engine import MemoryEngine
from memory_service.errors import StartupError
from memory_service.providers.cache import CachedEmbedder, SharedTier
from memory_service.providers.embedding import TimedEmbedder
from memory_service.providers.onnx import OnnxMiniLMEmbedder
from memory_service.settings import Settings
from memory_service.storage.database import Database
from memory_service.storage.history import PostgresHistory
from memory_service.storage.memory_table import MemoryTable
from memory_service.storage.schema import ensure_schema
from memory_service.storage.vector_store import BORROWED_POOL, ServicePGVector

log = logging.getLogger(__name__)


def worker_count() -> int:
    """Worker processes of this server (`serve` sets MEMORY_SERVICE_WORKERS; plain gunicorn has
    GUNICORN_WORKERS)."""
    for name in ("MEMORY_SERVICE_WORKERS", "GUNICORN_WORKERS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def embedder_concurrency(settings: Settings) -> int:
    """Model runs at a time in this worker: EMBEDDER_CONCURRENCY, or this worker's share of the
    CPUs (each run uses EMBEDDER_THREADS of them), so the workers together fill the machine."""
    if settings.embedder_concurrency is not None:
        return settings.embedder_concurrency
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // (worker_count() * settings.embedder_threads))


def build_embedder(settings: Settings) -> TimedEmbedder | CachedEmbedder:
    """The configured embedder, checked (pinned files, the dimension it really produces), behind
    the embedding cache unless EMBEDDING_CACHE_SIZE=0 (with its Redis tier when
    EMBEDDING_CACHE_REDIS_URL is set)."""
    embedder = _model(settings)
    if settings.embedding_cache_size == 0:
        return embedder
    shared = None
    if settings.embedding_cache_redis_url:
        shared = SharedTier(settings.embedding_cache_redis_url, settings.embedding_cache_ttl, embedder.dims)
    return CachedEmbedder(embedder, embedder.provider, settings.embedding_cache_size, shared=shared)


def _model(settings: Settings) -> TimedEmbedder:
    if settings.embedder == "ollama":
        from memory_service.providers.ollama import build_ollama_embedder

        return build_ollama_embedder(settings)
    inner = OnnxMiniLMEmbedder(
        threads=settings.embedder_threads,
        runners=embedder_concurrency(settings),
        max_batch=settings.embedder_max_batch,
        max_wait=settings.embedder_max_wait_ms / 1000,
    )
    if settings.embedding_dims is not None and settings.embedding_dims != inner.dims:
        raise StartupError(
            f"EMBEDDING_DIMS={settings.embedding_dims}, but the embedded model all-MiniLM-L6-v2 produces "
            f"{inner.dims}-dimensional vectors; unset EMBEDDING_DIMS or set it to {inner.dims}"
        )
    return TimedEmbedder(inner, inner.provider, inner.dims)


def _llm_config(settings: Settings) -> dict[str, object]:
    if settings.ollama_base_url:
        from memory_service.providers.ollama import llm_config

        return llm_config(settings)
    # Never called: without Ollama every add stores messages as given. mem0 still builds an LLM
    # object at construction, and its Ollama client does not connect until used.
    return {"provider": "ollama", "config": {"model": "none", "ollama_base_url": "http://127.0.0.1:9"}}


def build_engine(settings: Settings, db: Database) -> MemoryEngine:
    embedder = build_embedder(settings)
    ensure_schema(db, settings.collection_name, embedder.dims, embedder.provider)
    config = MemoryConfig.model_validate(
        {
            "vector_store": {
                "provider": "pgvector",
                "config": {
                    "connection_pool": BORROWED_POOL,
                    "collection_name": settings.collection_name,
                    "embedding_model_dims": embedder.dims,
                },
            },
            "llm": _llm_config(settings),
            "embedder": {"provider": "openai", "config": {"api_key": "unused", "embedding_dims": embedder.dims}},
            "history_db_path": ":memory:",
        }
    )
    memory = Memory(config)
    memory.db.close()
    memory.db = PostgresHistory(db)  # type: ignore[assignment]  # a drop-in with SQLiteManager's methods
    memory.embedding_model = embedder
    if settings.ollama_base_url:
        from memory_service.providers.ollama import build_ollama_llm

        # mem0's own Ollama LLM on the service's client: num_ctx, budget, retries, checked answers.
        memory.llm = build_ollama_llm(settings)
    # With Neo4j configured, every memory write also records an outbox row for the projection.
    outbox = settings.neo4j_uri is not None
    memory.vector_store = ServicePGVector(db, settings.collection_name, embedder.dims, outbox=outbox)
    table = MemoryTable(db, settings.collection_name, outbox=outbox)
    engine = MemoryEngine(settings, db, memory, table, make_extractor(settings.entity_max_chars))
    try:
        engine.warm_up()
    except Exception as exc:
        raise StartupError(f"the memory engine failed its warm-up call: {exc}") from exc
    return engine

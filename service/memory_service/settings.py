"""The one place for configuration: every knob is an environment variable (see docs/architecture.md).

The seed's variables (API_PORT, API_HOST, API_KEY, MAX_MEMORY_SIZE, SEARCH_LIMIT, DEFAULT_USER_ID)
keep their names and defaults; everything else is ours. The profile (embedded or production) is
derived from what is configured, never chosen separately, so the two cannot disagree.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


class Settings(BaseSettings):
    """Service settings, read from the environment (and `.env` when present)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Seed variables.
    api_host: str = "localhost"
    api_port: int = Field(8080, ge=1, le=65535)
    api_key: SecretStr | None = None
    max_memory_size: int = Field(1_000_000, ge=1)
    search_limit: int = Field(50, ge=1, le=1000)
    default_user_id: str = "default"
    # A user with more memories than this is searched through the HNSW index, others exactly
    # (storage/user_sizes.py). Measured by `make bench-scale` in a 1M-memory table, the user's rows
    # spread over it: exact 98 ms p50 at 10,000 rows and 338 ms at 20,000; the index 206 and 162 ms
    # with recall@5 0.86 and 0.82. The latency crossover lies between the two; neither path is good
    # there (docs/capacity.md, Scale), so the default stays at 20,000.
    search_exact_max_rows: int = Field(20_000, ge=0)
    # Candidates the HNSW index keeps per step (pgvector's default is 40). Measured on 10 users x
    # 1,000 near-alike memories with a user filter: recall@10 against an exact scan 0.97 at 40
    # (one query 0.2), 1.0 at 100 and 200, at under 1 ms a query (docs/capacity.md).
    hnsw_ef_search: int = Field(100, ge=1, le=1000)

    # Environment and storage.
    app_env: Literal["development", "production"] = "production"
    data_dir: Path = Path("./data")
    database_url: SecretStr | None = None
    db_pool_size: int = Field(8, ge=1, le=100)
    db_timeout: float = Field(5.0, gt=0, le=120)
    database_transaction_pooler: bool | None = None  # None: detect (port 6543 = Supabase's pooler)
    # A streaming replica of DATABASE_URL for searches and reads. A read goes there only when the
    # replica has replayed every write committed before the read began (else to the primary), so
    # reads never miss an acknowledged write (storage/database.py, Database.read_connection).
    database_read_url: SecretStr | None = None
    collection_name: str = "memories"

    # Embeddings.
    # Unset: Ollama when OLLAMA_BASE_URL is set (the production profile), else the embedded ONNX model.
    embedder: Literal["onnx", "ollama"] | None = None  # never None after validation
    embedding_dims: int | None = Field(None, ge=1, le=16000)
    embedder_threads: int = Field(1, ge=1, le=64)
    # Model runs at a time per worker; unset: the CPUs divided by the workers (providers/batching.py).
    embedder_concurrency: int | None = Field(None, ge=1, le=64)
    embedder_max_batch: int = Field(32, ge=1, le=256)
    embedder_max_wait_ms: float = Field(0.0, ge=0, le=50)
    embedding_cache_size: int = Field(10_000, ge=0, le=10_000_000)
    # A Redis URL shares the embedding cache between workers and hosts (production: the rate
    # limiter's Redis); its entries expire after EMBEDDING_CACHE_TTL seconds (providers/cache.py).
    embedding_cache_redis_url: str = ""
    embedding_cache_ttl: int = Field(86_400, ge=60, le=30 * 86_400)

    # Supervision of the embedded Postgres: restarted when it dies; the service exits (for its
    # process manager to restart it) when it cannot be restarted within this many seconds.
    embedded_pg_restart_timeout: float = Field(60.0, gt=0, le=3600)

    # HTTP.
    cors_origins: Annotated[list[str], NoDecode] = []
    request_timeout: float = Field(10.0, gt=0, le=600)
    # Reading a request: the head (request line and headers) and the body each have a deadline
    # (408 after it), and the headers a size limit (431 above), so a slow or huge request cannot
    # hold a connection (api/http_protocol.py, api/middleware.py).
    request_header_timeout: float = Field(10.0, gt=0, le=600)
    request_body_timeout: float = Field(30.0, gt=0, le=3600)
    max_header_bytes: int = Field(64 * 1024, ge=4096, le=1024 * 1024)
    # /docs and /openapi.json: unset means on in development, off in production.
    docs_enabled: bool | None = None
    health_interval: float = Field(2.0, gt=0, le=60)
    # Peers (addresses or CIDR networks, comma-separated; `*` for any) whose X-Forwarded-For and
    # X-Forwarded-Proto are believed: the load balancer's address in a deployment. A request from
    # anyone else keeps its TCP peer as the client address, so a forged header cannot pick the
    # per-address rate-limit bucket or what the access log records. Both serving paths (uvicorn,
    # gunicorn) read it from here.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = ["127.0.0.1", "::1"]
    # While this file exists, /health answers 503 `draining` (everything else keeps serving): a
    # load balancer polling /health stops sending new requests before a rolling deploy stops us.
    drain_file: Path | None = None

    # Bounded work per request (docs/architecture.md, "Deadlines and cancellation").
    # Engine threads one key may hold at once for adds and searches (unset: half of DB_POOL_SIZE,
    # at least 1); a request over it waits up to KEY_CONCURRENCY_WAIT seconds, then 429.
    key_concurrency: int | None = Field(None, ge=1, le=100)
    key_concurrency_wait: float = Field(1.0, ge=0, le=60)
    # A write whose commit is in flight at its deadline is awaited this long (its outcome is
    # Postgres's to decide), then its connection is cut and the outcome looked up.
    commit_timeout: float = Field(30.0, gt=0, le=600)
    # Entities are extracted from the first ENTITY_MAX_CHARS characters of a memory.
    entity_max_chars: int = Field(20_000, ge=100, le=1_000_000)

    # Rate limits (per API key; unauthenticated requests per client address).
    rate_limit_storage_uri: str = "memory://"
    rate_limit_per_minute: int = Field(100, ge=1)
    rate_limit_burst: int = Field(20, ge=1)
    rate_limit_burst_seconds: int = Field(10, ge=1, le=3600)
    rate_limit_fail_mode: Literal["open", "closed"] = "open"
    rate_limit_timeout: float = Field(0.5, gt=0, le=10)

    # Graph.
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr | None = None
    neo4j_timeout: float = Field(5.0, gt=0, le=60)
    graph_boost_weight: float = Field(0.1, ge=0, le=1)

    # Inference (Ollama).
    ollama_base_url: str | None = None
    ollama_llm_model: str = "qwen2.5:3b-instruct"
    ollama_embed_model: str = "nomic-embed-text"
    ollama_timeout: float = Field(30.0, gt=0, le=600)
    ollama_num_ctx: int = Field(16384, ge=2048)
    ollama_retries: int = Field(2, ge=0, le=10)
    jobs_workers: int = Field(2, ge=1, le=64)
    jobs_max_attempts: int = Field(3, ge=1, le=20)
    jobs_lease_seconds: float = Field(30.0, ge=1, le=3600)

    # Webhooks (docs/webhooks.md).
    webhook_allow_private_targets: bool = False  # true only for tests and closed networks
    webhook_allow_http: bool = False  # plain http in production (development always allows it)
    webhook_timeout: float = Field(10.0, gt=0, le=60)
    webhook_retry_period_seconds: float = Field(86_400.0, gt=0, le=30 * 86_400)
    webhook_retry_base_seconds: float = Field(5.0, gt=0, le=3600)
    webhook_retry_max_seconds: float = Field(3600.0, gt=0, le=86_400)
    webhook_concurrency: int = Field(8, ge=1, le=256)
    webhook_poll_interval: float = Field(1.0, gt=0, le=60)
    webhook_max_per_tenant: int = Field(10, ge=1, le=1000)
    webhook_secret_overlap_seconds: float = Field(86_400.0, ge=0, le=30 * 86_400)
    webhook_retention_days: int = Field(7, ge=1, le=365)

    # Web console (/console).
    console_enabled: bool = True
    console_session_idle_minutes: float = Field(30.0, gt=0, le=24 * 60)
    console_session_max_hours: float = Field(8.0, gt=0, le=24 * 7)
    grafana_url: str | None = None  # linked from the console's health panel

    # Observability.
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "memory-service"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [peer.strip() for peer in value.split(",") if peer.strip()]
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _valid_proxies(cls, value: list[str]) -> list[str]:
        for peer in value:
            if peer != "*":
                try:
                    ipaddress.ip_network(peer)  # strict: 10.0.0.1/24 (host bits set) is a mistake
                except ValueError as exc:
                    raise ValueError(f"{peer!r} is not an IP address, a CIDR network or '*'") from exc
        return value

    @field_validator("grafana_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not re.fullmatch(r"https?://[^\s\"'<>]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("embedding_cache_redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and not re.fullmatch(r"(rediss?|unix)://\S+", value):
            raise ValueError("must be a redis://, rediss:// or unix:// URL (or empty: no shared cache)")
        return value

    @field_validator("collection_name")
    @classmethod
    def _safe_identifier(cls, value: str) -> str:
        if not _IDENTIFIER.fullmatch(value):
            raise ValueError("must be a lower-case SQL identifier (letters, digits, underscore)")
        return value

    @field_validator("default_user_id")
    @classmethod
    def _valid_user(cls, value: str) -> str:
        from memory_service.core.ids import validate_user_id

        return validate_user_id(value)

    @model_validator(mode="after")
    def _embedder_choice(self) -> Settings:
        if self.embedder is None:
            self.embedder = "ollama" if self.ollama_base_url else "onnx"
        if self.embedder == "ollama" and not self.ollama_base_url:
            raise ValueError("EMBEDDER=ollama needs OLLAMA_BASE_URL")
        return self

    @property
    def engine_threads(self) -> int:
        """Threads running blocking engine calls: one per pooled connection."""
        return self.db_pool_size

    @property
    def key_concurrency_limit(self) -> int:
        return self.key_concurrency or max(1, self.engine_threads // 2)

    @property
    def development(self) -> bool:
        return self.app_env == "development"

    @property
    def serve_docs(self) -> bool:
        """Whether /docs and /openapi.json are served (DOCS_ENABLED, else only in development)."""
        return self.development if self.docs_enabled is None else self.docs_enabled

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def profile(self) -> str:
        """`embedded` when the service runs its own Postgres, `production` with DATABASE_URL."""
        return "embedded" if self.embedded_database else "production"

    @property
    def rate_limit_process_local(self) -> bool:
        """memory:// counts per process: several workers would each admit the full limit."""
        return self.rate_limit_storage_uri.removeprefix("async+").startswith("memory")

    @property
    def webhook_http_allowed(self) -> bool:
        """Plain-http webhook URLs: always in development, in production only when allowed."""
        return self.development or self.webhook_allow_http

    @property
    def inference_enabled(self) -> bool:
        return self.ollama_base_url is not None


@lru_cache
def get_settings() -> Settings:
    """Settings of this process, read once."""
    return Settings()

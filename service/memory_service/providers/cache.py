"""A bounded in-process cache of embeddings, in front of any embedder.

Agents repeat themselves: the same question each turn, the same memory text re-added, an update
that keeps the content. A hit costs a dictionary lookup instead of a model run (or an Ollama
round trip). Bounded LRU (EMBEDDING_CACHE_SIZE entries, 0 turns it off); vectors are kept as
float32 arrays (1.5 kB for 384 dimensions, a tenth of a list of Python floats).

The key is (model, tenant, text). The model, because a vector from another model is from another
space. The tenant, although a vector reveals nothing by itself, because a shared cache is a
timing oracle: a hit answers measurably faster, so one tenant could learn whether another
recently stored or searched a given text. The tenant comes from the call context the engine sets
around every call (core/context.py); a call without one (start-up) is not cached.

With EMBEDDING_CACHE_REDIS_URL set (the production profile: the rate limiter's Redis) a second
tier in Redis is shared by every worker and host: a text embedded by one is a hit for all, and
entries outlive worker recycling and deploys (EMBEDDING_CACHE_TTL). It pays: a lookup costs
about 0.03 ms of CPU (a miss: one MGET; a new vector: one pipelined SET) against the 7 ms a model
run costs a short query (docs/capacity.md). Redis keys are SHA-256 digests of (model, tenant,
text), so no memory text is kept in Redis; values are float32 bytes, checked for the dimension.
Redis is an optimisation: when it fails the call goes on to the model, and Redis is left alone
for a few seconds so an outage costs no timeouts.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict

import numpy as np
import redis
from mem0.embeddings.base import EmbeddingBase
from redis.backoff import NoBackoff
from redis.retry import Retry

from memory_service.core.context import current_call
from memory_service.models.scope import split_user_key
from memory_service.observability.metrics import EMBEDDING_CACHE
from memory_service.providers.embedding import Action, TimedEmbedder

log = logging.getLogger(__name__)
_HIT = EMBEDDING_CACHE.labels("hit")
_SHARED_HIT = EMBEDDING_CACHE.labels("shared_hit")
_MISS = EMBEDDING_CACHE.labels("miss")
_SHARED_ERROR = EMBEDDING_CACHE.labels("shared_error")
Key = tuple[str, str, str]  # (model, tenant, text)


class EmbeddingCache:
    """LRU of (model, tenant, text) -> vector, safe to share between threads."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> list[float] | None:
        with self._lock:
            vector = self._entries.get(key)
            if vector is None:
                return None
            self._entries.move_to_end(key)
        found: list[float] = vector.tolist()
        return found

    def put(self, key: Key, vector: list[float]) -> None:
        stored = np.asarray(vector, dtype=np.float32)
        stored.setflags(write=False)
        with self._lock:
            self._entries[key] = stored
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class SharedTier:
    """The cache's tier in Redis, shared by every worker and host (EMBEDDING_CACHE_REDIS_URL)."""

    PREFIX = "mem0:embedding:"
    TIMEOUT = 0.1  # seconds: a lookup slower than a model run is worth nothing
    PAUSE = 5.0  # seconds without Redis after a failure

    def __init__(self, url: str, ttl: int, dims: int) -> None:
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=self.TIMEOUT,
            socket_connect_timeout=self.TIMEOUT,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self.ttl = ttl
        self.size = dims * 4  # float32
        self._paused_until = 0.0

    @classmethod
    def redis_key(cls, key: Key) -> str:
        return cls.PREFIX + hashlib.sha256("\0".join(key).encode()).hexdigest()

    def get_many(self, keys: list[Key]) -> list[list[float] | None]:
        if not keys or time.monotonic() < self._paused_until:
            return [None] * len(keys)
        try:
            values: list[object] = list(self.client.mget([self.redis_key(key) for key in keys]))  # type: ignore[arg-type]  # redis-py types sync and async replies as one union
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return [None] * len(keys)
        return [
            np.frombuffer(value, dtype=np.float32).tolist()
            if isinstance(value, bytes) and len(value) == self.size
            else None
            for value in values
        ]

    def put_many(self, items: list[tuple[Key, list[float]]]) -> None:
        if not items or time.monotonic() < self._paused_until:
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for key, vector in items:
                    pipe.set(self.redis_key(key), np.asarray(vector, dtype=np.float32).tobytes(), ex=self.ttl)
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        _SHARED_ERROR.inc()
        self._paused_until = time.monotonic() + self.PAUSE
        log.warning(
            "the shared embedding cache (Redis) failed (%s); model runs only for %.0fs",
            exc.__class__.__name__,
            self.PAUSE,
        )


def _tenant() -> str | None:
    context = current_call()
    if context is None or context.user_key is None:
        return None
    return split_user_key(context.user_key)[0]


class CachedEmbedder(EmbeddingBase):
    """`inner` behind an EmbeddingCache; `model` names the vector space (provider and model)."""

    def __init__(
        self,
        inner: TimedEmbedder,
        model: str,
        max_entries: int,
        *,
        cache: EmbeddingCache | None = None,
        shared: SharedTier | None = None,
    ) -> None:
        """`cache`: an existing cache to share (its entries are keyed by model, so embedders of
        different models can share one without ever serving each other's vectors); `shared`:
        the tier in Redis, consulted on a local miss."""
        super().__init__(inner.config)
        self.inner = inner
        self.model = model
        self.provider = inner.provider
        self.dims = inner.dims
        self.cache = cache if cache is not None else EmbeddingCache(max_entries)
        self.shared = shared

    def embed(self, text: str, memory_action: Action = None) -> list[float]:
        tenant = _tenant()
        if tenant is None:
            return list(self.inner.embed(text, memory_action))
        return self._cached([(self.model, tenant, text)], memory_action, batch=False)[0]

    def embed_batch(self, texts: list[str], memory_action: Action = "add") -> list[list[float]]:
        tenant = _tenant()
        if tenant is None:
            return [list(v) for v in self.inner.embed_batch(texts, memory_action)]
        return self._cached([(self.model, tenant, text) for text in texts], memory_action, batch=True)

    def _cached(self, keys: list[Key], memory_action: Action, *, batch: bool) -> list[list[float]]:
        """Each key's vector from this process's cache, else the shared tier, else one model run
        for all that are left (`embed` or `embed_batch`, as the caller asked)."""
        found = [self.cache.get(key) for key in keys]
        missing = [i for i, vector in enumerate(found) if vector is None]
        _HIT.inc(len(keys) - len(missing))
        if missing and self.shared is not None:
            for i, vector in zip(missing, self.shared.get_many([keys[i] for i in missing]), strict=True):
                if vector is not None:
                    found[i] = vector
                    self.cache.put(keys[i], vector)
            shared_hits = len(missing)
            missing = [i for i in missing if found[i] is None]
            _SHARED_HIT.inc(shared_hits - len(missing))
        if missing:
            _MISS.inc(len(missing))
            texts = [keys[i][2] for i in missing]
            if batch:
                fresh = self.inner.embed_batch(texts, memory_action)
            else:
                fresh = [self.inner.embed(texts[0], memory_action)]
            computed: list[tuple[Key, list[float]]] = []
            for i, vector in zip(missing, fresh, strict=True):
                found[i] = as_list = list(vector)
                self.cache.put(keys[i], as_list)
                computed.append((keys[i], as_list))
            if self.shared is not None:
                self.shared.put_many(computed)
        return [vector for vector in found if vector is not None]

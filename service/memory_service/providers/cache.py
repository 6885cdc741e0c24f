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

In-process only, not shared through Redis: a shared lookup costs a round trip and a 1.5 kB
value (about as much CPU on the redis-py side as it saves on a short query's model run), it only
pays when another worker embedded the same text of the same tenant recently, and a miss pays
the round trip on top of the run (docs/capacity.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
from mem0.embeddings.base import EmbeddingBase

from memory_service.core.context import current_call
from memory_service.models.scope import split_user_key
from memory_service.observability.metrics import EMBEDDING_CACHE
from memory_service.providers.embedding import Action, TimedEmbedder

_HIT = EMBEDDING_CACHE.labels("hit")
_MISS = EMBEDDING_CACHE.labels("miss")


class EmbeddingCache:
    """LRU of (model, tenant, text) -> vector, safe to share between threads."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> list[float] | None:
        with self._lock:
            vector = self._entries.get(key)
            if vector is None:
                return None
            self._entries.move_to_end(key)
        found: list[float] = vector.tolist()
        return found

    def put(self, key: tuple[str, str, str], vector: list[float]) -> None:
        stored = np.asarray(vector, dtype=np.float32)
        stored.setflags(write=False)
        with self._lock:
            self._entries[key] = stored
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def _tenant() -> str | None:
    context = current_call()
    if context is None or context.user_key is None:
        return None
    return split_user_key(context.user_key)[0]


class CachedEmbedder(EmbeddingBase):
    """`inner` behind an EmbeddingCache; `model` names the vector space (provider and model)."""

    def __init__(
        self, inner: TimedEmbedder, model: str, max_entries: int, *, cache: EmbeddingCache | None = None
    ) -> None:
        """`cache`: an existing cache to share (its entries are keyed by model, so embedders of
        different models can share one without ever serving each other's vectors)."""
        super().__init__(inner.config)
        self.inner = inner
        self.model = model
        self.provider = inner.provider
        self.dims = inner.dims
        self.cache = cache if cache is not None else EmbeddingCache(max_entries)

    def embed(self, text: str, memory_action: Action = None) -> list[float]:
        tenant = _tenant()
        if tenant is None:
            return list(self.inner.embed(text, memory_action))
        key = (self.model, tenant, text)
        cached = self.cache.get(key)
        if cached is not None:
            _HIT.inc()
            return cached
        _MISS.inc()
        vector = list(self.inner.embed(text, memory_action))
        self.cache.put(key, vector)
        return vector

    def embed_batch(self, texts: list[str], memory_action: Action = "add") -> list[list[float]]:
        tenant = _tenant()
        if tenant is None:
            return [list(v) for v in self.inner.embed_batch(texts, memory_action)]
        keys = [(self.model, tenant, text) for text in texts]
        found = [self.cache.get(key) for key in keys]
        missing = [i for i, vector in enumerate(found) if vector is None]
        _HIT.inc(len(texts) - len(missing))
        if missing:
            _MISS.inc(len(missing))
            fresh = self.inner.embed_batch([texts[i] for i in missing], memory_action)
            for i, vector in zip(missing, fresh, strict=True):
                found[i] = computed = list(vector)
                self.cache.put(keys[i], computed)
        return [vector for vector in found if vector is not None]

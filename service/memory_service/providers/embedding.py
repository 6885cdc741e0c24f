"""What every embedder shares: mem0's interface, the memory action, and one timing wrapper.

mem0's embedder factory is closed to new providers, so the service's embedders are set on the
Memory object directly; they only need mem0's EmbeddingBase interface. Wrapping each in
TimedEmbedder gives every provider the same latency histogram and span.
"""

from __future__ import annotations

import time
from typing import Literal

from mem0.embeddings.base import EmbeddingBase
from opentelemetry import trace

from memory_service.core.context import check_cancelled, waiting_for
from memory_service.observability.metrics import EMBEDDING_DURATION

Action = Literal["add", "search", "update"] | None
_tracer = trace.get_tracer(__name__)


class TimedEmbedder(EmbeddingBase):
    """Wraps any mem0 embedder with a latency histogram and a span, so every provider is measured."""

    def __init__(self, inner: EmbeddingBase, provider: str, dims: int) -> None:
        super().__init__(inner.config)
        self.inner = inner
        self.provider = provider
        self.dims = dims
        self._histogram = EMBEDDING_DURATION.labels(provider)

    def embed(self, text: str, memory_action: Action = None) -> list[float]:
        check_cancelled()  # a cancelled call embeds nothing more
        with (
            waiting_for("embedder"),
            _tracer.start_as_current_span("embedding", attributes={"embedding.provider": self.provider}),
        ):
            started = time.perf_counter()
            try:
                return list(self.inner.embed(text, memory_action))
            finally:
                self._histogram.observe(time.perf_counter() - started)

    def embed_batch(self, texts: list[str], memory_action: Action = "add") -> list[list[float]]:
        check_cancelled()
        with (
            waiting_for("embedder"),
            _tracer.start_as_current_span(
                "embedding.batch", attributes={"embedding.provider": self.provider, "embedding.count": len(texts)}
            ),
        ):
            started = time.perf_counter()
            try:
                return [list(v) for v in self.inner.embed_batch(texts, memory_action)]
            finally:
                if texts:
                    self._histogram.observe((time.perf_counter() - started) / len(texts))

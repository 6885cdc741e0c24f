"""The embedding cache in front of the real ONNX model: a repeat is a hit with the same vector,
tenants never share an entry (a shared one would be a timing oracle), the bound holds, and a call
outside any request (no tenant) is not cached."""

from __future__ import annotations

import numpy as np
import pytest
from memory_service.core.context import CallContext, call_context
from memory_service.observability.metrics import EMBEDDING_CACHE
from memory_service.providers.cache import CachedEmbedder
from memory_service.providers.embedding import TimedEmbedder
from memory_service.providers.onnx import OnnxMiniLMEmbedder


@pytest.fixture(scope="module")
def model() -> OnnxMiniLMEmbedder:
    return OnnxMiniLMEmbedder()


def cached(model: OnnxMiniLMEmbedder, size: int = 100) -> CachedEmbedder:
    return CachedEmbedder(TimedEmbedder(model, model.provider, model.dims), model.provider, size)


def runs(model: OnnxMiniLMEmbedder) -> int:
    """How many texts the model embedded so far (its batch-size histogram's count)."""
    from memory_service.observability.metrics import EMBEDDING_BATCH_SIZE

    return int(sum(s.value for s in EMBEDDING_BATCH_SIZE.collect()[0].samples if s.name.endswith("_sum")))


def hits() -> float:
    return EMBEDDING_CACHE.labels("hit")._value.get()


def test_a_repeated_text_is_served_from_the_cache(model: OnnxMiniLMEmbedder) -> None:
    embedder = cached(model)
    with call_context(CallContext(user_key="acme/alice")):
        first = embedder.embed("where do I keep the spare keys", "search")
        before_runs, before_hits = runs(model), hits()
        again = embedder.embed("where do I keep the spare keys", "search")
    assert runs(model) == before_runs
    assert hits() == before_hits + 1
    assert again == first
    np.testing.assert_allclose(first, model.embed("where do I keep the spare keys"), atol=1e-6)


def test_tenants_do_not_share_entries(model: OnnxMiniLMEmbedder) -> None:
    embedder = cached(model)
    with call_context(CallContext(user_key="acme/alice")):
        embedder.embed("the launch date of project falcon")
    before = runs(model)
    with call_context(CallContext(user_key="globex/bob")):
        embedder.embed("the launch date of project falcon")
    assert runs(model) == before + 1  # another tenant's identical text is a miss
    with call_context(CallContext(user_key="acme/carol")):
        embedder.embed("the launch date of project falcon")
    assert runs(model) == before + 1  # the same tenant's other user hits


def test_the_cache_keeps_at_most_its_size_least_recently_used_out(model: OnnxMiniLMEmbedder) -> None:
    embedder = cached(model, size=3)
    with call_context(CallContext(user_key="acme/alice")):
        for text in ("one", "two", "three"):
            embedder.embed(text)
        embedder.embed("one")  # now the most recent
        embedder.embed("four")  # evicts "two"
        assert len(embedder.cache) == 3
        before = runs(model)
        embedder.embed("one")
        assert runs(model) == before
        embedder.embed("two")
        assert runs(model) == before + 1


def test_batches_embed_only_the_misses_and_keep_the_order(model: OnnxMiniLMEmbedder) -> None:
    embedder = cached(model)
    texts = ["alpha memory", "beta memory", "gamma memory"]
    with call_context(CallContext(user_key="acme/alice")):
        embedder.embed("beta memory")
        before = runs(model)
        vectors = embedder.embed_batch(texts)
    assert runs(model) == before + 2
    np.testing.assert_allclose(vectors, model.embed_batch(texts), atol=1e-6)


def test_calls_without_a_tenant_are_not_cached(model: OnnxMiniLMEmbedder) -> None:
    embedder = cached(model)
    embedder.embed("warm up")
    embedder.embed("warm up")
    assert len(embedder.cache) == 0


def test_models_never_serve_each_others_vectors(model: OnnxMiniLMEmbedder) -> None:
    """Two models (the ONNX one and an embedder over Ollama's HTTP API) share one cache: the
    same tenant's same text is a miss for the other model, and each gets its own space's vector."""
    from memory_service.providers.cache import EmbeddingCache
    from memory_service.providers.ollama import build_ollama_embedder
    from memory_service.settings import Settings

    from tests.support.ollama_server import TEST_EMBED_DIMS, TEST_EMBED_MODEL, TEST_LLM_MODEL, FakeOllama

    ollama = FakeOllama(models=(TEST_LLM_MODEL, TEST_EMBED_MODEL)).start()
    try:
        settings = Settings(
            _env_file=None,
            embedder="ollama",
            ollama_base_url=ollama.url,
            ollama_embed_model=TEST_EMBED_MODEL,
            embedding_dims=TEST_EMBED_DIMS,
        )
        remote = build_ollama_embedder(settings)
        shared = EmbeddingCache(100)
        local = CachedEmbedder(TimedEmbedder(model, model.provider, model.dims), model.provider, 100, cache=shared)
        other = CachedEmbedder(remote, remote.provider, 100, cache=shared)
        text = "the quarterly report is due on friday"
        with call_context(CallContext(user_key="acme/alice")):
            ours = local.embed(text, "search")
            before = len(ollama.recorded("/api/embed"))
            theirs = other.embed(text, "search")
            assert len(ollama.recorded("/api/embed")) == before + 1  # a miss: Ollama was asked
            assert other.embed(text, "search") == theirs  # and now its own hit
            assert local.embed(text, "search") == ours
        assert len(shared) == 2
        assert len(ours) == model.dims
        assert len(theirs) == TEST_EMBED_DIMS != model.dims
    finally:
        ollama.stop()

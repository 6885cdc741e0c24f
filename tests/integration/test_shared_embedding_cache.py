"""The embedding cache's Redis tier (EMBEDDING_CACHE_REDIS_URL), on a real redis-server and the
real ONNX model: what one worker embedded is a hit for another (two CachedEmbedders with their
own in-process caches are two workers), tenants still never share, Redis holds no memory text,
and a Redis outage only costs model runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from memory_service.core.context import CallContext, call_context
from memory_service.observability.metrics import EMBEDDING_CACHE
from memory_service.providers.cache import CachedEmbedder, SharedTier
from memory_service.providers.embedding import TimedEmbedder
from memory_service.providers.onnx import OnnxMiniLMEmbedder
from memory_service.services.factory import build_embedder
from memory_service.settings import Settings

from tests.support.redis import RedisServer


@pytest.fixture(scope="module")
def model() -> OnnxMiniLMEmbedder:
    return OnnxMiniLMEmbedder()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def worker(model: OnnxMiniLMEmbedder, url: str) -> CachedEmbedder:
    """One worker's embedder: its own in-process cache, the shared tier in `url`."""
    inner = TimedEmbedder(model, model.provider, model.dims)
    return CachedEmbedder(inner, model.provider, 100, shared=SharedTier(url, 3600, model.dims))


def runs(model: OnnxMiniLMEmbedder) -> int:
    from memory_service.observability.metrics import EMBEDDING_BATCH_SIZE

    return int(sum(s.value for s in EMBEDDING_BATCH_SIZE.collect()[0].samples if s.name.endswith("_sum")))


def counted(result: str) -> float:
    return EMBEDDING_CACHE.labels(result)._value.get()


def test_what_one_worker_embedded_is_a_hit_for_another(model: OnnxMiniLMEmbedder, redis_server: RedisServer) -> None:
    first, second = worker(model, redis_server.url), worker(model, redis_server.url)
    text = "the spare keys are under the blue flowerpot"
    with call_context(CallContext(user_key="acme/alice")):
        vector = first.embed(text, "search")
        before_runs, before_shared = runs(model), counted("shared_hit")
        again = second.embed(text, "search")
        assert runs(model) == before_runs  # no model run in the second worker
        assert counted("shared_hit") == before_shared + 1
        np.testing.assert_allclose(again, vector, atol=1e-6)
        np.testing.assert_allclose(again, model.embed(text), atol=1e-6)
        assert second.embed(text, "search") == again  # now in its own process cache
        assert counted("shared_hit") == before_shared + 1
        # Batches too: only what neither tier has is embedded, in order.
        texts = [text, "a new fact about the garden", "another new fact about the car"]
        before_runs = runs(model)
        batch = second.embed_batch(texts)
        assert runs(model) == before_runs + 2
        np.testing.assert_allclose(batch, model.embed_batch(texts), atol=1e-6)
        before_runs = runs(model)
        np.testing.assert_allclose(first.embed_batch(texts), batch, atol=1e-6)
        assert runs(model) == before_runs  # the first worker found the two new ones in Redis


def test_tenants_do_not_share_through_redis_and_no_text_is_stored(
    model: OnnxMiniLMEmbedder, redis_server: RedisServer
) -> None:
    first, second = worker(model, redis_server.url), worker(model, redis_server.url)
    text = "the launch date of project falcon is in march"
    with call_context(CallContext(user_key="acme/alice")):
        first.embed(text)
    before = runs(model)
    with call_context(CallContext(user_key="globex/bob")):
        second.embed(text)
    assert runs(model) == before + 1  # another tenant's identical text is a miss
    with call_context(CallContext(user_key="acme/carol")):
        second.embed(text)
    assert runs(model) == before + 1  # the same tenant's other user hits, in the other worker
    client = redis.Redis.from_url(redis_server.url)
    keys = client.keys("*")
    assert len(keys) == 2  # one per tenant
    for key in keys:
        assert key.startswith(b"mem0:embedding:")
        for secret in (b"falcon", b"acme", b"globex"):
            assert secret not in key
        value = client.get(key)
        assert value is not None
        assert len(value) == model.dims * 4
        assert b"falcon" not in value
        assert 0 < client.ttl(key) <= 3600


def test_a_redis_outage_costs_model_runs_not_errors(model: OnnxMiniLMEmbedder, redis_server: RedisServer) -> None:
    embedder = worker(model, redis_server.url)
    redis_server.stop()
    before_runs, before_errors = runs(model), counted("shared_error")
    with call_context(CallContext(user_key="acme/alice")):
        vector = embedder.embed("written while redis is down", "search")
        other = embedder.embed("also written while redis is down", "search")
    assert runs(model) == before_runs + 2
    assert counted("shared_error") == before_errors + 1  # then Redis is left alone for a while
    np.testing.assert_allclose(vector, model.embed("written while redis is down"), atol=1e-6)
    assert len(other) == model.dims


def test_the_factory_wires_the_tier_from_the_settings(redis_server: RedisServer) -> None:
    embedder = build_embedder(Settings(_env_file=None, embedding_cache_redis_url=redis_server.url))
    assert isinstance(embedder, CachedEmbedder)
    assert embedder.shared is not None
    assert isinstance(build_embedder(Settings(_env_file=None)), CachedEmbedder)
    assert build_embedder(Settings(_env_file=None)).shared is None  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="redis://"):
        Settings(_env_file=None, embedding_cache_redis_url="http://example.invalid")

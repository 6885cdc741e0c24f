"""A client that sleeps exactly Retry-After is admitted (issue 19, defect 7), on the real limiter and Redis.

Both windows of a key are filled in Redis (the limiter's own lists) so that they free a request
within the same wall-clock second, the minute window later than the burst: the refusal must name
the minute window's wait, not the burst's. Waiting out a real minute would take a minute; the
windows' contents are what the limiter would have written for those requests.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator

import pytest
import redis
from memory_service.errors import RateLimitExceeded
from memory_service.services.ratelimit import RateLimiter
from memory_service.settings import Settings

from tests.support.redis import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-retry")).start()
    yield server
    server.stop()


def _fill(client: redis.Redis, key: str, amount: int, oldest: float, others: float) -> None:
    """The moving window's list, newest first: `amount - 1` requests at `others`, one at `oldest`."""
    client.delete(key)
    client.rpush(key, *([repr(others)] * (amount - 1) + [repr(oldest)]))
    client.expire(key, 120)


async def _refused_then_admitted(limiter: RateLimiter, identity: str) -> tuple[int, float]:
    try:
        await limiter.check(identity, "key")
    except RateLimitExceeded as refused:
        refused_at = time.monotonic()
        await asyncio.sleep(refused.retry_after)  # exactly what the client was told
        await limiter.check(identity, "key")  # raises if still refused
        return refused.retry_after, time.monotonic() - refused_at
    raise AssertionError("the full windows admitted a request")


def test_sleeping_exactly_retry_after_is_enough_when_the_minute_window_frees_last(redis_server: RedisServer) -> None:
    settings = Settings(
        rate_limit_storage_uri=redis_server.url, rate_limit_per_minute=100, rate_limit_burst=20, _env_file=None
    )
    limiter = RateLimiter(settings)
    client = redis.Redis.from_url(redis_server.url)
    identity = f"retry-{time.monotonic_ns()}"
    # Start at a fraction of a second where the burst window's wait, rounded up, ends before the
    # minute window frees a request (what a 429 once announced).
    while not 0.2 < time.time() % 1 < 0.8:
        time.sleep(0.05)
    now = time.time()
    second = math.ceil(now) + 1  # both windows free a request in the second before this one
    burst_reset, minute_reset = second - 0.9, second - 0.01
    _fill(client, f"LIMITS:{limiter.burst.key_for('key', identity)}", 20, burst_reset - 10, now - 0.5)
    _fill(client, f"LIMITS:{limiter.minute.key_for('key', identity)}", 100, minute_reset - 60, now - 0.5)

    retry_after, waited = asyncio.run(_refused_then_admitted(limiter, identity))
    assert retry_after == math.ceil(minute_reset - now)
    assert waited >= retry_after

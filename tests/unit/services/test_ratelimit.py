"""Rate limiting with `limits` on its own in-process storage (`memory://`): the windows a key
gets, the headers' choice of window, Retry-After, and failing open or closed."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest
from memory_service.errors import RateLimitExceeded, ServiceUnavailable, StartupError
from memory_service.services.ratelimit import (
    RateLimiter,
    RateLimitState,
    WindowState,
    async_storage_uri,
    blocking,
    is_process_local,
    retry_after,
    tightest,
)
from memory_service.settings import Settings

from tests.support.server import free_port


def limiter(**values: Any) -> RateLimiter:
    defaults: dict[str, Any] = {
        "rate_limit_storage_uri": "memory://",
        "rate_limit_per_minute": 100,
        "rate_limit_burst": 20,
        "rate_limit_burst_seconds": 10,
    }
    return RateLimiter(Settings(_env_file=None, **{**defaults, **values}))


async def admitted(rl: RateLimiter, identity: str, n: int, per_minute: int | None = None) -> RateLimitState:
    state = None
    for _ in range(n):
        state = await rl.check(identity, "key", per_minute)
    assert state is not None
    return state


async def refusal(rl: RateLimiter, identity: str, per_minute: int | None = None) -> RateLimitExceeded:
    with pytest.raises(RateLimitExceeded) as caught:
        await rl.check(identity, "key", per_minute)
    return caught.value


def test_the_default_windows_admit_the_burst_then_refuse() -> None:
    async def scenario() -> None:
        rl = limiter()
        first = await rl.check("k1", "key")
        assert first is not None
        headers = first.headers()
        assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("20", "19")
        assert 0 <= int(headers["X-RateLimit-Reset"]) - time.time() <= 11
        await admitted(rl, "k1", 19)
        refused = await refusal(rl, "k1")
        assert refused.details["window"] == "burst"
        assert refused.details["limit"] == 20
        assert refused.details["window_seconds"] == 10
        assert refused.message == "Rate limit exceeded: 20 requests per 10 seconds"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("per_minute", "burst"),
    [
        (1000, 200),  # scaled in proportion: 1000 * 20 / 100
        (250, 50),
        (50, 20),  # never below the default burst
        (12, 12),  # never above the key's own minute limit
    ],
)
def test_a_keys_own_limit_scales_its_burst(per_minute: int, burst: int) -> None:
    async def scenario() -> None:
        rl = limiter()
        state = await admitted(rl, "k", burst, per_minute)
        assert state.window.remaining == 0
        refused = await refusal(rl, "k", per_minute)
        assert refused.details["limit"] == burst
        # Another key of the same tenant keeps its own budget.
        other = await rl.check("other", "key", per_minute)
        assert other is not None
        assert other.window.remaining == burst - 1

    asyncio.run(scenario())


def test_a_refused_burst_does_not_spend_the_minute() -> None:
    async def scenario() -> None:
        rl = limiter()
        await admitted(rl, "k", 20)
        for _ in range(5):
            await refusal(rl, "k")
        stats = await rl.strategy.get_window_stats(rl.minute, "key", "k")
        assert stats.remaining == 80

    asyncio.run(scenario())


def test_retry_after_waits_until_the_exhausted_window_frees_a_request() -> None:
    async def scenario() -> None:
        rl = limiter(rate_limit_burst=3, rate_limit_burst_seconds=30)
        await admitted(rl, "k", 3)
        refused = await refusal(rl, "k")
        assert 29 <= refused.retry_after <= 30
        assert refused.details["retry_after"] == refused.retry_after
        assert refused.headers["X-RateLimit-Limit"] == "3"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert math.isclose(int(refused.headers["X-RateLimit-Reset"]), time.time() + 30, abs_tol=2)

    asyncio.run(scenario())


def test_the_headers_describe_the_minute_when_it_is_the_tighter_window() -> None:
    async def scenario() -> None:
        rl = limiter(rate_limit_burst=20, rate_limit_per_minute=100)
        # A key of 20/min: both windows hold 20; on a tie the later reset (the minute) is named.
        state = await admitted(rl, "k", 5, per_minute=20)
        assert state.headers()["X-RateLimit-Limit"] == "20"
        assert state.window.name == "minute"
        assert state.window.seconds == 60

    asyncio.run(scenario())


def test_addresses_and_keys_are_counted_apart() -> None:
    async def scenario() -> None:
        rl = limiter(rate_limit_burst=2)
        await admitted(rl, "same", 2)
        await refusal(rl, "same")
        assert await rl.check("same", "address") is not None

    asyncio.run(scenario())


def test_tightest_prefers_fewest_remaining_then_the_later_reset() -> None:
    burst = WindowState("burst", 20, 3, 1000, 10)
    minute = WindowState("minute", 100, 50, 1050, 60)
    assert tightest([burst, minute]) is burst
    assert tightest([WindowState("burst", 20, 0, 1000, 10), WindowState("minute", 100, 0, 1050, 60)]).name == "minute"
    assert tightest([WindowState("burst", 20, -1, 1000, 10), WindowState("minute", 100, 0, 1050, 60)]).name == "minute"
    assert RateLimitState(burst).headers() == {
        "X-RateLimit-Limit": "20",
        "X-RateLimit-Remaining": "3",
        "X-RateLimit-Reset": "1000",
    }
    assert RateLimitState(WindowState("b", 20, -2, 5, 10)).headers()["X-RateLimit-Remaining"] == "0"


def test_storage_uris() -> None:
    assert async_storage_uri("memory://") == "async+memory://"
    assert async_storage_uri("async+redis://h:6379/0") == "async+redis://h:6379/0"
    assert is_process_local("memory://")
    assert not is_process_local("redis://127.0.0.1:6379/0")
    assert limiter().backend == "memory"
    with pytest.raises(StartupError, match="must be memory:// or redis://"):
        limiter(rate_limit_storage_uri="memcached://127.0.0.1:11211")


def _unreachable_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: connections are refused at once


def test_with_its_storage_down_the_limiter_fails_open() -> None:
    async def scenario() -> None:
        rl = limiter(rate_limit_storage_uri=_unreachable_redis(), rate_limit_fail_mode="open")
        assert rl.backend == "redis"
        assert await rl.check("k", "key") is None
        assert await rl.ping() is False

    asyncio.run(scenario())


def test_with_its_storage_down_the_limiter_fails_closed_when_told() -> None:
    async def scenario() -> None:
        rl = limiter(rate_limit_storage_uri=_unreachable_redis(), rate_limit_fail_mode="closed")
        with pytest.raises(ServiceUnavailable) as caught:
            await rl.check("k", "key")
        assert caught.value.dependency == "rate limiter"
        assert caught.value.status_code == 503

    asyncio.run(scenario())


def _window(name: str, remaining: int, reset_at: float, limit: int = 20, seconds: int = 10) -> WindowState:
    return WindowState(name, limit, remaining, math.ceil(reset_at), seconds, reset_at)


def test_both_exhausted_with_the_same_rounded_reset_waits_for_the_later_one() -> None:
    # Both windows reset within second 101; the minute one later. Waiting for the burst's reset
    # (what the tightest window said, breaking the tie on the rounded header value) is too short.
    now = 98.5
    burst, minute = _window("burst", 0, 100.2), _window("minute", 0, 100.7, 100, 60)
    for states in ([burst, minute], [minute, burst]):
        chosen = blocking(states)
        assert chosen is minute
        assert now + retry_after(chosen, now) > minute.reset_at


def test_the_minute_refuses_while_the_burst_has_room() -> None:
    now = 1000.0
    burst, minute = _window("burst", 5, 1003.0), _window("minute", 0, 1042.3, 100, 60)
    assert blocking([burst, minute]) is minute
    assert retry_after(minute, now) == 43


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.25, 0.5, 0.999])
def test_sleeping_exactly_retry_after_passes_the_reset(fraction: float) -> None:
    now = 500.0 + fraction
    for delta in (0.0001, 0.5, 1.0, 1.9999, 2.0, 59.0):
        window = _window("minute", 0, now + delta, 100, 60)
        assert now + retry_after(window, now) > window.reset_at
        assert retry_after(window, now) >= 1


def test_tightest_breaks_ties_on_the_exact_reset_not_the_header() -> None:
    early, late = _window("burst", 0, 100.2), _window("minute", 0, 100.7, 100, 60)
    assert tightest([early, late]) is late
    assert tightest([late, early]) is late

"""Rate limits with the `limits` library: two moving windows per API key, one per client address.

The moving window is the strategy because the seed's numbers must hold exactly: it stores one
timestamp per admitted request and admits the next only if fewer than N lie in the last window,
atomically (a Lua script on Redis), so 60 concurrent requests on one key admit exactly 20 however
many workers or hosts share the Redis. A sliding-window counter would be cheaper but approximate,
and a fixed window admits up to twice the limit across a boundary.

Two windows per key: the burst (RATE_LIMIT_BURST per RATE_LIMIT_BURST_SECONDS) is hit first, then
the minute (RATE_LIMIT_PER_MINUTE, or the key's own limit). The burst goes first so a refused
burst never consumes the minute's budget; the reverse (a minute refusal after the burst admitted)
costs the burst one slot of a request that was refused anyway.

The X-RateLimit-* headers describe the window closest to running out (fewest remaining; the
later reset on a tie, since a request needs room in both): Limit is its size, Remaining what it
still admits, Reset the Unix time in whole seconds at which its oldest request leaves it, i.e.
when it frees a request. A 429 names the window that frees a request last among the exhausted
ones, and Retry-After is the wait until then, so a client that sleeps exactly Retry-After finds
room in every window (`retry_after`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Literal

from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from memory_service.errors import RateLimitExceeded, ServiceUnavailable, StartupError
from memory_service.observability.metrics import RATELIMIT_DECISIONS
from memory_service.settings import Settings

log = logging.getLogger(__name__)
Scope = Literal["key", "address"]
_STORAGE_ERRORS = (StorageError, ConnectionError, TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class WindowState:
    name: str
    limit: int
    remaining: int
    reset: int  # whole seconds, rounded up: the header
    seconds: int
    reset_at: float = 0.0  # exact, for Retry-After


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """What the headers say: the tightest window after this request."""

    window: WindowState

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.window.limit),
            "X-RateLimit-Remaining": str(max(0, self.window.remaining)),
            "X-RateLimit-Reset": str(self.window.reset),
        }


def tightest(states: list[WindowState]) -> WindowState:
    """The window closest to running out: fewest requests left; among equals, the later reset,
    because that is when the next request is really admitted (both windows must have room).
    Ties of the rounded reset (the header's) are broken on the exact one."""
    return min(states, key=lambda w: (max(0, w.remaining), -w.reset, -w.reset_at))


def blocking(states: list[WindowState]) -> WindowState:
    """Of a refused request's windows, the one that frees a request last among those with no
    room left (a request needs room in every window); the tightest when none is exhausted."""
    exhausted = [w for w in states if w.remaining <= 0]
    return max(exhausted, key=lambda w: w.reset_at) if exhausted else tightest(states)


def retry_after(window: WindowState, now: float) -> int:
    """Whole seconds after which `window` has freed a request, at least 1: strictly past its
    reset, since the window admits again only once its oldest request is older than the window
    (an exact whole number of seconds therefore waits one more)."""
    return max(1, math.floor(window.reset_at - now) + 1)


def async_storage_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else f"async+{uri}"


def is_process_local(uri: str) -> bool:
    return async_storage_uri(uri).startswith("async+memory")  # Settings.rate_limit_process_local agrees


def _async(storage: object) -> Storage:
    """storage_from_string is typed for both kinds; an `async+` URI always gives the async one."""
    assert isinstance(storage, Storage)
    return storage


def _storage(settings: Settings) -> Storage:
    uri = async_storage_uri(settings.rate_limit_storage_uri)
    if is_process_local(uri):
        return _async(storage_from_string(uri))
    if uri.startswith(("async+redis", "async+rediss")):
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # Fail fast: the limiter sits in front of every request, so a Redis outage must cost
        # milliseconds per request (then fail open or closed), not redis-py's retries.
        return _async(
            storage_from_string(
                uri,
                implementation="redispy",
                wrap_exceptions=True,
                socket_timeout=settings.rate_limit_timeout,
                socket_connect_timeout=settings.rate_limit_timeout,
                retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]  # passed on to redis-py; limits types scalars only
                health_check_interval=0,
            )
        )
    raise StartupError(f"RATE_LIMIT_STORAGE_URI must be memory:// or redis://…, not {uri!r}")


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.storage = _storage(settings)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.burst = RateLimitItemPerSecond(settings.rate_limit_burst, settings.rate_limit_burst_seconds)
        self.minute = RateLimitItemPerMinute(settings.rate_limit_per_minute)
        self.fail_closed = settings.rate_limit_fail_mode == "closed"
        self._last_failure_log = 0.0

    @property
    def backend(self) -> str:
        return "memory" if is_process_local(self.settings.rate_limit_storage_uri) else "redis"

    def _items(self, per_minute: int | None) -> list[tuple[str, RateLimitItem]]:
        """A key's own per-minute limit scales its burst in proportion (1000/min gets 200 per 10 s
        with the defaults), never below the default burst and never above the minute limit."""
        if per_minute is None:
            return [("burst", self.burst), ("minute", self.minute)]
        settings = self.settings
        scaled = math.ceil(per_minute * settings.rate_limit_burst / settings.rate_limit_per_minute)
        burst_amount = min(per_minute, max(settings.rate_limit_burst, scaled))
        burst = RateLimitItemPerSecond(burst_amount, settings.rate_limit_burst_seconds)
        return [("burst", burst), ("minute", RateLimitItemPerMinute(per_minute))]

    async def _states(self, items: list[tuple[str, RateLimitItem]], scope: Scope, identity: str) -> list[WindowState]:
        states = []
        for name, item in items:
            stats = await self.strategy.get_window_stats(item, scope, identity)
            reset = stats.reset_time
            states.append(WindowState(name, item.amount, stats.remaining, math.ceil(reset), item.get_expiry(), reset))
        return states

    async def check(self, identity: str, scope: Scope, per_minute: int | None = None) -> RateLimitState | None:
        """Admit or raise RateLimitExceeded; None when the storage is down and the mode is open."""
        items = self._items(per_minute)
        try:
            for _, item in items:
                if not await self.strategy.hit(item, scope, identity):
                    RATELIMIT_DECISIONS.labels("refused", scope).inc()
                    raise self._refusal(await self._states(items, scope, identity))
            states = await self._states(items, scope, identity)
        except _STORAGE_ERRORS as exc:
            self._storage_down(exc, scope)
            return None
        RATELIMIT_DECISIONS.labels("allowed", scope).inc()
        return RateLimitState(tightest(states))

    def _refusal(self, states: list[WindowState]) -> RateLimitExceeded:
        """Refused: name the exhausted window that frees a request last, so a client that waits
        Retry-After (or until X-RateLimit-Reset) is admitted, not refused by the other window."""
        window = blocking(states)
        wait = retry_after(window, time.time())
        return RateLimitExceeded(
            f"Rate limit exceeded: {window.limit} requests per {window.seconds} seconds",
            {
                "limit": window.limit,
                "window_seconds": window.seconds,
                "window": window.name,
                "retry_after": wait,
            },
            wait,
            RateLimitState(window).headers(),
        )

    def _storage_down(self, exc: BaseException, scope: Scope) -> None:
        now = time.monotonic()
        if now - self._last_failure_log > 10:
            self._last_failure_log = now
            log.warning(
                "rate-limit storage unavailable (%s); failing %s",
                exc.__class__.__name__,
                "closed" if self.fail_closed else "open",
            )
        if self.fail_closed:
            RATELIMIT_DECISIONS.labels("fail_closed", scope).inc()
            raise ServiceUnavailable("rate limiter", "the rate limiter's storage (Redis) is unavailable")
        RATELIMIT_DECISIONS.labels("fail_open", scope).inc()
        return None

    async def ping(self) -> bool:
        try:
            return bool(await self.storage.check())
        except _STORAGE_ERRORS:
            return False

    async def reset(self) -> None:
        await self.storage.reset()

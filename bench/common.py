"""What every benchmark script shares: the corpus's topics and queries, logging, summaries.

One place, so that two scripts measuring the same thing (the throughput run and the
latency run, the MCP comparison) seed, ask and summarise alike and their figures compare.
"""

from __future__ import annotations

import statistics
import sys
import time

TOPICS = ["cooking", "travel", "music", "software", "gardening", "finance", "sports", "movies", "books", "health"]
QUERIES = [f"what do I know about {t}" for t in TOPICS] + ["favourite places", "plans for the weekend"]


# A service under load from one key: rate limits out of the way, and per-key admission queues
# instead of answering 429 after KEY_CONCURRENCY_WAIT (an overloaded machine's queue turned into
# 429s once: the 2026-11-30 run lost 38 searches so); admission is tested in
# tests/integration/test_bounded_work.py, throughput is measured here.
LOAD_ENV = {
    "RATE_LIMIT_PER_MINUTE": "1000000000",
    "RATE_LIMIT_BURST": "1000000000",
    "LOG_LEVEL": "WARNING",
    "REQUEST_TIMEOUT": "120",
    "KEY_CONCURRENCY_WAIT": "60",
}


def postgres_uri(conninfo: str) -> str:
    """A libpq key=value conninfo of the embedded Postgres as the URL DATABASE_URL takes."""
    parts = dict(item.split("=", 1) for item in conninfo.split())
    return f"postgresql://{parts['user']}@/{parts['dbname']}?host={parts['host']}&port={parts['port']}"


def log(message: str) -> None:
    """Progress goes to stderr, stamped: stdout is the one JSON document."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
        "n": len(ordered),
    }


async def limiter_overhead(storage_uri: str) -> dict[str, float]:
    """The rate limiter's added latency per request (its `check`), without the HTTP around it."""
    from memory_service.services.ratelimit import RateLimiter
    from memory_service.settings import Settings

    limiter = RateLimiter(
        Settings(rate_limit_storage_uri=storage_uri, rate_limit_per_minute=10**9, rate_limit_burst=10**9)
    )
    samples = []
    for i in range(2000):
        started = time.perf_counter()
        await limiter.check(f"bench-key-{i % 50}", "key")
        samples.append((time.perf_counter() - started) * 1000)
    return summary(samples[100:])  # without the first connection's set-up

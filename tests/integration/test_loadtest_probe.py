"""The Locust rate-limit probes against real servers with the seed's limits, as a client sees them.

One run of the three probe users per serving mode (one uvicorn worker with memory:// limits; four
gunicorn workers sharing a real Redis): RateLimitProbe proves exactly 20 per 10 s, 100 per
minute and truthful 429s; PoliteClient and RetryAfterClient prove that a client honouring
X-RateLimit-Reset or Retry-After is never refused. Verdicts are read from Locust's own CSV.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_loadtest_slo import LocustRun, run_locust
from tests.support.redis import RedisServer
from tests.support.server import ServiceProcess

pytestmark = [pytest.mark.slow, pytest.mark.redis]
PROBES = ["RateLimitProbe", "PoliteClient", "RetryAfterClient"]


def _probe_run(service: ServiceProcess, tmp: Path) -> LocustRun:
    return run_locust(service.url, PROBES, tmp, {}, run_time="80s", users=3)


@pytest.fixture(scope="module", params=["1 worker, memory://", "4 workers, Redis"])
def probe_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocustRun]:
    tmp = tmp_path_factory.mktemp("lt-probe")
    redis: RedisServer | None = None
    if request.param.startswith("4"):
        redis = RedisServer(tmp / "redis").start()
        service = ServiceProcess(tmp / "svc", {"RATE_LIMIT_STORAGE_URI": redis.url}, workers=4)
    else:
        service = ServiceProcess(tmp / "svc")
    service.start(timeout=180)
    try:
        yield _probe_run(service, tmp)
    finally:
        service.stop()
        if redis is not None:
            redis.stop()


def _checks(run: LocustRun, user: str) -> dict[str, int]:
    """Each CHECK of one probe user -> its failure count."""
    prefix = f"[probe] {user}: "
    return {
        name.removeprefix(prefix): int(row["Failure Count"])
        for (kind, name), row in run.stats.items()
        if kind == "CHECK" and name.startswith(prefix)
    }


def test_every_probe_ran_to_completion(probe_run: LocustRun) -> None:
    for user in PROBES:
        assert ("CHECK", f"[probe] {user} completed") in probe_run.stats, probe_run.output[-3000:]
    # 429s of the probes are counted apart and are not failures.
    refused = probe_run.stats[("GET", "[probe] 429 (expected)")]
    assert int(refused["Request Count"]) >= 10
    assert int(refused["Failure Count"]) == 0


def test_the_seed_limits_hold_exactly(probe_run: LocustRun) -> None:
    checks = _checks(probe_run, "RateLimitProbe")
    expected = {
        "30 concurrent requests on a fresh key: exactly 20 admitted",
        "429s name 20 per 10 s with Retry-After and X-RateLimit-*",
        "admitted answers carry X-RateLimit-* of the burst window",
        "nothing more admitted within 10 s of the first",
        "the minute refuses at exactly 100 admitted",
        "the minute's 429 names 100 per 60 s",
        "never more than 20 admitted in 10 s, refused only at 20",
        "never more than 100 admitted in 60 s, refused only at 100",
        "admitted again after the minute's Retry-After",
        "admitted after sleeping Retry-After",
    }
    assert expected <= set(checks), sorted(checks)
    failed = {name for name, failures in checks.items() if failures}
    assert not failed, probe_run.output[-4000:]


def test_clients_honouring_the_headers_are_never_refused(probe_run: LocustRun) -> None:
    polite = _checks(probe_run, "PoliteClient")
    retrying = _checks(probe_run, "RetryAfterClient")
    assert polite.keys() >= {"no 429 when waiting for X-RateLimit-Reset", "the whole budget of 100 in the first minute"}
    assert retrying.keys() >= {"admitted after every Retry-After", "the whole budget of 100 in the first minute"}
    failed = {name for name, failures in {**polite, **retrying}.items() if failures}
    assert not failed, "\n".join(line for line in probe_run.output.splitlines() if "SLO FAILED" in line)
    assert probe_run.code == 0, probe_run.output[-3000:]

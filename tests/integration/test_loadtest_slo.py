"""The Locust suite's verdicts against a real server: an SLO the service cannot meet fails the run.

A check that cannot fail is worthless, so each verdict is shown failing for the right reason
(impossible search p95, under-provisioned keys, limits other than the seed's) and passing when
the objective is generous.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import REPO_ROOT, ServiceProcess

LOCUST = Path(sys.executable).parent / "locust"
# Enough to exercise every route; seeding stays a few seconds even on a busy machine.
SMALL_DATASET = {"LOADTEST_TENANTS": "2", "LOADTEST_USERS_PER_TENANT": "3", "LOADTEST_MEMORIES_PER_USER": "5"}


@dataclass
class LocustRun:
    code: int
    output: str
    stats: dict[tuple[str, str], dict[str, str]]  # (type, name) -> row of Locust's stats CSV

    def failures(self, name_part: str) -> int:
        return sum(int(row["Failure Count"]) for (_, name), row in self.stats.items() if name_part in name)


def run_locust(
    url: str, classes: list[str], tmp: Path, env: dict[str, str], run_time: str = "20s", users: int = 5
) -> LocustRun:
    """`locust --headless` as make loadtest runs it; the verdict is its exit code and its log."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "LOADTEST_", "SEARCH_", "MAX_"))}
    full_env.update(SMALL_DATASET)
    full_env.update(env)
    command = [
        str(LOCUST),
        "-f",
        "loadtests/locustfile.py",
        "--headless",
        "--host",
        url,
        "-u",
        str(users),
        "-r",
        str(users),
        "--run-time",
        run_time,
        "--only-summary",
        "--csv",
        str(tmp / "locust"),
        "--lt-reports-dir",
        str(tmp),
        *classes,
    ]
    done = subprocess.run(command, env=full_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    stats: dict[tuple[str, str], dict[str, str]] = {}
    stats_csv = tmp / "locust_stats.csv"
    if stats_csv.exists():
        with stats_csv.open() as f:
            stats = {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}
    return LocustRun(done.returncode, done.stdout + done.stderr, stats)


@pytest.fixture(scope="module")
def seed_limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One worker, embedded profile, the seed's rate limits (memory://)."""
    service = ServiceProcess(tmp_path_factory.mktemp("lt-slo")).start()
    yield service
    service.stop()


def test_an_impossible_search_p95_fails_the_run(seed_limits: ServiceProcess, tmp_path: Path) -> None:
    run = run_locust(seed_limits.url, ["MemoryUser"], tmp_path, {"SEARCH_P95_MS": "0.001"})
    assert run.code == 1, run.output[-3000:]
    assert "SLO FAILED: search p95" in run.output
    assert "above SEARCH_P95_MS=0.001" in run.output
    searches = run.stats[("GET", "/v1/memories/search")]
    assert int(searches["Request Count"]) >= 20  # enough to judge: it failed on latency, not on data
    assert int(searches["Failure Count"]) == 0


def test_a_generous_slo_passes(seed_limits: ServiceProcess, tmp_path: Path) -> None:
    run = run_locust(seed_limits.url, ["MemoryUser"], tmp_path, {"SEARCH_P95_MS": "60000", "MAX_ERROR_RATIO": "0.01"})
    assert run.code == 0, run.output[-3000:]
    assert "SLO: all objectives met" in run.output
    assert "SLO FAILED" not in run.output
    # The mix reached every route, each under its route template.
    for method, name in [
        ("GET", "/v1/memories/search"),
        ("POST", "/v1/memories"),
        ("GET", "/v1/memories/{memory_id}"),
        ("GET", "/v1/memories/user/{user_id}"),
    ]:
        assert int(run.stats[(method, name)]["Request Count"]) > 0, name


def test_under_provisioned_keys_fail_on_the_error_ratio(seed_limits: ServiceProcess, tmp_path: Path) -> None:
    """Keys limited to 5 per minute: the workload's own 429s are errors (only the probes' are expected)."""
    env = {"SEARCH_P95_MS": "60000", "LOADTEST_KEY_RATE_LIMIT": "5", "LOADTEST_USER_RPS": "2"}
    run = run_locust(seed_limits.url, ["MemoryUser"], tmp_path, env)
    assert run.code == 1, run.output[-3000:]
    assert "SLO FAILED: error ratio" in run.output
    assert "HTTP 429" in run.output


def test_the_probe_fails_on_limits_other_than_the_seeds(tmp_path: Path) -> None:
    """A server admitting 25 per burst: the probe says so, and the run fails."""
    service = ServiceProcess(tmp_path / "svc", {"RATE_LIMIT_BURST": "25"}).start()
    try:
        run = run_locust(service.url, ["RateLimitProbe"], tmp_path, {}, run_time="15s", users=1)
    finally:
        service.stop()
    assert run.code == 1, run.output[-3000:]
    assert "exactly 20 admitted: 25 admitted, 5 refused" in run.output
    assert "RateLimitProbe did not complete within the run time" in run.output

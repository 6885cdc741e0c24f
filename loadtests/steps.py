"""Step-load arithmetic, free of Locust (importing Locust monkey-patches the whole process).

A step holds a user count; its measured window is the difference of two cumulative snapshots of
Locust's counters, with percentiles computed exactly as Locust computes them, so the step table
agrees with Locust's own reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def percentile(response_times: dict[int, int], count: int, percent: float) -> int:
    """Locust's percentile: the response time within which `percent` of the requests finished."""
    within = int(count * percent)
    processed = 0
    for response_time in sorted(response_times, reverse=True):
        processed += response_times[response_time]
        if count - processed <= within:
            return response_time
    return 0


def diff(latest: dict[int, int], old: dict[int, int]) -> dict[int, int]:
    """Locust response-time histogram of the interval between two cumulative ones."""
    return {t: n - old.get(t, 0) for t, n in latest.items() if n - old.get(t, 0)}


@dataclass(frozen=True, slots=True)
class StepPlan:
    start_users: int = 10
    step_users: int = 10
    step_seconds: float = 40.0
    warmup_seconds: float = 10.0
    max_users: int = 300
    spawn_rate: float = 10.0

    def __post_init__(self) -> None:
        if self.start_users < 1 or self.step_users < 1 or self.max_users < self.start_users:
            raise ValueError("need start_users >= 1, step_users >= 1 and max_users >= start_users")
        if not 0 <= self.warmup_seconds < self.step_seconds:
            raise ValueError("warmup_seconds must be shorter than step_seconds")

    def users(self, step: int) -> int:
        return self.start_users + step * self.step_users

    def steps(self) -> int:
        return (self.max_users - self.start_users) // self.step_users + 1


@dataclass(frozen=True, slots=True)
class Counters:
    """Cumulative workload counters at one instant: what a step's window is the difference of."""

    at: float
    requests: int
    failures: int
    searches: int
    search_times: dict[int, int]


@dataclass(slots=True)
class StepResult:
    users: int
    offered_rps: float
    seconds: float
    requests: int
    failures: int
    rps: float
    search_rps: float
    search_p50_ms: float | None
    search_p95_ms: float | None
    search_p99_ms: float | None
    error_ratio: float
    within_slo: bool = False
    server: dict[str, Any] = field(default_factory=dict)  # the service's own histograms (shapes.server_split)
    cpu: dict[str, float] = field(default_factory=dict)  # machine busy %, Locust's own cores


def measure(users: int, offered_rps: float, before: Counters, after: Counters) -> StepResult:
    """A step's window from two counter snapshots (Locust's cumulative response-time histogram)."""
    seconds = max(after.at - before.at, 1e-9)
    requests = after.requests - before.requests
    searches = after.searches - before.searches
    times = diff(after.search_times, before.search_times)

    def pct(p: float) -> float | None:
        return float(percentile(times, searches, p)) if searches > 0 else None

    return StepResult(
        users=users,
        offered_rps=offered_rps,
        seconds=round(seconds, 2),
        requests=requests,
        failures=after.failures - before.failures,
        rps=round(requests / seconds, 2),
        search_rps=round(searches / seconds, 2),
        search_p50_ms=pct(0.5),
        search_p95_ms=pct(0.95),
        search_p99_ms=pct(0.99),
        error_ratio=round((after.failures - before.failures) / requests, 5) if requests else 0.0,
    )


def within_slo(step: StepResult, search_p95_ms: float, max_error_ratio: float, min_searches: int = 20) -> bool:
    """A step meets the SLO when it measured enough searches, p95 within the bound, errors within budget."""
    if step.search_p95_ms is None or step.search_rps * step.seconds < min_searches:
        return False
    return step.search_p95_ms <= search_p95_ms and step.error_ratio <= max_error_ratio


def capacity(steps: list[StepResult]) -> StepResult | None:
    """The highest sustained throughput among the steps that met the SLO."""
    passing = [s for s in steps if s.within_slo]
    return max(passing, key=lambda s: s.rps) if passing else None

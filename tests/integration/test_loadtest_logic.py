"""Pure logic of the Locust suite: rate-limit verdicts, SLO evaluation, step shape, histogram maths.

No server here: these pin the arithmetic the integration runs depend on, with hand-computed
expectations (a verdict that silently passes would make every load test worthless).
"""

from __future__ import annotations

import math

import pytest

from loadtests import metrics
from loadtests.ratelimits import (
    Exchange,
    in_window_bounds,
    pause_before_next,
    refusal_problems,
    retry_after,
    window_problems,
)
from loadtests.slo import CheckError, EntryStats, Thresholds, evaluate
from loadtests.steps import Counters, StepPlan, StepResult, capacity, measure, within_slo

# -- rate limits as a client sees them --------------------------------------------------------


def test_pause_only_when_the_tightest_window_is_empty() -> None:
    assert pause_before_next({"x-ratelimit-remaining": "3", "x-ratelimit-reset": "1010"}, 1000.0) == 0.0
    assert pause_before_next({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1010"}, 1000.0) == pytest.approx(
        10.05
    )
    assert pause_before_next({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "990"}, 1000.0) == 0.0
    assert pause_before_next({}, 1000.0) == 0.0  # limiter failing open: no headers, no pause


def test_retry_after_parsing() -> None:
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({"retry-after": "soon"}) == 1.0
    assert retry_after({}) == 1.0


def _ok(t: float, latency: float = 0.01) -> Exchange:
    return Exchange(sent=t, received=t + latency, status=200, limit=20, remaining=0, reset=math.ceil(t + 10))


def _refused(t: float, window: int = 10, limit: int = 20, retry: int = 10, latency: float = 0.01) -> Exchange:
    return Exchange(
        sent=t,
        received=t + latency,
        status=429,
        limit=limit,
        remaining=0,
        reset=math.ceil(t + retry),
        retry_after=retry,
        error_code="RATE_LIMIT_EXCEEDED",
        detail_limit=limit,
        detail_window=window,
    )


def test_window_bounds_separate_certain_from_possible() -> None:
    admitted = [_ok(0.0), _ok(5.0), _ok(9.995)]
    at = _refused(10.0)
    # 0.0..0.01 lies across the window's edge (10.0 - 10 = 0.0): possible, not certain; 9.995 overlaps `at`.
    assert in_window_bounds(admitted, at, 10) == (1, 3)


def test_a_window_refusing_at_exactly_the_limit_has_no_problems() -> None:
    exchanges = [_ok(i * 0.1) for i in range(20)] + [_refused(2.5)] + [_ok(12.5)]
    assert window_problems(exchanges, 20, 10, 10) == []


def test_a_window_admitting_one_too_many_is_caught() -> None:
    exchanges = [_ok(i * 0.1) for i in range(21)]
    problems = window_problems(exchanges, 20, 10, 10)
    assert problems == ["admitted a request with 20 others already in its 10 s window"]


def test_a_window_refusing_early_is_caught() -> None:
    exchanges = [_ok(i * 0.1) for i in range(19)] + [_refused(2.5)]
    assert window_problems(exchanges, 20, 10, 10) == ["refused with 19..19 admitted in the last 10 s, not 20"]


def test_a_correct_429_passes_and_each_wrong_field_is_named() -> None:
    good = _refused(100.2, retry=9)
    assert refusal_problems(good, 20, 10) == []
    wrong = Exchange(
        sent=100.2,
        received=100.21,
        status=429,
        limit=100,
        remaining=1,
        reset=130,
        retry_after=9,
        error_code="TOO_MANY",
        detail_limit=100,
        detail_window=60,
    )
    problems = refusal_problems(wrong, 20, 10)
    assert "error.code is 'TOO_MANY', not RATE_LIMIT_EXCEEDED" in problems
    assert "details say 100 per 60 s, expected 20 per 10 s" in problems
    assert "X-RateLimit-Limit is 100, expected 20" in problems
    assert "X-RateLimit-Remaining is 1, expected 0" in problems
    assert any(p.startswith("X-RateLimit-Reset 130 disagrees with Retry-After 9") for p in problems)


# -- SLO verdict ------------------------------------------------------------------------------


THRESHOLDS = Thresholds(search_p95_ms=250, max_error_ratio=0.01)


def _entries(search_p95: float = 100, failures: int = 0) -> list[EntryStats]:
    return [
        EntryStats("GET", "/v1/memories/search", 600, failures, 40, search_p95, 300),
        EntryStats("POST", "/v1/memories", 200, 0, 50, 90, 120),
        EntryStats("GET", "[probe] 429 (expected)", 30, 0),
        EntryStats("GET", "[probe] GET /v1/memories/user/{user_id}", 120, 0),
        EntryStats("CHECK", "[probe] RateLimitProbe started", 1, 0),
        EntryStats("CHECK", "[probe] RateLimitProbe completed", 1, 0),
        EntryStats("CHECK", "[probe] RateLimitProbe: exactly 20 admitted", 1, 0),
    ]


def test_slo_passes_and_probe_429s_are_not_errors() -> None:
    verdict = evaluate(_entries(), [], THRESHOLDS)
    assert verdict.passed, verdict.violations
    assert "error ratio 0.0000 (0 of 800 workload requests; max 0.01)" in verdict.summary
    assert "probes: 150 requests, 30 expected 429s (not errors)" in verdict.summary


def test_search_p95_above_the_slo_fails() -> None:
    verdict = evaluate(_entries(search_p95=260), [], THRESHOLDS)
    assert verdict.violations == ["search p95 260 ms is above SEARCH_P95_MS=250"]


def test_error_ratio_above_the_budget_fails() -> None:
    verdict = evaluate(_entries(failures=9), [], THRESHOLDS)  # 9 of 800 = 0.01125
    assert verdict.violations == ["error ratio 0.0112 (9/800) is above MAX_ERROR_RATIO=0.01"]


def test_too_few_searches_cannot_pass() -> None:
    entries = [EntryStats("GET", "/v1/memories/search", 5, 0, 10, 10, 10)]
    assert evaluate(entries, [], THRESHOLDS).violations == [
        "only 5 searches (fewer than 20): search p95 cannot be judged"
    ]
    assert "no workload requests were made" in evaluate([], [], THRESHOLDS).violations[0]


def test_a_probe_request_failing_otherwise_than_429_fails_the_run() -> None:
    entries = [*_entries(), EntryStats("GET", "[probe] GET /v1/memories/user/{user_id}", 5, 2)]
    assert evaluate(entries, [], THRESHOLDS).violations == ["2 probe requests failed with something other than 429"]


def test_a_failed_or_unfinished_probe_fails_the_run_even_without_workload() -> None:
    entries = [
        EntryStats("CHECK", "[probe] PoliteClient started", 1, 0),
        EntryStats("CHECK", "[probe] PoliteClient: no 429", 1, 1),
    ]
    errors = [CheckError("[probe] PoliteClient: no 429", "1 refused", 1)]
    verdict = evaluate(entries, errors, THRESHOLDS, workload=False)
    assert verdict.violations == [
        "[probe] PoliteClient: no 429: 1 refused",
        "[probe] PoliteClient did not complete within the run time (raise LOCUST_RUN_TIME)",
    ]


# -- step shape -------------------------------------------------------------------------------


def test_step_plan() -> None:
    plan = StepPlan(start_users=10, step_users=20, step_seconds=30, warmup_seconds=5, max_users=70)
    assert [plan.users(i) for i in range(plan.steps())] == [10, 30, 50, 70]
    with pytest.raises(ValueError, match="warmup"):
        StepPlan(step_seconds=10, warmup_seconds=10)
    with pytest.raises(ValueError, match="max_users"):
        StepPlan(start_users=20, max_users=10)


def test_measure_takes_the_difference_of_cumulative_counters() -> None:
    before = Counters(at=100.0, requests=1000, failures=2, searches=600, search_times={10: 590, 500: 10})
    # In the window: 100 searches, 96 at 20 ms and 4 at 300 ms; 200 requests in 20 s, 1 failure.
    after = Counters(at=120.0, requests=1200, failures=3, searches=700, search_times={10: 590, 20: 96, 300: 4, 500: 10})
    step = measure(50, 50.0, before, after)
    assert step.rps == 10.0
    assert step.search_rps == 5.0
    assert step.search_p50_ms == 20
    assert step.search_p95_ms == 20
    assert step.search_p99_ms == 300  # Locust's convention: the time within which 99 % finished
    assert step.error_ratio == 0.005


def _step(users: int, rps: float, p95: float | None, error_ratio: float = 0.0) -> StepResult:
    return StepResult(users, users, 30, int(rps * 30), 0, rps, rps * 0.6, 10, p95, p95, error_ratio)


def test_within_slo_and_capacity_pick_the_highest_passing_step() -> None:
    steps = [_step(10, 9.8, 40), _step(20, 19.5, 90), _step(30, 27.0, 240), _step(40, 26.0, 900)]
    for s in steps:
        s.within_slo = within_slo(s, 250, 0.01)
    assert [s.within_slo for s in steps] == [True, True, True, False]
    found = capacity(steps)
    assert found is not None
    assert found.users == 30
    assert not within_slo(_step(10, 9.8, 40, error_ratio=0.02), 250, 0.01)
    assert not within_slo(_step(10, 0.5, 40), 250, 0.01)  # 9 searches: too few to judge
    assert capacity([_step(10, 9.8, 900)]) is None


# -- server-side histograms -------------------------------------------------------------------

EXPOSITION = """\
# HELP memory_http_request_duration_seconds HTTP request duration by route template
# TYPE memory_http_request_duration_seconds histogram
memory_http_request_duration_seconds_bucket{le="0.01",method="GET",route="/memories/search"} %d
memory_http_request_duration_seconds_bucket{le="0.025",method="GET",route="/memories/search"} %d
memory_http_request_duration_seconds_bucket{le="0.05",method="GET",route="/memories/search"} %d
memory_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/memories/search"} %d
memory_http_request_duration_seconds_count{method="GET",route="/memories/search"} %d
memory_http_request_duration_seconds_sum{method="GET",route="/memories/search"} %f
# HELP memory_embedding_duration_seconds Time to embed one text
# TYPE memory_embedding_duration_seconds histogram
memory_embedding_duration_seconds_bucket{le="0.01",provider="onnx-minilm"} %d
memory_embedding_duration_seconds_bucket{le="+Inf",provider="onnx-minilm"} %d
memory_embedding_duration_seconds_count{provider="onnx-minilm"} %d
memory_embedding_duration_seconds_sum{provider="onnx-minilm"} %f
"""


def _exposition(search: tuple[int, int, int, int], search_sum: float, embed: tuple[int, int], embed_sum: float) -> str:
    return EXPOSITION % (*search, search[-1], search_sum, *embed, embed[-1], embed_sum)


def test_histogram_deltas_give_the_interval_mean_and_quantiles() -> None:
    before = metrics.parse(_exposition((10, 10, 10, 10), 0.05, (10, 10), 0.04))
    # 100 more searches: 40 under 10 ms, 50 in 10..25 ms, 10 in 25..50 ms; 2.0 s in total.
    after = metrics.parse(_exposition((50, 100, 110, 110), 2.05, (110, 110), 0.54))
    search = metrics.search_http(before, after)
    assert search.count == 100
    assert search.mean == pytest.approx(0.020)
    assert search.quantile(0.5) == pytest.approx(0.010 + 0.015 * (50 - 40) / 50)  # 13 ms
    assert search.quantile(0.95) == pytest.approx(0.025 + 0.025 * (95 - 90) / 10)  # 37.5 ms
    rows = {r.component: r for r in metrics.breakdown(before, after)}
    assert rows["HTTP GET /memories/search"].count == 100
    assert rows["embedding (one text)"].mean_ms == pytest.approx(5.0)


def test_a_quantile_beyond_the_last_bucket_is_its_bound() -> None:
    h = metrics.Histogram(((0.1, 0.0), (float("inf"), 10.0)), 10, 50.0)
    assert h.quantile(0.95) == 0.1
    assert metrics.Histogram((), 0, 0).quantile(0.5) is None

"""SLOs enforced through Locust's exit code, judged from Locust's own statistics at quitting.

The verdict uses only what Locust aggregated (entries and their errors), so it holds on a master
whose workers ran the users. Three kinds of entries:

- workload requests, named by route template (`/v1/memories/search`, ...): the error ratio and
  the search p95 are judged over these;
- `[probe] ...` requests of the rate-limit probes: expected 429s are counted apart, never as errors;
- `CHECK` events: each probe verdict, a failure with its message when a limit was wrong, and
  `... started` / `... completed` markers, so a probe cut short by the run time fails the run
  instead of passing unproven.

A check that cannot fail is worthless: too few searches to compute a p95, or no workload at all,
is a failure too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

SEARCH_NAME = "/v1/memories/search"
PROBE_PREFIX = "[probe]"
CHECK_METHOD = "CHECK"
STARTED = " started"
COMPLETED = " completed"

log = logging.getLogger("loadtests.slo")


@dataclass(frozen=True, slots=True)
class Thresholds:
    search_p95_ms: float
    max_error_ratio: float
    min_searches: int = 20


@dataclass(frozen=True, slots=True)
class EntryStats:
    """What the verdict needs of one Locust stats entry."""

    method: str
    name: str
    requests: int
    failures: int
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class CheckError:
    name: str
    message: str
    occurrences: int


@dataclass
class Verdict:
    violations: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations


def is_workload(entry: EntryStats) -> bool:
    return entry.method != CHECK_METHOD and not entry.name.startswith(PROBE_PREFIX)


def evaluate(
    entries: Iterable[EntryStats], check_errors: Iterable[CheckError], thresholds: Thresholds, *, workload: bool = True
) -> Verdict:
    """Judge a run: search p95 and error ratio of the workload (when it ran), and every probe check."""
    entries = list(entries)
    verdict = Verdict()
    work = [e for e in entries if is_workload(e)]
    if workload:
        requests = sum(e.requests for e in work)
        failures = sum(e.failures for e in work)
        if requests == 0:
            verdict.violations.append("no workload requests were made: the SLOs cannot be judged")
        else:
            ratio = failures / requests
            verdict.summary.append(
                f"error ratio {ratio:.4f} ({failures} of {requests} workload requests; "
                f"max {thresholds.max_error_ratio})"
            )
            if ratio > thresholds.max_error_ratio:
                verdict.violations.append(
                    f"error ratio {ratio:.4f} ({failures}/{requests}) is above "
                    f"MAX_ERROR_RATIO={thresholds.max_error_ratio}"
                )
        search = next((e for e in work if e.name == SEARCH_NAME and e.method == "GET"), None)
        if search is None or search.requests < thresholds.min_searches:
            count = 0 if search is None else search.requests
            verdict.violations.append(
                f"only {count} searches (fewer than {thresholds.min_searches}): search p95 cannot be judged"
            )
        else:
            verdict.summary.append(
                f"search p50/p95/p99 {search.p50_ms:g}/{search.p95_ms:g}/{search.p99_ms:g} ms over "
                f"{search.requests} searches (SLO p95 <= {thresholds.search_p95_ms:g} ms)"
            )
            if search.p95_ms > thresholds.search_p95_ms:
                verdict.violations.append(
                    f"search p95 {search.p95_ms:g} ms is above SEARCH_P95_MS={thresholds.search_p95_ms:g}"
                )
    probes = [e for e in entries if e.name.startswith(PROBE_PREFIX) and e.method != CHECK_METHOD]
    probe_429 = sum(e.requests for e in probes if "429" in e.name)
    probe_requests = sum(e.requests for e in probes)
    if probe_requests:
        verdict.summary.append(f"probes: {probe_requests} requests, {probe_429} expected 429s (not errors)")
    probe_failures = sum(e.failures for e in probes)
    if probe_failures:
        verdict.violations.append(f"{probe_failures} probe requests failed with something other than 429")
    checks = [e for e in entries if e.method == CHECK_METHOD]
    for error in check_errors:
        verdict.violations.append(f"{error.name}: {error.message}")
    names = {e.name for e in checks}
    for name in sorted(names):
        if name.endswith(STARTED) and name[: -len(STARTED)] + COMPLETED not in names:
            verdict.violations.append(
                f"{name[: -len(STARTED)]} did not complete within the run time (raise LOCUST_RUN_TIME)"
            )
    passed_checks = sum(e.requests - e.failures for e in checks if not e.name.endswith((STARTED, COMPLETED)))
    if checks:
        verdict.summary.append(f"probe checks passed: {passed_checks}")
    return verdict


def from_locust(environment: object) -> tuple[list[EntryStats], list[CheckError]]:
    """Read the verdict's inputs from a Locust environment's (aggregated) statistics."""
    stats = environment.stats  # type: ignore[attr-defined]
    entries = [
        EntryStats(
            method=e.method,
            name=e.name,
            requests=e.num_requests,
            failures=e.num_failures,
            p50_ms=e.get_response_time_percentile(0.5) or 0.0,
            p95_ms=e.get_response_time_percentile(0.95) or 0.0,
            p99_ms=e.get_response_time_percentile(0.99) or 0.0,
        )
        for e in stats.entries.values()
    ]
    errors = [
        CheckError(err.name, str(err.error), err.occurrences)
        for err in stats.errors.values()
        if err.method == CHECK_METHOD
    ]
    return entries, errors


def report(verdict: Verdict, environment: object) -> None:
    """Log the verdict and set the exit code: 1 with the reasons, 0 when every SLO held."""
    for line in verdict.summary:
        log.info("SLO: %s", line)
    if verdict.violations:
        for line in verdict.violations:
            log.error("SLO FAILED: %s", line)
        environment.process_exit_code = 1  # type: ignore[attr-defined]
    else:
        log.info("SLO: all objectives met")
        # Individual failed requests within MAX_ERROR_RATIO do not fail the run; the ratio does.
        environment.process_exit_code = 0  # type: ignore[attr-defined]

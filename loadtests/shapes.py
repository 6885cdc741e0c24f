"""Step load for capacity: add users step by step until search p95 breaches the SLO.

Each step holds a user count for `step_seconds`; the first `warmup_seconds` (spawning, queues
settling) are not measured. At the end of each step the measured window gives throughput, search
p50/p95/p99 as Locust saw them and, when an admin key is available, the server's own search
latency and its split into embedding and vector query (loadtests/metrics.py). The first step
whose search p95 (or error ratio) breaches the SLO ends the run; the capacity is the highest
throughput of a step within the SLO. Results go to `<reports>/capacity.json` after every step, so
an interrupted run keeps what it measured; loadtests/plot.py draws them.

Used by passing this file to Locust with the locustfile: `-f loadtests/locustfile.py,loadtests/shapes.py`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil
from locust import LoadTestShape

from loadtests import metrics
from loadtests.slo import SEARCH_NAME, EntryStats, is_workload
from loadtests.steps import Counters, StepPlan, StepResult, capacity, measure, within_slo

log = logging.getLogger("loadtests.shapes")


def snapshot(stats: Any) -> Counters:
    """Workload counters from Locust's stats (probe and check entries excluded)."""
    requests = failures = 0
    searches = 0
    search_times: dict[int, int] = {}
    for entry in stats.entries.values():
        view = EntryStats(entry.method, entry.name, entry.num_requests, entry.num_failures)
        if not is_workload(view):
            continue
        requests += entry.num_requests
        failures += entry.num_failures
        if entry.name == SEARCH_NAME and entry.method == "GET":
            searches = entry.num_requests
            search_times = dict(entry.response_times)
    return Counters(time.monotonic(), requests, failures, searches, search_times)


def server_split(before: metrics.Snapshot, after: metrics.Snapshot) -> dict[str, Any]:
    """The server's view of a step: search latency, and per-search embedding and vector query means."""
    search = metrics.search_http(before, after)
    rows = {r.component: r for r in metrics.breakdown(before, after)}
    out: dict[str, Any] = {
        "search_count": round(search.count),
        "search_mean_ms": None if search.mean is None else round(search.mean * 1000, 2),
        "search_p50_ms": _ms(search.quantile(0.5)),
        "search_p95_ms": _ms(search.quantile(0.95)),
        "search_p99_ms": _ms(search.quantile(0.99)),
    }
    parts = {"embedding_mean_ms": "embedding (one text)", "vector_search_mean_ms": "vector search"}
    parts["keyword_search_mean_ms"] = "vector keyword_search"
    for key, component in parts.items():
        row = rows.get(component)
        out[key] = None if row is None or row.mean_ms is None else round(row.mean_ms, 2)
    if out["search_mean_ms"] is not None and all(out[k] is not None for k in parts):
        # One search = one embedding + one vector query + one keyword query + the rest (HTTP,
        # auth, rate limit, mem0's bookkeeping, serialisation, waiting for a thread or the loop).
        out["other_mean_ms"] = round(out["search_mean_ms"] - sum(out[k] for k in parts), 2)
    out["busy_s"] = round(sum(r.total_s for r in rows.values() if r.component.startswith("HTTP")), 2)
    return out


class CpuClock:
    """CPU use over a window: the whole machine, this Locust process and, when run.py started the
    server (LOADTEST_SERVER_PID), the server's processes: workers and the embedded Postgres (which
    detaches from the server, hence its own pid).

    On a shared 2-core machine this says how much of the CPU the service really had.
    """

    def __init__(self) -> None:
        self.at = time.monotonic()
        self.machine = psutil.cpu_times()
        self.own = _cpu_seconds([psutil.Process()])
        self.server = _server_cpu_seconds()

    def since(self, start: CpuClock) -> dict[str, float]:
        wall = max(self.at - start.at, 1e-9)
        busy = _busy(self.machine) - _busy(start.machine)
        out = {
            "machine_busy_pct": round(100 * busy / (wall * (psutil.cpu_count() or 1)), 1),
            "locust_cores": round(_delta(self.own, start.own) / wall, 2),
        }
        if self.server is not None and start.server is not None:
            out["server_cores"] = round(_delta(self.server, start.server) / wall, 2)
        return out


def _busy(times: Any) -> float:
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _cpu_seconds(processes: list[psutil.Process]) -> dict[tuple[int, float], float]:
    """CPU seconds per process, keyed by (pid, start time) so a reused pid is a new process."""
    seconds = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            t = process.cpu_times()
            seconds[(process.pid, process.create_time())] = t.user + t.system
    return seconds


def _delta(after: dict[tuple[int, float], float], before: dict[tuple[int, float], float]) -> float:
    """CPU used between two snapshots by the processes alive at the second (exited ones are lost)."""
    return sum(cpu - before.get(key, 0.0) for key, cpu in after.items())


def _server_cpu_seconds() -> dict[tuple[int, float], float] | None:
    """CPU of the process trees in LOADTEST_SERVER_PID (comma-separated: the server, Postgres)."""
    pids = [p for p in os.environ.get("LOADTEST_SERVER_PID", "").split(",") if p.strip()]
    if not pids:
        return None
    processes: list[psutil.Process] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error, ValueError):
            root = psutil.Process(int(pid))
            processes += [root, *root.children(recursive=True)]
    return _cpu_seconds(processes) if processes else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


class StepLoadShape(LoadTestShape):
    """Raise users by STEP_USERS every STEP_SECONDS until search p95 breaches SEARCH_P95_MS."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[StepResult] = []
        self.stopped: str | None = None
        self._step = -1
        self._measure_from: Counters | None = None
        self._scrape_from: metrics.Snapshot | None = None
        self._cpu_from: CpuClock | None = None
        self._loadavg_start = os.getloadavg()
        self._plan: StepPlan | None = None

    # Options come from the locustfile's parser (--step-*, --search-p95-ms, ...).
    @property
    def options(self) -> Any:
        assert self.runner is not None
        return self.runner.environment.parsed_options

    @property
    def plan(self) -> StepPlan:
        if self._plan is None:
            o = self.options
            self._plan = StepPlan(
                o.step_start_users,
                o.step_users,
                o.step_seconds,
                o.step_warmup_seconds,
                o.step_max_users,
                o.step_spawn_rate,
            )
        return self._plan

    def _scrape(self) -> metrics.Snapshot | None:
        if not self.options.admin_key:
            return None
        try:
            return metrics.scrape(self.runner.environment.host, self.options.admin_key)  # type: ignore[union-attr]
        except Exception as exc:  # a missing breakdown must not stop the measurement
            log.warning("metrics scrape failed: %s", exc)
            return None

    def tick(self) -> tuple[int, float] | None:
        plan = self.plan
        run_time = self.get_run_time()
        step = int(run_time // plan.step_seconds)
        in_step = run_time - step * plan.step_seconds
        if step != self._step:
            if self._step >= 0 and not self._finish_step(self._step):
                return None
            if step >= plan.steps():
                self.stopped = f"reached STEP_MAX_USERS={plan.max_users} within the SLO"
                log.info("capacity: %s", self.stopped)
                return None
            self._step = step
            self._measure_from = None
            log.info("capacity: step %d, %d users", step + 1, plan.users(step))
        if self._measure_from is None and in_step >= plan.warmup_seconds:
            assert self.runner is not None
            self._measure_from = snapshot(self.runner.stats)
            self._cpu_from = CpuClock()
            self._scrape_from = self._scrape()
        return plan.users(step), plan.spawn_rate

    def _finish_step(self, step: int) -> bool:
        """Measure the step that just ended; False when it breached the SLO (the run stops)."""
        assert self.runner is not None
        if self._measure_from is None:
            return True
        users = self.plan.users(step)
        result = measure(users, users * self.options.lt_user_rps, self._measure_from, snapshot(self.runner.stats))
        if self._cpu_from is not None:
            result.cpu = CpuClock().since(self._cpu_from)
        scraped = self._scrape()
        if self._scrape_from is not None and scraped is not None:
            result.server = server_split(self._scrape_from, scraped)
        result.within_slo = within_slo(result, self.options.search_p95_ms, self.options.max_error_ratio)
        self.steps.append(result)
        log.info(
            "capacity: %d users: %.1f req/s (offered %.0f), search p50/p95/p99 %s/%s/%s ms (server p95 %s), "
            "errors %.4f, CPU %s%% busy (server %s cores, Locust %s): %s",
            users,
            result.rps,
            result.offered_rps,
            result.search_p50_ms,
            result.search_p95_ms,
            result.search_p99_ms,
            result.server.get("search_p95_ms"),
            result.error_ratio,
            result.cpu.get("machine_busy_pct"),
            result.cpu.get("server_cores"),
            result.cpu.get("locust_cores"),
            "within SLO" if result.within_slo else "BREACHES the SLO",
        )
        self.write()
        if not result.within_slo:
            self.stopped = f"search p95 or error ratio breached the SLO at {users} users"
            log.info("capacity: %s", self.stopped)
            return False
        return True

    def result(self) -> dict[str, Any]:
        found = capacity(self.steps)
        o = self.options
        return {
            "label": o.lt_label,
            "host": self.runner.environment.host if self.runner else None,
            "slo": {"search_p95_ms": o.search_p95_ms, "max_error_ratio": o.max_error_ratio},
            "plan": asdict(self.plan),
            "user_rps": o.lt_user_rps,
            "cpus": os.cpu_count(),
            "loadavg_at_start": [round(x, 2) for x in self._loadavg_start],
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "stopped": self.stopped,
            "steps": [asdict(s) for s in self.steps],
            "capacity": None if found is None else asdict(found),
        }

    def write(self) -> None:
        path = Path(self.options.lt_reports_dir) / "capacity.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.result(), indent=2))

    def violations(self) -> list[str]:
        """The capacity run's verdict: it failed when no step met the SLO or nothing was measured."""
        if not self.steps:
            return ["the step load measured no step (run too short for STEP_SECONDS?)"]
        if capacity(self.steps) is None:
            return [
                f"even the first step ({self.steps[0].users} users) breached the SLO: no capacity at "
                f"SEARCH_P95_MS={self.options.search_p95_ms:g}"
            ]
        return []

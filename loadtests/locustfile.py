"""Locust suite for the memory service: a realistic mixed workload and rate-limit probes.

User classes (pick by name on the command line, e.g. `locust -f loadtests/locustfile.py MemoryUser`):

- MemoryUser: the agent workload, about 60 % search, 20 % add, 15 % get and list, 5 % update and
  delete, over many tenants' seeded memories. Each user has its own key (per-key limits cap one
  key at 20 requests per 10 s), paced at --lt-user-rps. Requests are named by route template.
- RateLimitProbe (one): proves the seed's limits from outside on a fresh key with the default
  limits: exactly 20 admitted per 10 s, correct 429s, 100 per minute, Retry-After truthful.
- PoliteClient (one): a client that waits for X-RateLimit-Reset when Remaining reaches 0 gets
  its whole budget (100 in the first minute) and never a 429.
- RetryAfterClient (one): a client that sleeps Retry-After after a 429 is admitted next time.

Tenants and keys are provisioned through the admin route before the run (loadtests/provision.py),
then revoked at the end. SLOs (loadtests/slo.py) set the exit code at quitting; with the step
shape (loadtests/shapes.py) the verdict is the capacity found instead.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import gevent
from locust import FastHttpUser, constant, events, tag, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import STATE_STOPPED, MasterRunner, WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `loadtests` importable from any cwd

from loadtests import metrics, provision, slo
from loadtests.ratelimits import (
    Exchange,
    admitted_header_problems,
    in_window_bounds,
    pause_before_next,
    refusal_problems,
    window_problems,
)

log = logging.getLogger("loadtests")
DEV_ADMIN_KEY = "mem0_admin_key_111222333"  # the seed's development admin key (APP_ENV=development)
PROBE_PATH = "/v1/memories/user/probe?limit=1"
PROBE_NAME = f"{slo.PROBE_PREFIX} GET /v1/memories/user/{{user_id}}"
PROBE_REFUSED = f"{slo.PROBE_PREFIX} 429 (expected)"


class State:
    """What init provisions and the users and hooks share (one per Locust process)."""

    pool: provision.Pool | None = None
    keys = itertools.count()
    metrics_before: metrics.Snapshot | None = None


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any) -> None:
    g = parser.add_argument_group("memory service load test")
    g.add_argument(
        "--admin-key",
        env_var="LOADTEST_ADMIN_KEY",
        default=DEV_ADMIN_KEY,
        help="admin key: provisioning and /v1/metrics",
    )
    g.add_argument("--search-p95-ms", env_var="SEARCH_P95_MS", type=float, default=250.0, help="SLO: search p95 (ms)")
    g.add_argument(
        "--max-error-ratio",
        env_var="MAX_ERROR_RATIO",
        type=float,
        default=0.01,
        help="SLO: failed/all workload requests",
    )
    g.add_argument("--lt-tenants", env_var="LOADTEST_TENANTS", type=int, default=5, help="tenants to spread keys over")
    g.add_argument("--lt-keys", env_var="LOADTEST_KEYS", type=int, default=0, help="workload keys (0: one per user)")
    g.add_argument(
        "--lt-users-per-tenant",
        env_var="LOADTEST_USERS_PER_TENANT",
        type=int,
        default=10,
        help="seeded end users per tenant",
    )
    g.add_argument(
        "--lt-memories-per-user",
        env_var="LOADTEST_MEMORIES_PER_USER",
        type=int,
        default=10,
        help="seeded memories per end user",
    )
    g.add_argument(
        "--lt-key-rate-limit",
        env_var="LOADTEST_KEY_RATE_LIMIT",
        type=int,
        default=1000,
        help="per-minute limit of workload keys",
    )
    g.add_argument(
        "--lt-user-rps",
        env_var="LOADTEST_USER_RPS",
        type=float,
        default=1.0,
        help="requests per second of one MemoryUser",
    )
    g.add_argument(
        "--lt-pool-file",
        env_var="LOADTEST_POOL_FILE",
        default="",
        help="use a pool from loadtests.provision instead of provisioning",
    )
    g.add_argument(
        "--lt-keep-keys", env_var="LOADTEST_KEEP_KEYS", action="store_true", help="do not revoke the keys at the end"
    )
    g.add_argument(
        "--lt-reports-dir",
        env_var="LOADTEST_REPORTS_DIR",
        default="loadtests/reports",
        help="breakdown and capacity results",
    )
    g.add_argument("--lt-label", env_var="LOADTEST_LABEL", default="", help="describes the target in reports")
    g.add_argument("--probe-burst", env_var="PROBE_BURST", type=int, default=20, help="expected burst limit")
    g.add_argument(
        "--probe-burst-seconds", env_var="PROBE_BURST_SECONDS", type=int, default=10, help="expected burst window"
    )
    g.add_argument(
        "--probe-per-minute", env_var="PROBE_PER_MINUTE", type=int, default=100, help="expected per-minute limit"
    )
    g.add_argument("--step-start-users", env_var="STEP_START_USERS", type=int, default=20)
    g.add_argument("--step-users", env_var="STEP_USERS", type=int, default=20)
    g.add_argument("--step-seconds", env_var="STEP_SECONDS", type=float, default=30.0)
    g.add_argument("--step-warmup-seconds", env_var="STEP_WARMUP_SECONDS", type=float, default=10.0)
    g.add_argument("--step-max-users", env_var="STEP_MAX_USERS", type=int, default=400)
    g.add_argument("--step-spawn-rate", env_var="STEP_SPAWN_RATE", type=float, default=10.0)


def _is_capacity_shape(environment: Environment) -> bool:
    return environment.shape_class is not None and hasattr(environment.shape_class, "violations")


@events.init.add_listener
def on_init(environment: Environment, **_: Any) -> None:
    """Provision keys and seed memories before any user starts (every process that runs users)."""
    opts = environment.parsed_options
    MemoryUser.wait_time = paced(opts.lt_user_rps)
    if isinstance(environment.runner, MasterRunner):
        return
    if not environment.host:
        raise RuntimeError("no target: give --host (or LOCUST_HOST)")
    if opts.lt_pool_file and Path(opts.lt_pool_file).exists():
        State.pool = provision.Pool.from_json(Path(opts.lt_pool_file).read_text())
        return
    classes = environment.user_classes
    users = opts.step_max_users if _is_capacity_shape(environment) else (opts.num_users or 1)
    keys = (opts.lt_keys or max(1, users)) if MemoryUser in classes else 0
    probes = 3 if any(c in classes for c in (RateLimitProbe, PoliteClient, RetryAfterClient)) else 0
    log.info("provisioning %d workload keys over %d tenants and %d probe keys", keys, opts.lt_tenants, probes)
    started = time.monotonic()
    State.pool = provision.provision(
        environment.host,
        opts.admin_key,
        keys=keys,
        tenants=opts.lt_tenants,
        users_per_tenant=opts.lt_users_per_tenant,
        memories_per_user=opts.lt_memories_per_user,
        key_rate_limit=opts.lt_key_rate_limit,
        probe_keys=probes,
    )
    log.info("provisioned run %s in %.1f s", State.pool.run_id, time.monotonic() - started)


@events.test_start.add_listener
def on_test_start(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    try:
        State.metrics_before = metrics.scrape(environment.host or "", environment.parsed_options.admin_key)
    except Exception as exc:
        log.warning("no server-side breakdown (metrics scrape failed: %s)", exc)


@events.test_stop.add_listener
def on_test_stop(environment: Environment, **_: Any) -> None:
    """Where the time went, per route and component, from the service's histograms."""
    if isinstance(environment.runner, WorkerRunner) or State.metrics_before is None:
        return
    try:
        after = metrics.scrape(environment.host or "", environment.parsed_options.admin_key)
    except Exception as exc:
        log.warning("no server-side breakdown (metrics scrape failed: %s)", exc)
        return
    rows = metrics.breakdown(State.metrics_before, after)
    table = metrics.markdown(rows)
    log.info("server-side time over the run (GET /v1/metrics deltas):\n%s", table)
    reports = Path(environment.parsed_options.lt_reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "breakdown.md").write_text(table)
    (reports / "breakdown.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))


@events.quitting.add_listener
def on_quitting(environment: Environment, **_: Any) -> None:
    """The SLO verdict (exit code), then the keys are revoked."""
    runner = environment.runner
    if runner is not None and not isinstance(runner, WorkerRunner) and runner.state != STATE_STOPPED:
        # On SIGTERM Locust fires `quitting` before it stops the users: stop them first, or their
        # last requests meet the keys revoked below and count as 401 failures.
        runner.stop()
    if not isinstance(environment.runner, WorkerRunner):
        opts = environment.parsed_options
        if _is_capacity_shape(environment):
            shape = environment.shape_class
            verdict = slo.Verdict(violations=shape.violations())  # type: ignore[union-attr]
            found = shape.result()["capacity"]  # type: ignore[union-attr]
            if found:
                verdict.summary.append(
                    f"capacity: {found['rps']} req/s at {found['users']} users within search p95 <= "
                    f"{opts.search_p95_ms:g} ms (p95 {found['search_p95_ms']} ms); {shape.stopped}"  # type: ignore[union-attr]
                )
        else:
            thresholds = slo.Thresholds(opts.search_p95_ms, opts.max_error_ratio)
            entries, errors = slo.from_locust(environment)
            verdict = slo.evaluate(entries, errors, thresholds, workload=MemoryUser in environment.user_classes)
        slo.report(verdict, environment)
    pool = State.pool
    if pool is not None and not environment.parsed_options.lt_keep_keys and not environment.parsed_options.lt_pool_file:
        try:
            revoked = provision.revoke(
                environment.host or "",
                environment.parsed_options.admin_key,
                [(i.key_id, i.tenant) for i in pool.workload + pool.probes],
            )
            log.info("revoked %d keys of run %s", revoked, pool.run_id)
        except Exception as exc:
            log.warning("could not revoke the run's keys (tenants lt-%s-*): %s", pool.run_id, exc)


def paced(rps: float) -> Callable[[Any], float]:
    """A wait_time starting tasks `rps` times a second on average, each gap drawn from U(0.6, 1.4) / rps.

    Locust's constant_throughput keeps users spawned together in lockstep: they all fire in the
    same millisecond every second, and the latency measured is that of the load generator's
    bursts (20 users at 1 request/s measured 70 ms where spread arrivals measure 10 ms). Jittered
    gaps spread the arrivals; no gap is shorter than 0.6 / rps, so a user at 1 request/s never
    sends more than 17 in 10 s and stays under its key's burst limit.
    """

    def wait_time(user: Any) -> float:
        now = time.monotonic()
        target = getattr(user, "_paced_start", now) + random.uniform(0.6, 1.4) / rps
        user._paced_start = max(target, now)  # when the next task starts
        return max(0.0, target - now)

    return wait_time


class MemoryUser(FastHttpUser):
    """An agent using its memory: mostly searches, some writes, over its tenant's seeded users."""

    weight = 10
    wait_time = paced(1.0)  # replaced by --lt-user-rps at init

    def on_start(self) -> None:
        rps = self.environment.parsed_options.lt_user_rps
        gevent.sleep(random.uniform(0, 1 / rps))  # a random phase: users spawned together do not fire together
        self._paced_start = time.monotonic()
        pool = State.pool
        assert pool is not None, "the pool was not provisioned"
        assert pool.workload, "no workload keys were provisioned"
        identity = pool.workload[next(State.keys) % len(pool.workload)]
        self.auth = {"Authorization": f"Bearer {identity.key}"}
        self.end_users = pool.users[identity.tenant]
        self.seeded = pool.memories[identity.tenant]
        self.own: list[str] = []
        self.rng = random.Random()

    def _call(self, method: str, path: str, name: str, expected: int, body: Any = None) -> dict[str, Any] | None:
        with self.client.request(method, path, name=name, headers=self.auth, json=body, catch_response=True) as r:
            if r.status_code != expected:
                r.failure(f"HTTP {r.status_code}: {(r.text or '')[:200]}")
                return None
            try:
                data = r.json()["data"]
            except (ValueError, KeyError, TypeError):
                r.failure("not the envelope")
                return None
            r.success()
            return data

    def _memory_id(self) -> str | None:
        if self.own and self.rng.random() < 0.5:
            return self.rng.choice(self.own)
        return self.rng.choice(self.seeded) if self.seeded else (self.own[0] if self.own else None)

    @tag("workload", "search")
    @task(60)
    def search(self) -> None:
        query = urlencode(
            {"query": provision.search_query(self.rng), "user_id": self.rng.choice(self.end_users), "limit": 10}
        )
        self._call("GET", f"/v1/memories/search?{query}", "/v1/memories/search", 200)

    @tag("workload", "add")
    @task(20)
    def add(self) -> None:
        body = {
            "messages": [{"role": "user", "content": provision.memory_text(self.rng)}],
            "user_id": self.rng.choice(self.end_users),
            "metadata": {"source": "loadtest"},
            "infer": False,
        }
        data = self._call("POST", "/v1/memories", "/v1/memories", 201, body)
        if data and data.get("memories"):
            self.own.append(data["memories"][0]["id"])
            del self.own[:-50]

    @tag("workload", "read")
    @task(8)
    def get(self) -> None:
        memory_id = self._memory_id()
        if memory_id is not None:
            self._call("GET", f"/v1/memories/{memory_id}", "/v1/memories/{memory_id}", 200)

    @tag("workload", "read")
    @task(7)
    def list_user(self) -> None:
        user_id = quote(self.rng.choice(self.end_users))
        self._call("GET", f"/v1/memories/user/{user_id}?limit=20", "/v1/memories/user/{user_id}", 200)

    @tag("workload", "modify")
    @task(3)
    def update(self) -> None:
        memory_id = self._memory_id()
        if memory_id is not None:
            body = {"content": provision.memory_text(self.rng), "metadata": {"edited_by": "loadtest"}}
            self._call("PUT", f"/v1/memories/{memory_id}", "/v1/memories/{memory_id}", 200, body)

    @tag("workload", "modify")
    @task(2)
    def delete(self) -> None:
        if not self.own:  # only what this user added: the seeded corpus stays the same size
            self.add()
            return
        memory_id = self.own.pop(self.rng.randrange(len(self.own)))
        self._call("DELETE", f"/v1/memories/{memory_id}", "/v1/memories/{memory_id}", 200)


class _ProbeUser(FastHttpUser):
    """Shared by the probes: timed exchanges on one fresh key, checks reported as CHECK events."""

    abstract = True
    fixed_count = 1
    wait_time = constant(1)
    probe_index = 0

    def on_start(self) -> None:
        pool = State.pool
        assert pool is not None, "the pool was not provisioned"
        assert len(pool.probes) > self.probe_index, "no probe key was provisioned"
        self.auth = {"Authorization": f"Bearer {pool.probes[self.probe_index].key}"}
        self.exchanges: list[Exchange] = []
        opts = self.environment.parsed_options
        self.burst, self.burst_s, self.per_minute = opts.probe_burst, opts.probe_burst_seconds, opts.probe_per_minute
        self.last_headers: dict[str, str] = {}

    def exchange(self) -> Exchange:
        sent = time.time()
        with self.client.get(PROBE_PATH, name=PROBE_NAME, headers=self.auth, catch_response=True) as r:
            received = time.time()
            headers = {k.lower(): v for k, v in (r.headers or {}).items()}
            code = limit = window = None
            if r.status_code == 429:
                r.request_meta["name"] = PROBE_REFUSED  # counted apart, never as an error
                try:
                    error = r.json()["error"]
                    code, limit, window = (
                        error["code"],
                        error["details"].get("limit"),
                        error["details"].get("window_seconds"),
                    )
                except (ValueError, KeyError, TypeError, AttributeError):
                    pass
                r.success()
            elif r.status_code == 200:
                r.success()
            else:
                r.failure(f"HTTP {r.status_code}: {(r.text or '')[:200]}")

        def num(name: str) -> int | None:
            try:
                return int(headers[name])
            except (KeyError, ValueError):
                return None

        x = Exchange(
            sent=sent,
            received=received,
            status=r.status_code,
            limit=num("x-ratelimit-limit"),
            remaining=num("x-ratelimit-remaining"),
            reset=num("x-ratelimit-reset"),
            retry_after=num("retry-after"),
            error_code=code,
            detail_limit=limit,
            detail_window=window,
        )
        self.last_headers = headers
        self.exchanges.append(x)
        return x

    def check(self, name: str, problems: list[str]) -> None:
        unique = list(dict.fromkeys(problems))
        exception = AssertionError("; ".join(unique[:5]) + (f" (+{len(unique) - 5} more)" if len(unique) > 5 else ""))
        self.environment.events.request.fire(
            request_type=slo.CHECK_METHOD,
            name=f"{slo.PROBE_PREFIX} {type(self).__name__}: {name}",
            response_time=0,
            response_length=0,
            exception=exception if unique else None,
            context={},
        )
        if unique:
            log.error("%s: %s: %s", type(self).__name__, name, exception)

    def whole_budget(self, first: Exchange | None) -> None:
        in_first_minute = sum(1 for x in self.exchanges if x.admitted and first and x.received < first.sent + 60)
        self.check(
            f"the whole budget of {self.per_minute} in the first minute",
            [] if in_first_minute == self.per_minute else [f"{in_first_minute} admitted in the first minute"],
        )

    def marker(self, what: str) -> None:
        self.environment.events.request.fire(
            request_type=slo.CHECK_METHOD,
            name=f"{slo.PROBE_PREFIX} {type(self).__name__} {what}",
            response_time=0,
            response_length=0,
            exception=None,
            context={},
        )


class RateLimitProbe(_ProbeUser):
    """Proves the seed's limits on a fresh key: 20 per 10 s exactly, 100 per minute, truthful 429s.

    Opening: 30 concurrent requests, exactly 20 admitted (atomic even across workers). Hold: one
    request a second until the burst window is about to end, all refused. Then, after sleeping the
    last Retry-After, requests paced just under the burst rate (18 per 10 s) fill the minute while
    the burst window still has room, so the refusal at 100 is the minute's alone; after its
    Retry-After the key is admitted again.
    """

    concurrency = 64  # the opening burst is sent all at once
    probe_index = 0

    @tag("probe")
    @task
    def prove(self) -> None:
        self.marker("started")
        first = self.opening_burst()
        if first is not None:
            self.hold_until_window_ends(first)
            self.fill_the_minute(first)
        self.check(
            f"never more than {self.burst} admitted in {self.burst_s} s, refused only at {self.burst}",
            window_problems(self.exchanges, self.burst, self.burst_s, self.burst_s),
        )
        self.check(
            f"never more than {self.per_minute} admitted in 60 s, refused only at {self.per_minute}",
            window_problems(self.exchanges, self.per_minute, 60, 60),
        )
        self.marker("completed")
        log.info("RateLimitProbe: %d exchanges", len(self.exchanges))
        raise StopUser()

    def opening_burst(self) -> Exchange | None:
        count = self.burst + 10
        jobs = [gevent.spawn(self.exchange) for _ in range(count)]
        gevent.joinall(jobs)
        opening = [j.value for j in jobs if j.value is not None]
        admitted = [x for x in opening if x.admitted]
        refused = [x for x in opening if x.status == 429]
        self.check(
            f"{count} concurrent requests on a fresh key: exactly {self.burst} admitted",
            [] if len(admitted) == self.burst else [f"{len(admitted)} admitted, {len(refused)} refused"],
        )
        problems = []
        for x in admitted:
            problems += admitted_header_problems(x, [self.burst, self.per_minute])
            if x.limit != self.burst:
                problems.append(f"X-RateLimit-Limit {x.limit} in the burst, expected {self.burst} (the tighter window)")
        self.check("admitted answers carry X-RateLimit-* of the burst window", problems)
        problems = [p for x in refused for p in refusal_problems(x, self.burst, self.burst_s)]
        if not refused:
            problems.append("no request was refused")
        self.check(f"429s name {self.burst} per {self.burst_s} s with Retry-After and X-RateLimit-*", problems)
        return min(admitted, key=lambda x: x.sent, default=None)

    def hold_until_window_ends(self, first: Exchange) -> None:
        """Once a second until the first admission is about to leave the window: all refused."""
        problems = []
        while time.time() < first.sent + self.burst_s - 1.5:
            gevent.sleep(1.0)
            x = self.exchange()
            if x.admitted:
                problems.append(f"admitted {x.received - first.sent:.1f} s after the burst filled the window")
            else:
                problems += refusal_problems(x, self.burst, self.burst_s)
        self.check(f"nothing more admitted within {self.burst_s} s of the first", problems)

    def fill_the_minute(self, first: Exchange) -> None:
        # Just under the burst rate, so the burst never binds, on a fixed schedule, so slow answers
        # do not stretch it: the minute fills about 55 s after the first admission, well before
        # the opening burst leaves the minute window at 60 s.
        pace = self.burst_s / max(1, self.burst - 2)
        after_retry: list[str] = []
        refusal: Exchange | None = None
        next_at = time.time()
        while time.time() < first.sent + 75:
            last = self.exchanges[-1]
            if last.admitted:
                gevent.sleep(max(0.0, next_at - time.time()))
            else:
                gevent.sleep(last.retry_after or 1)
                next_at = time.time()
            next_at += pace
            x = self.exchange()
            if not last.admitted and not x.admitted:
                after_retry.append(
                    f"refused ({x.detail_limit} per {x.detail_window} s) after sleeping Retry-After "
                    f"{last.retry_after} of a 429 naming {last.detail_limit} per {last.detail_window} s"
                )
            if not x.admitted and x.detail_window == 60 and refusal is None:
                refusal = x
            if refusal is not None and x.admitted:
                break
        self.check("admitted after sleeping Retry-After", after_retry)
        if refusal is None:
            admitted = sum(e.admitted for e in self.exchanges)
            self.check(f"a per-minute limit of {self.per_minute}", [f"no 429 naming the minute ({admitted} admitted)"])
            return
        admitted = [e for e in self.exchanges if e.admitted]
        certain, possible = in_window_bounds(admitted, refusal, 60)
        in_burst = in_window_bounds(admitted, refusal, self.burst_s)[1]
        problems = [] if certain <= self.per_minute <= possible else [f"refused after {certain}..{possible} admitted"]
        if in_burst >= self.burst:
            problems.append(f"the burst window was full too ({in_burst}): the minute is not proven alone")
        self.check(f"the minute refuses at exactly {self.per_minute} admitted", problems)
        self.check(f"the minute's 429 names {self.per_minute} per 60 s", refusal_problems(refusal, self.per_minute, 60))
        self.check(
            "admitted again after the minute's Retry-After",
            [] if self.exchanges[-1].admitted else ["still refused at the end of the probe"],
        )


class PoliteClient(_ProbeUser):
    """Waits for X-RateLimit-Reset whenever Remaining is 0: it must get its whole budget and never a 429."""

    probe_index = 1

    @tag("probe")
    @task
    def honour(self) -> None:
        self.marker("started")
        waits = 0
        first: Exchange | None = None
        while True:
            x = self.exchange()
            first = first or (x if x.admitted else None)
            if first is not None and x.admitted and x.sent > first.received + 60:
                break  # admitted again after a full minute: the run covered the minute window
            if first is not None and time.time() > first.sent + 75:
                break
            if not x.admitted:  # never expected; honour it anyway
                gevent.sleep(x.retry_after or 1)
            pause = pause_before_next(self.last_headers, time.time())
            if pause > 0:
                waits += 1
                gevent.sleep(pause)
        problems = []
        for i, x in enumerate(self.exchanges):
            if not x.admitted:
                before = self.exchanges[i - 1]
                problems.append(
                    f"429 ({x.detail_limit} per {x.detail_window} s) {x.sent - self.exchanges[0].sent:.1f} s in, "
                    f"sent {x.sent - (before.reset or 0):+.2f} s after X-RateLimit-Reset of the answer before it "
                    f"(Limit {before.limit}, Remaining {before.remaining})"
                )
        self.check("no 429 when waiting for X-RateLimit-Reset", problems)
        self.check("had to wait for the limits", [] if waits else ["never reached a limit, so nothing was shown"])
        self.whole_budget(first)
        self.marker("completed")
        log.info("PoliteClient: %d requests, %d waits, %d refused", len(self.exchanges), waits, len(problems))
        raise StopUser()


class RetryAfterClient(_ProbeUser):
    """Sends back to back and sleeps Retry-After on every 429: the next request must be admitted."""

    probe_index = 2

    @tag("probe")
    @task
    def honour(self) -> None:
        self.marker("started")
        first: Exchange | None = None
        problems = []
        while True:
            x = self.exchange()
            first = first or (x if x.admitted else None)
            previous = self.exchanges[-2] if len(self.exchanges) > 1 else None
            if previous is not None and not previous.admitted and not x.admitted:
                problems.append(
                    f"refused ({x.detail_limit} per {x.detail_window} s) {x.sent - self.exchanges[0].sent:.1f} s in, "
                    f"after sleeping Retry-After {previous.retry_after} of a 429 naming "
                    f"{previous.detail_limit} per {previous.detail_window} s"
                )
            if first is not None and x.admitted and x.sent > first.received + 60:
                break
            if first is not None and time.time() > first.sent + 80:
                break
            if not x.admitted:
                gevent.sleep(x.retry_after or 1)
        self.check("admitted after every Retry-After", problems)
        self.whole_budget(first)
        self.marker("completed")
        log.info("RetryAfterClient: %d requests, %d refused after honouring", len(self.exchanges), len(problems))
        raise StopUser()

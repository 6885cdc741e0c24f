"""The proof: every dashboard query and every recording rule returns data from real scrapes.

The real service (`memory-service serve`, seed's rate limits) runs on a free loopback port; a
real Prometheus (Debian's binary) scrapes it every second with the admin key, through the
shipped `memory-api` job (ops/prometheus/prometheus.yml, narrowed by `proof_config`), and
evaluates the shipped recording rules. Traffic covers everything the dashboards break down:
adds, searches, gets, 404s, failed authentications, 503s from a frozen database, a burst
past the rate limit, and webhook deliveries of the adds to a loopback receiver.

Then, against Prometheus' HTTP API:
- each recording rule's expression returns a finite value, and its recorded series exists;
- each dashboard target, with Grafana's variables replaced the way Grafana would (the `job` and
  `instance` variables resolved by running their own `label_values` queries; `$__rate_interval`
  = 4 x the 1s scrape interval), returns at least one finite point over the traffic window;
- in both, every memory_* selector matches series on its own, so a `(errors or 0 * total)`
  fallback cannot hide a misspelt metric or label value.

Twice: on `memory-service serve` (one uvicorn process, the development path, one test per
rule and per query) and on `serve --workers 2` with Redis (gunicorn and multiprocess metrics,
what docker-compose.prod.yml runs; one test collecting every problem).

One narrow exclusion: panels in the dependencies dashboard's `Exporter: …` rows read the node,
redis and postgres exporters, which this test cannot run. They must still evaluate without a
PromQL error; tests/ops/test_monitoring_dashboards.py keeps every memory_* query out of them.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.prometheus import (
    API_JOB,
    PanelQuery,
    PrometheusServer,
    dashboards,
    grafana_builder,
    has_finite_value,
    label_values_promql,
    memory_selectors,
    panel_queries,
    proof_config,
    recording_rules,
    substitute,
)
from tests.support.redis import RedisServer
from tests.support.server import ADMIN_KEY, DEV_KEY, ServiceProcess, frozen_postgres
from tests.support.webhooks import Receiver

pytestmark = pytest.mark.slow

SCRAPE_INTERVAL = "1s"
# What Grafana computes for a 1s scrape interval: max($__interval + scrape, 4 x scrape).
GRAFANA_BUILTINS = {"__rate_interval": "4s", "__interval": "1s", "__interval_ms": "1000"}
SETTLE_SECONDS = 60.0
ROUND_PAUSE = 3.0  # seconds: three scrapes


@dataclass
class Stack:
    service: ServiceProcess
    prometheus: PrometheusServer
    traffic_start: float
    traffic_end: float
    variables: dict[str, dict[str, str]] = field(default_factory=dict)


def expect(response: httpx.Response, status: int) -> httpx.Response:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return response


def search(client: httpx.Client, query: str = "tea") -> httpx.Response:
    return client.get("/v1/memories/search", params={"query": query, "user_id": "u1"})


def drive_traffic(service: ServiceProcess, receiver: Receiver) -> None:
    """Every kind of request the dashboards break down, each kind twice, a few scrapes apart.

    Twice, because a labelled counter appears on its first increment: rate() cannot see the step
    from "no series" to its first value, only increments between two scrapes. The 5xx and failed
    operations come from a frozen database. Budget: the seed's burst limit is 20 requests per
    10 s per key; the rounds spend 12 over ~20 s, the volley overflows it, and a last volley is
    refused again, a few scrapes later.
    """
    with service.client(ADMIN_KEY) as admin:  # the adds below are delivered to it (tenant default)
        expect(admin.post("/v1/webhooks", json={"url": receiver.url("proof"), "event_types": ["memory.created"]}), 201)
    with service.client(None) as anonymous, service.client(DEV_KEY) as user:
        for n in range(2):
            expect(anonymous.get("/health"), 200)
            body = {"messages": [{"role": "user", "content": f"I drink green tea, cup number {n}"}], "user_id": "u1"}
            memory_id = expect(user.post("/v1/memories", json=body), 201).json()["data"]["memories"][0]["id"]
            for query in ("tea", "morning drinks"):
                expect(search(user, query), 200)
            expect(user.get(f"/v1/memories/{memory_id}"), 200)
            expect(user.get(f"/v1/memories/{uuid.uuid4()}"), 404)
            expect(anonymous.get("/v1/no-such-route"), 404)
            expect(anonymous.get("/v1/memories/search", params={"query": "tea"}), 401)  # missing key
            bad = {"Authorization": "Bearer mem0_not_a_key"}
            expect(anonymous.get("/v1/memories/search", params={"query": "tea"}, headers=bad), 401)  # invalid
            expect(user.get("/v1/metrics"), 403)  # forbidden: not an admin key
            time.sleep(ROUND_PAUSE)
        with frozen_postgres(service.data_dir):
            for _ in range(2):
                expect(search(user), 503)
                time.sleep(ROUND_PAUSE)
        with service.client(ADMIN_KEY) as admin:  # its own rate-limit budget, not the user's
            wait_until(lambda: search(admin).status_code == 200, SETTLE_SECONDS, "the database to be back")
        for volley in (25, 5):
            statuses = [search(user).status_code for _ in range(volley)]
            assert 429 in statuses, f"the burst was not refused: {statuses}"
            assert set(statuses) <= {200, 429}, statuses
            time.sleep(ROUND_PAUSE)


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def resolve_variables(prometheus: PrometheusServer, board: dict[str, Any]) -> dict[str, str]:
    """Concrete values for the dashboard's variables, from their own queries, in order."""
    values = dict(GRAFANA_BUILTINS)
    for variable in board["templating"]["list"]:
        if variable["type"] == "datasource":
            values[variable["name"]] = "prometheus"
        elif variable["type"] == "query":
            promql, label = label_values_promql(substitute(variable["query"], values))
            found = sorted(s["metric"][label] for s in prometheus.query(promql) if label in s["metric"])
            assert found, f"variable {variable['name']}: {variable['query']} found no values"
            values[variable["name"]] = found[0]
        else:
            raise AssertionError(f"variable type {variable['type']} has no resolution in the proof")
    return values


@contextmanager
def proof_stack(root: Path, workers: int = 1) -> Iterator[Stack]:
    """Service (+ Redis for several workers), Prometheus scraping it, traffic driven and scraped."""
    # Seed's rate limits; short database timeouts so the frozen-database requests fail fast.
    env = {"DB_TIMEOUT": "1", "REQUEST_TIMEOUT": "2", "HEALTH_INTERVAL": "0.5"}
    env |= {"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "WEBHOOK_POLL_INTERVAL": "0.2"}  # receiver on loopback
    receiver = Receiver().start()
    redis = RedisServer(root / "redis").start() if workers > 1 else None
    if redis is not None:
        env["RATE_LIMIT_STORAGE_URI"] = redis.url  # shared limits across workers, as in production
    service = ServiceProcess(root / "service", env, workers=workers)
    key = root / "memory_admin_key"
    key.write_text(ADMIN_KEY)
    prometheus: PrometheusServer | None = None
    try:
        service.start(timeout=240.0)  # several workers each import the service: slow on a busy machine
        prometheus = PrometheusServer(
            root / "prometheus", proof_config(f"127.0.0.1:{service.port}", key, SCRAPE_INTERVAL)
        ).start()
        wait_until(
            lambda: any(s["value"][1] == "1" for s in prometheus.query(f'up{{job="{API_JOB}"}}')),
            SETTLE_SECONDS,
            f"a successful scrape of the service ({prometheus.logs()[-2000:]})",
        )
        wait_until(
            lambda: bool(prometheus.query(f'memory_build_info{{job="{API_JOB}"}}')),
            10,
            "memory_build_info in the scrape: /v1/metrics answers but exposes no memory_* series",
        )
        traffic_start = time.time()
        drive_traffic(service, receiver)
        traffic_end = time.time()
        # The last increments must be scraped twice (rates need two samples), and every rule
        # evaluated on them.
        wait_until(
            lambda: bool(prometheus.query('memory_ratelimit_decisions_total{decision="refused"}')),
            SETTLE_SECONDS,
            "the refusals to be scraped",
        )
        time.sleep(3)
        records = [rule["record"] for rule in recording_rules()]
        wait_until(
            lambda: all(prometheus.query(f'count({{__name__="{r}"}})') for r in records),
            SETTLE_SECONDS,
            "every recording rule to be evaluated",
        )
        ready = Stack(service, prometheus, traffic_start, traffic_end)
        for uid, board in dashboards().items():
            ready.variables[uid] = resolve_variables(prometheus, board)
        yield ready
    finally:
        if prometheus is not None:
            prometheus.stop()
        service.stop()
        receiver.stop()
        if redis is not None:
            redis.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`memory-service serve` as one uvicorn process: the development path."""
    with proof_stack(tmp_path_factory.mktemp("monitoring-proof")) as ready:
        yield ready


def rule_problems(stack: Stack, rule: dict[str, Any]) -> list[str]:
    result = stack.prometheus.query(rule["expr"])
    if not result:
        return [f"{rule['record']}: no data"]
    problems = [] if has_finite_value(result) else [f"{rule['record']}: only NaN/Inf: {result}"]
    if not stack.prometheus.query(rule["record"]):
        problems.append(f"{rule['record']}: never recorded by Prometheus")
    return problems + selector_problems(stack, rule["record"], rule["expr"])


def selector_problems(stack: Stack, what: str, expr: str) -> list[str]:
    """Each memory_* selector alone matches series: a fallback (`or 0 * ...`) hides nothing."""
    empty = [sel for sel in memory_selectors(expr) if not stack.prometheus.query(f"count({sel})")]
    return [f"{what}: selectors that match no series: {empty}"] if empty else []


PANEL_QUERIES = [q for board in dashboards().values() for q in panel_queries(board)]


def is_exporter_backed(query: PanelQuery) -> bool:
    """The documented exclusion: an `Exporter: …` row of the dependencies dashboard."""
    prefix = grafana_builder().EXPORTER_ROW_PREFIX
    return query.dashboard == "memory-dependencies" and (query.row or "").startswith(prefix)


def evaluate(stack: Stack, query: PanelQuery) -> tuple[str, list[dict[str, Any]]]:
    """The query as Grafana would send it, over the traffic window (or at the end, if instant)."""
    expr = substitute(query.expr, stack.variables[query.dashboard])
    assert "$" not in expr, f"unresolved variable in {expr}"
    assert "[[" not in expr, f"unresolved variable in {expr}"
    now = time.time()
    if query.instant:
        return expr, stack.prometheus.query(expr, at=now)
    return expr, stack.prometheus.query_range(expr, stack.traffic_start - 5, now, "1s")


def query_problems(stack: Stack, query: PanelQuery) -> list[str]:
    expr, result = evaluate(stack, query)
    if not result:
        return [f"{query}: no data for {expr}"]
    problems = [] if has_finite_value(result) else [f"{query}: only NaN/Inf over the traffic window"]
    return problems + selector_problems(stack, str(query), expr)


def test_prometheus_scrapes_the_service_with_the_admin_key(stack: Stack) -> None:
    (up,) = stack.prometheus.query(f'up{{job="{API_JOB}"}}')
    assert up["value"][1] == "1"
    assert up["metric"]["instance"] == f"127.0.0.1:{stack.service.port}"
    assert stack.prometheus.query(f'memory_build_info{{job="{API_JOB}"}}'), "scraped, but not the service's metrics"


@pytest.mark.parametrize("rule", recording_rules(), ids=lambda r: r["record"])
def test_recording_rule_returns_data(stack: Stack, rule: dict[str, Any]) -> None:
    assert not rule_problems(stack, rule)


@pytest.mark.parametrize("query", [q for q in PANEL_QUERIES if not is_exporter_backed(q)], ids=str)
def test_dashboard_query_returns_data(stack: Stack, query: PanelQuery) -> None:
    assert not query_problems(stack, query)


@pytest.mark.parametrize("query", [q for q in PANEL_QUERIES if is_exporter_backed(q)], ids=str)
def test_exporter_backed_query_is_valid_promql(stack: Stack, query: PanelQuery) -> None:
    """No exporter here, so no data; but Prometheus must accept the query as written."""
    evaluate(stack, query)  # raises PromQLError on a parse or evaluation error


def test_exclusion_is_only_the_exporter_rows() -> None:
    excluded = {q for q in PANEL_QUERIES if is_exporter_backed(q)}
    assert excluded, "the dependencies dashboard lost its exporter rows"
    assert not [q for q in excluded if re.search(r"(?<![:\w])memory_", q.expr)], "memory_* must be proven"
    assert len(PANEL_QUERIES) - len(excluded) >= 40, "most panels are proven, not excluded"


def test_production_serving_path(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same proof on what the compose stack runs: gunicorn workers (multiprocess metrics), Redis.

    One test collecting every problem: the fine-grained tests above already name single queries.
    """
    with proof_stack(tmp_path_factory.mktemp("monitoring-proof-workers"), workers=2) as stack:
        problems = [p for rule in recording_rules() for p in rule_problems(stack, rule)]
        problems += [p for q in PANEL_QUERIES if not is_exporter_backed(q) for p in query_problems(stack, q)]
    assert not problems, "\n".join(problems)

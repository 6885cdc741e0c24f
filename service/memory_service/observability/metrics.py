"""Prometheus metric families (names and labels are a contract: docs/architecture.md).

Under gunicorn every worker writes its samples to PROMETHEUS_MULTIPROC_DIR (set by `serve` before
this module is imported) and a scrape sums them across workers; gauges say how they combine.
Label values are bounded: route templates, operations, outcomes, never ids, paths or keys.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

# `dialect`: contract (the seed's API) or platform (the mem0 Platform dialect, api/platform/).
DIALECTS = ("contract", "platform")
HTTP_REQUESTS = Counter(
    "memory_http_requests_total", "HTTP requests by route template", ["route", "method", "status", "dialect"]
)
HTTP_DURATION = Histogram(
    "memory_http_request_duration_seconds",
    "HTTP request duration by route template",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_PROGRESS = Gauge("memory_http_requests_in_progress", "HTTP requests being served", multiprocess_mode="livesum")
OPERATIONS = Counter(
    "memory_operations_total", "Memory operations by outcome and asking dialect", ["operation", "outcome", "dialect"]
)
OPERATION_NAMES = (
    "add", "search", "search_text", "get", "list", "update", "delete", "erase", "history", "stats", "users",
    "entities", "feedback", "export",
)  # fmt: skip
EMBEDDING_DURATION = Histogram(
    "memory_embedding_duration_seconds", "Time to embed one text", ["provider"], buckets=LATENCY_BUCKETS
)
EMBEDDING_BATCH_SIZE = Histogram(
    "memory_embedding_batch_size",
    "Texts per run of the in-process model (concurrent calls share a run)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
EMBEDDING_CPU = Counter(
    "memory_embedding_cpu_seconds", "CPU time of the in-process model's runs (the running thread's)"
)
EMBEDDING_CACHE = Counter(
    "memory_embedding_cache_total",
    "Embedding cache lookups by result (hit: this process; shared_hit: Redis; shared_error: Redis failed)",
    ["result"],
)
VECTOR_DURATION = Histogram(
    "memory_vector_query_duration_seconds",
    "Time of one vector-store call",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
RATELIMIT_DECISIONS = Counter("memory_ratelimit_decisions_total", "Rate-limit decisions", ["decision", "scope"])
AUTH_FAILURES = Counter("memory_auth_failures_total", "Authentication and authorisation failures", ["reason"])
DEPENDENCY_UP = Gauge(
    "memory_dependency_up",
    "1 when the backend answered its last health probe",
    ["dependency"],
    multiprocess_mode="livemin",
)
STORED_MEMORIES = Gauge("memory_stored_memories", "Memories stored, all tenants", multiprocess_mode="livemax")
INFERENCE_FALLBACKS = Counter(
    "memory_inference_fallbacks_total", "Messages stored as given because inference gave nothing", ["reason"]
)
GRAPH_OUTBOX_PENDING = Gauge(
    "memory_graph_outbox_pending", "Graph changes waiting for Neo4j", multiprocess_mode="livemax"
)
GRAPH_PROJECTIONS = Counter("memory_graph_projections_total", "Graph outbox projections", ["outcome"])
MCP_TOOL_CALLS = Counter("memory_mcp_tool_calls_total", "MCP tool calls by tool and outcome", ["tool", "outcome"])
MCP_TOOL_DURATION = Histogram(
    "memory_mcp_tool_duration_seconds", "MCP tool call duration", ["tool"], buckets=LATENCY_BUCKETS
)
JOBS = Counter("memory_jobs_total", "Asynchronous add jobs by final state", ["state"])
DB_READS = Counter(
    "memory_db_reads_total", "Reads with DATABASE_READ_URL set, by where they ran (replica or primary)", ["target"]
)
WEBHOOK_DELIVERIES = Counter(
    "memory_webhook_deliveries_total", "Webhook delivery attempts by outcome (success, retry, dead)", ["outcome"]
)
WEBHOOK_ERRORS = Counter(
    "memory_webhook_delivery_errors_total", "Failed webhook delivery attempts by reason", ["reason"]
)
WEBHOOK_DURATION = Histogram(
    "memory_webhook_delivery_duration_seconds",
    "Time of one webhook delivery attempt (resolution, connection, request and response)",
    buckets=LATENCY_BUCKETS,
)
WEBHOOK_QUEUE = Gauge(
    "memory_webhook_queue_depth",
    "Webhook deliveries not yet delivered: due (ready now) or waiting (for a retry, or in flight)",
    ["state"],
    multiprocess_mode="livemax",
)
WEBHOOK_OLDEST_PENDING = Gauge(
    "memory_webhook_oldest_pending_age_seconds",
    "Age of the oldest webhook delivery not yet delivered",
    multiprocess_mode="livemax",
)
WEBHOOK_OLDEST_DUE = Gauge(
    "memory_webhook_oldest_due_seconds",
    "How long the longest-waiting due webhook delivery has waited for a worker",
    multiprocess_mode="livemax",
)
WEBHOOK_OUTCOMES = ("success", "retry", "dead")
WEBHOOK_ERROR_REASONS = ("http_status", "timeout", "connection", "dns", "refused_target")
BUILD_INFO = Gauge(
    "memory_build_info",
    "Version and profile of the running service",
    ["version", "profile"],
    multiprocess_mode="liveall",
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ServerProcessCollector(Collector):
    """process_* for the whole gunicorn server (master and live workers), summed.

    In multiprocess mode prometheus-client drops its per-process collector (each scrape lands on
    one random worker); operators still need the server's memory and CPU, so this reads them for
    the master (this worker's parent) and all its children.
    """

    def collect(self) -> Iterator[Metric]:
        import psutil

        try:
            master = psutil.Process(os.getppid())
            processes = [master, *master.children()]
            rss = sum(p.memory_info().rss for p in processes)
            cpu = sum(sum(p.cpu_times()[:2]) for p in processes)
            fds = sum(p.num_fds() for p in processes)
            started = master.create_time()
        except psutil.Error:
            return
        yield GaugeMetricFamily("process_resident_memory_bytes", "Resident memory of the server", value=rss)
        yield CounterMetricFamily("process_cpu_seconds_total", "CPU time of the server", value=cpu)
        yield GaugeMetricFamily("process_open_fds", "Open file descriptors of the server", value=fds)
        yield GaugeMetricFamily("process_start_time_seconds", "Start of the server (Unix time)", value=started)
        yield GaugeMetricFamily("memory_server_workers", "Live worker processes", value=len(processes) - 1)


def render() -> tuple[bytes, str]:
    """The exposition for a scrape: this process, or all workers summed in multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        registry.register(ServerProcessCollector())
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Called by gunicorn when a worker exits, so its live gauges stop counting."""
    if multiprocess_dir():
        _multiprocess.mark_process_dead(pid)


def initialise_label_sets() -> None:
    """Create the known label combinations at 0, so the first refusal, failure or error after a
    start is an increase that rate() sees, not a series appearing out of nowhere."""
    for decision in ("allowed", "refused", "fail_open", "fail_closed"):
        for scope in ("key", "address"):
            RATELIMIT_DECISIONS.labels(decision, scope)
    for result in ("hit", "shared_hit", "miss", "shared_error"):
        EMBEDDING_CACHE.labels(result)
    for reason in ("missing", "invalid", "forbidden"):
        AUTH_FAILURES.labels(reason)
    for outcome in WEBHOOK_OUTCOMES:
        WEBHOOK_DELIVERIES.labels(outcome)
    for reason in WEBHOOK_ERROR_REASONS:
        WEBHOOK_ERRORS.labels(reason)
    for state in ("due", "waiting"):
        WEBHOOK_QUEUE.labels(state)
    for operation in OPERATION_NAMES:
        for outcome in ("success", "not_found", "invalid", "error", "unavailable"):
            for dialect in DIALECTS:
                OPERATIONS.labels(operation, outcome, dialect)

"""Dashboards as code: builds ops/grafana/dashboards/*.json with grafana-foundation-sdk.

Edit this file, run `python ops/grafana/build.py`, commit the JSON with it. `--check` builds in
memory and exits 1 when a committed file differs (or is missing, or is stale): `make
monitoring-check` runs it so the JSON Grafana loads never drifts from the code reviewed here.

Conventions the tests rely on (tests/ops/test_monitoring_dashboards.py and the query proof
tests/integration/test_monitoring_proof.py):

- fixed uids (`memory-*`), a `datasource` variable every panel uses, `job` and `instance`
  variables for the service's own metrics, `$__rate_interval` in every rate;
- no high-cardinality label (user, tenant, key, request) in any query;
- panels fed by the node, redis and postgres exporters sit in rows titled
  `Exporter: …` on the dependencies dashboard, and only there: the proof cannot run those
  exporters and skips exactly these panels; everything built on memory_* metrics is proven.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    BigValueTextMode,
    GraphTresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
    LineInterpolation,
    SortOrder,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
TAGS = ["memory-service"]
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
EXPORTER_ROW_PREFIX = "Exporter: "

# The service's own series, narrowed by the dashboard variables.
SEL = 'job="$job", instance=~"$instance"'
# Route template of `GET /v1/memories/search`, with or without /v1 (as in the recording rules).
SEARCH = 'route=~"(/v1)?/memories/search", method="GET"'

# SLOs, as in ops/prometheus/rules/memory-service.alerts.yml (a unit test keeps them equal).
AVAILABILITY_SLO = 0.995
SEARCH_LATENCY_SLO = 0.99
SEARCH_LATENCY_THRESHOLD_SECONDS = 0.25
BURN_WINDOWS = ("1h", "6h", "1d", "3d")
# (burn rate, colour) lines on the burn-rate panels: page (14.4x, 6x) and ticket (3x, 1x).
BURN_THRESHOLDS = ((1.0, "yellow"), (3.0, "orange"), (6.0, "red"), (14.4, "dark-red"))

NODE = 'job="node-exporter"'
FILESYSTEMS = 'job="node-exporter", fstype!~"|tmpfs|ramfs|squashfs|overlay", mountpoint!=""'
REDIS = 'job="redis-exporter"'
POSTGRES = 'job="postgres-exporter"'


def query(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> Dataquery:
    q = Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    return q.instant() if instant else q.range()


def _refs(exprs: Sequence[tuple[str, str]], instant: bool = False) -> list[Dataquery]:
    return [query(e, legend, chr(ord("A") + i), instant) for i, (e, legend) in enumerate(exprs)]


def graph(
    title: str,
    description: str,
    exprs: Sequence[tuple[str, str]],
    unit: str = "short",
    width: int = 12,
    thresholds: Sequence[tuple[float, str]] = (),
    step: bool = False,
) -> timeseries.Panel:
    """A time series panel; thresholds (value, colour) are drawn as dashed lines."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_refs(exprs))
        .unit(unit)
        .height(8)
        .span(width)
        .fill_opacity(10)
        .line_width(1)
        .legend(
            VizLegendOptions()
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
    )
    if step:
        panel = panel.line_interpolation(LineInterpolation.STEP_AFTER)
    if thresholds:
        steps = [Threshold(value=None, color="transparent")] + [Threshold(v, c) for v, c in thresholds]
        panel = panel.thresholds(ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)).thresholds_style(
            GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.DASHED)
        )
    return panel


def single(
    title: str,
    description: str,
    exprs: Sequence[tuple[str, str]],
    unit: str = "short",
    width: int = 6,
    thresholds: Sequence[tuple[float, str]] = (),
    mappings: dict[str, tuple[str, str]] | None = None,
    text_mode: BigValueTextMode = BigValueTextMode.AUTO,
    decimals: int | None = None,
    base_color: str = "green",
) -> stat.Panel:
    """A stat panel (last value) with optional thresholds and value mappings (value: text, colour)."""
    steps = [Threshold(value=None, color=base_color)] + [Threshold(v, c) for v, c in thresholds]
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_refs(exprs))
        .unit(unit)
        .height(4)
        .span(width)
        .graph_mode(BigValueGraphMode.AREA)
        .color_mode(BigValueColorMode.VALUE)
        .text_mode(text_mode)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    if mappings:
        options = {
            value: ValueMappingResult(text=text, color=color, index=i)
            for i, (value, (text, color)) in enumerate(mappings.items())
        }
        panel = panel.mappings([ValueMap(options=options)])
    return panel


def base(uid: str, title: str, description: str, service_variables: bool = True) -> Dashboard:
    """Dashboard shell: fixed uid, tags, time range, shared cursor and the template variables."""
    board = (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .readonly()
        .with_variable(
            DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
            .current(VariableOption(text="Prometheus", value="prometheus", selected=True))
        )
    )
    if service_variables:
        board = board.with_variable(
            QueryVariable("job")
            .label("Job")
            .datasource(DATASOURCE)
            .query("label_values(memory_build_info, job)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .current(VariableOption(text="memory-api", value="memory-api", selected=True))
        ).with_variable(
            QueryVariable("instance")
            .label("Instance")
            .datasource(DATASOURCE)
            .query('label_values(memory_build_info{job="$job"}, instance)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".+")
            .current(VariableOption(text="All", value="$__all", selected=True))
        )
    return board


def ratio(numerator: str, denominator: str, by: str = "") -> str:
    """numerator/denominator that reads 0 (not "no data") while the numerator has no series."""
    if not by:
        return f"(sum({numerator}) or vector(0)) / sum({denominator})"
    return f"(sum by ({by}) ({numerator}) or 0 * sum by ({by}) ({denominator})) / sum by ({by}) ({denominator})"


def quantile(q: float, bucket_selector: str, by: str) -> str:
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({bucket_selector}[$__rate_interval])))"


def rate(selector: str) -> str:
    return f"rate({selector}[$__rate_interval])"


def series(metric: str, *matchers: str, scope: str = SEL) -> str:
    """metric{scope, matchers...}: the service's series narrowed by the dashboard variables."""
    return f"{metric}{{{', '.join([scope, *matchers])}}}"


# --- API overview ----------------------------------------------------------------------------


def api_overview() -> Dashboard:
    req = series("memory_http_requests_total")
    req_5xx = series("memory_http_requests_total", 'status=~"5.."')
    req_4xx = series("memory_http_requests_total", 'status=~"4.."')
    bucket = series("memory_http_request_duration_seconds_bucket")
    search_bucket = series("memory_http_request_duration_seconds_bucket", SEARCH)
    budget_availability = round(1 - AVAILABILITY_SLO, 6)
    budget_latency = round(1 - SEARCH_LATENCY_SLO, 6)
    return (
        base(
            "memory-api-overview",
            "Memory service / API overview",
            "Requests, errors and latency of the memory API by route, and its two SLOs.",
        )
        .with_row(Row("Traffic"))
        .with_panel(
            single(
                "Requests per second",
                "All API requests, scrapes included.",
                [(f"sum({rate(req)})", "requests/s")],
                unit="reqps",
            )
        )
        .with_panel(
            single(
                "5xx share",
                "Share of requests answered with a 5xx status.",
                [(ratio(rate(req_5xx), rate(req)), "5xx")],
                unit="percentunit",
                thresholds=[(budget_availability, "orange"), (0.05, "red")],
            )
        )
        .with_panel(
            single(
                "Requests in flight",
                "Requests being served right now (all workers).",
                [(f"sum({series('memory_http_requests_in_progress')})", "in flight")],
            )
        )
        .with_panel(
            single(
                "Version",
                "Version and profile reported by memory_build_info.",
                [(f"max by (version, profile) ({series('memory_build_info')})", "{{version}} ({{profile}})")],
                text_mode=BigValueTextMode.NAME,
            )
        )
        .with_panel(
            graph(
                "Requests by route",
                "Request rate per route template and method.",
                [(f"sum by (route, method) ({rate(req)})", "{{method}} {{route}}")],
                unit="reqps",
            )
        )
        .with_panel(
            graph(
                "Responses by status",
                "Request rate per HTTP status.",
                [(f"sum by (status) ({rate(req)})", "{{status}}")],
                unit="reqps",
            )
        )
        .with_panel(
            graph(
                "Requests by dialect",
                "The contract's API, and the mem0 Platform dialect that mem0's own clients speak.",
                [(f"sum by (dialect) ({rate(req)})", "{{dialect}}")],
                unit="reqps",
            )
        )
        .with_row(Row("Errors"))
        .with_panel(
            graph(
                "5xx share by route",
                "Share of each route's requests answered with a 5xx status.",
                [(ratio(rate(req_5xx), rate(req), by="route, method"), "{{method}} {{route}}")],
                unit="percentunit",
            )
        )
        .with_panel(
            graph(
                "4xx by route and status",
                "Client errors: 400/404/413 (requests), 401/403 (auth), 429 (rate limits).",
                [
                    (
                        f"sum by (route, status) ({rate(req_4xx)})",
                        "{{status}} {{route}}",
                    )
                ],
                unit="reqps",
            )
        )
        .with_row(Row("Latency"))
        .with_panel(
            graph(
                "Latency, all routes",
                "Quantiles of request duration over all routes.",
                [
                    (quantile(0.5, bucket, ""), "p50"),
                    (quantile(0.95, bucket, ""), "p95"),
                    (quantile(0.99, bucket, ""), "p99"),
                ],
                unit="s",
            )
        )
        .with_panel(
            graph(
                "Search latency (GET /v1/memories/search)",
                "Quantiles of search duration; the dashed line is the SLO threshold (250 ms).",
                [
                    (quantile(0.5, search_bucket, ""), "p50"),
                    (quantile(0.95, search_bucket, ""), "p95"),
                    (quantile(0.99, search_bucket, ""), "p99"),
                ],
                unit="s",
                thresholds=[(SEARCH_LATENCY_THRESHOLD_SECONDS, "red")],
            )
        )
        .with_panel(
            graph(
                "p95 by route",
                "95th percentile of request duration per route.",
                [(quantile(0.95, bucket, "route, method"), "{{method}} {{route}}")],
                unit="s",
            )
        )
        .with_panel(
            graph(
                "p99 by route",
                "99th percentile of request duration per route.",
                [(quantile(0.99, bucket, "route, method"), "{{method}} {{route}}")],
                unit="s",
            )
        )
        .with_row(Row("SLOs"))
        .with_panel(
            single(
                "Availability, last day",
                f"Requests not answered 5xx (scrapes excluded) over 1 day; objective {AVAILABILITY_SLO:.1%}.",
                [('1 - job:memory_http_requests_5xx:ratio_rate1d{job="$job"}', "availability")],
                unit="percentunit",
                decimals=3,
            )
        )
        .with_panel(
            single(
                "Searches within 250 ms, last day",
                f"GET /v1/memories/search faster than 250 ms over 1 day; objective {SEARCH_LATENCY_SLO:.0%}.",
                [('1 - job:memory_search_slow_requests:ratio_rate1d{job="$job"}', "within 250 ms")],
                unit="percentunit",
                decimals=3,
            )
        )
        .with_panel(
            graph(
                "Availability error budget burn rate",
                "5xx ratio divided by the error budget (0.5%): 1 spends the 30-day budget in 30 days. "
                "Pages at 14.4 (1h) and 6 (6h), tickets at 3 (1d) and 1 (3d).",
                [
                    (f'job:memory_http_requests_5xx:ratio_rate{w}{{job="$job"}} / {budget_availability}', w)
                    for w in BURN_WINDOWS
                ],
                thresholds=BURN_THRESHOLDS,
            )
        )
        .with_panel(
            graph(
                "Search latency error budget burn rate",
                "Share of searches slower than 250 ms divided by the error budget (1%). "
                "Pages at 14.4 (1h) and 6 (6h), tickets at 3 (1d) and 1 (3d).",
                [
                    (f'job:memory_search_slow_requests:ratio_rate{w}{{job="$job"}} / {budget_latency}', w)
                    for w in BURN_WINDOWS
                ],
                thresholds=BURN_THRESHOLDS,
            )
        )
    )


# --- Memory engine ---------------------------------------------------------------------------


def memory_engine() -> Dashboard:
    ops = series("memory_operations_total")
    failed = series("memory_operations_total", 'outcome=~"error|unavailable"')
    embedding = series("memory_embedding_duration_seconds_bucket")
    embedding_count = series("memory_embedding_duration_seconds_count")
    vector = series("memory_vector_query_duration_seconds_bucket")
    vector_count = series("memory_vector_query_duration_seconds_count")
    webhook_attempts = series("memory_webhook_deliveries_total")
    webhook_failed = series("memory_webhook_deliveries_total", 'outcome=~"retry|dead"')
    webhook_errors = series("memory_webhook_delivery_errors_total")
    webhook_latency = series("memory_webhook_delivery_duration_seconds_bucket")
    webhook_due = series("memory_webhook_queue_depth", 'state="due"')
    return (
        base(
            "memory-engine",
            "Memory service / Memory engine",
            "Memory operations by outcome, embedding and vector-store latency, stored memories, webhook deliveries.",
        )
        .with_row(Row("Operations"))
        .with_panel(
            single(
                "Stored memories",
                "Memories stored, all tenants (refreshed by the service every few seconds).",
                [(f"max({series('memory_stored_memories')})", "memories")],
            )
        )
        .with_panel(
            single(
                "Operations per second",
                "All memory operations (add, search, get, list, update, delete, ...).",
                [(f"sum({rate(ops)})", "operations/s")],
                unit="ops",
            )
        )
        .with_panel(
            single(
                "Failed operations share",
                "Operations that ended in error or unavailable (not_found and invalid are the caller's).",
                [(ratio(rate(failed), rate(ops)), "failed")],
                unit="percentunit",
                thresholds=[(0.01, "orange"), (0.05, "red")],
            )
        )
        .with_panel(
            graph(
                "Stored memories over time",
                "Memories stored, all tenants.",
                [(f"max({series('memory_stored_memories')})", "memories")],
                width=6,
            )
        )
        .with_panel(
            graph(
                "Operations by outcome",
                "Rate of memory operations by operation and outcome.",
                [(f"sum by (operation, outcome) ({rate(ops)})", "{{operation}} {{outcome}}")],
                unit="ops",
            )
        )
        .with_panel(
            graph(
                "Failed operations share by operation",
                "Share of each operation ending in error or unavailable.",
                [(ratio(rate(failed), rate(ops), by="operation"), "{{operation}}")],
                unit="percentunit",
            )
        )
        .with_row(Row("Embedding"))
        .with_panel(
            graph(
                "Embedding latency",
                "Time to embed one text, by provider.",
                [
                    (quantile(0.5, embedding, "provider"), "p50 {{provider}}"),
                    (quantile(0.95, embedding, "provider"), "p95 {{provider}}"),
                    (quantile(0.99, embedding, "provider"), "p99 {{provider}}"),
                ],
                unit="s",
            )
        )
        .with_panel(
            graph(
                "Embeddings per second",
                "Texts embedded per second, by provider.",
                [
                    (
                        f"sum by (provider) ({rate(embedding_count)})",
                        "{{provider}}",
                    )
                ],
                unit="ops",
            )
        )
        .with_row(Row("Vector store"))
        .with_panel(
            graph(
                "Vector query p95 by operation",
                "95th percentile of one vector-store call, by operation.",
                [(quantile(0.95, vector, "operation"), "{{operation}}")],
                unit="s",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Vector query p99 by operation",
                "99th percentile of one vector-store call, by operation.",
                [(quantile(0.99, vector, "operation"), "{{operation}}")],
                unit="s",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Vector queries per second",
                "Vector-store calls per second, by operation.",
                [
                    (
                        f"sum by (operation) ({rate(vector_count)})",
                        "{{operation}}",
                    )
                ],
                unit="ops",
                width=8,
            )
        )
        .with_row(Row("Webhooks"))
        .with_panel(
            single(
                "Webhook deliveries due",
                "Deliveries ready to be sent now, waiting for a delivery worker.",
                [(f"max({webhook_due})", "due")],
                thresholds=[(100, "orange")],
            )
        )
        .with_panel(
            single(
                "Oldest due delivery",
                "How long the longest-waiting due delivery has waited for a worker "
                "(MemoryWebhookBacklogGrowing fires above 5 minutes).",
                [(f"max({series('memory_webhook_oldest_due_seconds')})", "waited")],
                unit="s",
                thresholds=[(60, "orange"), (300, "red")],
            )
        )
        .with_panel(
            single(
                "Oldest undelivered",
                "Age of the oldest delivery not yet delivered (due, or waiting for a retry to a failing receiver).",
                [(f"max({series('memory_webhook_oldest_pending_age_seconds')})", "age")],
                unit="s",
                thresholds=[(3600, "orange")],
            )
        )
        .with_panel(
            single(
                "Failed attempts share",
                "Delivery attempts that failed (retried, or dead after the retry period).",
                [(ratio(rate(webhook_failed), rate(webhook_attempts)), "failed")],
                unit="percentunit",
                thresholds=[(0.05, "orange"), (0.5, "red")],
            )
        )
        .with_panel(
            graph(
                "Webhook queue",
                "Deliveries not yet delivered: due (ready now) and waiting (for a retry, or in flight).",
                [(f"max by (state) ({series('memory_webhook_queue_depth')})", "{{state}}")],
                width=8,
            )
        )
        .with_panel(
            graph(
                "Webhook attempts by outcome",
                "success: answered 2xx; retry: failed, retried later; dead: failed after the retry period.",
                [(f"sum by (outcome) ({rate(webhook_attempts)})", "{{outcome}}")],
                unit="ops",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Webhook delivery latency",
                "One attempt: resolution, connection, request and response (bounded by WEBHOOK_TIMEOUT).",
                [
                    (quantile(0.5, webhook_latency, ""), "p50"),
                    (quantile(0.95, webhook_latency, ""), "p95"),
                    (quantile(0.99, webhook_latency, ""), "p99"),
                ],
                unit="s",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Failed webhook attempts by reason",
                "http_status: a non-2xx answer (redirects included); timeout; connection: refused or reset; "
                "dns: the host does not resolve; refused_target: it resolves to a non-public address.",
                [(f"sum by (reason) ({rate(webhook_errors)})", "{{reason}}")],
                unit="ops",
                width=24,
            )
        )
    )


# --- Rate limits and auth --------------------------------------------------------------------


def ratelimit_auth() -> Dashboard:
    decisions = series("memory_ratelimit_decisions_total")
    refused = series("memory_ratelimit_decisions_total", 'decision="refused"')
    failures = series("memory_auth_failures_total")
    http_429 = series("memory_http_requests_total", 'status="429"')
    http_401_403 = series("memory_http_requests_total", 'status=~"401|403"')
    return (
        base(
            "memory-ratelimit-auth",
            "Memory service / Rate limits and auth",
            "Rate-limit decisions (per key, per address for failed authentications) and auth failures.",
        )
        .with_row(Row("Rate limits"))
        .with_panel(
            single(
                "Refused share",
                "Share of rate-limit decisions that refused the request (429).",
                [(ratio(rate(refused), rate(decisions)), "refused")],
                unit="percentunit",
                thresholds=[(0.01, "orange"), (0.1, "red")],
            )
        )
        .with_panel(
            single(
                "Refusals per second",
                "Requests refused by the rate limiter.",
                [(f"sum({rate(refused)}) or 0 * sum({rate(decisions)})", "refused/s")],
                unit="reqps",
            )
        )
        .with_panel(
            single(
                "Auth failures per second",
                "Requests without a key, with an unknown key, or a key lacking the role.",
                [(f"sum({rate(failures)})", "failures/s")],
                unit="reqps",
            )
        )
        .with_panel(
            single(
                "429 responses per second",
                "Responses with status 429, as clients saw them.",
                [(f"sum({rate(http_429)})", "429/s")],
                unit="reqps",
            )
        )
        .with_panel(
            graph(
                "Decisions by outcome and scope",
                "allowed / refused, and fail_open / fail_closed while the limiter's storage (Redis) is down.",
                [(f"sum by (decision, scope) ({rate(decisions)})", "{{decision}} ({{scope}})")],
                unit="reqps",
            )
        )
        .with_panel(
            graph(
                "Refusals by scope",
                "key: a key over its limits; address: too many failed authentications from one address.",
                [(f"sum by (scope) ({rate(refused)})", "{{scope}}")],
                unit="reqps",
            )
        )
        .with_panel(
            graph(
                "429 responses by route",
                "Where the refused requests were going.",
                [
                    (
                        f"sum by (route, method) ({rate(http_429)})",
                        "{{method}} {{route}}",
                    )
                ],
                unit="reqps",
                width=24,
            )
        )
        .with_row(Row("Authentication"))
        .with_panel(
            graph(
                "Auth failures by reason",
                "missing: no key; invalid: unknown or revoked key; forbidden: the key lacks the role.",
                [(f"sum by (reason) ({rate(failures)})", "{{reason}}")],
                unit="reqps",
            )
        )
        .with_panel(
            graph(
                "401 and 403 responses by route",
                "Rejected requests per route and status.",
                [
                    (
                        f"sum by (route, status) ({rate(http_401_403)})",
                        "{{status}} {{route}}",
                    )
                ],
                unit="reqps",
            )
        )
    )


# --- Dependencies ----------------------------------------------------------------------------


def dependencies() -> Dashboard:
    up_down = {"1": ("UP", "green"), "0": ("DOWN", "red")}
    cpu_idle = series("node_cpu_seconds_total", 'mode="idle"', scope=NODE)
    return (
        base(
            "memory-dependencies",
            "Memory service / Dependencies",
            "Backends as the API sees them (memory_dependency_up), scrape targets, and the node, "
            "Redis and Postgres exporters.",
        )
        .with_row(Row("Service view"))
        .with_panel(
            single(
                "Dependencies",
                "The API's background health probe per backend (GET /health says the same).",
                [(f"min by (dependency) ({series('memory_dependency_up')})", "{{dependency}}")],
                width=12,
                base_color="red",
                thresholds=[(1, "green")],
                mappings=up_down,
                text_mode=BigValueTextMode.VALUE_AND_NAME,
            )
        )
        .with_panel(
            single(
                "Graph outbox pending",
                "Graph changes waiting to be projected into Neo4j.",
                [(f"max({series('memory_graph_outbox_pending')})", "pending")],
                thresholds=[(1000, "orange")],
            )
        )
        .with_panel(
            single(
                "Scrape targets down",
                "Prometheus targets (API, exporters, Alertmanager) whose last scrape failed.",
                [("count(up == 0) or 0 * count(up)", "down")],
                thresholds=[(1, "red")],
            )
        )
        .with_panel(
            graph(
                "Dependencies over time",
                "1 = up, 0 = down, per backend.",
                [(f"min by (dependency) ({series('memory_dependency_up')})", "{{dependency}}")],
                step=True,
            )
        )
        .with_panel(
            graph(
                "Scrape targets up",
                "Prometheus' up per job (1 = the last scrape worked).",
                [("min by (job) (up)", "{{job}}")],
                step=True,
            )
        )
        .with_row(Row(EXPORTER_ROW_PREFIX + "node-exporter (host)"))
        .with_panel(
            graph(
                "CPU busy",
                "Share of CPU time not idle, per host.",
                [(f"1 - avg by (instance) ({rate(cpu_idle)})", "{{instance}}")],
                unit="percentunit",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Memory available",
                "MemAvailable / MemTotal, per host.",
                [
                    (
                        f"node_memory_MemAvailable_bytes{{{NODE}}} / node_memory_MemTotal_bytes{{{NODE}}}",
                        "{{instance}}",
                    )
                ],
                unit="percentunit",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Filesystem space available",
                "Free share per mount point (HostFilesystemSpaceFillingUp fires below 15% and 10%).",
                [
                    (
                        f"node_filesystem_avail_bytes{{{FILESYSTEMS}}} / node_filesystem_size_bytes{{{FILESYSTEMS}}}",
                        "{{instance}} {{mountpoint}}",
                    )
                ],
                unit="percentunit",
                width=8,
                thresholds=[(0.1, "red"), (0.15, "orange")],
            )
        )
        .with_row(Row(EXPORTER_ROW_PREFIX + "redis-exporter (rate-limit storage)"))
        .with_panel(
            single(
                "Redis up",
                "redis_exporter's connection to Redis.",
                [(f"min(redis_up{{{REDIS}}})", "up")],
                base_color="red",
                thresholds=[(1, "green")],
                mappings=up_down,
            )
        )
        .with_panel(
            graph(
                "Redis memory",
                "Used memory against maxmemory (256 MB in the compose file).",
                [
                    (f"redis_memory_used_bytes{{{REDIS}}}", "used"),
                    (f"redis_memory_max_bytes{{{REDIS}}}", "max"),
                ],
                unit="bytes",
                width=9,
            )
        )
        .with_panel(
            graph(
                "Redis commands per second",
                "Commands processed, and connected clients.",
                [
                    (f"sum({rate(f'redis_commands_processed_total{{{REDIS}}}')})", "commands/s"),
                    (f"sum(redis_connected_clients{{{REDIS}}})", "clients"),
                ],
                width=9,
            )
        )
        .with_row(Row(EXPORTER_ROW_PREFIX + "postgres-exporter (database)"))
        .with_panel(
            single(
                "Postgres up",
                "postgres_exporter's connection to Postgres.",
                [(f"min(pg_up{{{POSTGRES}}})", "up")],
                base_color="red",
                thresholds=[(1, "green")],
                mappings=up_down,
            )
        )
        .with_panel(
            graph(
                "Connections by state",
                "Backends in pg_stat_activity by state.",
                [(f"sum by (state) (pg_stat_activity_count{{{POSTGRES}}})", "{{state}}")],
                width=6,
            )
        )
        .with_panel(
            graph(
                "Transactions per second",
                "Commits and rollbacks per database.",
                [
                    (f"sum by (datname) ({rate(f'pg_stat_database_xact_commit{{{POSTGRES}}}')})", "commit {{datname}}"),
                    (
                        f"sum by (datname) ({rate(f'pg_stat_database_xact_rollback{{{POSTGRES}}}')})",
                        "rollback {{datname}}",
                    ),
                ],
                unit="ops",
                width=6,
            )
        )
        .with_panel(
            graph(
                "Database size",
                "Size on disk per database.",
                [(f"pg_database_size_bytes{{{POSTGRES}}}", "{{datname}}")],
                unit="bytes",
                width=6,
            )
        )
    )


DASHBOARDS = {
    "memory-api-overview": api_overview,
    "memory-engine": memory_engine,
    "memory-ratelimit-auth": ratelimit_auth,
    "memory-dependencies": dependencies,
}


def render(builder: Dashboard) -> str:
    """Stable JSON: sorted keys, panels numbered in order (Grafana needs unique panel ids)."""
    model = json.loads(JSONEncoder(sort_keys=True).encode(builder.build()))
    next_id = 1
    for panel in model.get("panels", []):
        panel["id"] = next_id
        next_id += 1
        for nested in panel.get("panels", []):
            nested["id"] = next_id
            next_id += 1
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


def build_all() -> dict[Path, str]:
    return {OUT_DIR / f"{uid}.json": render(make()) for uid, make in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is stale")
    args = parser.parse_args(argv)
    built = build_all()
    stray = sorted(set(OUT_DIR.glob("*.json")) - set(built))
    if args.check:
        stale = [p for p, text in built.items() if not p.exists() or p.read_text() != text]
        for path in stale + stray:
            print(f"stale: {path} (run: python ops/grafana/build.py)", file=sys.stderr)
        return 1 if stale or stray else 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in built.items():
        path.write_text(text)
    for path in stray:
        path.unlink()
    print(f"wrote {len(built)} dashboards to {OUT_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

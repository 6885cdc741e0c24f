"""Where the time goes, from the service's own Prometheus histograms (GET /v1/metrics, admin key).

Locust measures latency as a client sees it, on a machine where Locust competes for the CPU; the
service's histograms say what the server itself spent, per route and per component (embedding,
vector query). Scrape before and after a run (or a load step) and difference the cumulative
buckets: that gives count, mean and Prometheus-style interpolated quantiles for just that interval.
Quantiles are only as fine as the buckets (docs/architecture.md); means are exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
Snapshot = dict[tuple[str, Labels], float]

HTTP = "memory_http_request_duration_seconds"
EMBEDDING = "memory_embedding_duration_seconds"
VECTOR = "memory_vector_query_duration_seconds"
# The service labels GET /v1/memories/search as "/memories/search" today; accept both.
SEARCH_ROUTE = re.compile(r"^(/v1)?/memories/search$")


def parse(text: str) -> Snapshot:
    """Every sample of an exposition, keyed by (sample name, sorted labels)."""
    snapshot: Snapshot = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            snapshot[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return snapshot


def scrape(host: str, admin_key: str, timeout: float = 10.0) -> Snapshot:
    """One scrape of /v1/metrics (exempt from rate limits for admin keys)."""
    response = httpx.get(
        f"{host.rstrip('/')}/v1/metrics", headers={"Authorization": f"Bearer {admin_key}"}, timeout=timeout
    )
    response.raise_for_status()
    return parse(response.text)


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative buckets (upper bound, count), +Inf last, with sum and count."""

    buckets: tuple[tuple[float, float], ...]
    count: float
    total: float

    def __sub__(self, before: Histogram) -> Histogram:
        earlier = dict(before.buckets)
        return Histogram(
            tuple((le, n - earlier.get(le, 0.0)) for le, n in self.buckets),
            self.count - before.count,
            self.total - before.total,
        )

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count > 0 else None

    def quantile(self, q: float) -> float | None:
        """histogram_quantile(): linear interpolation inside the bucket holding rank q * count."""
        if self.count <= 0 or not self.buckets:
            return None
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for le, cumulative in self.buckets:
            if cumulative >= rank:
                if le == float("inf"):
                    return lower_bound  # beyond the last finite bucket: its bound is all we know
                width = cumulative - lower_count
                if width <= 0:
                    return le
                return lower_bound + (le - lower_bound) * (rank - lower_count) / width
            lower_bound, lower_count = le, cumulative
        return lower_bound


def histogram(snapshot: Snapshot, family: str, match: Callable[[Mapping[str, str]], bool]) -> Histogram:
    """The sum of every series of `family` whose labels satisfy `match` (labels other than le)."""
    buckets: dict[float, float] = {}
    count = total = 0.0
    for (name, labels), value in snapshot.items():
        label_map = dict(labels)
        if name == f"{family}_bucket":
            le = float(label_map.pop("le"))
            if match(label_map):
                buckets[le] = buckets.get(le, 0.0) + value
        elif name == f"{family}_count" and match(label_map):
            count += value
        elif name == f"{family}_sum" and match(label_map):
            total += value
    return Histogram(tuple(sorted(buckets.items())), count, total)


def label_values(snapshot: Snapshot, family: str, label: str) -> list[tuple[str, ...]]:
    """Distinct values of `label` (and method for HTTP) among a family's series."""
    seen: set[tuple[str, ...]] = set()
    for (name, labels), _ in snapshot.items():
        if name == f"{family}_count":
            label_map = dict(labels)
            if label in label_map:
                seen.add((label_map[label], label_map.get("method", "")))
    return sorted(seen)


@dataclass(frozen=True, slots=True)
class Row:
    """One component over an interval: what it is, how often it ran, how long it took."""

    component: str
    count: int
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    total_s: float

    @classmethod
    def of(cls, component: str, h: Histogram) -> Row:
        def ms(value: float | None) -> float | None:
            return None if value is None else value * 1000

        return cls(
            component,
            round(h.count),
            ms(h.mean),
            ms(h.quantile(0.5)),
            ms(h.quantile(0.95)),
            ms(h.quantile(0.99)),
            h.total,
        )


def breakdown(before: Snapshot, after: Snapshot) -> list[Row]:
    """Per route (HTTP total), embedding and vector query per operation, over the interval."""
    rows = []
    for route, method in label_values(after, HTTP, "route"):
        h = histogram(after, HTTP, lambda m, r=route, v=method: m.get("route") == r and m.get("method") == v)
        h -= histogram(before, HTTP, lambda m, r=route, v=method: m.get("route") == r and m.get("method") == v)
        if h.count > 0:
            rows.append(Row.of(f"HTTP {method} {route}", h))
    embedding = histogram(after, EMBEDDING, lambda m: True) - histogram(before, EMBEDDING, lambda m: True)
    if embedding.count > 0:
        rows.append(Row.of("embedding (one text)", embedding))
    for operation, _ in label_values(after, VECTOR, "operation"):
        h = histogram(after, VECTOR, lambda m, o=operation: m.get("operation") == o)
        h -= histogram(before, VECTOR, lambda m, o=operation: m.get("operation") == o)
        if h.count > 0:
            rows.append(Row.of(f"vector {operation}", h))
    return rows


def search_http(before: Snapshot, after: Snapshot) -> Histogram:
    """Server-side duration of GET /v1/memories/search over the interval."""

    def match(m: Mapping[str, str]) -> bool:
        return bool(SEARCH_ROUTE.match(m.get("route", ""))) and m.get("method") == "GET"

    return histogram(after, HTTP, match) - histogram(before, HTTP, match)


def markdown(rows: Iterable[Row]) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [
        "| Component | Count | Mean ms | p50 ms | p95 ms | p99 ms | Total s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.component} | {r.count} | {fmt(r.mean_ms)} | {fmt(r.p50_ms)} | {fmt(r.p95_ms)} | "
            f"{fmt(r.p99_ms)} | {r.total_s:.1f} |"
        )
    return "\n".join(lines) + "\n"

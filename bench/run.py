"""`make bench`: latency and throughput of the real service, printed as JSON on stdout.

What it measures, in one run on one machine (so ratios are comparable, absolute figures are not):
- add: single-message POST /v1/memories, sequential, p50/p95 (ms), at 1k and 10k stored memories;
- search: GET /v1/memories/search (limit 10), sequential p50/p95, and searches per second with
  BENCH_CLIENTS concurrent clients for BENCH_SECONDS, at 1k and 10k memories;
- the same search and add through the mem0 Platform dialect (POST /v3/memories/search/ and
  /v3/memories/add/, as mem0's own clients send them) on the same service, interleaved with the
  contract's at 1k memories, and what it costs relative to the contract's route;
- the same search and add through a server built the way mem0's own server is
  (bench/mem0_server_baseline.py), on the same Postgres and embedder, at 1k memories: once as
  mem0 ships it, whose filtered HNSW searches come back short (the results per search are
  reported), and once with the iterative scan that makes them complete, as the service's are;
- what a subscribed webhook adds to an add (bench/webhooks.py): p50/p95 of adds with and without
  one, interleaved, at 1k memories, and the event lag to a loopback receiver;
- the same search through MCP (POST /mcp, and the `mcp` SDK's client) beside REST, at 1k
  (bench/mcp_search.py);
- the rate limiter's added latency per request (its `check`), memory:// and a real Redis.
The client runs on the same 2 cores as the server: throughput figures include that contention.
Progress goes to stderr; stdout is one JSON document.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import QUERIES, TOPICS, limiter_overhead, log, postgres_uri, summary  # noqa: E402
from bench.mcp_search import measure as measure_mcp_search  # noqa: E402
from bench.webhooks import ENV as WEBHOOK_ENV  # noqa: E402
from bench.webhooks import measure as measure_webhooks  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402
from tests.support.server import ServiceProcess, embedded_conninfo, free_port, postgres_processes  # noqa: E402

USERS = 10
PLATFORM = "service_platform_dialect"
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "200"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
# Every client of the bench uses one key: per-key admission (KEY_CONCURRENCY, by default half the
# pool) would answer the clients over it 429, so it admits them all; REQUEST_TIMEOUT: seeding adds
# 100 messages a request: on a busy machine, minutes.
ONE_KEY_ENV = {"KEY_CONCURRENCY": str(max(CLIENTS, 1)), "KEY_CONCURRENCY_WAIT": "10", "REQUEST_TIMEOUT": "300"}


def timed(call: Callable[[], httpx.Response], expect: int) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == expect, response.text
    return elapsed


def seed(
    url: str, headers: dict[str, str], total: int, start: int = 0, path: str = "/v1/memories", status: int = 201
) -> None:
    """Store memories 100 per request (each user message becomes one memory)."""
    with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
        for offset in range(start, start + total, 100):
            user = (offset // 100) % USERS
            messages = [
                {"role": "user", "content": f"Note {i} about {TOPICS[i % 10]}: day {i // 10} of user {user}"}
                for i in range(offset, offset + 100)
            ]
            response = client.post(path, json={"messages": messages, "user_id": f"user-{user}"})
            assert response.status_code == status, response.text


def throughput(
    make_call: Callable[[httpx.Client, int], httpx.Response],
    url: str,
    headers: dict[str, str],
    seconds: float = SECONDS,
) -> float:
    """Requests per second with CLIENTS concurrent clients for `seconds` (SECONDS)."""
    count, elapsed = requests_in(make_call, url, headers, seconds)
    return round(count / elapsed, 1)


def requests_in(
    make_call: Callable[[httpx.Client, int], httpx.Response], url: str, headers: dict[str, str], seconds: float
) -> tuple[int, float]:
    """How many requests CLIENTS concurrent clients complete in `seconds`, and the time taken."""
    stop = time.monotonic() + seconds
    counts = [0] * CLIENTS

    def worker(index: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            i = index
            while time.monotonic() < stop:
                response = make_call(client, i)
                assert response.status_code == 200, response.text
                counts[index] += 1
                i += CLIENTS

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts), time.monotonic() - started


class Target:
    """One server under test: how to add and search on it."""

    def __init__(self, name: str, url: str, headers: dict[str, str], add_path: str, add_status: int) -> None:
        self.name, self.url, self.headers = name, url, headers
        self.add_path, self.add_status = add_path, add_status

    def add(self, client: httpx.Client, i: int) -> httpx.Response:
        body = {"messages": [{"role": "user", "content": f"bench add {i} about hiking"}], "user_id": "adder"}
        return client.post(self.add_path, json=body)

    def search(self, client: httpx.Client, i: int) -> httpx.Response:
        query, user = QUERIES[i % len(QUERIES)], f"user-{i % USERS}"
        if self.name == "service":
            return client.get("/v1/memories/search", params={"query": query, "user_id": user, "limit": 10})
        if self.name == PLATFORM:  # as mem0's MemoryClient.search sends it; threshold as the contract's default
            body = {"query": query, "filters": {"user_id": user}, "top_k": 10, "threshold": 0.0}
            return client.post("/v3/memories/search/", json=body)
        return client.post("/search", json={"query": query, "user_id": user})

    def results(self, response: httpx.Response) -> int:
        """How many memories a search returned (each user has 100, so 10 are always due)."""
        body = response.json()
        return len(body["data"]["memories"] if self.name == "service" else body["results"])


def measure(targets: list[Target]) -> dict[str, dict[str, Any]]:
    """Interleave the targets request by request (and window by window for throughput), so a
    change in machine load hits all of them alike and their ratio stays meaningful."""
    adds: dict[str, list[float]] = {t.name: [] for t in targets}
    searches: dict[str, list[float]] = {t.name: [] for t in targets}
    returned: dict[str, list[int]] = {t.name: [] for t in targets}
    clients = {t.name: httpx.Client(base_url=t.url, headers=t.headers, timeout=60) for t in targets}
    try:
        for i in range(SAMPLES):
            for t in targets:
                adds[t.name].append(timed(lambda t=t, i=i: t.add(clients[t.name], i), t.add_status))
                started = time.perf_counter()
                response = t.search(clients[t.name], i)
                searches[t.name].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
                returned[t.name].append(t.results(response))
    finally:
        for client in clients.values():
            client.close()
    rates: dict[str, list[float]] = {t.name: [] for t in targets}
    for _ in range(3):
        for t in targets:
            rates[t.name].append(throughput(t.search, t.url, t.headers))
    return {
        t.name: {
            "add": summary(adds[t.name]),
            "search": summary(searches[t.name]),
            "results_per_search": {
                "mean": round(statistics.fmean(returned[t.name]), 2),
                "min": min(returned[t.name]),
                "expected": 10,
            },
            "search_per_second": statistics.median(rates[t.name]),
            "search_per_second_windows": rates[t.name],
        }
        for t in targets
    }


PAIRED_ROUNDS = int(os.environ.get("BENCH_PAIRED_ROUNDS", "12"))
PAIRED_SECONDS = float(os.environ.get("BENCH_PAIRED_SECONDS", "3"))


def cpu_snapshot(service: ServiceProcess) -> dict[int, float]:
    """CPU seconds so far of every process of the service: its own (and any workers) and its
    embedded Postgres (the postmaster and its backends)."""
    assert service.process is not None
    root = psutil.Process(service.process.pid)
    processes = {p.pid: p for p in (root, *root.children(recursive=True), *postgres_processes(service.data_dir))}
    seconds = {}
    for pid, process in processes.items():
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            seconds[pid] = times.user + times.system
    return seconds


def paired_search_cost(service: ServiceProcess, contract: Target, platform: Target) -> dict[str, Any]:
    """The Platform dialect's search against the contract's, at CLIENTS concurrent clients, in short
    alternating windows (contract first in even rounds, Platform first in odd ones) so that drifts
    in the machine's load hit both alike. Cost is the CPU time the service's processes (Python and
    Postgres) spend per search, which other work on a shared machine barely moves; the figures are
    the medians of the rounds' ratios (Platform / contract: above 1, the Platform route costs more),
    and of searches per second."""
    rounds = []
    for i in range(PAIRED_ROUNDS):
        figures = {}
        for target in (contract, platform) if i % 2 == 0 else (platform, contract):
            before = cpu_snapshot(service)
            count, elapsed = requests_in(target.search, target.url, target.headers, PAIRED_SECONDS)
            after = cpu_snapshot(service)
            cpu = sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
            figures[target.name] = (cpu / count, count / elapsed)
        rounds.append((figures[contract.name], figures[platform.name]))
    cost = [p[0] / c[0] for c, p in rounds]
    rate = [c[1] / p[1] for c, p in rounds]
    return {
        "search_cpu_cost_at_clients": round(statistics.median(cost), 3),
        "search_rate_cost_at_clients": round(statistics.median(rate), 3),
        "contract_cpu_ms_per_search": round(1000 * statistics.median(c[0] for c, _ in rounds), 2),
        "platform_cpu_ms_per_search": round(1000 * statistics.median(p[0] for _, p in rounds), 2),
        "contract_search_per_second": round(statistics.median(c[1] for c, _ in rounds), 1),
        "platform_search_per_second": round(statistics.median(p[1] for _, p in rounds), 1),
        "rounds": len(rounds),
        "round_cpu_ratios": [round(r, 3) for r in cost],
        "budget": 1.10,
    }


# Startup options that give the baseline's connections the iterative HNSW scan the service uses.
ITERATIVE_SCAN = "&options=" + urllib.parse.quote(
    "-c hnsw.iterative_scan=relaxed_order -c plan_cache_mode=force_custom_plan"
)


def start_baseline(data_dir: Path, uri: str, name: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log(f"starting the {name} baseline")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [str(ROOT / "bench/mem0_server_baseline.py"), str(port), uri, str(data_dir / f"{name}.db"), name]
    process = subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(data_dir / f"{name}.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(f"{url}/docs", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, (data_dir / f"{name}.log").read_text()
            time.sleep(0.3)
    seed(url, {}, 1000, path="/memories", status=200)
    return process, url


def platform_only() -> int:
    """`make bench-platform`: only the Platform dialect against the contract at 1k memories (the
    sequential interleaved latencies and the paired CPU cost), without the baselines and 10k."""
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
        "settings": {"samples": SAMPLES, "clients": CLIENTS, "seconds": SECONDS},
    }
    env = {"RATE_LIMIT_PER_MINUTE": "1000000000", "RATE_LIMIT_BURST": "1000000000", "LOG_LEVEL": "WARNING"}
    env |= ONE_KEY_ENV
    headers = {"Authorization": "Bearer mem0_dev_key_123456789"}
    platform_headers = {"Authorization": "Token mem0_dev_key_123456789"}  # mem0's clients' scheme
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        service = ServiceProcess(Path(tmp) / "service", env).start(timeout=300)
        try:
            service_url = service.url
            contract = Target("service", service_url, headers, "/v1/memories", 201)
            platform = Target(PLATFORM, service_url, platform_headers, "/v3/memories/add/", 200)
            log("seeding 1,000 memories")
            seed(service_url, headers, 1000)
            log("measuring both dialects at 1k, interleaved")
            at_1k = measure([contract, platform])
            results["service_1k"], results[f"{PLATFORM}_1k"] = at_1k["service"], at_1k[PLATFORM]
            log("measuring the Platform dialect's search against the contract's, paired")
            results["platform_dialect_vs_contract_1k"] = paired_search_cost(service, contract, platform)
        finally:
            service.stop()
    results["platform_dialect_vs_contract_1k"]["search_p50"] = round(
        results[f"{PLATFORM}_1k"]["search"]["p50_ms"] / results["service_1k"]["search"]["p50_ms"], 3
    )
    print(json.dumps(results, indent=2))
    return 0


def main() -> int:
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
        "settings": {"samples": SAMPLES, "clients": CLIENTS, "seconds": SECONDS},
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        data = Path(tmp)
        env = {
            "RATE_LIMIT_PER_MINUTE": "1000000000",
            "RATE_LIMIT_BURST": "1000000000",
            "LOG_LEVEL": "WARNING",
        }
        env |= ONE_KEY_ENV | WEBHOOK_ENV
        service = ServiceProcess(data / "service", env).start(timeout=300)
        headers = {"Authorization": "Bearer mem0_dev_key_123456789"}
        try:
            log("seeding 1,000 memories")
            seed(service.url, headers, 1000)
            uri = postgres_uri(embedded_conninfo(service.data_dir))
            shipped, shipped_url = start_baseline(data, uri, "mem0_server_pattern")
            fixed, fixed_url = start_baseline(data, uri + ITERATIVE_SCAN, "mem0_server_pattern_iterative_scan")
            try:
                log("measuring at 1k, interleaved with the baselines")
                platform_headers = {"Authorization": "Token mem0_dev_key_123456789"}  # mem0's clients' scheme
                at_1k = measure(
                    [
                        Target("service", service.url, headers, "/v1/memories", 201),
                        Target(PLATFORM, service.url, platform_headers, "/v3/memories/add/", 200),
                        Target("mem0_server_pattern", shipped_url, {}, "/memories", 200),
                        Target("mem0_server_pattern_iterative_scan", fixed_url, {}, "/memories", 200),
                    ]
                )
            finally:
                for baseline in (shipped, fixed):
                    baseline.terminate()
                    baseline.wait(30)
            results["service_1k"] = at_1k.pop("service")
            results[f"{PLATFORM}_1k"] = at_1k.pop(PLATFORM)
            log("measuring the Platform dialect's search against the contract's, paired")
            results["platform_dialect_vs_contract_1k"] = paired_search_cost(
                service,
                Target("service", service.url, headers, "/v1/memories", 201),
                Target(PLATFORM, service.url, platform_headers, "/v3/memories/add/", 200),
            )
            results.update({f"{name}_1k": figures for name, figures in at_1k.items()})
            log("measuring adds with and without a subscribed webhook")
            results["webhooks_1k"] = measure_webhooks(service.url)
            log("measuring search through MCP beside REST at 1k")
            results["mcp_search_1k"] = measure_mcp_search(service, headers)
            log("seeding to 10,000 memories")
            seed(service.url, headers, 9000, start=1000)
            log("measuring at 10k")
            results["service_10k"] = measure([Target("service", service.url, headers, "/v1/memories", 201)])["service"]
        finally:
            service.stop()
        log("measuring the rate limiter")
        results["ratelimit_check_memory"] = asyncio.run(limiter_overhead("memory://"))
        redis_server = RedisServer(data / "redis").start()
        try:
            results["ratelimit_check_redis"] = asyncio.run(limiter_overhead(redis_server.url))
        finally:
            redis_server.stop()
    ours = results["service_1k"]
    platform = results[f"{PLATFORM}_1k"]  # sequential latency, interleaved request by request
    results["platform_dialect_vs_contract_1k"]["search_p50"] = round(
        platform["search"]["p50_ms"] / ours["search"]["p50_ms"], 3
    )
    for name in ("mem0_server_pattern", "mem0_server_pattern_iterative_scan"):
        theirs = results[f"{name}_1k"]
        results[f"ratios_vs_{name}_1k"] = {  # above 1: the service is faster
            "search_p50": round(theirs["search"]["p50_ms"] / ours["search"]["p50_ms"], 2),
            "search_per_second": round(ours["search_per_second"] / theirs["search_per_second"], 2),
            "add_p50": round(theirs["add"]["p50_ms"] / ours["add"]["p50_ms"], 2),
        }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(platform_only() if sys.argv[1:] == ["--platform-only"] else main())

"""A search through MCP beside the same search through REST, on one service (part of `make bench`).

Three ways to ask the service for the same 10 memories, interleaved so machine load hits all alike:
- `rest`: GET /v1/memories/search, as bench/run.py measures it;
- `mcp_http`: POST /mcp with the JSON-RPC `tools/call` of search_memories, from the same HTTP
  client as REST: the server's cost of the MCP path (SDK transport, JSON-RPC, argument and
  output validation) beside the REST route's;
- `mcp_sdk`: the `mcp` package's own Client (streamable HTTP, its default protocol), which also
  validates every result against the tool's output schema: what an agent framework sees.
Each: sequential p50/p95 (ms), searches per second with BENCH_CLIENTS concurrent clients for
BENCH_SECONDS (three windows, median), and the server's CPU time per search (the service's
process, and with its embedded Postgres): the clients share the server's 2 cores, and on a busy
machine wall-clock figures swing with the load while CPU time per search holds.

Alone (`python bench/mcp_search.py`) it starts a service, seeds 1,000 memories, and prints JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack, suppress
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import psutil
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import QUERIES, log, summary  # noqa: E402
from tests.support.server import ServiceProcess, postgres_processes  # noqa: E402

USERS = 10
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "200"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}


def arguments(i: int) -> dict[str, Any]:
    return {"query": QUERIES[i % len(QUERIES)], "user_id": f"user-{i % USERS}", "limit": 10}


def rest_search(client: httpx.Client, i: int) -> int:
    response = client.get("/v1/memories/search", params=arguments(i))
    assert response.status_code == 200, response.text
    return len(response.json()["data"]["memories"])


def mcp_http_search(client: httpx.Client, i: int) -> int:
    message = {
        "jsonrpc": "2.0",
        "id": i,
        "method": "tools/call",
        "params": {"name": "search_memories", "arguments": arguments(i)},
    }
    response = client.post("/mcp", json=message, headers=MCP_HEADERS)
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert not result.get("isError"), result
    return len(result["structuredContent"]["memories"])


async def mcp_sdk_search(client: Client, i: int) -> int:
    result = await client.call_tool("search_memories", arguments(i))
    assert not result.is_error, result
    assert result.structured_content is not None
    return len(result.structured_content["memories"])


def sdk_client(url: str, headers: dict[str, str]) -> Client:
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0))
    return Client(streamable_http_client(f"{url}/mcp", http_client=http), cache=None)


def threaded_rate(call: Callable[[httpx.Client, int], int], url: str, headers: dict[str, str]) -> float:
    """Searches per second with CLIENTS threads, each with its own connection, for SECONDS."""
    stop = time.monotonic() + SECONDS
    counts = [0] * CLIENTS

    def worker(index: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            i = index
            while time.monotonic() < stop:
                assert call(client, i) == 10
                counts[index] += 1
                i += CLIENTS

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return round(sum(counts) / (time.monotonic() - started), 1)


def sdk_rate(url: str, headers: dict[str, str]) -> float:
    """Searches per second with CLIENTS concurrent SDK clients (one event loop) for SECONDS, timed
    from when all of them are connected."""
    counts = [0] * CLIENTS

    async def worker(client: Client, index: int, stop: float) -> None:
        i = index
        while time.monotonic() < stop:
            assert await mcp_sdk_search(client, i) == 10
            counts[index] += 1
            i += CLIENTS

    async def run() -> float:
        async with AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(sdk_client(url, headers)) for _ in range(CLIENTS)]
            started = time.monotonic()
            async with anyio.create_task_group() as group:
                for index, client in enumerate(clients):
                    group.start_soon(worker, client, index, started + SECONDS)
            return sum(counts) / (time.monotonic() - started)

    return round(anyio.run(run), 1)


def sdk_sequential(url: str, headers: dict[str, str], samples: int) -> list[float]:
    async def run() -> list[float]:
        timings = []
        async with sdk_client(url, headers) as client:
            for i in range(samples):
                started = time.perf_counter()
                assert await mcp_sdk_search(client, i) == 10
                timings.append((time.perf_counter() - started) * 1000)
        return timings

    return anyio.run(run)


def cpu_seconds(pid: int, data_dir: Path) -> tuple[float, float]:
    """User + system CPU seconds of the service's process, and of it with its embedded Postgres."""
    own = sum(psutil.Process(pid).cpu_times()[:2])
    database = 0.0
    for process in postgres_processes(data_dir):
        with suppress(psutil.NoSuchProcess):
            database += sum(process.cpu_times()[:2])
    return own, own + database


def cpu_per_search(
    url: str, headers: dict[str, str], service: ServiceProcess, rounds: int = 3
) -> dict[str, dict[str, float]]:
    """Server CPU ms per search, each way, in alternating rounds of SAMPLES // 2 sequential searches."""
    n = max(1, SAMPLES // 2)
    spent = {name: [0.0, 0.0] for name in ("rest", "mcp_http", "mcp_sdk")}

    assert service.process is not None
    pid = service.process.pid

    def account(name: str, before: tuple[float, float]) -> None:
        after = cpu_seconds(pid, service.data_dir)
        spent[name][0] += after[0] - before[0]
        spent[name][1] += after[1] - before[1]

    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for _ in range(rounds):
            for name, call in (("rest", rest_search), ("mcp_http", mcp_http_search)):
                before = cpu_seconds(pid, service.data_dir)
                for i in range(n):
                    call(client, i)
                account(name, before)
            before = cpu_seconds(pid, service.data_dir)
            sdk_sequential(url, headers, n)
            account("mcp_sdk", before)
    return {
        name: {
            "service_ms": round(own * 1000 / (rounds * n), 2),
            "with_postgres_ms": round(tree * 1000 / (rounds * n), 2),
        }
        for name, (own, tree) in spent.items()
    }


def measure(service: ServiceProcess, headers: dict[str, str]) -> dict[str, Any]:
    url = service.url
    timings: dict[str, list[float]] = {"rest": [], "mcp_http": []}
    calls = {"rest": rest_search, "mcp_http": mcp_http_search}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for i in range(SAMPLES):
            for name, call in calls.items():
                started = time.perf_counter()
                assert call(client, i) == 10
                timings[name].append((time.perf_counter() - started) * 1000)
    timings["mcp_sdk"] = sdk_sequential(url, headers, SAMPLES)
    rates: dict[str, list[float]] = {"rest": [], "mcp_http": [], "mcp_sdk": []}
    for _ in range(3):
        rates["rest"].append(threaded_rate(rest_search, url, headers))
        rates["mcp_http"].append(threaded_rate(mcp_http_search, url, headers))
        rates["mcp_sdk"].append(sdk_rate(url, headers))
    results: dict[str, Any] = {
        name: {
            "search": summary(timings[name]),
            "search_per_second": statistics.median(rates[name]),
            "search_per_second_windows": rates[name],
        }
        for name in ("rest", "mcp_http", "mcp_sdk")
    }
    for name, cpu in cpu_per_search(url, headers, service).items():
        results[name]["server_cpu_per_search"] = cpu
    rest = results["rest"]
    ratios: dict[str, dict[str, float]] = {}
    for name in ("mcp_http", "mcp_sdk"):  # above 1: MCP is slower, serves fewer per second, costs more CPU
        ours = results[name]
        ratios[name] = {
            "search_p50": round(ours["search"]["p50_ms"] / rest["search"]["p50_ms"], 2),
            "search_per_second": round(rest["search_per_second"] / ours["search_per_second"], 2),
        }
        ratios[name]["server_cpu_per_search"] = round(
            ours["server_cpu_per_search"]["service_ms"] / rest["server_cpu_per_search"]["service_ms"], 2
        )
    results["ratios_vs_rest"] = ratios
    return results


def main() -> int:
    from bench.run import seed

    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        env = {
            "RATE_LIMIT_PER_MINUTE": "1000000000",
            "RATE_LIMIT_BURST": "1000000000",
            "LOG_LEVEL": "WARNING",
            "REQUEST_TIMEOUT": "300",  # seeding adds 100 messages a request: on a busy machine, minutes
        }
        service = ServiceProcess(Path(tmp) / "service", env).start(timeout=300)
        headers = {"Authorization": "Bearer mem0_dev_key_123456789"}
        try:
            log("seeding 1,000 memories")
            seed(service.url, headers, 1000)
            log("measuring search through REST and MCP")
            results = {
                "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
                "settings": {"samples": SAMPLES, "clients": CLIENTS, "seconds": SECONDS},
                "mcp_search_1k": measure(service, headers),
            }
        finally:
            service.stop()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

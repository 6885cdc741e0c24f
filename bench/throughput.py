"""`make bench-throughput`: search and add throughput beside mem0's server pattern, one JSON (issue 20).

What it measures, in one run on one machine (ratios are comparable, absolute figures depend on
the machine and on what else runs on it: the load average is recorded before and after):

- the corpus of issue 20: 10 users x 500 memories (all-MiniLM-L6-v2 int8, top_k 5, threshold 0);
- three servers on the same embedded Postgres and the same rows: the service with one worker
  (uvicorn), the service with two workers (gunicorn, rate limits and the shared embedding cache in
  a real redis-server, as production runs it), and a server built the way mem0's own REST server
  is (bench/mem0_server_baseline.py);
- searches with unique query texts (every request misses every cache) at 1, 8 and 32 concurrent
  keep-alive clients (bench/loadgen.py): searches/s, p50/p95/p99, short results (fewer than 5
  returned although every user has 500), each window interleaved across the servers so a change in
  machine load hits all of them alike; the median of BENCH_REPEATS windows of BENCH_SECONDS;
- the hit path: the same at 32 clients with queries repeated from a small set (embedding cache);
- adds (one message, infer off) at 32 clients: adds/s, p50/p95;
- CPU per search at 32 clients (two workers): the server's processes, Postgres and the load
  generator from their CPU time over the window, and the server's split by component from a
  py-spy profile of the same load (bench/cpu_budget.py);
- what a subscribed webhook adds to an add (bench/webhooks.py): p50/p95 of sequential adds with
  and without one, interleaved, and the event lag to a loopback receiver;
- the rate limiter's added latency per request (its `check`), memory:// and a real Redis;
- the scale table (10k/100k/1M memories, recall@5 against an exact scan) from the JSON that
  `make bench-scale` (bench/scale.py) printed, read from BENCH_SCALE_RESULT (default: the newest
  bench/results/scale-*.json): the bulk load and its index builds take too long to repeat here.

Progress goes to stderr; stdout is one JSON document.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import LOAD_ENV, TOPICS, limiter_overhead, log, postgres_uri  # noqa: E402
from bench.cpu_budget import WAITING_CATEGORY, budget, parse  # noqa: E402
from bench.webhooks import ENV as WEBHOOK_ENV  # noqa: E402
from bench.webhooks import measure as measure_webhooks  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402
from tests.support.server import ServiceProcess, embedded_conninfo, free_port  # noqa: E402

USERS = 10
PER_USER = 500
LIMIT = 5
CLIENTS = [int(c) for c in os.environ.get("BENCH_CLIENTS", "1,8,32").split(",")]
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
SCALE_RESULTS = sorted((ROOT / "bench/results").glob("scale-*.json"))
SCALE_RESULT = Path(
    os.environ.get("BENCH_SCALE_RESULT", SCALE_RESULTS[-1] if SCALE_RESULTS else ROOT / "bench/results/scale.json")
)
AUTH = "Bearer mem0_dev_key_123456789"
ADMIN = "Bearer mem0_admin_key_111222333"
RESULTS = ROOT / "bench/results"  # the last run's profiles, for `python bench/cpu_budget.py` (not committed)
PY_SPY = Path(sys.executable).parent / "py-spy"
RATE = 200  # py-spy samples per second


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


class Server:
    """One server under test: its URL, how it is asked, and the processes whose CPU it uses."""

    def __init__(self, name: str, url: str, kind: str, auth: str | None, pids: list[int], pg_data: Path) -> None:
        self.name, self.url, self.kind, self.auth = name, url, kind, auth
        self.pids, self.pg_data = pids, pg_data

    def processes(self) -> list[psutil.Process]:
        found = []
        for pid in self.pids:
            root = psutil.Process(pid)
            found += [root, *root.children(recursive=True)]
        return found

    def add_kind(self) -> str:
        return "mem0-add" if self.kind == "mem0-search" else "add"


def postgres_processes(pg_data: Path) -> list[psutil.Process]:
    postmaster = int((pg_data / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    root = psutil.Process(postmaster)
    return [root, *root.children(recursive=True)]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def window(server: Server, kind: str, clients: int, seconds: float, users: int = USERS) -> dict[str, Any]:
    """One load window from a separate process (its CPU is its own), with the CPU the server
    and Postgres used meanwhile."""
    servers, postgres = server.processes(), postgres_processes(server.pg_data)
    before = cpu_seconds(servers), cpu_seconds(postgres)
    args = [str(ROOT / "bench/loadgen.py"), server.url, kind, str(clients), str(seconds), server.auth or ""]
    done_process = subprocess.run(
        [sys.executable, *args, str(users), str(LIMIT)],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    if done_process.returncode != 0:
        raise RuntimeError(f"the load generator failed ({kind}, {clients} clients):\n{done_process.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done_process.stdout)
    postgres = postgres_processes(server.pg_data)  # backends come and go: count the ones alive now too
    done = max(1, result["requests"])
    result["server_cpu_ms_per_request"] = round((cpu_seconds(servers) - before[0]) * 1000 / done, 2)
    result["postgres_cpu_ms_per_request"] = round((cpu_seconds(postgres) - before[1]) * 1000 / done, 2)
    return result


def median_of(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the median over the windows (and the windows' throughput, to show the spread)."""
    keys = [k for k, v in windows[0].items() if isinstance(v, int | float) and k != "clients"]
    summary: dict[str, Any] = {"clients": windows[0]["clients"]}
    for key in keys:
        values = [w[key] for w in windows if key in w]
        summary[key] = round(statistics.median(values), 2)
    summary["per_second_windows"] = [w["per_second"] for w in windows]
    if any("short_results" in w for w in windows):
        summary["short_results"] = sum(w.get("short_results", 0) for w in windows)
        summary["requests_total"] = sum(w["requests"] for w in windows)
    summary["errors"] = sum(w["errors"] for w in windows)
    return summary


def seed_service(url: str) -> None:
    """USERS x PER_USER memories through the API, 100 messages per request."""
    with httpx.Client(base_url=url, headers={"Authorization": AUTH}, timeout=600) as client:
        for user in range(USERS):
            for start in range(0, PER_USER, 100):
                messages = [
                    {"role": "user", "content": f"Note {i} about {TOPICS[i % 10]}: day {i // 10} of user {user}"}
                    for i in range(start, start + 100)
                ]
                response = client.post("/v1/memories", json={"messages": messages, "user_id": f"user-{user}"})
                assert response.status_code == 201, response.text


def copy_to_baseline(conninfo: str, collection: str) -> None:
    """The baseline's collection gets the service's rows, its users without the tenant prefix
    (mem0's server has no tenants), so both search the very same vectors."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            f'INSERT INTO "{collection}" (id, vector, payload) SELECT id, vector, jsonb_set(payload, '
            "'{user_id}', to_jsonb(split_part(payload->>'user_id', '/', 2))) FROM memories "
            "WHERE payload->>'user_id' LIKE 'default/user-%'"
        )
        conn.execute(f'ANALYZE "{collection}"')


def start_baseline(data: Path, uri: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    name = "mem0_server_pattern"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BASELINE_TOP_K": str(LIMIT)}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench/mem0_server_baseline.py"), str(port), uri, str(data / f"{name}.db"), name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(data / f"{name}.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            httpx.get(f"{url}/docs", timeout=1)
            break
        except httpx.HTTPError:
            assert process.poll() is None, (data / f"{name}.log").read_text()
            assert time.monotonic() < deadline, (data / f"{name}.log").read_text()
            time.sleep(0.3)
    # The collection exists once mem0 made it (on its first call); one add makes it.
    body = {"messages": [{"role": "user", "content": "hello"}], "user_id": "bench-setup"}
    assert httpx.post(f"{url}/memories", json=body, timeout=120).status_code == 200
    return process, url


def embedding_cpu_seconds(server: Server) -> float:
    """memory_embedding_cpu_seconds_total of the server (summed over its workers)."""
    text = httpx.get(f"{server.url}/v1/metrics", headers={"Authorization": ADMIN}, timeout=30).text
    for line in text.splitlines():
        if line.startswith("memory_embedding_cpu_seconds_total "):
            return float(line.split()[1])
    return 0.0


def profile(server: Server, seconds: float, clients: int) -> dict[str, Any]:
    """Where a search's CPU goes, from one more window of searches.

    py-spy samples the GIL's holder (`--gil`) RATE times a second: each sample is about 1/RATE s
    of Python (or C holding the GIL) running, by component (bench/cpu_budget.py), so their
    count gives the process's Python CPU in milliseconds per search. The rest of the server's
    CPU (psutil) ran without the GIL: the model's runs, mostly, which the embedder also counts
    itself (memory_embedding_cpu_seconds_total, where the revision has it). Postgres and the
    load generator come from their own CPU time.
    """
    raw = server.pg_data / f"profile-{server.name}.txt"
    options = ["--subprocesses", "--gil", "-r", str(RATE), "-f", "raw", "-d", str(int(seconds)), "--nonblocking"]
    spy = subprocess.Popen(
        [str(PY_SPY), "record", "-p", str(server.pids[0]), "-o", str(raw), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches
    embedding_before = embedding_cpu_seconds(server)
    started = time.monotonic()
    measured = window(server, "search", clients, seconds - 2.0)
    elapsed = time.monotonic() - started
    embedding_after = embedding_cpu_seconds(server)
    spy.wait(60)
    searches = max(1, measured["requests"])
    counts = parse(raw.read_text())
    # The profile spans the window and a little more on either side: count per second of it.
    python_ms = sum(n for c, n in counts.items() if c != WAITING_CATEGORY) / RATE * 1000 / searches
    python_ms *= elapsed / max(elapsed, int(seconds))
    server_ms = measured["server_cpu_ms_per_request"]
    split = budget(counts, python_ms)
    if RESULTS.is_dir():
        (RESULTS / f"profile-{server.name}.txt").write_text(raw.read_text())
    result: dict[str, Any] = {
        "searches_per_second": measured["per_second"],
        "p95_ms": measured.get("p95_ms"),
        "cpu_ms_per_search": {
            "total": round(
                server_ms + measured["postgres_cpu_ms_per_request"] + measured["loadgen_cpu_ms_per_request"], 2
            ),
            "server": server_ms,
            "postgres": measured["postgres_cpu_ms_per_request"],
            "load_generator": measured["loadgen_cpu_ms_per_request"],
        },
        "server_split_ms": {
            "without the GIL (model runs, native code)": round(max(0.0, server_ms - python_ms), 2),
            **{f"python: {category}": ms for category, ms in split.items()},
        },
    }
    if embedding_after > 0:
        result["model_runs_ms_per_search (embedder's own count)"] = round(
            (embedding_after - embedding_before) * 1000 / searches, 2
        )
    return result


def main() -> int:
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average_1m_before": load_average()},
        "settings": {
            "users": USERS,
            "memories_per_user": PER_USER,
            "top_k": LIMIT,
            "clients": CLIENTS,
            "seconds_per_window": SECONDS,
            "repeats": REPEATS,
            "query_texts": "unique per request (miss path) unless stated",
        },
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        data = Path(tmp)
        env = LOAD_ENV | WEBHOOK_ENV
        redis = RedisServer(data / "redis").start()
        one = ServiceProcess(data / "one", env).start(timeout=300)
        processes: list[Any] = []
        try:
            log(f"seeding {USERS} x {PER_USER} memories")
            seed_started = time.monotonic()
            seed_service(one.url)
            results["seed_seconds"] = round(time.monotonic() - seed_started, 1)
            conninfo = embedded_conninfo(one.data_dir)
            uri = postgres_uri(conninfo)
            # As production runs it: rate limits and the shared embedding cache in Redis.
            two_env = {
                **env,
                "DATABASE_URL": uri,
                "RATE_LIMIT_STORAGE_URI": redis.url,
                "EMBEDDING_CACHE_REDIS_URL": redis.url.removesuffix("/0") + "/1",
            }
            two = ServiceProcess(data / "two", two_env, workers=2).start(timeout=300)
            processes.append(two)
            log("starting the mem0-server-pattern baseline (as mem0 ships: no iterative scan)")
            baseline, baseline_url = start_baseline(data, uri)
            processes.append(baseline)
            copy_to_baseline(conninfo, "mem0_server_pattern")
            assert one.process is not None
            assert two.process is not None
            servers = [
                Server("service_1_worker", one.url, "search", AUTH, [one.process.pid], one.data_dir),
                Server("service_2_workers_redis", two.url, "search", AUTH, [two.process.pid], one.data_dir),
                Server("mem0_server_pattern", baseline_url, "mem0-search", None, [baseline.pid], one.data_dir),
            ]
            for server in servers:  # warm: first requests pay lazy imports and connections
                window(server, server.kind, 4, 2.0)
            search: dict[str, dict[str, Any]] = {s.name: {} for s in servers}
            for clients in CLIENTS:
                log(f"searches, {clients} clients (load average {load_average()})")
                windows: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
                for _ in range(REPEATS):
                    for server in servers:
                        windows[server.name].append(window(server, server.kind, clients, SECONDS))
                for server in servers:
                    search[server.name][f"clients_{clients}"] = median_of(windows[server.name])
            results["search"] = search
            log("hit path: repeated queries, 32 clients")
            results["search_repeated_queries_32_clients"] = {
                s.name: median_of([window(s, "search-repeat", 32, SECONDS) for _ in range(REPEATS)])
                for s in servers[:2]
            }
            log("adds, 32 clients")
            adds: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
            for _ in range(REPEATS):
                for server in servers:
                    adds[server.name].append(window(server, server.add_kind(), 32, SECONDS))
            results["add_32_clients"] = {name: median_of(w) for name, w in adds.items()}
            log("CPU budget: py-spy on the service under 32 clients")
            RESULTS.mkdir(exist_ok=True)
            results["cpu_budget_32_clients"] = {s.name: profile(s, SECONDS + 3, 32) for s in servers[:2]}
            log("adds with and without a subscribed webhook (sequential, one worker)")
            results["webhooks"] = measure_webhooks(one.url)
            log("the rate limiter's check, memory:// and Redis")
            results["ratelimit_check_memory"] = asyncio.run(limiter_overhead("memory://"))
            results["ratelimit_check_redis"] = asyncio.run(limiter_overhead(redis.url))
        finally:
            for process in processes:
                if isinstance(process, ServiceProcess):
                    process.stop()
                else:
                    process.terminate()
                    process.wait(30)
            one.stop()
            redis.stop()
    if SCALE_RESULT.is_file():
        scale = json.loads(SCALE_RESULT.read_text())
        results["scale"] = {
            "from": str(SCALE_RESULT.relative_to(ROOT) if SCALE_RESULT.is_relative_to(ROOT) else SCALE_RESULT)
        }
        results["scale"] |= {"summary": scale["summary"], "targets": scale["summary"].get("targets", {})}
    else:
        results["scale"] = (
            f"not measured in this run: run `make bench-scale > bench/results/scale-<date>.json` (no {SCALE_RESULT})"
        )
    results["targets"] = targets(results)
    results["machine"]["load_average_1m_after"] = load_average()
    results["duration_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, indent=2))
    return 0


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """Issue 20's targets against this run (two workers, 32 clients, unique queries)."""
    at32 = results["search"]["service_2_workers_redis"].get("clients_32")
    adds = results["add_32_clients"]["service_2_workers_redis"]
    base = results["search"]["mem0_server_pattern"].get("clients_32")
    verdict: dict[str, Any] = {}
    if at32:
        verdict["searches_per_second>=200"] = [at32["per_second"], at32["per_second"] >= 200]
        verdict["search_p95_ms<=250"] = [at32["p95_ms"], at32["p95_ms"] <= 250]
        verdict["no_short_result"] = [at32["short_results"], at32["short_results"] == 0]
        if base:
            verdict["searches_per_second_vs_mem0_server_pattern"] = round(at32["per_second"] / base["per_second"], 2)
    verdict["adds_per_second>=200"] = [adds["per_second"], adds["per_second"] >= 200]
    scale = results.get("scale")
    if isinstance(scale, dict) and "targets" in scale:
        verdict.update(scale["targets"])
    return verdict


if __name__ == "__main__":
    sys.exit(main())

"""`make bench-batch-wait`: does waiting for company make fuller model runs pay? (issue 20)

A model run of one short query costs about twice the CPU per query of a run of sixteen, and at
32 clients most runs still carry one to three queries (docs/capacity.md). EMBEDDER_MAX_WAIT_MS
lets a caller wait up to that long for company while the batcher is loaded (providers/batching.py);
each wait's one-client latency is measured too, since a sequential client can pay the wait. This runs the
two-worker service (as production: Redis for limits and the shared embedding cache) once per wait
in BENCH_WAITS (default `0,5,15`), all on the same rows, and interleaves their 32-client windows of
unique queries, so machine noise hits them alike: searches/s, p50/p95, CPU per search, and the
embedder's model-run CPU per search. JSON on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import LOAD_ENV, log, postgres_uri  # noqa: E402
from bench.throughput import AUTH, Server, embedding_cpu_seconds, load_average, median_of, seed_service, window  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402
from tests.support.server import ServiceProcess, embedded_conninfo  # noqa: E402

WAITS = [float(w) for w in os.environ.get("BENCH_WAITS", "0,5,15").split(",")]
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))


def main() -> int:
    results: dict[str, Any] = {"load_average_1m_before": load_average(), "clients": CLIENTS, "waits_ms": WAITS}
    env = LOAD_ENV
    with tempfile.TemporaryDirectory(prefix="bench-wait-") as tmp:
        data = Path(tmp)
        redis = RedisServer(data / "redis").start()
        seeder = ServiceProcess(data / "seed", env).start(timeout=300)
        services: list[ServiceProcess] = []
        try:
            log("seeding")
            seed_service(seeder.url)
            uri = postgres_uri(embedded_conninfo(seeder.data_dir))
            servers = []
            for i, wait in enumerate(WAITS):
                service_env = {
                    **env,
                    "DATABASE_URL": uri,
                    "RATE_LIMIT_STORAGE_URI": redis.url,
                    "EMBEDDING_CACHE_REDIS_URL": redis.url.removesuffix("/0") + f"/{i + 1}",
                    "EMBEDDER_MAX_WAIT_MS": f"{wait:g}",
                }
                service = ServiceProcess(data / f"wait{i}", service_env, workers=2).start(timeout=300)
                services.append(service)
                assert service.process is not None
                servers.append(
                    Server(f"wait_{wait:g}_ms", service.url, "search", AUTH, [service.process.pid], seeder.data_dir)
                )
            for server in servers:
                window(server, "search", 4, 2.0)  # warm
            windows: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
            alone: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
            model: dict[str, list[float]] = {s.name: [] for s in servers}
            for repeat in range(REPEATS):
                log(f"round {repeat + 1} of {REPEATS} (load average {load_average()})")
                for server in servers:
                    alone[server.name].append(window(server, "search", 1, SECONDS / 2))  # a lone query's cost
                    before = embedding_cpu_seconds(server)
                    result = window(server, "search", CLIENTS, SECONDS)
                    model[server.name].append(
                        (embedding_cpu_seconds(server) - before) * 1000 / max(1, result["requests"])
                    )
                    windows[server.name].append(result)
            for server in servers:
                summary = median_of(windows[server.name])
                summary["model_runs_ms_per_search"] = round(sorted(model[server.name])[len(model[server.name]) // 2], 2)
                lone = median_of(alone[server.name])
                summary["one_client"] = {k: lone[k] for k in ("per_second", "p50_ms", "p95_ms") if k in lone}
                results[server.name] = summary
        finally:
            for service in services:
                service.stop()
            seeder.stop()
            redis.stop()
    results["load_average_1m_after"] = load_average()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

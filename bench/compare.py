"""Before/after in one run: the service at several git revisions, on the same rows, same load.

`python bench/compare.py <rev> <rev> [...]` exports each revision's `service/` (git archive),
seeds 10 users x 500 memories once (through the last revision), then starts one server per
revision on that Postgres (PYTHONPATH points at the revision's code; same virtualenv) and
interleaves load windows across them: BENCH_REPEATS windows of BENCH_SECONDS at each of
BENCH_CLIENTS. WORKERS=2 serves each with two gunicorn workers and a real Redis; KIND=add
measures adds instead of searches; PROFILE=1 adds a CPU budget per revision (bench/run.py's
profile: the embedder's own CPU count where the revision has it, py-spy --gil for the rest).
Prints JSON: per revision and concurrency the medians, and each revision's ratio to the first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import log, postgres_uri  # noqa: E402
from bench.throughput import AUTH, Server, median_of, profile, seed_service, window  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402
from tests.support.server import ServiceProcess, embedded_conninfo  # noqa: E402

CLIENTS = [int(c) for c in os.environ.get("BENCH_CLIENTS", "32").split(",")]
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
WORKERS = int(os.environ.get("WORKERS", "1"))
KIND = os.environ.get("KIND", "search")


def export(revision: str, into: Path) -> tuple[str, Path]:
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", revision], capture_output=True, text=True, check=True
    ).stdout.strip()
    target = into / sha
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha, "service"], capture_output=True, check=True)
    target.mkdir(parents=True)
    tar = target / "service.tar"
    tar.write_bytes(archive.stdout)
    with tarfile.open(tar) as handle:
        handle.extractall(target, filter="data")
    return sha, target / "service"


def main(revisions: list[str]) -> int:
    def ratio(revision: str, clients: int, figure: str) -> float:
        return round(
            by_revision[revision][f"clients_{clients}"][figure] / by_revision[first][f"clients_{clients}"][figure], 2
        )

    results: dict[str, Any] = {
        "load_average_1m_before": round(os.getloadavg()[0], 2),
        "settings": {"clients": CLIENTS, "seconds": SECONDS, "repeats": REPEATS, "workers": WORKERS, "kind": KIND},
    }
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp:
        data = Path(tmp)
        exported = [export(r, data / "code") for r in revisions]
        env = {"RATE_LIMIT_PER_MINUTE": "1000000000", "RATE_LIMIT_BURST": "1000000000", "LOG_LEVEL": "WARNING"}
        env["REQUEST_TIMEOUT"] = "120"
        redis = RedisServer(data / "redis").start()
        owner = ServiceProcess(data / "db", {**env, "PYTHONPATH": str(exported[-1][1])}).start(timeout=300)
        services: list[ServiceProcess] = []
        try:
            log("seeding")
            seed_service(owner.url)
            uri = postgres_uri(embedded_conninfo(owner.data_dir))
            servers = []
            for sha, code in exported:
                revision_env = {**env, "PYTHONPATH": str(code), "DATABASE_URL": uri}
                if WORKERS > 1:
                    revision_env["RATE_LIMIT_STORAGE_URI"] = redis.url
                service = ServiceProcess(data / sha, revision_env, workers=WORKERS).start(timeout=300)
                services.append(service)
                assert service.process is not None
                servers.append(Server(sha, service.url, "search", AUTH, [service.process.pid], owner.data_dir))
            for server in servers:
                window(server, KIND, 4, 2.0)
            by_revision: dict[str, dict[str, Any]] = {s.name: {} for s in servers}
            for clients in CLIENTS:
                log(f"{clients} clients (load average {os.getloadavg()[0]:.1f})")
                windows: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
                for _ in range(REPEATS):
                    for server in servers:
                        windows[server.name].append(window(server, KIND, clients, SECONDS))
                for server in servers:
                    by_revision[server.name][f"clients_{clients}"] = median_of(windows[server.name])
            if os.environ.get("PROFILE"):
                for server in servers:
                    by_revision[server.name]["cpu_budget_32_clients"] = profile(server, SECONDS + 3, 32)
            results["revisions"] = by_revision
            first = servers[0].name
            results["ratios_to_first"] = {
                s.name: {f"clients_{c}": {f: ratio(s.name, c, f) for f in ("per_second", "p95_ms")} for c in CLIENTS}
                for s in servers[1:]
            }
        finally:
            for service in services:
                service.stop()
            owner.stop()
            redis.stop()
    results["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main(sys.argv[1:])
    log(f"done in {time.monotonic() - started:.0f} s")
    sys.exit(code)

"""`make loadtest` and `make capacity`: start a server unless LOCUST_HOST is given, run Locust, plot.

Smoke (`python -m loadtests.run smoke`): about a minute of the mixed workload plus the three
rate-limit probes against one worker on the embedded profile (memory:// limits), in a temporary
DATA_DIR on a free port, development keys enabled. Exit code: Locust's, i.e. the SLO verdict.

Capacity (`python -m loadtests.run capacity`): the step-load shape with the search-heavy mix
(MemoryUser only) against CAPACITY_WORKERS workers (4 means gunicorn with a real Redis for the
limits, the embedded Postgres owned by the master); writes Locust's CSV and HTML, capacity.json,
breakdown.md and capacity.png under loadtests/reports/.

The server is the one the tests use (tests/support/server.py): `memory-service serve` as a
subprocess, so what is measured is exactly what operators run. Variables are read from the
environment (the Makefile passes them): LOCUST_HOST, LOCUST_USERS, LOCUST_SPAWN_RATE,
LOCUST_RUN_TIME, CAPACITY_WORKERS, LOADTEST_REPORTS, SEARCH_P95_MS, MAX_ERROR_RATIO and the
locustfile's LOADTEST_* / STEP_* / PROBE_* options.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.redis import RedisServer  # noqa: E402
from tests.support.server import ServiceProcess  # noqa: E402

LOCUST = Path(sys.executable).parent / "locust"
SMOKE_CLASSES = ["MemoryUser", "RateLimitProbe", "PoliteClient", "RetryAfterClient"]
# A search-heavy corpus for capacity: 10 tenants x 50 users x 20 memories = 10,000 memories.
CAPACITY_DATASET = {"LOADTEST_TENANTS": "10", "LOADTEST_USERS_PER_TENANT": "50", "LOADTEST_MEMORIES_PER_USER": "20"}


@contextlib.contextmanager
def target(workers: int, keep: bool) -> Iterator[tuple[str, str, str | None]]:
    """(base URL, description, server pid): LOCUST_HOST as given, or a fresh server of our own."""
    if os.environ.get("LOCUST_HOST"):
        yield os.environ["LOCUST_HOST"], os.environ.get("LOADTEST_LABEL", os.environ["LOCUST_HOST"]), None
        return
    root = Path(tempfile.mkdtemp(prefix="memory-loadtest-"))
    redis: RedisServer | None = None
    env: dict[str, str] = {"GUNICORN_GRACEFUL_TIMEOUT": "10"}
    if workers > 1:
        redis = RedisServer(root / "redis").start()
        env["RATE_LIMIT_STORAGE_URI"] = redis.url
    service = ServiceProcess(root / "data", env, workers=workers)
    label = f"embedded profile, {workers} worker" + ("s, Redis limits" if workers > 1 else ", memory:// limits")
    try:
        print(f"loadtest: starting memory-service ({label}) in {root}", flush=True)
        service.start(timeout=240)
        assert service.process is not None
        pids = [str(service.process.pid)]
        with contextlib.suppress(OSError, IndexError):  # the embedded Postgres detaches: its own tree
            pids.append((root / "data" / "pgdata" / "postmaster.pid").read_text().splitlines()[0].strip())
        yield service.url, label, ",".join(pids)
    except BaseException:
        print(service.logs()[-4000:], file=sys.stderr)
        raise
    finally:
        service.stop()
        if redis is not None:
            redis.stop()
        if keep:
            print(f"loadtest: kept {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


def locust(args: list[str], env: dict[str, str]) -> int:
    command = [str(LOCUST), *args]
    print("loadtest: " + " ".join(command), flush=True)
    return subprocess.call(command, env=env, cwd=REPO)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["smoke", "capacity"])
    parser.add_argument("--keep", action="store_true", help="keep the temporary DATA_DIR")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    workers = int(env.get("CAPACITY_WORKERS", "1")) if args.mode == "capacity" else 1
    name = "smoke" if args.mode == "smoke" else f"capacity-{workers}w"
    reports = Path(env.get("LOADTEST_REPORTS", REPO / "loadtests" / "reports")) / name
    shutil.rmtree(reports, ignore_errors=True)
    reports.mkdir(parents=True)
    common = ["--headless", "--csv", str(reports / "locust"), "--html", str(reports / "report.html")]
    common += ["--lt-reports-dir", str(reports)]
    with target(workers, args.keep) as (host, label, pid):
        env.setdefault("LOADTEST_LABEL", label)
        if pid is not None:
            env["LOADTEST_SERVER_PID"] = pid  # the step shape measures the server's CPU
        started = time.monotonic()
        if args.mode == "smoke":
            users = env.get("LOCUST_USERS", "20")
            run_time = env.get("LOCUST_RUN_TIME", "75s")
            spawn_rate = env.get("LOCUST_SPAWN_RATE", users)
            smoke = ["-u", users, "-r", spawn_rate, "--run-time", run_time, "--only-summary", *SMOKE_CLASSES]
            code = locust(["-f", "loadtests/locustfile.py", *common, "--host", host, *smoke], env)
        else:
            for key, value in CAPACITY_DATASET.items():
                env.setdefault(key, value)
            files = "loadtests/locustfile.py,loadtests/shapes.py"
            code = locust(["-f", files, *common, "--host", host, "--only-summary", "MemoryUser"], env)
            if (reports / "capacity.json").exists():
                from loadtests.plot import plot

                plot([reports / "capacity.json"], reports / "capacity.png")
                print(f"loadtest: plot in {reports / 'capacity.png'}", flush=True)
    print(
        f"loadtest: {args.mode} finished in {time.monotonic() - started:.0f} s, exit code {code}; reports in {reports}"
    )
    return code


if __name__ == "__main__":
    raise SystemExit(main())

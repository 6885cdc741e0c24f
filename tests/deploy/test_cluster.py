"""`make deploy` on a scaled-out topology: a balancer, two API hosts and a data host.

Four throwaway hosts (tests/deploy/cluster.py) on a bridge, and a client namespace on the same
bridge that plays the outside world. Everything asserted is observed from the client (through the
balancer, over HTTPS verified against the CA root the deploy fetched), or read on the hosts.
Measurements (the failover window, the rolling deploys' request counts, one versus two API hosts'
throughput) go into logs/cluster-summary.json, which the module's teardown prints and keeps.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.cluster import CLIENT_ADDR, Cluster, address
from tests.deploy.testhost import CACHE, PlaybookRun, log, next_version, project_version

pytestmark = pytest.mark.timeout(3600)
LB = f"https://{address('lb')}"
API_HOSTS = ("api-1", "api-2")


@dataclass
class Deployed:
    cluster: Cluster
    first: PlaybookRun
    admin_key: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    if os.geteuid() != 0:
        pytest.fail("the deploy test needs root (network namespaces, debootstrap, systemd-nspawn)")
    run_dir = CACHE / f"cluster-{os.getpid()}"
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.monotonic()
    with Cluster(run_dir=run_dir) as cluster:
        first = cluster.make("deploy", logname="converge-1")
        # One converge, to keep CI within its budget: a second converge changing nothing is checked
        # on the single host (test_converge.py); the balancer and data roles' second run changed
        # nothing when this test ran it (2026-11-30) and `make deploy-check` shows it on demand.
        state = Deployed(cluster, first)
        if first.returncode == 0:
            state.admin_key = cluster.ssh("api-1", "cat /etc/memory-service/secrets/bootstrap_admin_key").stdout.strip()
        state.summary.update(
            converge_1_seconds=round(first.seconds, 1),
            converge_1_changed=first.changed,
        )
        yield state
    state.summary["module_seconds"] = round(time.monotonic() - started, 1)
    (run_dir / "logs/cluster-summary.json").write_text(json.dumps(state.summary, indent=2) + "\n")
    log(f"cluster summary: {json.dumps(state.summary)}")
    last = CACHE / "last-cluster-logs"
    shutil.rmtree(last, ignore_errors=True)
    shutil.copytree(run_dir / "logs", last)
    shutil.rmtree(run_dir, ignore_errors=True)
    signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _tail(run: PlaybookRun, lines: int = 80) -> str:
    return "\n".join(run.output.splitlines()[-lines:])


def _client(deployed: Deployed, *args: str, timeout: float = 600) -> dict[str, Any]:
    proc = deployed.cluster.client_python(list(args), timeout=timeout)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _new_key(deployed: Deployed, rate_limit: int | None = None) -> str:
    args = ["create-key", "--url", LB, "--admin-key", deployed.admin_key, "--tenant", f"t{time.monotonic_ns()}"]
    if rate_limit is not None:
        args += ["--rate-limit", str(rate_limit)]
    return str(_client(deployed, *args)["key"])


def _access_log(deployed: Deployed, host: str, since: float) -> list[dict[str, Any]]:
    """The service's access-log entries on `host` since the epoch second `since`."""
    out = deployed.cluster.ssh(host, f"journalctl -u memory-service -o cat --since @{int(since)}").stdout
    entries = []
    for line in out.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == "request":
                entries.append(entry)
    return entries


def _installed_version(deployed: Deployed, host: str) -> str:
    return deployed.cluster.ssh(
        host,
        "/opt/memory-service/venv/bin/python -c 'import importlib.metadata as m; print(m.version(\"memory-service\"))'",
    ).stdout.strip()


def test_converge_succeeds_on_every_host(deployed: Deployed) -> None:
    assert deployed.first.returncode == 0, _tail(deployed.first)
    assert deployed.first.failed == 0
    assert deployed.first.unreachable == 0


def test_https_verified_by_the_fetched_ca_and_nothing_else_is_open(deployed: Deployed) -> None:
    cluster = deployed.cluster
    status, body = cluster.client_get(f"{LB}/health", cafile=cluster.ca_file)
    assert status == 200, body
    assert json.loads(body)["data"]["dependencies"]["postgres"]["up"] is True
    status, location = cluster.client_get(f"http://{address('lb')}/health", follow_redirects=False)
    assert (status, location.strip()) == (301, f"{LB}/health")
    # From outside: the API hosts' plain HTTP, Postgres and Redis are closed.
    for host, port in (("api-1", 8080), ("api-2", 8080), ("lb", 8080), ("data", 5432), ("data", 6379)):
        assert not cluster.client_tcp_open(address(host), port), f"{host}:{port} is reachable from outside"
    assert cluster.client_tcp_open(address("lb"), 443)
    # The data ports are open to the API hosts only.
    probe = "python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(3); sys.exit(s.connect_ex((\"{}\", {})))'"
    assert cluster.ssh("api-2", probe.format(address("data"), 5432), check=False).returncode == 0
    assert cluster.ssh("lb", probe.format(address("data"), 5432), check=False).returncode != 0
    assert cluster.ssh("lb", probe.format(address("api-1"), 8080), check=False).returncode == 0


def test_one_key_gets_exactly_twenty_of_thirty_concurrent_requests_across_both_hosts(deployed: Deployed) -> None:
    key = _new_key(deployed)
    since = time.time() - 1
    statuses = _client(deployed, "burst", "--url", LB, "--key", key, "--count", "30")["statuses"]
    assert sorted(statuses) == [200] * 20 + [429] * 10
    served = {
        host: [e for e in _access_log(deployed, host, since) if e.get("route") == "/status"] for host in API_HOSTS
    }
    deployed.summary["burst_served_per_host"] = {host: len(entries) for host, entries in served.items()}
    assert all(served.values()), f"one API host served none of the burst: {deployed.summary['burst_served_per_host']}"
    # Both hosts saw the client's own address (X-Forwarded-For from the balancer, which they trust).
    assert {e.get("client") for entries in served.values() for e in entries} == {CLIENT_ADDR}


def _caddy_noticed(deployed: Deployed, upstream: str, since: float) -> float | None:
    """When the balancer's active health check first failed on `upstream` after `since`."""
    out = deployed.cluster.ssh("lb", f"journalctl -u caddy -o cat --since @{int(since)}").stdout
    for line in out.splitlines():
        if line.startswith("{") and "health_checker" in line and upstream in line:
            entry = json.loads(line)
            if entry["ts"] >= since:
                return float(entry["ts"])
    return None


def test_a_stopped_api_host_costs_no_request_once_the_health_check_noticed(deployed: Deployed) -> None:
    cluster = deployed.cluster
    key = _new_key(deployed, rate_limit=1_000_000)
    load = cluster.client_popen(
        [sys.executable, "-m", "tests.deploy.client", "steady", "--url", LB, "--key", key, "--seconds", "25",
         "--threads", "4"],
        cluster.logdir / "failover-load.json",
    )  # fmt: skip
    time.sleep(8)
    stopped_at = time.time()
    cluster.ssh("api-2", "systemctl stop memory-service")
    stop_returned = time.time()
    assert load.wait(120) == 0
    requests = json.loads((cluster.logdir / "failover-load.json").read_text().strip().splitlines()[-1])["requests"]
    noticed = _caddy_noticed(deployed, f"{address('api-2')}:8080", stopped_at)
    cluster.ssh("api-2", "systemctl start memory-service")
    failures = [(t, s) for t, s in requests if s != 200]
    deployed.summary["failover"] = {
        "requests": len(requests),
        "failures": len(failures),
        "stop_seconds": round(stop_returned - stopped_at, 2),
        "noticed_after_seconds": None if noticed is None else round(noticed - stopped_at, 2),
        "failures_after_noticed": len([t for t, _ in failures if noticed is not None and t > noticed]),
    }
    assert noticed is not None, "the balancer's health check never noticed the stopped host"
    assert len([t for t, _ in requests if t > noticed]) > 20, "too little load after the host went away"
    assert deployed.summary["failover"]["failures_after_noticed"] == 0, deployed.summary["failover"]
    _wait_healthy(deployed, "api-2")


def _wait_healthy(deployed: Deployed, host: str, timeout: float = 120) -> None:
    check = "python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=3)\""
    deadline = time.monotonic() + timeout
    while deployed.cluster.ssh(host, check, check=False).returncode != 0:
        assert time.monotonic() < deadline, f"{host} did not come back"
        time.sleep(2)
    time.sleep(5)  # the balancer's next health checks take it back


@dataclass
class LocustRun:
    requests: int
    failures: int
    failure_rows: list[dict[str, str]]


def _under_locust_load(deployed: Deployed, name: str, action: Any) -> tuple[Any, LocustRun]:
    """Run `action()` while Locust's MemoryUser workload runs through the balancer."""
    cluster = deployed.cluster
    reports = cluster.logdir / f"locust-{name}"
    reports.mkdir(exist_ok=True)
    locust = Path(sys.executable).parent / "locust"
    env_args = [
        "env", f"LOADTEST_ADMIN_KEY={deployed.admin_key}", "LOADTEST_TENANTS=2", "LOADTEST_USERS_PER_TENANT=2",
        "LOADTEST_MEMORIES_PER_USER=3", "LOADTEST_USER_RPS=2", "LOADTEST_KEY_RATE_LIMIT=100000",
        f"LOADTEST_REPORTS_DIR={reports}",
    ]  # fmt: skip
    proc = cluster.client_popen(
        [*env_args, str(locust), "-f", "loadtests/locustfile.py", "--headless", "-u", "6", "-r", "6",
         "--run-time", "900s", "--csv", str(reports / "locust"), "--only-summary", "--host", LB, "MemoryUser"],
        reports / "locust.log",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not (reports / "locust_stats.csv").exists() or _locust_totals(reports)[0] < 30:
            assert proc.poll() is None, (reports / "locust.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "Locust did not get going"
            time.sleep(2)
        result = action()
        time.sleep(5)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
    requests, failures = _locust_totals(reports)
    rows = (
        list(csv.DictReader((reports / "locust_failures.csv").open()))
        if (reports / "locust_failures.csv").exists()
        else []
    )
    return result, LocustRun(requests, failures, rows)


def _locust_totals(reports: Path) -> tuple[int, int]:
    with (reports / "locust_stats.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                return int(row["Request Count"]), int(row["Failure Count"])
    return 0, 0


def test_rolling_upgrade_and_rollback_under_load_fail_no_request(deployed: Deployed) -> None:
    cluster = deployed.cluster
    current = project_version(cluster.source)
    upcoming = next_version(current)

    upgrade, during_upgrade = _under_locust_load(
        deployed,
        "upgrade",
        lambda: cluster.make("deploy", f"ANSIBLE_ARGS=-e stack_version={upcoming}", logname="upgrade"),
    )
    deployed.summary["rolling_upgrade"] = {
        "seconds": round(upgrade.seconds, 1),
        "requests": during_upgrade.requests,
        "failures": during_upgrade.failures,
    }
    assert upgrade.returncode == 0, _tail(upgrade)
    assert [_installed_version(deployed, h) for h in API_HOSTS] == [upcoming, upcoming]
    assert during_upgrade.failures == 0, during_upgrade.failure_rows
    assert during_upgrade.requests > 50

    rollback, during_rollback = _under_locust_load(
        deployed, "rollback", lambda: cluster.make("rollback", logname="rollback")
    )
    deployed.summary["rolling_rollback"] = {
        "seconds": round(rollback.seconds, 1),
        "requests": during_rollback.requests,
        "failures": during_rollback.failures,
    }
    assert rollback.returncode == 0, _tail(rollback)
    assert [_installed_version(deployed, h) for h in API_HOSTS] == [current, current]
    for host in API_HOSTS:
        # Each release has its own venv; the link and the release files point at the current one.
        files = cluster.ssh(host, "cat /opt/memory-service/RELEASE /opt/memory-service/PREVIOUS_RELEASE").stdout
        assert files.split() == [current, upcoming]
        link = cluster.ssh(host, "readlink /opt/memory-service/venv").stdout.strip()
        assert link == f"/opt/memory-service/releases/{current}"
    assert during_rollback.failures == 0, during_rollback.failure_rows
    assert during_rollback.requests > 50
    # The hosts were restarted one after the other, each after the previous one was healthy again.
    order = [line for line in rollback.output.splitlines() if line.startswith("RUNNING HANDLER [stack : Restart")]
    assert len(order) == 2


def test_a_failed_health_check_stops_the_rollout_and_keeps_the_rest_serving(deployed: Deployed) -> None:
    """A release that cannot start (here: a configuration the service refuses) fails its health
    check on the first API host; the second is never touched and the balancer keeps serving."""
    cluster = deployed.cluster
    extra = cluster.run_dir / "broken-release.yml"
    extra.write_text("stack_api_env_extra: {EMBEDDER: ollama}\n")
    broken = cluster.make(
        "deploy", f"ANSIBLE_ARGS=-e @{extra}", logname="broken-rollout", env={"DEPLOY_TEST_HEALTH_RETRIES": "5"}
    )
    assert broken.returncode != 0
    assert "api-2" not in {line.split()[0] for line in broken.output.splitlines() if line.startswith("changed: [")}
    assert "EMBEDDER=ollama" in cluster.ssh("api-1", "cat /etc/memory-service/memory-service.env").stdout
    assert "EMBEDDER=ollama" not in cluster.ssh("api-2", "cat /etc/memory-service/memory-service.env").stdout
    for _ in range(5):
        status, body = cluster.client_get(f"{LB}/health", cafile=cluster.ca_file)
        assert status == 200, body
    healed = cluster.make("deploy", logname="healed")
    assert healed.returncode == 0, _tail(healed)
    _wait_healthy(deployed, "api-1")


def test_throughput_of_one_and_two_api_hosts_is_recorded(deployed: Deployed) -> None:
    """Searches through the balancer with both API hosts, then with api-2 drained (DRAIN_FILE):
    the ratio goes into the summary (docs/capacity.md); the test checks that each phase ran
    without failures and that the drained host really got nothing."""
    cluster = deployed.cluster
    key = _new_key(deployed, rate_limit=1_000_000)
    _client(deployed, "seed", "--url", LB, "--key", key, "--user", "bench", "--count", "50")
    path = "/v1/memories/search?query=topic%203&user_id=bench&limit=10"
    phases: dict[str, dict[str, Any]] = {}
    for phase in ("two_hosts", "one_host"):
        if phase == "one_host":
            cluster.ssh("api-2", "touch /var/lib/memory-service/DRAIN")
            time.sleep(6)
        since = time.time()
        requests = _client(deployed, "steady", "--url", LB, "--key", key, "--seconds", "20", "--threads", "8",
                           "--path", path)["requests"]  # fmt: skip
        served = {h: len([e for e in _access_log(deployed, h, since) if e.get("route") == "/v1/memories/search"])
                  for h in API_HOSTS}  # fmt: skip
        phases[phase] = {
            "requests": len(requests),
            "failures": len([s for _, s in requests if s != 200]),
            "rps": round(len(requests) / 20, 1),
            "served_per_host": served,
        }
    cluster.ssh("api-2", "rm -f /var/lib/memory-service/DRAIN")
    phases["ratio_two_to_one"] = round(phases["two_hosts"]["rps"] / max(phases["one_host"]["rps"], 0.1), 2)
    deployed.summary["throughput"] = phases
    assert phases["two_hosts"]["failures"] == 0
    assert phases["one_host"]["failures"] == 0
    assert all(phases["two_hosts"]["served_per_host"].values())
    # Requests sent before the balancer saw the drain are served by api-2 (that is the point of draining).
    assert phases["one_host"]["served_per_host"]["api-2"] == 0

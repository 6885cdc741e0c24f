"""`make deploy` converges a throwaway Debian bookworm host, twice, and leaves a working service.

The host (tests/deploy/testhost.py) has no internet and no registry, so the inventory runs the
stack natively (see tests/deploy/inventory/group_vars). Everything asserted here is what the
playbook and the service did, observed from the controller's network namespace or on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.deploy.testhost import CACHE, HOST_ADDR, PlaybookRun, ThrowawayHost, log

pytestmark = pytest.mark.timeout(3600)


@dataclass
class Deployment:
    host: ThrowawayHost
    check_before: PlaybookRun
    first: PlaybookRun
    second: PlaybookRun


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    if os.geteuid() != 0:
        pytest.fail("the deploy test needs root (network namespaces, debootstrap, systemd-nspawn)")
    run_dir = CACHE / f"run-{os.getpid()}"
    # A CI time-out sends SIGTERM: turn it into an exception so the host is still torn down.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with ThrowawayHost(run_dir=run_dir) as host:
        check_before = host.make("deploy-check", logname="deploy-check-fresh")
        first = host.make("deploy", logname="converge-1")
        second = host.make("deploy", logname="converge-2") if first.returncode == 0 else first
        yield Deployment(host=host, check_before=check_before, first=first, second=second)
    summary = {
        "converge_1_seconds": round(first.seconds, 1),
        "converge_1_changed": first.changed,
        "converge_2_seconds": round(second.seconds, 1),
        "converge_2_changed": second.changed,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (run_dir / "logs/summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"summary: {summary}")
    # Keep the logs of the last run for inspection; the rootfs copy is already gone.
    last = CACHE / "last-run-logs"
    shutil.rmtree(last, ignore_errors=True)
    shutil.copytree(run_dir / "logs", last)
    shutil.rmtree(run_dir, ignore_errors=True)
    signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _tail(run: PlaybookRun, lines: int = 80) -> str:
    return "\n".join(run.output.splitlines()[-lines:])


def test_check_mode_on_a_fresh_host_stops_with_a_clear_message(deployment: Deployment) -> None:
    run = deployment.check_before
    assert run.returncode != 0
    assert run.changed == 0
    assert "was never deployed: check mode cannot preview a first deploy" in run.output


def test_first_converge_succeeds(deployment: Deployment) -> None:
    run = deployment.first
    assert run.returncode == 0, _tail(run)
    assert run.failed == 0
    assert run.unreachable == 0
    assert run.changed > 0


def test_second_converge_changes_nothing(deployment: Deployment) -> None:
    run = deployment.second
    assert run.returncode == 0, _tail(run)
    assert run.changed == 0, f"changed on the second run: {run.changed_tasks}"


def _https(host: ThrowawayHost, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """Through Caddy, verified against the CA root `make deploy` fetched (and nothing else)."""
    return host.http_get(f"https://{HOST_ADDR}{path}", headers=headers, cafile=host.ca_file())


def test_health_answers_over_https_verified_by_the_fetched_ca(deployment: Deployment) -> None:
    ca = deployment.host.ca_file()
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    status, body = _https(deployment.host, "/health")
    assert status == 200, body
    envelope = json.loads(body)
    assert envelope["success"] is True
    assert envelope["data"]["status"] == "ok"
    assert envelope["data"]["dependencies"]["postgres"]["up"] is True
    assert envelope["data"]["dependencies"]["redis"]["up"] is True


def test_check_mode_reports_no_change(deployment: Deployment) -> None:
    run = deployment.host.make("deploy-check", logname="deploy-check")
    assert run.returncode == 0, _tail(run)
    assert run.changed == 0, f"check mode would change: {run.changed_tasks}"


def _metrics(host: ThrowawayHost, secret: str | None) -> tuple[int, str]:
    headers = {}
    if secret is not None:
        key = host.ssh(f"cat /etc/memory-service/secrets/{secret}").stdout.strip()
        headers["Authorization"] = f"Bearer {key}"
    return _https(host, "/v1/metrics", headers=headers)


def test_bootstrap_admin_key_opens_the_admin_metrics(deployment: Deployment) -> None:
    """The key the playbook created with the CLI authenticates as admin, as does the API_KEY that
    Prometheus scrapes with; no key is refused."""
    for secret in ("bootstrap_admin_key", "api_key"):
        status, body = _metrics(deployment.host, secret)
        assert status == 200, (secret, body[:300])
    status, _ = _metrics(deployment.host, None)
    assert status == 401


def test_metrics_under_gunicorn_carry_the_contract_families(deployment: Deployment) -> None:
    """What Prometheus scrapes (with the API key its credentials file holds) from several workers."""
    _https(deployment.host, "/health")
    _, body = _metrics(deployment.host, "api_key")
    assert "memory_http_requests_total" in body
    assert "memory_build_info" in body


def test_only_ssh_and_https_are_reachable(deployment: Deployment) -> None:
    host = deployment.host
    assert host.tcp_open(22)
    assert host.tcp_open(443)
    assert host.tcp_open(80)
    # The API's plain HTTP listens on loopback only (Caddy's upstream); Redis likewise.
    assert not host.tcp_open(8080)
    local = host.ssh(
        "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/health').status)\""
    )
    assert local.stdout.strip() == "200"
    assert host.ssh("redis-cli ping").stdout.strip() == "PONG"
    assert not host.tcp_open(6379)
    status = host.ssh("ufw status verbose").stdout
    assert "Status: active" in status
    assert "Default: deny (incoming)" in status
    allowed = {line.split()[0] for line in status.splitlines() if " ALLOW IN " in line}
    assert allowed == {"22/tcp", "80/tcp", "443/tcp"}


def test_http_redirects_to_https_with_hsts_and_old_tls_refused(deployment: Deployment) -> None:
    host = deployment.host
    status, location = host.http_get(f"http://{HOST_ADDR}/health", follow_redirects=False)
    assert status == 301
    assert location.strip() == f"https://{HOST_ADDR}/health"
    # Any other CA (the system's) does not verify the internal one: TLS is really checked.
    status, error = host.http_get(f"https://{HOST_ADDR}/health")
    assert status == 0
    assert "CERTIFICATE_VERIFY_FAILED" in error
    headers = host.ssh(
        f"python3 - <<'EOF'\nimport ssl, urllib.request\n"
        f"ctx = ssl.create_default_context(cafile='/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt')\n"
        f"print(dict(urllib.request.urlopen('https://{HOST_ADDR}/health', context=ctx).headers))\n"
        # A client willing to speak TLS 1.1 (security level 0 lifts OpenSSL's own floor): the server
        # must be the one saying no, with a protocol-version alert.
        f"ctx.set_ciphers('DEFAULT@SECLEVEL=0')\n"
        f"ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1\n"
        f"try:\n    urllib.request.urlopen('https://{HOST_ADDR}/health', context=ctx); print('TLS1.1 accepted')\n"
        f"except Exception as exc:\n    print('TLS1.1 refused:', exc)\nEOF"
    ).stdout
    assert "max-age=31536000" in headers
    assert "TLS1.1 refused" in headers
    assert "ALERT_PROTOCOL_VERSION" in headers


def test_sshd_is_hardened(deployment: Deployment) -> None:
    effective = dict(line.split(" ", 1) for line in deployment.host.ssh("sshd -T").stdout.splitlines() if " " in line)
    assert effective["passwordauthentication"] == "no"
    assert effective["permitrootlogin"] == "without-password"
    assert effective["x11forwarding"] == "no"
    assert effective["maxauthtries"] == "3"


def test_admin_user_has_key_login_and_sudo(deployment: Deployment) -> None:
    host = deployment.host
    out = host.ssh("id ops; sudo -l -U ops").stdout
    assert "(sudo)" in out
    assert "NOPASSWD: ALL" in out


def test_secrets_are_root_only(deployment: Deployment) -> None:
    listing = deployment.host.ssh(
        "stat -c '%n %a %U %G' /etc/memory-service/secrets /etc/memory-service/secrets/* "
        "/etc/memory-service/memory-service.env"
    ).stdout.splitlines()
    modes = {line.split()[0]: line.split()[1:] for line in listing}
    assert modes.pop("/etc/memory-service/secrets") == ["700", "root", "root"]
    assert modes.pop("/etc/memory-service/memory-service.env") == ["640", "root", "memory"]
    assert set(modes) == {
        f"/etc/memory-service/secrets/{name}"
        for name in (
            "api_key",
            "postgres_password",
            "neo4j_password",
            "grafana_admin_password",
            "redis_password",
            "bootstrap_admin_key",
        )
    }
    assert all(mode == ["600", "root", "root"] for mode in modes.values()), modes


def test_services_and_timers_are_enabled(deployment: Deployment) -> None:
    out = deployment.host.ssh(
        "systemctl is-enabled memory-service redis-server docker ufw memory-service-backup.timer "
        "unattended-upgrades apt-daily-upgrade.timer systemd-timesyncd caddy; "
        "systemctl is-active memory-service redis-server docker memory-service-backup.timer caddy",
        check=False,
    ).stdout.split()
    assert out == ["enabled"] * 9 + ["active"] * 5, out


def test_monitoring_configuration_is_in_place(deployment: Deployment) -> None:
    out = deployment.host.ssh(
        "cd /opt/memory-service && ls monitoring/prometheus/prometheus.yml monitoring/alertmanager/alertmanager.yml "
        "monitoring/prometheus/rules/*.yml && stat -c '%a %U %G' secrets/memory_admin_key && "
        "cmp -s secrets/memory_admin_key /etc/memory-service/secrets/api_key && echo same-key"
    ).stdout
    assert "monitoring/prometheus/prometheus.yml" in out
    assert "440 root nogroup" in out
    assert "same-key" in out


def test_backup_then_restore_brings_back_the_backed_up_state(deployment: Deployment) -> None:
    """`make backup`, a change after it, `make restore`: the change is gone, the service is up."""
    host = deployment.host
    backup = host.make("backup", logname="backup")
    assert backup.returncode == 0, _tail(backup)
    listing = host.ssh("ls /var/backups/memory-service/latest/").stdout.split()
    assert "postgres.dump" in listing
    assert "SHA256SUMS" in listing

    host.ssh("memory-service-admin keys create --tenant default --role user --name after-backup --json")
    assert "after-backup" in _key_names(host)

    restore = host.make("restore", "BACKUP=latest", logname="restore")
    assert restore.returncode == 0, _tail(restore)
    names = _key_names(host)
    assert "after-backup" not in names
    assert "bootstrap" in names
    status, _ = _https(host, "/health")
    assert status == 200


def test_nightly_backup_timer_is_scheduled(deployment: Deployment) -> None:
    out = deployment.host.ssh("systemctl show memory-service-backup.timer -p TimersCalendar").stdout
    assert "02:30:00" in out


def _key_names(host: ThrowawayHost) -> list[str]:
    out = host.ssh("memory-service-admin keys list --tenant default --json").stdout.strip().splitlines()[-1]
    return [key["name"] for key in json.loads(out)]

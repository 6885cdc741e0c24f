"""The compose runtime's files, rendered by the roles on the controller (tests/deploy/render.yml).

The test host cannot run the compose stack (no registry), so this is where the env files, the
compose variables, the monitoring configuration (checked by promtool/amtool from Debian's
prometheus and prometheus-alertmanager, which .ci/run installs) and the compose file meet: `docker compose config`
resolves the project exactly as it would on a server, and the test reads what it resolved.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.fail("the roles set root ownership: run as root (make test-deploy)")
    missing = [tool for tool in ("promtool", "amtool") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed (Debian prometheus and prometheus-alertmanager)")
    out = tmp_path_factory.mktemp("render")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ops/ansible/ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "RENDER_DIR": str(out),
        "RENDER_COMPOSE_COMMAND": str(BIN / "docker-compose"),
        "RENDER_VALIDATE_WITH": "local",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }
    for attempt in ("first", "second"):
        proc = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", "localhost,", str(REPO / "tests/deploy/render.yml")],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        if attempt == "second":
            recap = proc.stdout[proc.stdout.rindex("PLAY RECAP") :]
            assert "changed=0" in recap, proc.stdout[-6000:]
    return out


@pytest.fixture(scope="module")
def resolved(rendered: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [str(BIN / "docker-compose"), "config", "--format", "json"],
        cwd=rendered / "project",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    config: dict[str, Any] = json.loads(proc.stdout)
    return config


def _secret(rendered: Path, name: str) -> str:
    return (rendered / "secrets" / name).read_text().strip()


def test_api_gets_its_secrets_and_settings_from_the_env_file(rendered: Path, resolved: dict[str, Any]) -> None:
    env = resolved["services"]["api"]["environment"]
    assert env["API_KEY"] == _secret(rendered, "api_key")
    assert len(env["API_KEY"]) >= 32
    assert env["DATABASE_URL"] == f"postgresql://postgres:{_secret(rendered, 'postgres_password')}@db:5432/postgres"
    assert env["NEO4J_PASSWORD"] == _secret(rendered, "neo4j_password")
    assert env["APP_ENV"] == "production"
    assert env["OLLAMA_LLM_MODEL"] == "memory-llm"
    assert env["CORS_ORIGINS"] == "https://app.example"
    assert resolved["services"]["api"]["image"] == "registry.example/memory-service:1.0.0"


def test_backing_services_get_the_same_secrets(rendered: Path, resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert services["db"]["environment"]["POSTGRES_PASSWORD"] == _secret(rendered, "postgres_password")
    assert services["neo4j"]["environment"]["NEO4J_AUTH"] == f"neo4j/{_secret(rendered, 'neo4j_password')}"
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == _secret(
        rendered, "grafana_admin_password"
    )
    assert _secret(rendered, "postgres_password") in services["postgres-exporter"]["environment"]["DATA_SOURCE_NAME"]


def test_secret_files_are_root_only(rendered: Path) -> None:
    project = rendered / "project"
    for path in [*(project / "env").iterdir(), *(rendered / "secrets").iterdir()]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600, (path, oct(mode))
    assert stat.S_IMODE((project / "env").stat().st_mode) == 0o700
    # The compose variables file is not secret and holds none.
    compose_vars = (project / ".env").read_text()
    for name in ("api_key", "postgres_password", "neo4j_password", "grafana_admin_password"):
        assert _secret(rendered, name) not in compose_vars


def test_prometheus_credentials_file_holds_the_api_key(rendered: Path) -> None:
    key_file = rendered / "project/secrets/memory_admin_key"
    assert key_file.read_text() == _secret(rendered, "api_key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o440
    assert key_file.stat().st_gid == 65534


def test_alertmanager_routes_to_the_webhook(rendered: Path) -> None:
    config = yaml.safe_load((rendered / "project/monitoring/alertmanager/alertmanager.yml").read_text())
    urls = {c["url"] for r in config["receivers"] for c in r.get("webhook_configs", [])}
    assert urls == {"https://hooks.example/alerts"}
    assert {r["receiver"] for r in config["route"]["routes"]} == {"webhook-critical", "webhook-warning"}


def test_monitoring_configuration_passed_promtool_and_amtool(rendered: Path) -> None:
    """The role's validate: ran them; check the rendered files once more as Prometheus sees them."""
    monitoring = rendered / "project/monitoring"
    for args in (
        ["promtool", "check", "config", "--syntax-only", str(monitoring / "prometheus/prometheus.yml")],
        ["promtool", "check", "rules", *map(str, sorted((monitoring / "prometheus/rules").glob("*.yml")))],
        ["amtool", "check-config", str(monitoring / "alertmanager/alertmanager.yml")],
    ):
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_admin_command_runs_the_cli_in_the_api_container(rendered: Path) -> None:
    script = (rendered / "bin/memory-service-admin").read_text()
    assert f"-f {rendered}/project/docker-compose.yml exec -T api memory-service" in script


def test_compose_backup_dumps_postgres_and_neo4j(rendered: Path) -> None:
    """The compose branch of the backup script (the test host runs the native one)."""
    backup = (rendered / "bin/memory-service-backup").read_text()
    assert "exec -T db pg_dump -U postgres -d postgres -Fc" in backup
    assert "--schema=public" in backup
    assert "database dump neo4j --to-path=/backups" in backup
    dump = backup.index("database dump neo4j --to-path")
    assert backup.index("stop neo4j") < dump < backup.rindex("start neo4j")
    restore = (rendered / "bin/memory-service-restore").read_text()
    assert "pg_restore -U postgres -d postgres --clean --if-exists" in restore
    assert "database load neo4j --from-path=/backups --overwrite-destination=true" in restore
    assert restore.index("stop api") < restore.index("pg_restore")


def test_caddy_fronts_the_api_and_grafana_over_https_only(rendered: Path, resolved: dict[str, Any]) -> None:
    """The Caddyfile the proxy role rendered (checked by `caddy adapt` in its validate:) is what
    the caddy service mounts, and the API's own port stays on loopback."""
    caddyfile = (rendered / "project/caddy/Caddyfile").read_text()
    assert "http://203.0.113.10:80 {\n\tredir https://{host}{uri} permanent" in caddyfile
    assert "https://203.0.113.10:443 {" in caddyfile
    assert "tls internal {\n\t\tprotocols tls1.2 tls1.3" in caddyfile
    assert 'Strict-Transport-Security "max-age=31536000; includeSubDomains"' in caddyfile
    assert "reverse_proxy api:8080 {" in caddyfile
    assert "health_uri /health" in caddyfile
    assert "https://203.0.113.10:3000 {" in caddyfile
    assert "reverse_proxy grafana:3000" in caddyfile
    caddy = resolved["services"]["caddy"]
    assert {v["target"] for v in caddy["volumes"]} >= {"/etc/caddy", "/data"}
    assert {p["published"] for p in resolved["services"]["api"]["ports"]} == {"8080"}
    assert {p["host_ip"] for p in resolved["services"]["api"]["ports"]} == {"127.0.0.1"}
    assert "ports" not in resolved["services"]["grafana"]

"""Static checks of the deployment bundle: Ansible, compose file, Dockerfile, Makefile targets."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from memory_service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ANSIBLE = REPO / "ops/ansible"
ROLES = sorted(p for p in (ANSIBLE / "roles").iterdir() if p.is_dir())
PLAYBOOKS = ["site.yml", "backup.yml", "restore.yml", "rollback.yml"]
INVENTORIES = [
    ANSIBLE / "inventory/example/hosts.yml",
    REPO / "tests/deploy/inventory/hosts.yml",
    REPO / "tests/deploy/inventory-cluster/hosts.yml",
]

# Services whose ports must never be published (databases, caches, model server, exporters).
INTERNAL_SERVICES = {"db", "neo4j", "redis", "ollama", "prometheus", "alertmanager"}
# Caddy is the front door (HTTPS for the API and Grafana); the API's plain port is on loopback only.
PUBLISHED = {"caddy": {80, 443, 3000}, "api": {8080}}


def _ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "DEPLOY_TEST_SSH_KEY": "/dev/null",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }


def _run(args: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_ansible_lint_production_profile() -> None:
    proc = _run(
        [str(BIN / "ansible-lint"), "--profile", "production", "ops/ansible", "tests/deploy/render.yml"],
        env={**_ansible_env(), "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles")},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("inventory", INVENTORIES, ids=lambda p: p.parent.name)
@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook: str, inventory: Path) -> None:
    proc = _run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(inventory), str(ANSIBLE / playbook)],
        env=_ansible_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_variables_are_prefixed_and_specified(role: Path) -> None:
    """Every default is role-prefixed and described in meta/argument_specs.yml."""
    defaults = _yaml(role / "defaults/main.yml") or {}
    specs = _yaml(role / "meta/argument_specs.yml")["argument_specs"]
    specified = set(specs["main"]["options"])
    prefix = f"{role.name}_"
    assert all(name.startswith(prefix) for name in defaults), [n for n in defaults if not n.startswith(prefix)]
    assert set(defaults) <= specified, sorted(set(defaults) - specified)
    for name, option in specs["main"]["options"].items():
        assert name.startswith(prefix), name
        assert option.get("description"), f"{name} has no description"


def test_config_templates_are_validated() -> None:
    """Every template/copy task writing a config file (not a directory) carries validate:."""
    unvalidated = []
    for tasks in ANSIBLE.glob("roles/*/tasks/*.yml"):
        for task in _yaml(tasks) or []:
            for module in ("ansible.builtin.template", "ansible.builtin.copy"):
                args = task.get(module)
                if not isinstance(args, dict):
                    continue
                dest = str(args.get("dest", ""))
                exempt = (
                    dest.endswith("/")  # directory trees (dashboards, provisioning)
                    or "secrets" in dest  # secret values (no format)
                    or "RELEASE" in dest  # a version string
                    or "Modelfile" in dest  # checked by `ollama create` itself
                )
                if "validate" not in args and not exempt:
                    unvalidated.append(f"{tasks.relative_to(REPO)}: {task['name']}")
    assert not unvalidated, unvalidated


@pytest.fixture(scope="module")
def compose_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docker-compose.prod.yml beside placeholder env files, as the stack role lays it out."""
    project = tmp_path_factory.mktemp("compose")
    shutil.copy2(REPO / "docker-compose.prod.yml", project / "docker-compose.yml")
    (project / "env").mkdir()
    for name in ("api", "db", "neo4j", "grafana", "postgres-exporter"):
        (project / "env" / f"{name}.env").write_text("PLACEHOLDER=1\n")
    (project / "secrets").mkdir()
    (project / "secrets/memory_admin_key").write_text("placeholder\n")
    (project / ".env").write_text(
        "MEMORY_SERVICE_IMAGE=registry.invalid/memory-service\nMEMORY_SERVICE_VERSION=1.0.0\n"
    )
    return project


@pytest.fixture(scope="module")
def compose_config(compose_project: Path) -> dict[str, Any]:
    proc = _run([str(BIN / "docker-compose"), "config", "--format", "json"], cwd=compose_project)
    assert proc.returncode == 0, proc.stderr
    config: dict[str, Any] = json.loads(proc.stdout)
    return config


def test_compose_file_matches_compose_spec() -> None:
    proc = _run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker-compose.prod.yml"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_publishes_only_caddy_and_the_api_on_loopback(compose_config: dict[str, Any]) -> None:
    published = {
        name: {int(p["published"]) for p in service.get("ports", [])}
        for name, service in compose_config["services"].items()
        if service.get("ports")
    }
    assert published == PUBLISHED
    assert INTERNAL_SERVICES.isdisjoint(published)
    assert {p.get("host_ip") for p in compose_config["services"]["api"]["ports"]} == {"127.0.0.1"}
    # The API believes X-Forwarded-For from Caddy's fixed address only.
    caddy_address = compose_config["services"]["caddy"]["networks"]["edge"]["ipv4_address"]
    assert compose_config["services"]["api"]["environment"]["FORWARDED_ALLOW_IPS"] == caddy_address
    subnet = compose_config["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(caddy_address) in ipaddress.ip_network(subnet)


def test_compose_services_have_healthchecks_and_restart_policies(compose_config: dict[str, Any]) -> None:
    for name, service in compose_config["services"].items():
        assert service.get("restart"), f"{name} has no restart policy"
        if name == "ollama-models":  # one-shot job, run by the ollama_models role
            assert service["profiles"] == ["jobs"]
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_compose_backends_sit_on_the_internal_network(compose_config: dict[str, Any]) -> None:
    assert compose_config["networks"]["backend"].get("internal") is True
    for name in ("db", "neo4j", "redis", "postgres-exporter", "redis-exporter", "node-exporter", "prometheus"):
        assert set(compose_config["services"][name]["networks"]) == {"backend"}, name


def test_compose_api_environment(compose_config: dict[str, Any]) -> None:
    env = compose_config["services"]["api"]["environment"]
    assert env["APP_ENV"] == "production"
    assert env["RATE_LIMIT_STORAGE_URI"] == "redis://redis:6379/0"
    assert env["EMBEDDING_CACHE_REDIS_URL"] == "redis://redis:6379/1"
    Settings(_env_file=None, embedding_cache_redis_url=env["EMBEDDING_CACHE_REDIS_URL"])  # a URL it accepts
    assert env["NEO4J_URI"] == "bolt://neo4j:7687"
    assert env["OLLAMA_BASE_URL"] == "http://ollama:11434"
    assert compose_config["services"]["api"]["command"][:2] == ["serve", "--host"]
    assert "--workers" in compose_config["services"]["api"]["command"]


def test_compose_volumes_are_named(compose_config: dict[str, Any]) -> None:
    for name, service in compose_config["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                # Only configuration rendered by the roles, and node-exporter's read-only host view.
                assert volume.get("read_only") or name == "node-exporter", (name, volume)
            else:
                assert volume["type"] in {"volume", "tmpfs"}, (name, volume)


def test_compose_file_holds_no_secrets() -> None:
    text = (REPO / "docker-compose.prod.yml").read_text()
    assert not re.search(r"(?i)(password|api_key|secret)\s*[:=]\s*['\"]?[A-Za-z0-9]{8,}", text)
    assert "env/api.env" in text
    assert "env/db.env" in text


def test_prometheus_reads_the_credentials_file_the_bundle_mounts(compose_config: dict[str, Any]) -> None:
    """ops/prometheus/prometheus.yml's credentials_file is what the compose secret provides."""
    prometheus = _yaml(REPO / "ops/prometheus/prometheus.yml")
    files = {job["authorization"]["credentials_file"] for job in prometheus["scrape_configs"] if "authorization" in job}
    mounted = {f"/run/secrets/{s['source']}" for s in compose_config["services"]["prometheus"]["secrets"]}
    assert files
    assert files <= mounted
    targets = {
        t.split(":")[0] for job in prometheus["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    assert targets - {"localhost"} <= set(compose_config["services"])


def test_hadolint() -> None:
    proc = _run([str(BIN / "hadolint"), "Dockerfile"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_runs_unprivileged_with_a_healthcheck() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    runtime = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    assert any(line.startswith("USER ") and not line.startswith(("USER root", "USER 0")) for line in runtime)
    assert any(line.startswith("HEALTHCHECK ") for line in runtime)
    assert not any(re.search(r"apt-get install|build-essential|gcc", line) for line in runtime)


def test_make_help_lists_every_deploy_target() -> None:
    targets = re.findall(r"^([a-zA-Z0-9_-]+):.*?## ", (REPO / "mk/deploy.mk").read_text(), re.MULTILINE)
    assert {"deploy", "deploy-check", "rollback", "backup", "restore", "test-deploy"} <= set(targets)
    proc = _run(["make", "--no-print-directory", "help"])
    listed = {line.split()[0] for line in re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout).splitlines() if line.strip()}
    assert set(targets) <= listed


def test_grafana_provisioning_matches_the_compose_mounts(compose_config: dict[str, Any]) -> None:
    """ops/grafana's dashboard provider and data source point where the compose stack puts things."""
    grafana = compose_config["services"]["grafana"]
    targets = {volume["target"] for volume in grafana["volumes"]}
    providers = _yaml(REPO / "ops/grafana/provisioning/dashboards/memory-service.yml")["providers"]
    assert {p["options"]["path"] for p in providers} <= targets
    assert "/etc/grafana/provisioning" in targets
    datasources = _yaml(REPO / "ops/grafana/provisioning/datasources/prometheus.yml")["datasources"]
    host = {ds["url"].split("//")[1].split(":")[0] for ds in datasources}
    assert host <= set(compose_config["services"])
    assert set(grafana["networks"]) >= set(compose_config["services"]["prometheus"]["networks"])

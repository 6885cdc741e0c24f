"""Prometheus, Alertmanager and Grafana provisioning: the wiring between the bundle's parts.

The compose file (docker-compose.prod.yml) and these configurations name each other's paths and
services; a rename on one side alone would leave Prometheus without its key or Grafana without
dashboards, silently. These tests read both sides.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import jinja2
import jinja2.meta
import pytest
import yaml

from tests.support.prometheus import (
    API_JOB,
    GRAFANA_DIR,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    REPO_ROOT,
    RULES_DIR,
    alert_rules,
    amtool_binary,
    duration_seconds,
    load_script,
    load_yaml,
    promtool_binary,
    proof_config,
)

COMPOSE = REPO_ROOT / "docker-compose.prod.yml"
EXPECTED_TARGETS = {
    API_JOB: ["api:8080"],
    "node-exporter": ["node-exporter:9100"],
    "redis-exporter": ["redis-exporter:9121"],
    "postgres-exporter": ["postgres-exporter:9187"],
    "alertmanager": ["alertmanager:9093"],
    "prometheus": ["localhost:9090"],
}
SECRET = "/run/secrets/memory_admin_key"
WEBHOOK = "https://hooks.example.invalid/memory-service"
NOT_CONFIGURED = "http://127.0.0.1:9/webhook-not-configured"


def shipped() -> dict[str, Any]:
    return load_yaml(PROMETHEUS_CONFIG)


def jobs() -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in shipped()["scrape_configs"]}


def compose_service(name: str) -> dict[str, Any]:
    return load_yaml(COMPOSE)["services"][name]


def test_scrape_jobs_and_targets() -> None:
    targets = {name: [t for sc in job["static_configs"] for t in sc["targets"]] for name, job in jobs().items()}
    assert targets == EXPECTED_TARGETS
    alertmanagers = [
        t for am in shipped()["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]
    ]
    assert alertmanagers == ["alertmanager:9093"]


def test_api_scrape_uses_the_admin_key_from_a_file() -> None:
    job = jobs()[API_JOB]
    assert job["metrics_path"] == "/v1/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": SECRET}
    assert "bearer_token" not in job
    assert "basic_auth" not in job


def test_rule_files_glob_finds_the_rules() -> None:
    """rule_files resolve against the config's directory, as Prometheus does."""
    found = {p for pattern in shipped()["rule_files"] for p in PROMETHEUS_DIR.glob(pattern)}
    assert found == set(RULES_DIR.glob("*.yml"))
    assert found


def test_compose_mounts_what_the_configuration_expects() -> None:
    prometheus = compose_service("prometheus")
    assert any(str(v).endswith(":/etc/prometheus:ro") for v in prometheus["volumes"])
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert "memory_admin_key" in prometheus["secrets"]  # compose puts it at /run/secrets/<name>
    grafana = compose_service("grafana")
    provider = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "memory-service.yml")["providers"][0]
    mounts = {str(v).split(":")[1] for v in grafana["volumes"]}
    assert {"/etc/grafana/provisioning", provider["options"]["path"]} <= mounts
    hosts = {t.split(":")[0] for job, targets in EXPECTED_TARGETS.items() if job != "prometheus" for t in targets}
    assert hosts <= set(load_yaml(COMPOSE)["services"]), "every scrape target is a compose service"


def test_proof_configuration_passes_the_full_promtool_check(tmp_path: Path) -> None:
    """Without --syntax-only: the credentials file must exist and every rule file must load."""
    key = tmp_path / "key"
    key.write_text("dummy")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(proof_config("127.0.0.1:9", key)))
    result = subprocess.run([promtool_binary(), "check", "config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules found" in result.stdout


def test_shipped_configuration_passes_the_syntax_check() -> None:
    result = subprocess.run(
        [promtool_binary(), "check", "config", "--syntax-only", str(PROMETHEUS_CONFIG)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_datasource_provisioning() -> None:
    datasources = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert len(datasources) == 1
    (ds,) = datasources
    assert (ds["uid"], ds["type"], ds["url"]) == ("prometheus", "prometheus", "http://prometheus:9090")
    # $__rate_interval is only right when Grafana knows the scrape interval.
    assert duration_seconds(ds["jsonData"]["timeInterval"]) == duration_seconds(shipped()["global"]["scrape_interval"])


# --- Alertmanager -----------------------------------------------------------------------------


def renderer() -> ModuleType:
    return load_script(PROMETHEUS_DIR / "render_alertmanager.py")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([amtool_binary(), *args], capture_output=True, text=True)


@pytest.fixture(params=[WEBHOOK, None], ids=["with-webhook", "without-webhook"])
def rendered(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str | None, Path]:
    path = tmp_path / "alertmanager.yml"
    path.write_text(renderer().render(request.param))
    return request.param, path


def test_alertmanager_configuration_is_valid(rendered: tuple[str | None, Path]) -> None:
    _, path = rendered
    result = amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("severity", ["critical", "warning", "info"])
def test_alertmanager_routes_by_severity(rendered: tuple[str | None, Path], severity: str) -> None:
    webhook, path = rendered
    expected = {"critical": "webhook-critical", "warning": "webhook-warning"}.get(severity, "null")
    if webhook is None:
        expected = "null"
    result = amtool("config", "routes", "test", f"--config.file={path}", f"severity={severity}", "alertname=X")
    assert result.stdout.strip() == expected, result.stdout + result.stderr


def test_webhook_url_comes_only_from_the_placeholder(rendered: tuple[str | None, Path]) -> None:
    webhook, path = rendered
    urls = {c["url"] for r in load_yaml(path)["receivers"] for c in r.get("webhook_configs", [])}
    assert urls == ({webhook} if webhook else {NOT_CONFIGURED})


def test_no_webhook_url_is_committed() -> None:
    """The URL is a secret of the deployment; the template holds only the discard default."""
    template = (PROMETHEUS_DIR / "alertmanager.yml").read_text()
    assert set(re.findall(r"https?://[^\s\"')]+", template)) == {NOT_CONFIGURED}


def test_alertmanager_template_has_no_other_variables(tmp_path: Path) -> None:
    """The Ansible role renders it; any other variable would be undefined on the controller."""
    source = (PROMETHEUS_DIR / "alertmanager.yml").read_text()
    assert jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(source)) == {"monitoring_alert_webhook_url"}
    misspelt = tmp_path / "misspelt.yml"
    misspelt.write_text("url: {{ monitoring_alert_webhok_url }}")
    with pytest.raises(jinja2.UndefinedError):
        renderer().render(WEBHOOK, template=misspelt)


def test_inhibit_rules_name_real_alerts_and_labels() -> None:
    config = yaml.safe_load(renderer().render(WEBHOOK))
    names = {rule["alert"] for rule in alert_rules()}
    api_down = next(r for r in config["inhibit_rules"] if r["source_matchers"] == ['alertname="MemoryApiDown"'])
    (target,) = api_down["target_matchers"]
    inhibited = set(re.fullmatch(r'alertname=~"(.*)"', target).group(1).split("|"))  # type: ignore[union-attr]
    assert inhibited <= names, inhibited - names
    assert "MemoryApiDown" not in inhibited
    api_alerts = {r["alert"] for r in alert_rules() if r["alert"].startswith("Memory")} - {"MemoryApiDown"}
    assert inhibited == api_alerts, "every alert about the API job is inhibited while the API is down"
    assert api_down["equal"] == ["job"]

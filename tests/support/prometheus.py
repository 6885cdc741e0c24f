"""The monitoring bundle as data, and a real Prometheus (Debian's binary) on a free loopback port.

Shared by tests/ops/test_monitoring_*.py (static properties of ops/prometheus and ops/grafana)
and tests/integration/test_monitoring_proof.py (every dashboard and recording-rule query
evaluated against a Prometheus that scraped the real service).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import math
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import yaml

from tests.support.server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "ops" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
GRAFANA_DIR = REPO_ROOT / "ops" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
RUNBOOKS = REPO_ROOT / "docs" / "runbooks.md"
API_JOB = "memory-api"

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def duration_seconds(text: str) -> float:
    """A Prometheus duration ("6h7m", "90s", "0m") in seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _DURATION_SECONDS[u] for n, u in parts)


def jobs_in_config() -> set[str]:
    return {job["job_name"] for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}


# --- rules ------------------------------------------------------------------------------------


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rule_groups() -> list[dict[str, Any]]:
    return [group for path in rule_files() for group in load_yaml(path)["groups"]]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "record" in rule]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


# --- dashboards -------------------------------------------------------------------------------


def load_script(path: Path) -> ModuleType:
    """A script under ops/ as a module (ops/ is not a package)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def grafana_builder() -> ModuleType:
    return load_script(GRAFANA_DIR / "build.py")


def dashboards() -> dict[str, dict[str, Any]]:
    """The committed dashboards by uid."""
    boards = [json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))]
    return {board["uid"]: board for board in boards}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    row: str | None
    panel: str
    ref: str
    expr: str
    instant: bool

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.row or '-'} / {self.panel} [{self.ref}]"


def panel_queries(board: dict[str, Any]) -> Iterator[PanelQuery]:
    """Every Prometheus target of every panel, with the row it sits under (Grafana's layout order)."""
    row: str | None = None
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            row = panel.get("title")
            nested = panel.get("panels", [])
        else:
            nested = [panel]
        for item in nested:
            for target in item.get("targets", []):
                yield PanelQuery(
                    board["uid"], row, item["title"], target["refId"], target["expr"], bool(target.get("instant"))
                )


_SELECTOR = re.compile(r"(?<![:\w])((?:[a-z_]+:)?memory_\w+(?::\w+)?)(\{[^}]*\})?")


def memory_selectors(expr: str) -> list[str]:
    """Every selector of a memory_* series (raw or recorded) in a PromQL expression."""
    return [name + (matchers or "") for name, matchers in _SELECTOR.findall(expr)]


# --- Grafana variables ------------------------------------------------------------------------

_LABEL_VALUES = re.compile(r"^label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>[a-zA-Z_]\w*)\s*\)$")


def label_values_promql(query: str) -> tuple[str, str]:
    """Grafana's `label_values(selector, label)` as PromQL returning one series per value."""
    match = _LABEL_VALUES.match(query.strip())
    if match is None:
        raise ValueError(f"unsupported variable query: {query!r}")
    label = match["label"]
    selector = match["selector"] or f'{{{label}!=""}}'
    return f"group by ({label}) ({selector})", label


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace $name, ${name} and [[name]] by concrete values, longest names first."""
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", values[name]).replace(f"[[{name}]]", values[name])
        expr = re.sub(rf"\${re.escape(name)}(?![A-Za-z0-9_])", lambda _m, n=name: values[n], expr)
    return expr


# --- a real Prometheus ------------------------------------------------------------------------


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if found is None:
        raise RuntimeError("prometheus is not installed (apt-get install prometheus; .ci/run does it)")
    return found


def promtool_binary() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        raise RuntimeError("promtool is not installed (apt-get install prometheus; .ci/run does it)")
    return found


def amtool_binary() -> str:
    found = shutil.which("amtool") or ("/usr/bin/amtool" if Path("/usr/bin/amtool").exists() else None)
    if found is None:
        raise RuntimeError("amtool is not installed (apt-get install prometheus-alertmanager; .ci/run does it)")
    return found


def proof_config(target: str, credentials_file: Path, interval: str = "1s") -> dict[str, Any]:
    """The shipped prometheus.yml narrowed to the API job on `target`, scraping every `interval`.

    Everything else of the job (path, authorization type) is the shipped configuration, so the
    proof scrapes exactly as production does; the rule files are the repository's.
    """
    shipped = load_yaml(PROMETHEUS_CONFIG)
    jobs = [job for job in shipped["scrape_configs"] if job["job_name"] == API_JOB]
    assert len(jobs) == 1, f"{PROMETHEUS_CONFIG} has no single {API_JOB} job"
    job = copy.deepcopy(jobs[0])
    job["static_configs"] = [{"targets": [target]}]
    job["authorization"]["credentials_file"] = str(credentials_file)
    job["scrape_interval"] = interval
    job["scrape_timeout"] = interval
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(RULES_DIR / "*.yml")],
        "scrape_configs": [job],
    }


@dataclass
class PrometheusServer:
    """`prometheus` with a given configuration and a throwaway TSDB, on 127.0.0.1."""

    work_dir: Path
    config: dict[str, Any]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "prometheus.log"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.work_dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.work_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1d",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n{self.logs()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready within {timeout}s:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>; raises on a PromQL error so a broken query never reads as "no data"."""
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30.0)
        body = response.json()
        if body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        return list(self.api("query", **params)["result"])

    def query_range(self, expr: str, start: float, end: float, step: str) -> list[dict[str, Any]]:
        return list(self.api("query_range", query=expr, start=start, end=end, step=step)["result"])


class PromQLError(RuntimeError):
    pass


def has_finite_value(result: list[dict[str, Any]]) -> bool:
    """At least one sample (instant `value` or range `values`) that is a number, not NaN or Inf."""
    for series in result:
        samples = series.get("values") or ([series["value"]] if "value" in series else [])
        for _, value in samples:
            if math.isfinite(float(value)):
                return True
    return False

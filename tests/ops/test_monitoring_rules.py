"""Static properties of ops/prometheus/rules and their promtool unit tests.

The alerts are the operators' contract: each must say how bad it is (severity), what it means
(summary, description), where to look (a runbook entry that exists), and be pinned by a promtool
unit test at its `for` boundary, so a changed threshold, window or `for` cannot slip through.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from typing import Any

import pytest

from tests.support.prometheus import (
    RULE_TESTS_DIR,
    RUNBOOKS,
    alert_rules,
    duration_seconds,
    grafana_builder,
    load_yaml,
    promtool_binary,
    recording_rules,
    rule_files,
    rule_groups,
)

RUNBOOK_BASE = "https://github.com/memory-service/memory-service/blob/main/docs/runbooks.md#"
SEVERITIES = {"critical", "warning"}
RECORD_NAME = re.compile(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")
HIGH_CARDINALITY = re.compile(r"\b(user_id|agent_id|run_id|memory_id|tenant|key_id|request_id|pid)\b")
# Google SRE workbook, multi-window multi-burn-rate: (long window, short window) -> burn factor.
BURN_PAIRS = {("1h", "5m"): 14.4, ("6h", "30m"): 6.0, ("1d", "2h"): 3.0, ("3d", "6h"): 1.0}
SLI_WINDOWS = {"5m", "30m", "1h", "2h", "6h", "1d", "3d"}
BURN_TERM = re.compile(
    r"job:(?P<sli>\w+):ratio_rate(?P<window>\w+) > \((?P<factor>[\d.]+) \* \(1 - (?P<slo>[\d.]+)\)\)"
)


def rule_id(rule: dict[str, Any]) -> str:
    return f"{rule['alert']}[{rule['labels']['severity']}]"


def github_anchor(heading: str) -> str:
    """GitHub's heading slug: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {github_anchor(line.lstrip("#")) for line in RUNBOOKS.read_text().splitlines() if line.startswith("#")}


def test_rule_files_exist() -> None:
    names = {path.name for path in rule_files()}
    assert {"memory-service.rules.yml", "memory-service.alerts.yml"} <= names
    assert alert_rules(), "no alert rules found"
    assert recording_rules(), "no recording rules found"


@pytest.mark.parametrize("rule", alert_rules(), ids=rule_id)
def test_alert_has_severity_and_annotations(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    for key in ("summary", "description", "runbook_url"):
        assert str(annotations.get(key, "")).strip(), f"{rule['alert']} lacks {key}"
    assert annotations["runbook_url"].startswith(RUNBOOK_BASE), annotations["runbook_url"]
    assert duration_seconds(rule["for"]) > 0, "every alert waits before it fires"


@pytest.mark.parametrize("rule", alert_rules(), ids=rule_id)
def test_runbook_anchor_exists(rule: dict[str, Any]) -> None:
    anchor = rule["annotations"]["runbook_url"].removeprefix(RUNBOOK_BASE)
    assert anchor == github_anchor(rule["alert"]), "one runbook entry per alert, titled by its name"
    assert anchor in runbook_anchors(), f"docs/runbooks.md has no heading for #{anchor}"


def test_runbook_entries_say_meaning_impact_diagnosis_mitigation() -> None:
    sections = re.split(r"^## ", RUNBOOKS.read_text(), flags=re.MULTILINE)[1:]
    entries = {section.splitlines()[0].strip(): section for section in sections}
    for name in {rule["alert"] for rule in alert_rules()}:
        assert name in entries, f"docs/runbooks.md has no entry '## {name}'"
        for part in ("**Meaning.**", "**Impact.**", "**Diagnosis.**", "**Mitigation.**"):
            assert part in entries[name], f"runbook entry {name} lacks {part}"


def test_alert_name_and_severity_pairs_are_unique() -> None:
    ids = [rule_id(rule) for rule in alert_rules()]
    assert len(ids) == len(set(ids)), "two rules with the same alertname must differ in severity"


@pytest.mark.parametrize("rule", recording_rules(), ids=lambda r: r["record"])
def test_recording_rule_name_follows_level_metric_operations(rule: dict[str, Any]) -> None:
    assert RECORD_NAME.match(rule["record"]), rule["record"]


@pytest.mark.parametrize("rule", recording_rules(), ids=lambda r: r["record"])
def test_recording_rule_window_matches_its_name(rule: dict[str, Any]) -> None:
    """`...:ratio_rate1h` must use [1h] everywhere: a stray [5m] would corrupt a burn-rate window."""
    operation = rule["record"].split(":")[2]
    named = re.search(r"(?:rate|_)(\d+[smhdw])$", operation)
    if named is None:
        return
    windows = set(re.findall(r"\[(\d+[smhdw])\]", rule["expr"]))
    assert windows == {named.group(1)}, f"{rule['record']} uses {sorted(windows)}"


@pytest.mark.parametrize("sli", ["memory_http_requests_5xx", "memory_search_slow_requests"])
def test_sli_recorded_over_every_burn_rate_window(sli: str) -> None:
    recorded = {r["record"] for r in recording_rules()}
    missing = {w for w in SLI_WINDOWS if f"job:{sli}:ratio_rate{w}" not in recorded}
    assert not missing, f"{sli} lacks windows {sorted(missing)}"


def test_no_rule_aggregates_by_high_cardinality_labels() -> None:
    for rule in recording_rules() + alert_rules():
        assert not HIGH_CARDINALITY.search(rule["expr"]), rule.get("record") or rule.get("alert")


def test_burn_rate_alerts_follow_the_workbook_and_the_dashboards() -> None:
    """Windows pair up with their factor, each SLI has one objective, and the dashboards use it."""
    objectives: dict[str, set[float]] = defaultdict(set)
    pairs: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    for rule in alert_rules():
        terms = list(BURN_TERM.finditer(rule["expr"]))
        for long, short in zip(terms[::2], terms[1::2], strict=True):
            assert (long["sli"], long["factor"]) == (short["sli"], short["factor"]), rule_id(rule)
            pairs[long["sli"]][(long["window"], short["window"])] = float(long["factor"])
            objectives[long["sli"]] |= {float(long["slo"]), float(short["slo"])}
    assert pairs == {"memory_http_requests_5xx": BURN_PAIRS, "memory_search_slow_requests": BURN_PAIRS}
    build = grafana_builder()
    assert objectives == {
        "memory_http_requests_5xx": {build.AVAILABILITY_SLO},
        "memory_search_slow_requests": {build.SEARCH_LATENCY_SLO},
    }


# --- the promtool unit tests ------------------------------------------------------------------


def rule_test_files() -> list[Any]:
    return [load_yaml(path) for path in sorted(RULE_TESTS_DIR.glob("*.yml"))]


def test_promtool_evaluates_recording_groups_before_alert_groups() -> None:
    """promtool orders unlisted groups at random; alerts must see this evaluation's ratios."""
    recording = [g["name"] for g in rule_groups() if all("record" in r for r in g["rules"])]
    alerting = [g["name"] for g in rule_groups() if all("alert" in r for r in g["rules"])]
    assert len(recording) + len(alerting) == len(rule_groups()), "a group mixes records and alerts"
    for spec in rule_test_files():
        order = spec["group_eval_order"]
        assert sorted(order) == sorted(recording + alerting)
        assert max(order.index(g) for g in recording) < min(order.index(g) for g in alerting)


def test_every_recording_rule_has_a_promtool_test() -> None:
    exprs = [t["expr"] for spec in rule_test_files() for g in spec["tests"] for t in g.get("promql_expr_test", [])]
    untested = [r["record"] for r in recording_rules() if not any(r["record"] in e for e in exprs)]
    assert not untested, f"no promql_expr_test reads {untested}"


_ALERTS_SELECTOR = re.compile(r"^ALERTS\{(?P<matchers>[^}]*)\}$")
_MATCHER = re.compile(r'(\w+)="([^"]*)"')


def _boundary_facts(group: dict[str, Any]) -> dict[str, set[tuple[str, str, float]]]:
    """What one promtool test group asserts, as (alertname, severity, seconds) facts."""
    facts: dict[str, set[tuple[str, str, float]]] = defaultdict(set)
    for case in group.get("promql_expr_test", []):
        match = _ALERTS_SELECTOR.match(case["expr"].strip())
        if match is None:
            continue
        selector = dict(_MATCHER.findall(match["matchers"]))
        if selector.get("alertstate") != "pending":
            continue
        at = duration_seconds(case["eval_time"])
        name = selector["alertname"]
        if not case.get("exp_samples"):
            severities = [selector["severity"]] if "severity" in selector else sorted(SEVERITIES)
            facts["not_pending"] |= {(name, s, at) for s in severities}
        for sample in case.get("exp_samples") or []:
            labels = dict(_MATCHER.findall(sample["labels"]))
            facts["pending"].add((name, labels["severity"], at))
    for case in group.get("alert_rule_test", []):
        at = duration_seconds(case["eval_time"])
        firing = {alert["exp_labels"]["severity"] for alert in case.get("exp_alerts") or []}
        for severity in SEVERITIES:
            facts["firing" if severity in firing else "not_firing"].add((case["alertname"], severity, at))
    return facts


@pytest.mark.parametrize("rule", alert_rules(), ids=rule_id)
def test_alert_is_pinned_at_its_for_boundary(rule: dict[str, Any]) -> None:
    """Some test group shows: pending from A (not at A - 1 step), silent at A + for - 1 step, firing at A + for."""
    name, severity, hold = rule["alert"], rule["labels"]["severity"], duration_seconds(rule["for"])
    for spec in rule_test_files():
        step = duration_seconds(spec.get("evaluation_interval", "1m"))
        for group in spec["tests"]:
            facts = _boundary_facts(group)
            for alert, sev, start in facts["pending"]:
                if (alert, sev) != (name, severity):
                    continue
                if (
                    (name, severity, start - step) in facts["not_pending"]
                    and (name, severity, start + hold - step) in facts["not_firing"]
                    and (name, severity, start + hold) in facts["firing"]
                ):
                    return
    pytest.fail(f"no promtool test pins {rule_id(rule)} (for: {rule['for']}) at its boundary")


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [promtool_binary(), "check", "rules", *map(str, rule_files())], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    files = sorted(RULE_TESTS_DIR.glob("*.yml"))
    result = subprocess.run([promtool_binary(), "test", "rules", *map(str, files)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

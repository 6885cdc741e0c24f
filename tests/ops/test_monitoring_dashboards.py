"""Static properties of the Grafana dashboards (ops/grafana/build.py -> dashboards/*.json).

What Grafana loads is the committed JSON; these tests hold it to the code that generates it and
to the conventions the operators rely on: fixed uids, one datasource variable, `$__rate_interval`,
bounded label sets, and only contract metrics (docs/architecture.md).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.prometheus import (
    DASHBOARDS_DIR,
    REPO_ROOT,
    PanelQuery,
    dashboards,
    grafana_builder,
    jobs_in_config,
    panel_queries,
    recording_rules,
)

UIDS = {"memory-api-overview", "memory-engine", "memory-ratelimit-auth", "memory-dependencies"}
HIGH_CARDINALITY = re.compile(r"\b(user_id|agent_id|run_id|memory_id|tenant|key_id|request_id|pid)\b")
RANGE_FUNCTIONS = re.compile(r"\b(rate|irate|increase|delta|idelta|deriv)\(")
EXPORTER_METRIC = re.compile(r"\b(node|redis|pg)_\w+")
MEMORY_METRIC = re.compile(r"(?<![:\w])(memory_\w+)")


def all_queries() -> list[PanelQuery]:
    return [q for board in dashboards().values() for q in panel_queries(board)]


def contract_series() -> set[str]:
    """Series names the architecture contract promises (histograms with their three suffixes)."""
    names: set[str] = set()
    for line in (REPO_ROOT / "docs" / "architecture.md").read_text().splitlines():
        match = re.match(r"^\| `(memory_\w+)` \| (\w+) \|", line)
        if match is None:
            continue
        name, kind = match.groups()
        names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"} if kind == "histogram" else {name}
    return names


def exporter_panel(query: PanelQuery) -> bool:
    return (query.row or "").startswith(grafana_builder().EXPORTER_ROW_PREFIX)


def test_committed_json_is_what_the_builder_makes() -> None:
    """Regeneration changes nothing: run `python ops/grafana/build.py` and commit otherwise."""
    built = grafana_builder().build_all()
    committed = {path: path.read_text() for path in DASHBOARDS_DIR.glob("*.json")}
    assert set(committed) == set(built), "stray or missing dashboard files"
    stale = [path.name for path, text in built.items() if committed[path] != text]
    assert not stale, f"stale: {stale} (run: python ops/grafana/build.py)"


def test_uids_are_fixed_unique_and_name_their_files() -> None:
    files = sorted(DASHBOARDS_DIR.glob("*.json"))
    boards = dashboards()
    assert set(boards) == UIDS
    assert len(files) == len(UIDS), "two files share a uid"
    assert {path.stem for path in files} == UIDS


@pytest.mark.parametrize("uid", sorted(UIDS))
def test_every_panel_and_target_uses_the_datasource_variable(uid: str) -> None:
    board = dashboards()[uid]
    (variable,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert (variable["name"], variable["query"]) == ("datasource", "prometheus")
    assert variable["current"]["value"] == "prometheus", "defaults to the provisioned data source"
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]


@pytest.mark.parametrize("uid", sorted(UIDS))
def test_panel_ids_and_ref_ids_are_unique(uid: str) -> None:
    board = dashboards()[uid]
    ids = [p["id"] for p in board["panels"]] + [n["id"] for p in board["panels"] for n in p.get("panels", [])]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all(refs), panel["title"]


@pytest.mark.parametrize("query", all_queries(), ids=str)
def test_rates_use_rate_interval(query: PanelQuery) -> None:
    for match in RANGE_FUNCTIONS.finditer(query.expr):
        window = re.match(r"[^\[]*\[([^\]]+)\]", query.expr[match.end() :])
        assert window is not None, query.expr
        assert window.group(1) == "$__rate_interval", query.expr


@pytest.mark.parametrize("query", all_queries(), ids=str)
def test_no_high_cardinality_labels(query: PanelQuery) -> None:
    assert not HIGH_CARDINALITY.search(query.expr), query.expr


@pytest.mark.parametrize("query", [q for q in all_queries() if not exporter_panel(q)], ids=str)
def test_service_queries_are_scoped_by_job_and_instance(query: PanelQuery) -> None:
    for selector in re.findall(r"(?<![:\w])memory_\w+\{([^}]*)\}", query.expr):
        assert 'job="$job"' in selector, query.expr
        assert 'instance=~"$instance"' in selector, query.expr
    assert not re.search(r"(?<![:\w])memory_\w+(?![\w{])", query.expr), f"unscoped selector in {query.expr}"
    for selector in re.findall(r"\b[a-z_]+:memory_\w+:\w+\{([^}]*)\}", query.expr):
        assert selector == 'job="$job"', query.expr  # recorded series keep only the job label


@pytest.mark.parametrize("query", all_queries(), ids=str)
def test_only_contract_metrics_and_recorded_series(query: PanelQuery) -> None:
    used = set(MEMORY_METRIC.findall(query.expr))
    assert used <= contract_series(), f"not in docs/architecture.md: {used - contract_series()}"
    recorded = set(re.findall(r"\b[a-z_]+:memory_\w+:\w+", query.expr))
    assert recorded <= {r["record"] for r in recording_rules()}, recorded


def test_exporter_rows_are_narrow() -> None:
    """The proof skips exporter rows; they must hold exporter metrics only, and only they may."""
    exporter = [q for q in all_queries() if exporter_panel(q)]
    assert {q.dashboard for q in exporter} == {"memory-dependencies"}
    assert {q.row for q in exporter} == {
        "Exporter: node-exporter (host)",
        "Exporter: redis-exporter (rate-limit storage)",
        "Exporter: postgres-exporter (database)",
    }
    for query in all_queries():
        if exporter_panel(query):
            assert EXPORTER_METRIC.search(query.expr), query
            assert not MEMORY_METRIC.search(query.expr), query
        else:
            assert not EXPORTER_METRIC.search(query.expr), f"{query} needs an exporter but is outside its rows"


def test_exporter_jobs_exist_in_the_scrape_configuration() -> None:
    used = {job for q in all_queries() for job in re.findall(r'job="([^"$]+)"', q.expr)}
    assert used
    assert used <= jobs_in_config(), used - jobs_in_config()


@pytest.mark.parametrize("uid", sorted(UIDS))
def test_service_variables(uid: str) -> None:
    variables: dict[str, dict[str, Any]] = {v["name"]: v for v in dashboards()[uid]["templating"]["list"]}
    assert variables["job"]["query"] == "label_values(memory_build_info, job)"
    assert variables["job"]["current"]["value"] == "memory-api"
    assert variables["instance"]["query"] == 'label_values(memory_build_info{job="$job"}, instance)'
    assert variables["instance"]["includeAll"] is True

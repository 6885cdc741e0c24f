"""The import rules hold, and they would catch a layer violation (.importlinter, `make imports`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(service_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(ROOT / ".importlinter")],
        cwd=service_dir,
        env={"PYTHONPATH": str(service_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_rules_hold() -> None:
    result = lint_imports(ROOT / "service")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_storage_module_importing_the_api_breaks_the_layers(tmp_path: Path) -> None:
    copy = tmp_path / "service"
    shutil.copytree(ROOT / "service", copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    database = copy / "memory_service/storage/database.py"
    database.write_text(database.read_text() + "\nfrom memory_service.api import deps  # noqa: E402\n")
    result = lint_imports(copy)
    assert result.returncode != 0
    assert "memory_service.storage.database -> memory_service.api.deps" in result.stdout


def test_the_domain_importing_the_web_framework_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "service"
    shutil.copytree(ROOT / "service", copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    filters = copy / "memory_service/domain/memories/filters.py"
    filters.write_text(filters.read_text() + "\nfrom starlette.datastructures import QueryParams  # noqa: E402\n")
    result = lint_imports(copy)
    assert result.returncode != 0
    assert "memory_service.domain.memories.filters -> starlette" in result.stdout


def test_no_module_imports_itself_through_a_cycle() -> None:
    sys.path.insert(0, str(ROOT / "service"))
    graph = grimp.build_graph("memory_service", cache_dir=None)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    cycles = [
        (a, b)
        for a, imported in edges.items()
        for b in imported
        if a != b and graph.chain_exists(importer=b, imported=a, as_packages=False)
    ]
    assert cycles == []

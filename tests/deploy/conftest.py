"""Deploy tests run only under `make test-deploy` (DEPLOY_TESTS=1): they need root, debootstrap,
systemd-nspawn and network namespaces, and take minutes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("DEPLOY_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="deploy tests run with `make test-deploy` (DEPLOY_TESTS=1)")
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(skip)

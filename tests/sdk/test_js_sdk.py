"""The JavaScript SDK's tests (sdk/js/test, Node's built-in runner) on the built package, against
the same real service as the Python SDK's tests.

This test builds the package if it is not current (`make sdk-js-build`: npm ci from the lockfile,
tsc), starts a loopback proxy that loses its first answer, and serves the node tests' requests
to freeze and thaw the service's Postgres (files in a control directory). It asserts the
runner's exit code and its counts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from memory_service.api.dialects import PLATFORM_TAG

from tests.sdk.operations import LEFT_OUT
from tests.support.proxy import DroppingProxy
from tests.support.server import REPO_ROOT, ServiceProcess, frozen_postgres

JS_DIR = REPO_ROOT / "sdk" / "js"
JS_TESTS = 10  # the test() calls in sdk/js/test/client.test.mjs


def _build() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise AssertionError("Node.js 18+ with npm is needed for the JS SDK tests (Debian: apt-get install nodejs npm)")
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "sdk-js-build"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"make sdk-js-build failed:\n{done.stdout}\n{done.stderr}"


class _Controller:
    """Answers the node tests' "freeze" and "thaw" requests (files in `directory`)."""

    def __init__(self, directory: Path, service: ServiceProcess) -> None:
        self.directory = directory
        self.service = service
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.freezes = 0
        self._frozen: ExitStack | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if (request := self.directory / "freeze").exists():
                    request.unlink()
                    self._frozen = ExitStack()
                    self._frozen.enter_context(frozen_postgres(self.service.data_dir))
                    self.freezes += 1
                    (self.directory / "frozen").touch()
                if (request := self.directory / "thaw").exists():
                    request.unlink()
                    self.thaw()
                    (self.directory / "thawed").touch()
                time.sleep(0.02)
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def thaw(self) -> None:
        if self._frozen is not None:
            self._frozen.close()
            self._frozen = None


@pytest.fixture
def controller(tmp_path: Path, sdk_service: ServiceProcess) -> Iterator[_Controller]:
    control = _Controller(tmp_path, sdk_service)
    thread = threading.Thread(target=control.run, daemon=True)
    thread.start()
    yield control
    control.stop.set()
    thread.join(5)
    control.thaw()


def test_js_sdk_suite_passes_against_the_service(
    sdk_service: ServiceProcess, admin_key: str, controller: _Controller
) -> None:
    _build()
    proxy = DroppingProxy(sdk_service.port, drop_first=1)
    env = {
        **os.environ,
        "MEM0_TEST_URL": sdk_service.url,
        "MEM0_TEST_ADMIN_KEY": admin_key,
        "MEM0_TEST_PROXY_URL": proxy.url,
        "MEM0_TEST_CONTROL": str(controller.directory),
        "MEM0_TEST_LEFT_OUT": json.dumps([f"{method} {path}" for method, path in LEFT_OUT]),
        "MEM0_TEST_PLATFORM_TAG": PLATFORM_TAG,
    }
    for name in ("MEM0_API_KEY", "MEM0_BASE_URL"):
        env.pop(name, None)
    try:
        run = subprocess.run(
            ["node", "--test", "--test-reporter=tap", "test/"],
            cwd=JS_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        proxy.close()
    output = run.stdout + run.stderr
    assert controller.errors == []
    counts = {k: int(v) for k, v in re.findall(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", output, re.M)}
    assert run.returncode == 0, output[-6000:]
    assert counts == {"tests": JS_TESTS, "pass": JS_TESTS, "fail": 0, "cancelled": 0, "skipped": 0, "todo": 0}, output
    assert controller.freezes == 1
    assert proxy.connections == 2
    [lost] = proxy.dropped_requests
    assert b"idempotency-key: " in lost.lower()

"""mem0's official npm client (mem0ai 3.3.1) under Node's built-in test runner, against the real service.

The Node suite is tests/compat/js/client.test.mjs; its dependencies are installed by `npm ci` from
the committed package-lock.json (`make compat-js`, a prerequisite of `make test`, run here too:
quiet when current).
This test gives it the session's service and fresh keys through the environment and checks the
runner's exit code and its counts: every test in the file ran and passed, none skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx

from tests.support.server import REPO_ROOT, ServiceProcess, new_tenant_key

JS_DIR = Path(__file__).parent / "js"
SUITE = JS_DIR / "client.test.mjs"


def ensure_node_modules() -> None:
    for tool in ("node", "npm"):
        assert shutil.which(tool), f"{tool} is needed for the npm client's tests (Debian: apt-get install nodejs npm)"
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "compat-js"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"make compat-js failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def tap_count(output: str, name: str) -> int:
    match = re.search(rf"^# {name} (\d+)$", output, re.MULTILINE)
    assert match, f"no '# {name}' line in the runner's output:\n{output[-4000:]}"
    return int(match.group(1))


def test_the_npm_client_suite_passes(service: ServiceProcess, admin: httpx.Client, tmp_path: Path) -> None:
    ensure_node_modules()
    tenant = f"js-{uuid.uuid4().hex[:12]}"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "MEM0_DIR": str(tmp_path / "mem0"),
        "MEM0_TELEMETRY": "false",
        "COMPAT_URL": service.url,
        "COMPAT_TENANT": tenant,
        "COMPAT_KEY": new_tenant_key(admin, tenant),
        "COMPAT_OTHER_KEY": new_tenant_key(admin, f"js-other-{uuid.uuid4().hex[:8]}"),
        "COMPAT_LIMITED_KEY": new_tenant_key(admin, f"js-limited-{uuid.uuid4().hex[:8]}", rate_limit=2),
    }
    result = subprocess.run(
        ["node", "--test", "--test-reporter=tap", SUITE.name],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    declared = len(re.findall(r"^test\(", SUITE.read_text(), re.MULTILINE))
    assert declared >= 12
    assert (result.returncode, tap_count(output, "fail")) == (0, 0), output[-6000:]
    assert tap_count(output, "pass") == declared, output[-6000:]
    for absent in ("skipped", "todo", "cancelled"):
        assert tap_count(output, absent) == 0, output[-6000:]

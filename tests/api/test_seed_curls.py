"""The seed's five "Quick Testing" steps (four curls and the docs page), verbatim, against the service."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from tests.support.server import ServiceProcess

SEED = Path(__file__).resolve().parents[2] / "docs/seed-api-reference.md"


def _quick_testing_curls() -> list[str]:
    section = SEED.read_text().split("## Quick Testing", 1)[1]
    commands = re.findall(r"```bash\n(curl .*?)\n```", section, flags=re.DOTALL)
    # The seed's line continuations were flattened to " \ "; a shell reads them as escaped spaces.
    return [c.replace(" \\ ", " ") for c in commands]


def test_the_seed_quick_testing_steps_work_verbatim(service: ServiceProcess) -> None:
    curls = _quick_testing_curls()
    assert len(curls) == 4
    outputs = []
    for command in curls:
        command = command.replace("YOUR_SERVER_IP:8080", f"localhost:{service.port}")
        result = subprocess.run(
            ["curl", "-sS", "-w", "\\n%{http_code}", *shlex.split(command)[1:]],
            capture_output=True,
            text=True,
            timeout=30,
        )
        body, _, status = result.stdout.rpartition("\n")
        outputs.append((int(status), json.loads(body)))
    health, status, added, searched = outputs
    assert health[0] == 200
    assert health[1]["data"]["status"] == "ok"
    assert status[0] == 200
    assert status[1]["success"] is True
    assert added[0] == 201
    memory = added[1]["data"]["memories"][0]
    assert memory["content"] == "I love building AI applications with FastAPI"
    assert memory["metadata"]["source"] == "external_test"
    assert searched[0] == 200
    assert memory["id"] in [m["id"] for m in searched[1]["data"]["memories"]]
    # Step 5: the interactive documentation.
    docs = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"http://localhost:{service.port}/docs"],
        capture_output=True,
        text=True,
    )
    assert docs.stdout == "200"

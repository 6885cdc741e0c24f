"""gunicorn started in the repository reads ./gunicorn.conf.py, whose settings come from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"


def printed_config(env: dict[str, str]) -> dict[str, str]:
    result = subprocess.run(
        [str(GUNICORN), "--print-config"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pairs = (line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def test_the_default_config_file_serves_the_app_with_uvicorn_workers() -> None:
    config = printed_config({})
    assert config["worker_class"] == "memory_service.serving.DrainingUvicornWorker"  # recycles drop nothing
    assert config["wsgi_app"] == "memory_service.main:create_app()"
    assert config["preload_app"] == "False"  # each worker builds its own model, pool and clients


def test_settings_come_from_the_environment() -> None:
    config = printed_config(
        {
            "GUNICORN_WORKERS": "3",
            "GUNICORN_TIMEOUT": "41",
            "GUNICORN_GRACEFUL_TIMEOUT": "17",
            "GUNICORN_MAX_REQUESTS": "777",
            "GUNICORN_MAX_REQUESTS_JITTER": "55",
            "API_HOST": "127.0.0.2",
            "API_PORT": "9123",
        }
    )
    assert config["workers"] == "3"
    assert config["timeout"] == "41"
    assert config["graceful_timeout"] == "17"
    assert config["max_requests"] == "777"
    assert config["max_requests_jitter"] == "55"
    assert config["bind"] == "['127.0.0.2:9123']"

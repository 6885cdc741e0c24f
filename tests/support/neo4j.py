"""Start, stop and restart the local Neo4j (ops/neo4j) from tests.

Everything goes through the make targets, so tests use exactly what developers and CI use: the same
Maven build, data directory, pid file, lock and readiness check. `make neo4j-up` is idempotent and
serialised with flock, so every fixture may call `neo4j_up()` without coordinating with others.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from neo4j import GraphDatabase
from neo4j.exceptions import AuthError, ServiceUnavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 7687
DEFAULT_PASSWORD = "memory-test-password"
USER = "neo4j"

# A first `make neo4j-up` may build the launcher with a cold Maven cache (minutes); later ones take seconds.
UP_TIMEOUT_S = 900.0
# How long `make neo4j-up` waits for a started Neo4j (its default is 90 s): a restart on a busy
# 2-core machine has taken 104 s, and a test that restarts Neo4j should not fail on that.
START_WAIT_S = "240"
DOWN_TIMEOUT_S = 180.0


class Neo4jError(RuntimeError):
    """The local Neo4j could not be started, stopped or reached."""


@dataclass(frozen=True)
class Neo4jInfo:
    """Where and how to connect: what a test hands to `neo4j.GraphDatabase.driver`."""

    uri: str
    user: str
    password: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.user, self.password)


def neo4j_info() -> Neo4jInfo:
    """Connection details from the same variables (and defaults) that mk/neo4j.mk reads."""
    port = int(os.environ.get("NEO4J_PORT") or DEFAULT_PORT)
    password = os.environ.get("NEO4J_PASSWORD") or DEFAULT_PASSWORD
    return Neo4jInfo(uri=f"bolt://127.0.0.1:{port}", user=USER, password=password)


def _make(target: str, timeout: float) -> str:
    """Run one make target from the repo root; raise with its output if it fails."""
    try:
        result = subprocess.run(
            ["make", "--no-print-directory", "-C", str(REPO_ROOT), target],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "NEO4J_START_TIMEOUT": os.environ.get("NEO4J_START_TIMEOUT", START_WAIT_S)},
        )
    except subprocess.TimeoutExpired as exc:
        raise Neo4jError(f"make {target} did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        raise Neo4jError(f"make {target} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def _wait_for_bolt(info: Neo4jInfo, timeout: float = 30.0) -> None:
    """Confirm with the driver that Bolt answers and accepts our credentials.

    make already waits for the launcher's ready file; this double-checks from the client's side and
    turns a password mismatch (a server started earlier with another NEO4J_PASSWORD) into a clear error.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with GraphDatabase.driver(info.uri, auth=info.auth) as driver:
                driver.verify_connectivity()
            return
        except AuthError as exc:
            raise Neo4jError(
                f"{info.uri} refused user {info.user!r}: it runs with another password "
                "(make neo4j-down, then start it again with this NEO4J_PASSWORD)"
            ) from exc
        except (ServiceUnavailable, OSError) as exc:
            if time.monotonic() > deadline:
                raise Neo4jError(f"{info.uri} did not answer within {timeout:.0f} s") from exc
            time.sleep(0.25)


def neo4j_up() -> Neo4jInfo:
    """Start the local Neo4j if it is not running (idempotent) and return how to connect."""
    _make("neo4j-up", UP_TIMEOUT_S)
    info = neo4j_info()
    _wait_for_bolt(info)
    return info


def neo4j_down() -> None:
    """Stop the local Neo4j cleanly (SIGTERM, waits for exit); a no-op when it is not running."""
    _make("neo4j-down", DOWN_TIMEOUT_S)


def neo4j_restart() -> Neo4jInfo:
    """Stop, then start again: data persists, so a test can check what survives a restart."""
    neo4j_down()
    return neo4j_up()

"""DATABASE_READ_URL: searches and reads on a streaming replica, never missing an acknowledged write.

A real primary and a real streaming replica of it (pg_basebackup -R), the service reading from the
replica. The replica's WAL replay is paused to make it lag on purpose: a memory added then is
found by the very next search, get and list (they went to the primary, as
`memory_db_reads_total{target="primary"}` shows), and once replay resumes reads go back to the
replica. A stopped replica costs nothing but speed.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.postgres import StandalonePostgres
from tests.support.server import ADMIN_KEY, ServiceProcess

pytestmark = pytest.mark.slow


@dataclass
class Replicated:
    primary: StandalonePostgres
    replica: StandalonePostgres
    service: ServiceProcess


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    root: Path = tmp_path_factory.mktemp("replica")
    primary = StandalonePostgres(root / "primary").start()
    replica = StandalonePostgres(root / "replica", replica_of=primary).start()
    service = ServiceProcess(root / "service", {"DATABASE_URL": primary.url, "DATABASE_READ_URL": replica.url})
    try:
        service.start(timeout=180)
        yield Replicated(primary, replica, service)
    finally:
        service.stop()
        replica.stop()
        primary.stop()


def _reads(service: ServiceProcess) -> dict[str, float]:
    with service.client(ADMIN_KEY) as admin:
        text = admin.get("/v1/metrics").text
    found = re.findall(r'^memory_db_reads_total\{target="(\w+)"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return {target: float(value) for target, value in found}


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in ("primary", "replica")}


def _add(client: httpx.Client, user: str, text: str) -> str:
    response = client.post("/v1/memories", json={"messages": [{"role": "user", "content": text}], "user_id": user})
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["memories"][0]["id"])


def _search_ids(client: httpx.Client, user: str, query: str) -> set[str]:
    response = client.get("/v1/memories/search", params={"query": query, "user_id": user, "limit": 10})
    assert response.status_code == 200, response.text
    return {m["id"] for m in response.json()["data"]["memories"]}


def _wait_replayed(replicated: Replicated) -> None:
    with psycopg.connect(replicated.primary.url, autocommit=True) as primary:
        target = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    deadline = time.monotonic() + 30
    with psycopg.connect(replicated.replica.url, autocommit=True) as replica:
        while not replica.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", target).fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.1)


def test_reads_run_on_a_caught_up_replica(replicated: Replicated) -> None:
    user = f"replica-{uuid.uuid4().hex[:8]}"
    with replicated.service.client() as client:
        memory_id = _add(client, user, "I keep bees on the roof")
        _wait_replayed(replicated)
        before = _reads(replicated.service)
        assert memory_id in _search_ids(client, user, "bees")
        assert client.get(f"/v1/memories/{memory_id}").status_code == 200
        listed = client.get(f"/v1/memories/user/{user}").json()["data"]["memories"]
        assert [m["id"] for m in listed] == [memory_id]
    moved = _delta(before, _reads(replicated.service))
    assert moved["replica"] >= 3
    assert moved["primary"] == 0


def test_a_lagging_replica_never_hides_an_acknowledged_write(replicated: Replicated) -> None:
    user = f"replica-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(replicated.replica.url, autocommit=True) as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
        try:
            with replicated.service.client() as client:
                before = _reads(replicated.service)
                memory_id = _add(client, user, "My sister lives in Lisbon")
                # The replica has not replayed the add: it does not have the row.
                assert replica.execute("SELECT count(*) FROM memories WHERE id = %s", (memory_id,)).fetchone() == (0,)
                assert memory_id in _search_ids(client, user, "Lisbon")
                assert client.get(f"/v1/memories/{memory_id}").status_code == 200
                listed = client.get(f"/v1/memories/user/{user}").json()["data"]["memories"]
                assert [m["id"] for m in listed] == [memory_id]
                moved = _delta(before, _reads(replicated.service))
                assert moved["primary"] >= 3
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")
    _wait_replayed(replicated)
    with replicated.service.client() as client:
        before = _reads(replicated.service)
        assert memory_id in _search_ids(client, user, "Lisbon")
    assert _delta(before, _reads(replicated.service))["replica"] >= 1


def test_a_stopped_replica_sends_reads_to_the_primary(replicated: Replicated) -> None:
    user = f"replica-{uuid.uuid4().hex[:8]}"
    replicated.replica.stop()
    try:
        with replicated.service.client() as client:
            memory_id = _add(client, user, "The boiler is serviced every October")
            before = _reads(replicated.service)
            assert memory_id in _search_ids(client, user, "boiler")
        assert _delta(before, _reads(replicated.service))["primary"] >= 1
    finally:
        replicated.replica.start()

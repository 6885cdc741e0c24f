"""A database made by release 1.0.0 (no version table, create-if-missing schema) with data in it
is upgraded by this release at start, losing nothing; `memory-service db` reports the revisions."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from tests.support.server import BIN, REPO_ROOT, ServiceProcess, embedded_conninfo, run_cli, standalone_postgres

SCHEMA_1_0_0 = REPO_ROOT / "tests/fixtures/schema-1.0.0.sql"
KEY = "m0sk_" + "k" * 43
MEMORY_ID = str(uuid.uuid4())
JOB_ID = str(uuid.uuid4())
CREATED = "2026-01-02T03:04:05.123456+00:00"


def _seed_release_1_0_0(data_dir: Path) -> dict[str, int]:
    """The schema exactly as 1.0.0 created it, and one row in each table that holds user data."""
    with standalone_postgres(data_dir) as conninfo, psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(SCHEMA_1_0_0.read_text())
        vector = np.random.default_rng(7).normal(size=384).astype(np.float32)
        vector /= np.linalg.norm(vector)
        payload = {
            "data": "Ada prefers green tea in the morning",
            "user_id": "legacy/ada",
            "tenant_id": "legacy",
            "created_at": CREATED,
            "updated_at": CREATED,
            "source": "chat",
            "timestamp": "2026-01-02T03:04:05Z",
            "entities": ["Ada"],
            "entity_keys": ["ada"],
            "relationships": [{"type": "mentions", "entity": "Ada", "confidence": 0.9}],
            "text_lemmatized": "ada prefer green tea in the morning",
        }
        conn.execute(
            "INSERT INTO memories (id, vector, payload) VALUES (%s, %s::vector, %s)",
            (MEMORY_ID, json.dumps(vector.tolist()), Jsonb(payload)),
        )
        conn.execute(
            "INSERT INTO api_keys (key_hash, prefix, tenant, role, name) VALUES (%s, %s, 'legacy', 'user', 'old')",
            (hashlib.sha256(KEY.encode()).hexdigest(), KEY[:12]),
        )
        conn.execute(
            "INSERT INTO memory_history (id, memory_id, user_key, old_memory, new_memory, event, created_at)"
            " VALUES (%s, %s, 'legacy/ada', NULL, %s, 'ADD', %s)",
            (uuid.uuid4(), MEMORY_ID, payload["data"], CREATED),
        )
        conn.execute(
            "INSERT INTO jobs (id, tenant, kind, state, request, result, attempts, finished_at)"
            " VALUES (%s, 'legacy', 'add', 'succeeded', %s, %s, 1, now())",
            (
                JOB_ID,
                Jsonb({"messages": [{"role": "user", "content": payload["data"]}], "user_id": "ada"}),
                Jsonb({"memories": [], "count": 0, "inference": "none"}),
            ),
        )
        return _counts(conn)


def _counts(conn: psycopg.Connection) -> dict[str, int]:
    tables = ("memories", "api_keys", "memory_history", "jobs")
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def test_a_release_1_0_0_database_is_upgraded_at_start_and_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "legacy"
    before = _seed_release_1_0_0(data_dir)

    service = ServiceProcess(data_dir, {}).start()
    try:
        with service.client(KEY) as client:
            memory = client.get(f"/v1/memories/{MEMORY_ID}")
            assert memory.status_code == 200, memory.text
            assert memory.json()["data"]["content"] == "Ada prefers green tea in the morning"
            assert memory.json()["data"]["metadata"]["source"] == "chat"
            assert memory.json()["data"]["created_at"] == "2026-01-02T03:04:05.123456Z"
            listed = client.get("/v1/memories/user/ada").json()["data"]
            assert [m["id"] for m in listed["memories"]] == [MEMORY_ID]
            history = client.get(f"/v1/memories/{MEMORY_ID}/history").json()["data"]["history"]
            assert [h["event"] for h in history] == ["ADD"]
            assert client.get(f"/v1/jobs/{JOB_ID}").json()["data"]["state"] == "succeeded"
            found = client.get("/v1/memories/search", params={"query": "green tea", "user_id": "ada"}).json()
            assert [m["id"] for m in found["data"]["memories"]] == [MEMORY_ID]  # keyword + vector index intact
        with psycopg.connect(embedded_conninfo(data_dir)) as conn:
            after = _counts(conn)
            versions = {
                "service": conn.execute("SELECT version_num FROM alembic_version").fetchone()[0],
                "collection": conn.execute("SELECT version_num FROM memories_alembic_version").fetchone()[0],
            }
            storage = conn.execute(
                "SELECT attstorage FROM pg_attribute WHERE attrelid = 'memories'::regclass AND attname = 'vector'"
            ).fetchone()[0]
    finally:
        service.stop()

    assert {t: after[t] for t in ("memories", "memory_history", "jobs")} == {
        t: before[t] for t in ("memories", "memory_history", "jobs")
    }
    assert after["api_keys"] == before["api_keys"] + 3  # development mode adds the seed's three keys
    current = run_cli(data_dir, "db", "current")
    assert current.returncode == 0, current.stderr
    assert f"service: {versions['service']} (up to date)" in current.stdout
    assert f"collection: {versions['collection']} (up to date)" in current.stdout
    assert storage == "m"  # c0002: the vector stays in the row (pgvector's own default is EXTERNAL)


def test_a_schema_newer_than_this_release_is_left_as_it_is(tmp_path: Path) -> None:
    """After a rollback the database keeps the newer release's (additive) schema: start anyway."""
    data_dir = tmp_path / "newer"
    ServiceProcess(data_dir, {}).start().stop()
    with standalone_postgres(data_dir) as conninfo, psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_a_newer_release'")
    service = ServiceProcess(data_dir, {}).start()
    try:
        assert "newer than this release knows" in service.logs()
        with service.client() as client:
            assert (
                client.post("/v1/memories", json={"messages": [{"role": "user", "content": "hi"}]}).status_code == 201
            )
    finally:
        service.stop()


def test_db_history_lists_both_chains_without_a_database(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "memory-service"), "db", "history"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert "service" in result.stdout
    assert "0001" in result.stdout
    assert "collection" in result.stdout
    assert "c0001" in result.stdout

"""Keys, roles and tenants: who may do what, and who sees whose memories."""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx
import psycopg

from tests.support.api import add_memory, assert_error
from tests.support.server import (
    ADMIN_KEY,
    DEV_KEY,
    DOCKER_KEY,
    ServiceProcess,
    embedded_conninfo,
    new_tenant_key,
    run_cli,
)


def test_missing_or_unknown_key_is_401(service: ServiceProcess) -> None:
    with service.client(None) as anonymous:
        assert_error(anonymous.get("/v1/memories/search", params={"query": "x"}), 401, "UNAUTHORIZED")
        assert_error(anonymous.get("/status"), 401, "UNAUTHORIZED")
    with service.client("m0sk_not-a-real-key") as wrong:
        assert_error(wrong.get("/v1/memories/search", params={"query": "x"}), 401, "UNAUTHORIZED")
    with service.client(None, headers={"Authorization": "Basic Zm9vOmJhcg=="}) as basic:
        assert_error(basic.get("/status"), 401, "UNAUTHORIZED")


def test_development_enables_the_three_seed_keys(service: ServiceProcess) -> None:
    for key in (DEV_KEY, DOCKER_KEY, ADMIN_KEY):
        with service.client(key) as client:
            assert client.get("/status").status_code == 200
    with service.client(DEV_KEY) as user:
        assert_error(user.get("/v1/admin/keys"), 403, "FORBIDDEN")
        assert_error(user.get("/v1/metrics"), 403, "FORBIDDEN")


def test_user_keys_cannot_administer(client: httpx.Client) -> None:
    assert_error(client.post("/v1/admin/keys", json={"tenant": "x"}), 403, "FORBIDDEN")
    assert_error(client.get("/v1/admin/keys"), 403, "FORBIDDEN")
    assert_error(client.delete(f"/v1/admin/keys/{uuid.uuid4()}"), 403, "FORBIDDEN")


def test_tenants_never_see_each_other(service: ServiceProcess, admin: httpx.Client) -> None:
    tenant_a, tenant_b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    with service.client(new_tenant_key(admin, tenant_a)) as a, service.client(new_tenant_key(admin, tenant_b)) as b:
        secret = add_memory(a, "Tenant A's secret recipe uses saffron", "shared-user")
        mine = add_memory(b, "Tenant B likes pizza", "shared-user")
        for method in ("GET", "PUT", "DELETE"):
            body = {"content": "hijacked"} if method == "PUT" else None
            assert_error(b.request(method, f"/v1/memories/{secret['id']}", json=body), 404, "MEMORY_NOT_FOUND")
        assert_error(b.get(f"/v1/memories/{secret['id']}/history"), 404, "MEMORY_NOT_FOUND")
        found = b.get("/v1/memories/search", params={"query": "saffron recipe", "user_id": "shared-user"}).json()
        assert [m["id"] for m in found["data"]["memories"]] == [mine["id"]]
        listed = b.get("/v1/memories/user/shared-user").json()["data"]
        assert listed["total"] == 1
        assert listed["memories"][0]["id"] == mine["id"]
        assert b.get("/v1/users/shared-user/stats").json()["data"]["memory_count"] == 1
        assert b.delete("/v1/memories/user/shared-user").json()["data"]["deleted_count"] == 1
        assert a.get(f"/v1/memories/{secret['id']}").json()["data"]["content"] == secret["content"]
        assert a.get("/status").json()["data"]["memory_count"] == 1
        assert a.get("/status").json()["data"]["tenant"] == tenant_a


def test_admin_creates_lists_and_revokes_keys(service: ServiceProcess, admin: httpx.Client) -> None:
    tenant = f"k-{uuid.uuid4().hex[:8]}"
    created = admin.post("/v1/admin/keys", json={"tenant": tenant, "role": "user", "name": "ci", "rate_limit": 7})
    assert created.status_code == 201
    data = created.json()["data"]
    key = data["key"]
    assert key.startswith("m0sk_")
    assert len(key) > 40
    assert data["prefix"] == key[:12]
    assert data["rate_limit_per_minute"] == 7
    listed = admin.get("/v1/admin/keys", params={"tenant": tenant}).json()["data"]
    assert listed["count"] == 1
    assert listed["keys"][0]["id"] == data["id"]
    assert key not in json.dumps(listed)
    with service.client(key) as client:
        assert client.get("/status").status_code == 200
        assert admin.delete(f"/v1/admin/keys/{data['id']}").status_code == 200
        assert_error(client.get("/status"), 401, "UNAUTHORIZED")
    assert_error(admin.delete(f"/v1/admin/keys/{uuid.uuid4()}"), 404, "NOT_FOUND")
    assert_error(admin.post("/v1/admin/keys", json={"tenant": "bad/tenant"}), 400, "INVALID_REQUEST")
    assert_error(admin.post("/v1/admin/keys", json={"tenant": "t", "role": "root"}), 400, "INVALID_REQUEST")


def test_keys_are_stored_hashed(service: ServiceProcess, admin: httpx.Client) -> None:
    key = new_tenant_key(admin, f"h-{uuid.uuid4().hex[:8]}")
    with psycopg.connect(embedded_conninfo(service.data_dir)) as conn:
        rows = conn.execute("SELECT key_hash, prefix FROM api_keys").fetchall()
        dump = json.dumps([list(r) for r in rows])
    assert key not in dump
    assert DEV_KEY not in dump
    assert hashlib.sha256(key.encode()).hexdigest() in {r[0] for r in rows}


def test_cli_creates_lists_and_revokes(service: ServiceProcess) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    created = run_cli(service.data_dir, "keys", "create", "--tenant", tenant, "--role", "user", "--json")
    assert created.returncode == 0, created.stderr
    info = json.loads(created.stdout)
    with service.client(info["key"]) as client:
        assert client.get("/status").json()["data"]["tenant"] == tenant
        listed = run_cli(service.data_dir, "keys", "list", "--tenant", tenant, "--json")
        assert [k["id"] for k in json.loads(listed.stdout)] == [info["id"]]
        assert info["key"] not in listed.stdout
        revoked = run_cli(service.data_dir, "keys", "revoke", info["id"])
        assert revoked.returncode == 0, revoked.stderr
        # Another process revoked it: this one notices within the key cache's lifetime (10 s).
        assert_error(_eventually_401(client), 401, "UNAUTHORIZED")
    bad = run_cli(service.data_dir, "keys", "create", "--tenant", tenant, "--role", "root")
    assert bad.returncode == 2
    assert "user, admin or operator" in bad.stderr


def _eventually_401(client: httpx.Client) -> httpx.Response:
    import time

    deadline = time.monotonic() + 15
    while True:
        response = client.get("/status")
        if response.status_code == 401 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)

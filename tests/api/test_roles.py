"""Roles (issue 19, defect 9): an admin key manages its own tenant's keys only; an operator key
(command line or bootstrap key) manages every tenant's; who may read the metrics."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.support.api import assert_error
from tests.support.server import ADMIN_KEY, BOOTSTRAP_KEY, DEV_KEY, ServiceProcess, new_tenant_key, run_cli


def _tenant(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _key_ids(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {k["id"] for k in response.json()["data"]["keys"]}


def test_an_admin_manages_the_keys_of_its_own_tenant_only(service: ServiceProcess, admin: httpx.Client) -> None:
    tenant_a, tenant_b = _tenant("ra"), _tenant("rb")
    admin_a = new_tenant_key(admin, tenant_a, role="admin")
    victim = admin.post("/v1/admin/keys", json={"tenant": tenant_b, "role": "user"}).json()["data"]
    with service.client(admin_a) as a, service.client(victim["key"]) as b_user:
        # Another tenant: no creating, listing or revoking its keys.
        assert_error(a.post("/v1/admin/keys", json={"tenant": tenant_b, "role": "user"}), 403, "FORBIDDEN")
        assert_error(a.post("/v1/admin/keys", json={"tenant": tenant_b, "role": "admin"}), 403, "FORBIDDEN")
        assert_error(a.get("/v1/admin/keys", params={"tenant": tenant_b}), 403, "FORBIDDEN")
        assert_error(a.delete(f"/v1/admin/keys/{victim['id']}"), 404, "NOT_FOUND")
        assert b_user.get("/status").status_code == 200  # still works
        assert victim["id"] not in _key_ids(a.get("/v1/admin/keys"))
        # Its own tenant: create, list, revoke.
        created = a.post("/v1/admin/keys", json={"tenant": tenant_a, "role": "user"})
        assert created.status_code == 201, created.text
        own = created.json()["data"]
        listed = a.get("/v1/admin/keys").json()["data"]["keys"]
        assert own["id"] in {k["id"] for k in listed}
        assert {k["tenant"] for k in listed} == {tenant_a}
        assert a.delete(f"/v1/admin/keys/{own['id']}").status_code == 200
        # No operator keys from an admin, not even for its own tenant.
        assert_error(a.post("/v1/admin/keys", json={"tenant": tenant_a, "role": "operator"}), 403, "FORBIDDEN")
        # Metrics stay readable by admins (service-wide aggregates, no tenant labels).
        assert a.get("/v1/metrics").status_code == 200
    # An operator (the development admin key) reaches every tenant.
    assert victim["id"] in _key_ids(admin.get("/v1/admin/keys", params={"tenant": tenant_b}))
    assert admin.delete(f"/v1/admin/keys/{victim['id']}").status_code == 200


def test_operator_keys_come_from_the_command_line_or_the_bootstrap_key(service: ServiceProcess) -> None:
    tenant = _tenant("op")
    created = run_cli(service.data_dir, "keys", "create", "--tenant", "ops", "--role", "operator", "--json")
    assert created.returncode == 0, created.stderr
    operator_key = json.loads(created.stdout)["key"]
    with service.client(operator_key) as operator:
        made = operator.post("/v1/admin/keys", json={"tenant": tenant, "role": "admin"})
        assert made.status_code == 201, made.text
        assert made.json()["data"]["tenant"] == tenant
        assert made.json()["data"]["id"] in _key_ids(operator.get("/v1/admin/keys", params={"tenant": tenant}))
        # An operator key does not mint more operator keys over HTTP: only the bootstrap key does.
        assert_error(operator.post("/v1/admin/keys", json={"tenant": tenant, "role": "operator"}), 403, "FORBIDDEN")
        assert operator.get("/v1/metrics").status_code == 200
    with service.client(BOOTSTRAP_KEY) as bootstrap:
        minted = bootstrap.post("/v1/admin/keys", json={"tenant": tenant, "role": "operator"})
        assert minted.status_code == 201, minted.text
        assert minted.json()["data"]["role"] == "operator"
    # Admins never see operator keys, even in the operator key's own tenant.
    admin_of_ops = run_cli(service.data_dir, "keys", "create", "--tenant", "ops", "--role", "admin", "--json")
    assert admin_of_ops.returncode == 0, admin_of_ops.stderr
    with service.client(json.loads(admin_of_ops.stdout)["key"]) as ops_admin:
        assert json.loads(created.stdout)["id"] not in _key_ids(ops_admin.get("/v1/admin/keys"))
        assert_error(ops_admin.delete(f"/v1/admin/keys/{json.loads(created.stdout)['id']}"), 404, "NOT_FOUND")


def test_user_keys_read_neither_keys_nor_metrics(service: ServiceProcess) -> None:
    with service.client(DEV_KEY) as user:
        assert_error(user.get("/v1/metrics"), 403, "FORBIDDEN")
        assert_error(user.get("/v1/admin/keys"), 403, "FORBIDDEN")
    with service.client(ADMIN_KEY) as operator:
        assert operator.get("/v1/metrics").status_code == 200

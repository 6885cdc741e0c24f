"""Webhooks through the mem0 Platform dialect, driven by mem0's own clients (PyPI mem0ai 2.2.1,
sync and async; npm mem0ai 3.3.1), delivered to a real receiver on loopback that verifies every
signature with `standardwebhooks`.

The clients' `get_webhooks`, `create_webhook`, `update_webhook` and `delete_webhook` manage the
same webhooks as `/v1/webhooks` (admin keys, the tenant's own), with the Platform's event names;
the deliveries carry the Platform's body (`{"event_details": ...}`). One service for the module,
with private targets allowed (the receiver is on loopback: the SSRF guard refuses it otherwise)
and a short poll interval; every test works in tenants of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mem0 import AsyncMemoryClient, MemoryClient
from mem0.exceptions import AuthenticationError, MemoryNotFoundError, ValidationError
from standardwebhooks import Webhook

from tests.compat.test_js_client import JS_DIR, ensure_node_modules, tap_count
from tests.support.server import ADMIN_KEY, ServiceProcess, new_tenant_key
from tests.support.webhooks import Received, Receiver

ENV = {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOK_POLL_INTERVAL": "0.2",
    "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "RATE_LIMIT_PER_MINUTE": "1000000",
    "RATE_LIMIT_BURST": "1000000",
}
JS_SUITE = JS_DIR / "webhooks.test.mjs"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(tmp_path_factory.mktemp("compat-webhooks"), ENV).start(timeout=240.0)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rx = Receiver().start()
    yield rx
    rx.stop()


@dataclass
class Tenant:
    name: str
    admin_key: str
    user_key: str


def new_tenant(service: ServiceProcess) -> Tenant:
    name = f"cw-{uuid.uuid4().hex[:10]}"
    with service.client(ADMIN_KEY) as root:
        return Tenant(name, new_tenant_key(root, name, role="admin"), new_tenant_key(root, name))


@pytest.fixture
def tenant(service: ServiceProcess) -> Tenant:
    return new_tenant(service)


@contextmanager
def clients(service: ServiceProcess, *keys: str) -> Iterator[list[MemoryClient]]:
    """mem0's sync clients for the keys (each pings at construction), closed afterwards."""
    made = [MemoryClient(api_key=key, host=service.url) for key in keys]
    try:
        yield made
    finally:
        for client in made:
            client.client.close()


def platform_body(received: Received) -> dict[str, Any]:
    details: dict[str, Any] = received.body["event_details"]
    return details


def wait_for_event(receiver: Receiver, hook: str, memory_id: str, event: str) -> Received:
    """The delivery of `event` (ADD, UPDATE, DELETE) of `memory_id` to the hook's path."""

    def matching(items: list[Received]) -> list[Received]:
        return [r for r in items if platform_body(r).get("id") == memory_id and platform_body(r).get("event") == event]

    found = receiver.wait_for(hook, lambda items: bool(matching(items)), timeout=60.0, what=f"{event} of {memory_id}")
    return matching(found)[0]


def add_one(client: MemoryClient, text: str, user_id: str = "ada") -> str:
    added = client.add([{"role": "user", "content": text}], user_id=user_id, infer=False)
    assert [r["event"] for r in added["results"]] == ["ADD"], added
    return str(added["results"][0]["id"])


def test_the_python_clients_webhook_methods_manage_and_receive_platform_events(
    service: ServiceProcess, receiver: Receiver, tenant: Tenant
) -> None:
    with clients(service, tenant.admin_key, tenant.user_key) as (admin, user):
        assert admin.project_id == tenant.name  # from the ping: the key's tenant is its project
        assert admin.get_webhooks(project_id=admin.project_id) == []

        created = admin.create_webhook(
            url=receiver.url("py"),
            name="crm sync",
            project_id=admin.project_id,
            event_types=["memory_add", "memory:delete"],
        )
        assert (created["name"], created["url"], created["project"], created["is_active"]) == (
            "crm sync",
            receiver.url("py"),
            tenant.name,
            True,
        )
        assert created["event_types"] == ["memory:add", "memory:delete"]
        assert created["secret"].startswith("whsec_")
        receiver.trust("py", created["secret"])
        hook_id = created["webhook_id"]
        listed = admin.get_webhooks(project_id=admin.project_id)
        assert [(h["webhook_id"], h["name"], h["event_types"]) for h in listed] == [
            (hook_id, "crm sync", ["memory:add", "memory:delete"])
        ]
        assert "secret" not in listed[0]  # shown once, at creation

        text = f"Ada keeps bees ({uuid.uuid4().hex[:6]})"
        first = add_one(user, text)
        added = wait_for_event(receiver, "py", first, "ADD")
        assert added.verified == {created["secret"]: True}
        assert platform_body(added) == {"id": first, "event": "ADD", "data": {"memory": text}}

        user.delete(first)
        deleted = wait_for_event(receiver, "py", first, "DELETE")
        assert deleted.verified == {created["secret"]: True}

        changed = admin.update_webhook(hook_id, name="updates only", event_types=["memory_update"])
        assert (changed["webhook_id"], changed["name"], changed["event_types"]) == (
            hook_id,
            "updates only",
            ["memory:update"],
        )
        assert changed["message"] == "Webhook updated successfully"
        second = add_one(user, "Ada moved to Lisbon")  # not subscribed any more: no ADD
        user.update(second, text="Ada moved to Porto")
        updated = wait_for_event(receiver, "py", second, "UPDATE")
        assert platform_body(updated)["data"] == {"memory": "Ada moved to Porto"}
        assert updated.verified == {created["secret"]: True}
        # Events are enqueued in order and delivered oldest first: the add came before the update.
        assert not [
            r
            for r in receiver.delivered("py")
            if platform_body(r).get("id") == second and platform_body(r)["event"] == "ADD"
        ]

        assert admin.delete_webhook(hook_id) == {"message": "Webhook deleted successfully"}
        assert admin.get_webhooks(project_id=admin.project_id) == []


def test_webhooks_are_the_admins_of_one_tenant_and_platform_only_events_are_refused(
    service: ServiceProcess, receiver: Receiver, tenant: Tenant
) -> None:
    other = new_tenant(service)
    with clients(service, tenant.admin_key, tenant.user_key, other.admin_key) as (admin, user, stranger):
        hook = admin.create_webhook(
            url=receiver.url("scoped"), name="mine", project_id=tenant.name, event_types=["memory_add"]
        )
        with pytest.raises(AuthenticationError):  # 403: a user key manages no webhooks
            user.get_webhooks(project_id=tenant.name)
        with pytest.raises(AuthenticationError):
            user.create_webhook(url=receiver.url("u"), name="u", project_id=tenant.name, event_types=["memory_add"])
        with pytest.raises(MemoryNotFoundError):  # another tenant's project: not found, like an unknown one
            stranger.get_webhooks(project_id=tenant.name)
        with pytest.raises(MemoryNotFoundError):
            stranger.update_webhook(hook["webhook_id"], name="taken over")
        with pytest.raises(MemoryNotFoundError):
            stranger.delete_webhook(hook["webhook_id"])
        assert stranger.get_webhooks(project_id=other.name) == []
        with pytest.raises(ValidationError, match="memory_categorize"):  # categories are a Platform feature
            admin.create_webhook(
                url=receiver.url("c"), name="c", project_id=tenant.name, event_types=["memory_categorize"]
            )
        with pytest.raises(ValidationError):  # the SSRF guard still applies: only private targets are allowed here
            admin.create_webhook(url="file:///etc/passwd", name="f", project_id=tenant.name, event_types=["memory_add"])
        assert [h["name"] for h in admin.get_webhooks(project_id=tenant.name)] == ["mine"]  # untouched


def test_the_async_clients_webhook_methods(service: ServiceProcess, receiver: Receiver, tenant: Tenant) -> None:
    async def scenario() -> tuple[dict[str, Any], str]:
        async with (
            AsyncMemoryClient(api_key=tenant.admin_key, host=service.url) as admin,
            AsyncMemoryClient(api_key=tenant.user_key, host=service.url) as user,
        ):
            hook = await admin.create_webhook(
                url=receiver.url("async"), name="async", project_id=tenant.name, event_types=["memory_add"]
            )
            receiver.trust("async", hook["secret"])
            assert [h["webhook_id"] for h in await admin.get_webhooks(project_id=tenant.name)] == [hook["webhook_id"]]
            renamed = await admin.update_webhook(hook["webhook_id"], name="async renamed")
            assert (renamed["name"], renamed["event_types"]) == ("async renamed", ["memory:add"])
            added = await user.add([{"role": "user", "content": "Bo plays the cello"}], user_id="bo", infer=False)
            memory_id = str(added["results"][0]["id"])
            await asyncio.to_thread(wait_for_event, receiver, "async", memory_id, "ADD")
            assert await admin.delete_webhook(hook["webhook_id"]) == {"message": "Webhook deleted successfully"}
            assert await admin.get_webhooks(project_id=tenant.name) == []
            return hook, memory_id

    hook, memory_id = asyncio.run(scenario())
    delivered = wait_for_event(receiver, "async", memory_id, "ADD")
    assert delivered.verified == {hook["secret"]: True}


def test_the_npm_clients_webhook_methods(
    service: ServiceProcess, receiver: Receiver, tenant: Tenant, tmp_path: Path
) -> None:
    """The Node suite manages the webhooks and adds a memory; it prints what it created, and the
    delivery is checked here against the secret the npm client was shown."""
    ensure_node_modules()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "MEM0_TELEMETRY": "false",
        "COMPAT_URL": service.url,
        "COMPAT_TENANT": tenant.name,
        "COMPAT_ADMIN_KEY": tenant.admin_key,
        "COMPAT_USER_KEY": tenant.user_key,
        "COMPAT_HOOK_URL": receiver.url("js"),
    }
    result = subprocess.run(
        ["node", "--test", "--test-reporter=tap", JS_SUITE.name],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    declared = len(re.findall(r"^test\(", JS_SUITE.read_text(), re.MULTILINE))
    assert (result.returncode, tap_count(output, "fail")) == (0, 0), output[-6000:]
    assert tap_count(output, "pass") == declared >= 2, output[-6000:]
    match = re.search(r"CREATED (\{.*\})$", output, re.MULTILINE)  # the runner prefixes it with "# "
    assert match, output[-4000:]
    created = json.loads(match.group(1))
    delivered = wait_for_event(receiver, "js", created["memoryId"], "ADD")
    Webhook(created["secret"]).verify(delivered.raw, delivered.headers)  # raises unless signed with it
    assert platform_body(delivered)["data"] == {"memory": created["text"]}
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Token {tenant.admin_key}"}) as http:
        remaining = http.get(f"/api/v1/webhooks/projects/{tenant.name}/").json()
    assert [(h["webhook_id"], h["name"]) for h in remaining] == [(created["webhookId"], "js renamed")]

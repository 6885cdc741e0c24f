"""Webhooks against a real receiver on loopback that verifies every signature with `standardwebhooks`.

One service for the module (private targets allowed, as receivers here are on loopback; retry
timings in fractions of a second so outages, retries and the end of the retry period fit in
seconds). Every test works in a tenant of its own, with an admin key (webhooks) and a user key
(memories). What is checked: management and its scoping, each event type's body, that every
request verifies, subscriptions, disabled and deleted webhooks, an outage of the receiver (500s,
then refused connections) losing nothing, the dead state and redelivery, secret rotation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.api import add_memory, assert_error
from tests.support.server import ADMIN_KEY, ServiceProcess, new_tenant_key
from tests.support.webhooks import Received, Receiver

RETRY_PERIOD = 10.0
MAX_RETRY_DELAY = 1.0
WEBHOOK_TIMEOUT = 2.0
ENV = {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "WEBHOOK_RETRY_MAX_SECONDS": f"{MAX_RETRY_DELAY:g}",
    "WEBHOOK_RETRY_PERIOD_SECONDS": f"{RETRY_PERIOD:g}",
    "WEBHOOK_TIMEOUT": f"{WEBHOOK_TIMEOUT:g}",
    "WEBHOOK_POLL_INTERVAL": "0.2",
    "WEBHOOK_MAX_PER_TENANT": "3",
    "RATE_LIMIT_PER_MINUTE": "1000000",
    "RATE_LIMIT_BURST": "1000000",
}
ALL_TYPES = ["memory.created", "memory.updated", "memory.deleted", "user.erased", "job.completed", "job.failed"]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(tmp_path_factory.mktemp("webhooks"), ENV).start(timeout=240.0)  # busy machines start slowly
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rx = Receiver().start()
    yield rx
    rx.stop()


@pytest.fixture(autouse=True)
def _receiver_answers(receiver: Receiver) -> Iterator[None]:
    yield
    receiver.status, receiver.statuses, receiver.answer_body = 200, {}, "ok"
    if not receiver.running:
        receiver.start()


@dataclass
class Tenant:
    name: str
    admin: httpx.Client
    user: httpx.Client
    keys: tuple[str, str]


@pytest.fixture
def tenant(service: ServiceProcess) -> Iterator[Tenant]:
    name = f"wh-{uuid.uuid4().hex[:10]}"
    with service.client(ADMIN_KEY) as root:
        admin_key = new_tenant_key(root, name, role="admin")
        user_key = new_tenant_key(root, name)
    with service.client(admin_key) as admin, service.client(user_key) as user:
        yield Tenant(name, admin, user, (admin_key, user_key))


def create(tenant: Tenant, receiver: Receiver, name: str, **fields: Any) -> dict[str, Any]:
    """A webhook posting to the receiver's /hooks/<name>; the receiver learns its secret."""
    response = tenant.admin.post("/v1/webhooks", json={"url": receiver.url(name), **fields})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True
    hook = body["data"]
    receiver.trust(name, hook["secret"])
    return dict(hook)


def verified(items: list[Received]) -> list[Received]:
    """Every request verifies with every secret the receiver holds for its path."""
    for item in items:
        assert item.verified, f"no secret to verify {item.path} with"
        assert all(item.verified.values()), f"signature did not verify: {item.headers}"
    return items


def events(receiver: Receiver, name: str) -> dict[str, dict[str, Any]]:
    """Delivered bodies by event id; a repeated id must carry the same body (at least once)."""
    seen: dict[str, dict[str, Any]] = {}
    for item in verified(receiver.delivered(name)):
        body = item.body
        assert body["id"] == item.event_id, "the webhook-id header is the event id"
        if item.event_id in seen:
            assert seen[item.event_id] == body, "a duplicate must be the same event"
        seen[item.event_id] = body
    return seen


def by_type(bodies: dict[str, dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [b for b in bodies.values() if b["type"] == type_]


def wait_events(receiver: Receiver, name: str, count: int, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = events(receiver, name)
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{len(found)} of {count} events arrived at {name}: {found}"
        time.sleep(0.05)


def wait_until(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def deliveries(tenant: Tenant, hook_id: str, **params: Any) -> list[dict[str, Any]]:
    response = tenant.admin.get(f"/v1/webhooks/{hook_id}/deliveries", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["deliveries"])


def wait_delivery_state(tenant: Tenant, hook_id: str, state: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = deliveries(tenant, hook_id)
        if found and all(d["state"] == state for d in found):
            return found[0]
        assert time.monotonic() < deadline, f"deliveries not {state}: {found}"
        time.sleep(0.1)


# -- management -----------------------------------------------------------------------------------


def test_create_read_change_delete(tenant: Tenant, receiver: Receiver) -> None:
    hook = create(tenant, receiver, "crud", description="sync", event_types=["memory.created", "memory.deleted"])
    assert hook["secret"].startswith("whsec_")
    assert len(hook["secret"]) > 40
    assert hook["event_types"] == ["memory.created", "memory.deleted"]
    assert hook["enabled"] is True
    assert hook["format"] == "standard"
    assert hook["description"] == "sync"
    assert hook["created_at"].endswith("Z")

    got = tenant.admin.get(f"/v1/webhooks/{hook['id']}").json()["data"]
    assert "secret" not in got, "the secret is shown once, at creation"
    listed = tenant.admin.get("/v1/webhooks").json()["data"]
    assert listed["count"] == 1
    assert [w["id"] for w in listed["webhooks"]] == [hook["id"]]
    assert "secret" not in listed["webhooks"][0]

    changed = tenant.admin.patch(
        f"/v1/webhooks/{hook['id']}", json={"enabled": False, "event_types": ["user.erased"], "description": None}
    )
    assert changed.status_code == 200, changed.text
    data = changed.json()["data"]
    assert (data["enabled"], data["event_types"], data["description"]) == (False, ["user.erased"], None)
    assert data["url"] == hook["url"]
    assert tenant.admin.get(f"/v1/webhooks/{hook['id']}").json()["data"]["enabled"] is False

    deleted = tenant.admin.delete(f"/v1/webhooks/{hook['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["data"] == {"id": hook["id"], "deleted": True}
    assert_error(tenant.admin.get(f"/v1/webhooks/{hook['id']}"), 404, "NOT_FOUND")
    assert_error(tenant.admin.delete(f"/v1/webhooks/{hook['id']}"), 404, "NOT_FOUND")
    assert tenant.admin.get("/v1/webhooks").json()["data"]["count"] == 0


def test_bad_input_is_a_400(tenant: Tenant, receiver: Receiver) -> None:
    url = receiver.url("bad")
    for body in (
        {"url": url, "event_types": ["memory.exploded"]},
        {"url": url, "event_types": []},
        {"url": url, "surprise": True},
        {"url": "ftp://example.com/hook"},
        {"url": "not a url"},
        {"url": "http://user:pw@127.0.0.1/hook"},
        {"url": url, "description": "x" * 501},
        {"url": url, "format": "xml"},
        {},
    ):
        assert_error(tenant.admin.post("/v1/webhooks", json=body), 400, "INVALID_REQUEST")
    hook = create(tenant, receiver, "bad")
    assert_error(tenant.admin.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": "maybe"}), 400, "INVALID_REQUEST")
    assert_error(tenant.admin.get(f"/v1/webhooks/{hook['id']}/deliveries?cursor=garbage"), 400, "INVALID_REQUEST")
    assert_error(tenant.admin.get(f"/v1/webhooks/{hook['id']}/deliveries?state=lost"), 400, "INVALID_REQUEST")
    assert_error(
        tenant.admin.post(f"/v1/webhooks/{hook['id']}/rotate-secret", json={"overlap_seconds": -1}),
        400,
        "INVALID_REQUEST",
    )


def test_webhooks_per_tenant_are_limited(tenant: Tenant, receiver: Receiver) -> None:
    for n in range(3):  # WEBHOOK_MAX_PER_TENANT
        create(tenant, receiver, f"limit-{n}")
    error = assert_error(
        tenant.admin.post("/v1/webhooks", json={"url": receiver.url("limit-3")}), 400, "INVALID_REQUEST"
    )
    assert error["details"]["limit"] == 3


def test_user_keys_are_refused_and_tenants_see_only_their_own(
    tenant: Tenant, receiver: Receiver, service: ServiceProcess
) -> None:
    hook = create(tenant, receiver, "scoped")
    base = f"/v1/webhooks/{hook['id']}"
    delivery = tenant.admin.post(f"{base}/test").json()["data"]["id"]
    calls = [
        ("GET", "/v1/webhooks", None),
        ("POST", "/v1/webhooks", {"url": receiver.url("scoped-2")}),
        ("GET", base, None),
        ("PATCH", base, {"enabled": False}),
        ("DELETE", base, None),
        ("POST", f"{base}/test", None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/deliveries/{delivery}/redeliver", None),
        ("POST", f"{base}/rotate-secret", {}),
    ]
    for method, path, body in calls:
        assert_error(tenant.user.request(method, path, json=body), 403, "FORBIDDEN")
    with service.client(ADMIN_KEY) as root:
        other_admin = new_tenant_key(root, f"other-{uuid.uuid4().hex[:8]}", role="admin")
    with service.client(other_admin) as other:
        assert other.get("/v1/webhooks").json()["data"]["count"] == 0
        for method, path, body in calls[2:]:
            assert_error(other.request(method, path, json=body), 404, "NOT_FOUND")
    assert tenant.admin.get(base).json()["data"]["enabled"] is True, "nothing the others tried changed it"
    assert_error(tenant.admin.get("/v1/webhooks/not-a-uuid"), 404, "NOT_FOUND")


# -- events -------------------------------------------------------------------------------------


def test_each_event_type_arrives_signed_with_its_body(tenant: Tenant, receiver: Receiver) -> None:
    create(tenant, receiver, "bodies")
    response = tenant.user.post(
        "/v1/memories",
        json={
            "messages": [{"role": "user", "content": "I love FastAPI"}, {"role": "user", "content": "I live in Oslo"}],
            "user_id": "alice",
            "metadata": {"source": "chat"},
        },
    )
    assert response.status_code == 201, response.text
    first, second = response.json()["data"]["memories"]
    updated = tenant.user.put(f"/v1/memories/{first['id']}", json={"content": "I love FastAPI and Litestar"})
    assert updated.status_code == 200, updated.text
    assert tenant.user.delete(f"/v1/memories/{second['id']}").status_code == 200
    kept = add_memory(tenant.user, "Bob likes tea", user_id="bob")
    assert tenant.user.delete("/v1/memories/user/bob").json()["data"]["deleted_count"] == 1
    queued = tenant.user.post(
        "/v1/memories",
        params={"async": "true"},
        json={"messages": [{"role": "user", "content": "Async note"}], "user_id": "carol"},
    )
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["data"]["job_id"]

    bodies = wait_events(receiver, "bodies", 8)  # created 4 (alice 2, bob, carol's job), updated, deleted, erased, job
    assert len(bodies) == 8, [b["type"] for b in bodies.values()]
    for body in bodies.values():
        assert list(body) == ["id", "type", "timestamp", "tenant", "user_id", "data"]
        assert body["tenant"] == tenant.name
        assert body["timestamp"].endswith("Z")
        uuid.UUID(body["id"])
    raw = b"".join(r.raw for r in receiver.received("bodies"))
    for secret in (*tenant.keys, ADMIN_KEY, receiver.secrets[receiver.path("bodies")][0], "whsec_"):
        assert secret.encode() not in raw, "no key or secret in any body"

    created = {b["data"]["memory"]["id"]: b for b in by_type(bodies, "memory.created")}
    assert set(created) >= {first["id"], second["id"], kept["id"]}
    assert created[first["id"]]["data"]["memory"] == first, "the memory as the add returned it"
    assert created[second["id"]]["data"]["memory"] == second
    assert created[kept["id"]]["user_id"] == "bob"
    (update,) = by_type(bodies, "memory.updated")
    assert update["user_id"] == "alice"
    assert update["data"]["memory"] == updated.json()["data"], "the memory as the update returned it"
    (deletion,) = by_type(bodies, "memory.deleted")
    assert (deletion["user_id"], deletion["data"]) == ("alice", {"memory_id": second["id"]})
    (erasure,) = by_type(bodies, "user.erased")
    assert (erasure["user_id"], erasure["data"]) == ("bob", {"deleted_count": 1})
    (job,) = by_type(bodies, "job.completed")
    assert job["user_id"] == "carol"
    assert job["data"]["job_id"] == job_id
    assert job["data"]["state"] == "succeeded"
    (async_memory,) = job["data"]["result"]["memories"]
    assert created[async_memory["id"]]["data"]["memory"] == async_memory
    assert tenant.user.get(f"/v1/jobs/{job_id}").json()["data"]["result"]["memories"] == [async_memory]


def test_subscriptions_disabled_and_deleted_webhooks(tenant: Tenant, receiver: Receiver) -> None:
    only_deletes = create(tenant, receiver, "deletes", event_types=["memory.deleted"])
    paused = create(tenant, receiver, "paused")
    doomed = create(tenant, receiver, "doomed")
    receiver.statuses[receiver.path("doomed")] = 500  # its first event stays pending, retrying
    memory = add_memory(tenant.user, "first note", user_id="dora")
    wait_delivery_state(tenant, paused["id"], "succeeded")
    assert tenant.admin.patch(f"/v1/webhooks/{paused['id']}", json={"enabled": False}).status_code == 200
    wait_until(lambda: bool(receiver.received("doomed")), "the doomed webhook to be tried")
    assert tenant.admin.delete(f"/v1/webhooks/{doomed['id']}").status_code == 200
    time.sleep(WEBHOOK_TIMEOUT)  # an attempt already under way when it was deleted ends within its timeout
    receiver.statuses.pop(receiver.path("doomed"))
    received_by_doomed = len(receiver.received("doomed"))

    assert tenant.user.delete(f"/v1/memories/{memory['id']}").status_code == 200
    (deletion,) = wait_events(receiver, "deletes", 1).values()
    assert deletion["data"] == {"memory_id": memory["id"]}
    assert [d["event_type"] for d in deliveries(tenant, paused["id"])] == ["memory.created"], "disabled: no new event"
    assert_error(tenant.admin.get(f"/v1/webhooks/{doomed['id']}/deliveries"), 404, "NOT_FOUND")
    time.sleep(MAX_RETRY_DELAY + 1.0)  # longer than any retry of the doomed webhook's delivery would wait
    assert len(receiver.received("doomed")) == received_by_doomed, "a deleted webhook receives nothing more"
    assert [b["type"] for b in events(receiver, "paused").values()] == ["memory.created"]
    assert [b["type"] for b in events(receiver, "deletes").values()] == ["memory.deleted"]
    assert [d["event_type"] for d in deliveries(tenant, only_deletes["id"])] == ["memory.deleted"]


def test_receiver_outage_loses_nothing(tenant: Tenant, receiver: Receiver) -> None:
    """500s, then refused connections, then up again: every change arrives, duplicates share an id."""
    hook = create(tenant, receiver, "outage")
    receiver.statuses[receiver.path("outage")] = 500
    expected: set[tuple[str, str]] = set()
    for n in range(6):
        memory = add_memory(tenant.user, f"note {n} during the 500s", user_id="erin")
        expected.add(("memory.created", memory["id"]))
        if n % 2:
            assert tenant.user.delete(f"/v1/memories/{memory['id']}").status_code == 200
            expected.add(("memory.deleted", memory["id"]))
    wait_until(lambda: len({r.event_id for r in receiver.received("outage")}) >= 3, "attempts answered 500")
    receiver.stop()  # connections refused from now on
    for n in range(6):
        memory = add_memory(tenant.user, f"note {n} while refused", user_id="erin")
        expected.add(("memory.created", memory["id"]))
        updated = tenant.user.put(f"/v1/memories/{memory['id']}", json={"metadata": {"n": n}})
        assert updated.status_code == 200
        expected.add(("memory.updated", memory["id"]))
    time.sleep(1.5)  # attempts against the closed port fail and are rescheduled
    failing = deliveries(tenant, hook["id"])
    assert all(d["state"] == "pending" for d in failing)
    assert any(d["last_error"] and d["last_status_code"] is None for d in failing), "refused connections recorded"
    receiver.statuses.pop(receiver.path("outage"))
    receiver.start()

    bodies = wait_events(receiver, "outage", len(expected))
    arrived = set()
    for body in bodies.values():
        data = body["data"]
        arrived.add((body["type"], data["memory"]["id"] if "memory" in data else data["memory_id"]))
    assert arrived == expected, "each change exactly one event id, none lost"
    assert len(bodies) == len(expected)
    verified(receiver.received("outage"))  # the refused (500) attempts were signed too
    retried = {r.event_id for r in receiver.received("outage") if r.answered == 500}
    assert retried
    assert retried <= set(bodies), "a retry carries the id of the event it retries"
    done = wait_delivery_state(tenant, hook["id"], "succeeded")
    assert done["last_status_code"] == 200
    assert max(d["attempts"] for d in deliveries(tenant, hook["id"])) > 1


def test_dead_after_the_retry_period_then_redelivered(tenant: Tenant, receiver: Receiver) -> None:
    hook = create(tenant, receiver, "dead")
    receiver.statuses[receiver.path("dead")] = 500
    receiver.answer_body = "no thanks " * 100
    memory = add_memory(tenant.user, "a note nobody accepts", user_id="fay")
    dead = wait_delivery_state(tenant, hook["id"], "dead", timeout=RETRY_PERIOD + 20)
    assert dead["attempts"] > 2
    assert dead["last_status_code"] == 500
    assert dead["last_error"] == "HTTP 500"
    assert dead["next_attempt_at"] is None
    assert dead["finished_at"].endswith("Z")
    assert dead["last_response_excerpt"].startswith("no thanks")
    assert len(dead["last_response_excerpt"]) <= 200, "only an excerpt of the answer is kept"
    assert [d["id"] for d in deliveries(tenant, hook["id"], state="dead")] == [dead["id"]]
    assert deliveries(tenant, hook["id"], state="pending") == []
    tried = {r.event_id for r in receiver.received("dead")}
    assert tried == {dead["event_id"]}

    receiver.statuses.pop(receiver.path("dead"))
    again = tenant.admin.post(f"/v1/webhooks/{hook['id']}/deliveries/{dead['id']}/redeliver")
    assert again.status_code == 202, again.text
    assert again.json()["data"]["state"] == "pending"
    (body,) = wait_events(receiver, "dead", 1).values()
    assert body["id"] == dead["event_id"]
    assert body["data"]["memory"]["id"] == memory["id"]
    assert wait_delivery_state(tenant, hook["id"], "succeeded")["last_status_code"] == 200
    assert_error(tenant.admin.post(f"/v1/webhooks/{hook['id']}/deliveries/{uuid.uuid4()}/redeliver"), 404, "NOT_FOUND")


def test_secret_rotation_keeps_both_secrets_valid_during_the_overlap(tenant: Tenant, receiver: Receiver) -> None:
    hook = create(tenant, receiver, "rotate")
    old = hook["secret"]
    rotated = tenant.admin.post(f"/v1/webhooks/{hook['id']}/rotate-secret", json={"overlap_seconds": 3600})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["data"]["secret"]
    assert new.startswith("whsec_")
    assert new != old
    assert rotated.json()["data"]["webhook"]["previous_secret_expires_at"].endswith("Z")
    receiver.trust("rotate", old, new)
    add_memory(tenant.user, "signed twice", user_id="gus")
    (item,) = receiver.wait_for("rotate", lambda items: len(items) == 1)
    assert item.verified == {old: True, new: True}, "each secret alone verifies the delivery"
    assert len(item.headers["webhook-signature"].split(" ")) == 2

    newest = tenant.admin.post(f"/v1/webhooks/{hook['id']}/rotate-secret", json={"overlap_seconds": 0})
    newest_secret = newest.json()["data"]["secret"]
    assert newest.json()["data"]["webhook"]["previous_secret_expires_at"] is None
    receiver.trust("rotate", newest_secret, new, old)
    add_memory(tenant.user, "signed once", user_id="gus")
    second = receiver.wait_for("rotate", lambda items: len(items) == 2)[1]
    assert second.verified == {newest_secret: True, new: False, old: False}, "no overlap: only the newest verifies"


def test_test_delivery_and_the_deliveries_list(tenant: Tenant, receiver: Receiver) -> None:
    hook = create(tenant, receiver, "ping", event_types=["job.failed"])
    queued = tenant.admin.post(f"/v1/webhooks/{hook['id']}/test")
    assert queued.status_code == 202, queued.text
    delivery = queued.json()["data"]
    assert (delivery["state"], delivery["event_type"], delivery["attempts"]) == ("pending", "webhook.test", 0)
    (body,) = wait_events(receiver, "ping", 1).values()
    assert body["type"] == "webhook.test"
    assert body["id"] == delivery["event_id"]
    assert body["data"]["webhook_id"] == hook["id"]
    assert body["tenant"] == tenant.name
    done = wait_delivery_state(tenant, hook["id"], "succeeded")
    assert done["attempts"] == 1
    assert done["last_status_code"] == 200
    assert done["last_duration_ms"] > 0
    assert done["last_response_excerpt"] == "ok"
    assert done["last_error"] is None

    for _ in range(2):
        tenant.admin.post(f"/v1/webhooks/{hook['id']}/test")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = tenant.admin.get(f"/v1/webhooks/{hook['id']}/deliveries", params=params).json()["data"]
        seen += [d["id"] for d in page["deliveries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 3
    assert seen[-1] == delivery["id"], "newest first"

"""Webhook delivery across processes: two gunicorn workers share the work without sending an event
twice, and a service killed with deliveries pending sends them after its restart.

The service runs as in production (`serve --workers 2`, a real Redis for the rate limits), on
the embedded Postgres; the receiver is the verifying loopback receiver of tests/support/webhooks.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.api import add_memory
from tests.support.redis import RedisServer
from tests.support.server import ADMIN_KEY, ServiceProcess, new_tenant_key
from tests.support.webhooks import Receiver

pytestmark = [pytest.mark.redis, pytest.mark.slow]
START_TIMEOUT = 240.0  # two workers each load the embedder; a busy shared machine takes its time


@dataclass
class Stack:
    data_dir: Path
    env: dict[str, str]
    service: ServiceProcess
    receiver: Receiver

    def restart(self) -> None:
        self.service = ServiceProcess(self.data_dir, self.env, workers=2)  # stopped at teardown even if start fails
        self.service.start(timeout=START_TIMEOUT)


def stop_leftover_postgres(data_dir: Path) -> None:
    """The embedded Postgres outlives a SIGKILL of the service (it is not in the service's process
    group), and a service that found it running does not stop it: stop it here (fast shutdown)."""
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().splitlines()[0])
    try:  # only the postmaster of this data directory (a stale pid may be anyone's by now)
        if str(data_dir / "pgdata") not in " ".join(psutil.Process(pid).cmdline()):
            return
    except psutil.Error:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("webhooks-delivery")
    redis = RedisServer(root / "redis").start()
    env = {
        "RATE_LIMIT_STORAGE_URI": redis.url,
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "RATE_LIMIT_BURST": "1000000",
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "WEBHOOK_RETRY_MAX_SECONDS": "1",
        "WEBHOOK_TIMEOUT": "2",
        "WEBHOOK_POLL_INTERVAL": "0.2",
    }
    receiver = Receiver().start()
    ready = Stack(root / "service", env, ServiceProcess(root / "service", env, workers=2), receiver)
    try:
        ready.service.start(timeout=START_TIMEOUT)
        yield ready
    finally:
        ready.service.stop()
        stop_leftover_postgres(ready.data_dir)
        receiver.stop()
        redis.stop()


def keys(stack: Stack) -> tuple[str, str]:
    """(admin, user) keys of a new tenant."""
    tenant = f"wd-{uuid.uuid4().hex[:10]}"
    with stack.service.client(ADMIN_KEY) as root:
        return new_tenant_key(root, tenant, role="admin"), new_tenant_key(root, tenant)


def create(stack: Stack, admin_key: str, name: str) -> dict[str, Any]:
    with stack.service.client(admin_key) as admin:
        response = admin.post("/v1/webhooks", json={"url": stack.receiver.url(name), "event_types": ["memory.created"]})
    assert response.status_code == 201, response.text
    hook = response.json()["data"]
    stack.receiver.trust(name, hook["secret"])
    return dict(hook)


def add_many(stack: Stack, user_key: str, count: int, label: str) -> set[str]:
    """`count` adds from 4 concurrent clients (so both workers serve them); the memory ids."""

    def one(n: int) -> str:
        with stack.service.client(user_key) as client:
            return str(add_memory(client, f"{label} note {n}", user_id=f"user-{n % 3}")["id"])

    with ThreadPoolExecutor(4) as pool:
        return set(pool.map(one, range(count)))


def arrived(stack: Stack, name: str) -> dict[str, list[str]]:
    """Memory id -> event ids delivered for it (every request verified)."""
    found: dict[str, list[str]] = {}
    for item in stack.receiver.delivered(name):
        assert item.verified
        assert all(item.verified.values())
        found.setdefault(item.body["data"]["memory"]["id"], []).append(item.event_id)
    return found


def wait_arrived(stack: Stack, name: str, memory_ids: set[str], timeout: float = 60.0) -> dict[str, list[str]]:
    deadline = time.monotonic() + timeout
    while True:
        found = arrived(stack, name)
        if set(found) >= memory_ids:
            return found
        assert time.monotonic() < deadline, f"{len(set(found) & memory_ids)} of {len(memory_ids)} arrived"
        time.sleep(0.1)


def test_two_workers_deliver_each_event_once(stack: Stack) -> None:
    admin_key, user_key = keys(stack)
    create(stack, admin_key, "once")
    memory_ids = add_many(stack, user_key, 40, "once")
    wait_arrived(stack, "once", memory_ids)
    time.sleep(2.0)  # any second attempt (a re-claim, a retry) would have come by now
    found = arrived(stack, "once")
    assert set(found) == memory_ids
    per_event = Counter(item.event_id for item in stack.receiver.received("once"))
    assert len(per_event) == 40
    assert set(per_event.values()) == {1}, f"sent more than once: {[e for e, n in per_event.items() if n > 1]}"


def test_deliveries_pending_at_a_sigkill_are_sent_after_the_restart(stack: Stack) -> None:
    admin_key, user_key = keys(stack)
    hook = create(stack, admin_key, "crash")
    stack.receiver.stop()  # connections refused: every delivery stays pending
    memory_ids = add_many(stack, user_key, 12, "crash")
    deadline = time.monotonic() + 30
    with stack.service.client(admin_key) as admin:
        while True:
            found = admin.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"limit": 100}).json()["data"]
            pending = [d for d in found["deliveries"] if d["state"] == "pending" and d["attempts"] >= 1]
            if len(pending) == 12:
                break
            assert time.monotonic() < deadline, found
            time.sleep(0.1)
    stack.service.signal(signal.SIGKILL)  # the whole process group: no shutdown of any kind
    assert stack.service.process is not None
    stack.service.process.wait(10)
    stack.service.process = None
    stack.receiver.start()
    stack.restart()

    found = wait_arrived(stack, "crash", memory_ids)
    assert set(found) == memory_ids, "none lost"
    for memory_id, event_ids in found.items():
        assert len(set(event_ids)) == 1, f"{memory_id}: one event, however often it was sent"
    with stack.service.client(admin_key) as admin:
        done = admin.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"limit": 100}).json()["data"]["deliveries"]
    assert {d["state"] for d in done} == {"succeeded"}
    assert min(d["attempts"] for d in done) >= 2, "attempted before the kill, delivered after it"

"""What webhooks add to the cost of a write: adds with and without a subscribed webhook.

Two tenants on one service: one has a webhook subscribed to `memory.created` (a loopback
receiver that answers 200 at once), the other has none. Adds alternate between them request by
request, so machine load hits both alike; the figures are p50/p95 of the add (ms) for each, their
ratio, and the event lag (add answered -> event received, ms). `make bench` runs it on its service
(`webhooks` in its JSON); alone: `python bench/webhooks.py` (JSON on stdout).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import summary  # noqa: E402
from tests.support.server import ADMIN_KEY, ServiceProcess, new_tenant_key  # noqa: E402
from tests.support.webhooks import Receiver  # noqa: E402

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "200"))
ENV = {"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}  # the receiver is on loopback


def measure(url: str, samples: int = SAMPLES) -> dict[str, Any]:
    receiver = Receiver().start()
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as root:
            subscribed, plain = f"bench-wh-{uuid.uuid4().hex[:8]}", f"bench-plain-{uuid.uuid4().hex[:8]}"
            admin_key = new_tenant_key(root, subscribed, role="admin")
            keys = {"with_webhook": new_tenant_key(root, subscribed), "without_webhook": new_tenant_key(root, plain)}
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60) as admin:
            created = admin.post("/v1/webhooks", json={"url": receiver.url("bench"), "event_types": ["memory.created"]})
            assert created.status_code == 201, created.text
        clients = {
            name: httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            for name, key in keys.items()
        }
        times: dict[str, list[float]] = {name: [] for name in clients}
        answered: dict[str, float] = {}
        try:
            for i in range(samples):
                for name, client in clients.items():
                    body = {
                        "messages": [{"role": "user", "content": f"bench add {i} about hiking"}],
                        "user_id": "adder",
                    }
                    started = time.perf_counter()
                    response = client.post("/v1/memories", json=body)
                    times[name].append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 201, response.text
                    if name == "with_webhook":
                        answered[response.json()["data"]["memories"][0]["id"]] = time.monotonic()
        finally:
            for client in clients.values():
                client.close()
        deadline = time.monotonic() + 120
        while len(receiver.delivered("bench")) < samples and time.monotonic() < deadline:
            time.sleep(0.1)
        delivered = receiver.delivered("bench")
        lags = [(r.at - answered[r.body["data"]["memory"]["id"]]) * 1000 for r in delivered]
        with_hook, without = summary(times["with_webhook"]), summary(times["without_webhook"])
        return {
            "add_with_webhook": with_hook,
            "add_without_webhook": without,
            "ratio_p50": round(with_hook["p50_ms"] / without["p50_ms"], 3),
            "ratio_p95": round(with_hook["p95_ms"] / without["p95_ms"], 3),
            "events_delivered": len({r.event_id for r in delivered}),
            "event_lag": summary(lags) if lags else None,
        }
    finally:
        receiver.stop()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        env = {"RATE_LIMIT_PER_MINUTE": "1000000000", "RATE_LIMIT_BURST": "1000000000", "LOG_LEVEL": "WARNING", **ENV}
        service = ServiceProcess(Path(tmp) / "service", env)
        try:
            service.start(timeout=300)
            results = {"machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)}}
            results["webhooks"] = measure(service.url)
        finally:
            service.stop()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

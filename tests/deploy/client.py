"""The scale-out test's client, run inside its client namespace: `python -m tests.deploy.client CMD ...`.

HTTPS is verified against SSL_CERT_FILE (the CA root `make deploy` fetched; httpx reads it). Each
command prints one JSON document on stdout. Every loop is bounded in requests and seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx


def _client(url: str, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30.0)


def create_key(url: str, admin_key: str, tenant: str, rate_limit: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"tenant": tenant, "role": "user"}
    if rate_limit is not None:
        body["rate_limit"] = rate_limit
    with _client(url, admin_key) as admin:
        response = admin.post("/v1/admin/keys", json=body)
    response.raise_for_status()
    return {"key": response.json()["data"]["key"]}


def burst(url: str, key: str, count: int, path: str) -> dict[str, Any]:
    """`count` requests on one key, all in flight at once (one connection each)."""
    barrier = threading.Barrier(count)

    def one(_: int) -> int:
        with _client(url, key) as client:
            client.get("/health")  # connect (TLS handshake) first, so the burst itself is simultaneous
            barrier.wait(timeout=60)
            return client.get(path).status_code

    with ThreadPoolExecutor(max_workers=count) as pool:
        statuses = list(pool.map(one, range(count)))
    return {"statuses": statuses}


def seed(url: str, key: str, user: str, count: int) -> dict[str, Any]:
    with _client(url, key) as client:
        for start in range(0, count, 10):
            messages = [
                {"role": "user", "content": f"Memory {i} about topic {i % 7}"} for i in range(start, start + 10)
            ]
            response = client.post("/v1/memories", json={"messages": messages, "user_id": user, "infer": False})
            response.raise_for_status()
    return {"seeded": count}


def steady(url: str, key: str, seconds: float, threads: int, path: str, max_requests: int) -> dict[str, Any]:
    """Requests back to back from `threads` clients for `seconds`: each one's end time and status
    (0: no HTTP answer), so a test can line failures up with what happened to the hosts."""
    deadline = time.time() + seconds
    results: list[tuple[float, int]] = []
    lock = threading.Lock()

    def worker(_: int) -> None:
        with _client(url, key) as client:
            while time.time() < deadline:
                with lock:
                    if len(results) >= max_requests:
                        return
                try:
                    status = client.get(path).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    results.append((time.time(), status))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(worker, range(threads)))
    return {"requests": sorted(results)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tests.deploy.client")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create-key")
    p.add_argument("--url", required=True)
    p.add_argument("--admin-key", required=True)
    p.add_argument("--tenant", required=True)
    p.add_argument("--rate-limit", type=int)
    p = sub.add_parser("burst")
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--path", default="/status")
    p = sub.add_parser("seed")
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--count", type=int, default=50)
    p = sub.add_parser("steady")
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--path", default="/status")
    p.add_argument("--max-requests", type=int, default=200_000)
    args = parser.parse_args(argv)
    if args.command == "create-key":
        out = create_key(args.url, args.admin_key, args.tenant, args.rate_limit)
    elif args.command == "burst":
        out = burst(args.url, args.key, args.count, args.path)
    elif args.command == "seed":
        out = seed(args.url, args.key, args.user, args.count)
    else:
        out = steady(args.url, args.key, args.seconds, args.threads, args.path, args.max_requests)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

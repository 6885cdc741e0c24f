"""Provision a load test through the service's own admin route: tenants, keys, seeded memories.

Per-key rate limits (20 per 10 s, 100 per minute by default) mean one key carries at most 2
requests per second, so a load test spreads over many keys and tenants. Provisioning itself is
rate limited too, so it fans out: the given operator key creates short-lived helper admin keys, one
per tenant chunk (an admin key manages only its own tenant), each helper creates its tenant's share
of the keys, and seeding is spread over the new keys. Every client
here honours X-RateLimit-* and Retry-After, so provisioning is never refused and never fails
because of a limit. Nothing touches the database directly.

As a command (`python -m loadtests.provision --host URL --admin-key K --keys 50 --out pool.json`)
it writes the pool as JSON for a later `locust ... --lt-pool-file pool.json`.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from loadtests.ratelimits import pause_before_next, retry_after

log = logging.getLogger("loadtests.provision")

# Keys a helper admin creates: within one burst window of the helper, so helpers rarely wait.
KEYS_PER_HELPER = 18
_T = TypeVar("_T")
_R = TypeVar("_R")
MAX_MESSAGES_PER_ADD = 100  # the API's limit on messages in one add

TOPICS: dict[str, tuple[list[str], list[str]]] = {
    # topic: (statements a user might have told an agent, questions an agent might ask later)
    "food": (
        [
            "I am vegetarian and avoid {x}",
            "My favourite dish is {x} from my grandmother's recipe",
            "I cook {x} every Sunday for the family",
            "I am allergic to {x}",
        ],
        ["what food does the user like", "dietary restrictions", "allergies", "what does the user cook"],
    ),
    "travel": (
        [
            "I spent last summer hiking in {x}",
            "Next year I want to visit {x} with my partner",
            "I prefer trains over planes when travelling to {x}",
            "My passport expires before the trip to {x}",
        ],
        ["travel plans", "where has the user been on holiday", "favourite destinations", "upcoming trips"],
    ),
    "work": (
        [
            "I work as a {x} at a small company",
            "My manager asked me to lead the {x} project",
            "I have a performance review about {x} next month",
            "I switched teams to work on {x}",
        ],
        ["what is the user's job", "current projects at work", "career goals", "who is the user's manager"],
    ),
    "tech": (
        [
            "I love building AI applications with {x}",
            "Our backend is written in {x}",
            "I am learning {x} in the evenings",
            "I had trouble deploying {x} to production",
        ],
        ["programming languages", "what stack does the user use", "technical problems", "what is the user learning"],
    ),
    "health": (
        [
            "I run {x} kilometres three times a week",
            "My doctor told me to sleep more than {x} hours",
            "I started yoga to help with {x}",
            "I take vitamin {x} in winter",
        ],
        ["exercise habits", "sleep", "health advice the user received", "sports"],
    ),
    "family": (
        [
            "My daughter turns {x} in March",
            "My brother lives in {x}",
            "We adopted a dog called {x}",
            "My parents celebrate their anniversary in {x}",
        ],
        ["family members", "pets", "birthdays to remember", "where do relatives live"],
    ),
}
FILLERS = [
    "Lisbon", "Kyoto", "the Alps", "Patagonia", "FastAPI", "Rust", "Postgres", "Kubernetes", "peanuts",
    "lasagne", "ramen", "shellfish", "data engineer", "nurse", "teacher", "migration", "billing", "search",
    "5", "7", "10", "21", "D", "back pain", "stress", "Biscuit", "Luna", "June", "Oslo", "Toronto",
]  # fmt: skip


def memory_text(rng: random.Random) -> str:
    """A plausible first-person fact, like those agents store."""
    statements, _ = TOPICS[rng.choice(list(TOPICS))]
    return rng.choice(statements).format(x=rng.choice(FILLERS))


def search_query(rng: random.Random) -> str:
    """A plausible question an agent asks of its memory."""
    _, questions = TOPICS[rng.choice(list(TOPICS))]
    return rng.choice(questions)


class RateLimitedClient:
    """An httpx client for one key that waits instead of being refused.

    Before each request it sleeps until X-RateLimit-Reset when the last answer said Remaining 0;
    a 429 anyway (another client on the same key) or a 503 is retried after Retry-After. Safe to
    share between threads: the wait is computed under a lock.
    """

    def __init__(self, base_url: str, key: str, timeout: float = 120.0, attempts: int = 8) -> None:
        self.client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)
        self.attempts = attempts
        self.refusals = 0
        self._next_allowed = 0.0
        self._lock = threading.Lock()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for _ in range(self.attempts):
            with self._lock:
                delay = self._next_allowed - time.time()
            if delay > 0:
                time.sleep(delay)
            response = self.client.request(method, path, **kwargs)
            with self._lock:
                self._next_allowed = time.time() + pause_before_next(response.headers, time.time())
            if response.status_code == 429:
                self.refusals += 1
                time.sleep(retry_after(response.headers))
                continue
            if response.status_code == 503:
                time.sleep(retry_after(response.headers, default=2.0))
                continue
            return response
        return response

    def close(self) -> None:
        self.client.close()


@dataclass
class Identity:
    """A user key of one tenant, with the seeded users and memories a workload user may touch."""

    key: str
    key_id: str
    tenant: str


@dataclass
class Pool:
    run_id: str
    workload: list[Identity] = field(default_factory=list)
    probes: list[Identity] = field(default_factory=list)
    users: dict[str, list[str]] = field(default_factory=dict)  # tenant -> seeded user ids
    memories: dict[str, list[str]] = field(default_factory=dict)  # tenant -> seeded memory ids

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Pool:
        raw = json.loads(text)
        return cls(
            run_id=raw["run_id"],
            workload=[Identity(**i) for i in raw["workload"]],
            probes=[Identity(**i) for i in raw["probes"]],
            users=raw["users"],
            memories=raw["memories"],
        )


def _check(response: httpx.Response, expected: int, what: str) -> dict[str, Any]:
    if response.status_code != expected:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    return response.json()["data"]


def _parallel(items: Sequence[Any], fn: Callable[[Any], Any], threads: int) -> list[Any]:
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(items)))) as pool:
        return list(pool.map(fn, items))


def _per_tenant(items: Sequence[tuple[str, _T]]) -> list[tuple[str, list[_T]]]:
    """(tenant, chunk) pairs: each tenant's items in chunks of at most KEYS_PER_HELPER."""
    by_tenant: dict[str, list[_T]] = {}
    for tenant, item in items:
        by_tenant.setdefault(tenant, []).append(item)
    return [
        (tenant, values[i : i + KEYS_PER_HELPER])
        for tenant, values in by_tenant.items()
        for i in range(0, len(values), KEYS_PER_HELPER)
    ]


def _helper_body(tenant: str, purpose: str) -> dict[str, str]:
    return {"tenant": tenant, "role": "admin", "name": f"loadtest {purpose} helper"}


def _with_helpers(
    host: str,
    operator_key: str,
    chunks: list[tuple[str, list[_T]]],
    purpose: str,
    work: Callable[[RateLimitedClient, list[_T]], _R],
) -> list[_R]:
    """Run `work(helper, chunk)` for every chunk with a short-lived admin key of the chunk's tenant.

    An admin key manages only its own tenant, so the operator key creates one helper admin per
    chunk in that chunk's tenant; helpers are revoked as soon as the work is done.
    """
    operator = RateLimitedClient(host, operator_key)
    helpers: list[tuple[str, RateLimitedClient]] = []
    try:
        for tenant, _ in chunks:
            data = _check(
                operator.request("POST", "/v1/admin/keys", json=_helper_body(tenant, purpose)),
                201,
                f"creating a helper admin key in {tenant} (is LOADTEST_ADMIN_KEY an operator key of this service?)",
            )
            helpers.append((data["id"], RateLimitedClient(host, data["key"])))
        jobs = list(zip((client for _, client in helpers), (chunk for _, chunk in chunks), strict=True))
        return _parallel(jobs, lambda job: work(*job), threads=16)
    finally:
        for helper_id, client in helpers:
            client.close()
            operator.request("DELETE", f"/v1/admin/keys/{helper_id}")
        operator.close()


def create_keys(host: str, admin_key: str, specs: Sequence[tuple[str, int | None]], run_id: str) -> list[Identity]:
    """User keys for (tenant, per-minute limit or None for the defaults), via helper admin keys."""

    def create(client: RateLimitedClient, chunk: list[tuple[str, int | None]]) -> list[Identity]:
        made = []
        for tenant, limit in chunk:
            body: dict[str, Any] = {"tenant": tenant, "role": "user", "name": f"loadtest {run_id}"}
            if limit is not None:
                body["rate_limit"] = limit
            data = _check(client.request("POST", "/v1/admin/keys", json=body), 201, "creating a key")
            made.append(Identity(key=data["key"], key_id=data["id"], tenant=tenant))
        return made

    chunks = _per_tenant([(tenant, (tenant, limit)) for tenant, limit in specs])
    created = _with_helpers(host, admin_key, chunks, "provisioning", create)
    return [identity for chunk in created for identity in chunk]


def seed(
    host: str, identities: Sequence[Identity], users: dict[str, list[str]], memories_per_user: int, threads: int = 4
) -> dict[str, list[str]]:
    """Store memories_per_user memories for every user, one add per user, spread over the tenant's keys."""
    by_tenant: dict[str, list[Identity]] = {}
    for identity in identities:
        by_tenant.setdefault(identity.tenant, []).append(identity)
    clients = {i.key: RateLimitedClient(host, i.key) for i in identities}
    jobs = []
    for tenant, user_ids in users.items():
        keys = by_tenant[tenant]
        for n, user_id in enumerate(user_ids):
            jobs.append((clients[keys[n % len(keys)].key], tenant, user_id))

    def add(job: tuple[RateLimitedClient, str, str]) -> tuple[str, list[str]]:
        client, tenant, user_id = job
        rng = random.Random(f"{tenant}/{user_id}")
        ids: list[str] = []
        remaining = memories_per_user
        while remaining > 0:
            batch = min(remaining, MAX_MESSAGES_PER_ADD)
            body = {
                "messages": [{"role": "user", "content": memory_text(rng)} for _ in range(batch)],
                "user_id": user_id,
                "metadata": {"source": "loadtest-seed"},
                "infer": False,
            }
            data = _check(client.request("POST", "/v1/memories", json=body), 201, "seeding memories")
            ids.extend(m["id"] for m in data["memories"])
            remaining -= batch
        return tenant, ids

    try:
        seeded: dict[str, list[str]] = {tenant: [] for tenant in users}
        for tenant, ids in _parallel(jobs, add, threads):
            seeded[tenant].extend(ids)
        return seeded
    finally:
        for client in clients.values():
            client.close()


def provision(
    host: str,
    admin_key: str,
    *,
    keys: int,
    tenants: int,
    users_per_tenant: int,
    memories_per_user: int,
    key_rate_limit: int | None,
    probe_keys: int = 0,
    seed_threads: int = 4,
) -> Pool:
    """Create `keys` workload keys over `tenants` tenants (plus `probe_keys` with the default limits) and seed."""
    if keys < 0 or tenants < 1:
        raise ValueError("need a non-negative number of keys and at least one tenant")
    tenants = min(tenants, keys)  # every tenant needs a key to seed and search with; none without workload
    run_id = secrets.token_hex(3)
    tenant_names = [f"lt-{run_id}-t{i}" for i in range(tenants)]
    started = time.monotonic()
    specs: list[tuple[str, int | None]] = [(tenant_names[i % tenants], key_rate_limit) for i in range(keys)]
    specs += [(f"lt-{run_id}-probe{i}", None) for i in range(probe_keys)]
    identities = create_keys(host, admin_key, specs, run_id)
    pool = Pool(run_id=run_id, workload=identities[:keys], probes=identities[keys:])
    pool.users = {t: [f"user-{j:03d}" for j in range(users_per_tenant)] for t in tenant_names}
    log.info("created %d keys over %d tenants in %.1f s", len(identities), tenants, time.monotonic() - started)
    started = time.monotonic()
    if memories_per_user > 0:
        pool.memories = seed(host, pool.workload, pool.users, memories_per_user, seed_threads)
    else:
        pool.memories = {t: [] for t in tenant_names}
    log.info(
        "seeded %d memories for %d users in %.1f s",
        sum(len(v) for v in pool.memories.values()),
        tenants * users_per_tenant,
        time.monotonic() - started,
    )
    return pool


def revoke(host: str, admin_key: str, keys: Iterable[tuple[str, str]]) -> int:
    """Revoke the pool's (key id, tenant) pairs, fanned out like creation; returns how many were revoked."""
    chunks = _per_tenant([(tenant, key_id) for key_id, tenant in keys])
    if not chunks:
        return 0

    def revoke_chunk(client: RateLimitedClient, chunk: list[str]) -> int:
        return sum(client.request("DELETE", f"/v1/admin/keys/{key_id}").status_code == 200 for key_id in chunk)

    return sum(_with_helpers(host, admin_key, chunks, "cleanup", revoke_chunk))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True, help="service base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--admin-key", required=True)
    parser.add_argument("--keys", type=int, default=20, help="workload keys")
    parser.add_argument("--probe-keys", type=int, default=0, help="keys with the default limits, for the probes")
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--users-per-tenant", type=int, default=10)
    parser.add_argument("--memories-per-user", type=int, default=10)
    parser.add_argument("--key-rate-limit", type=int, default=1000, help="per-minute limit of workload keys")
    parser.add_argument("--out", type=Path, required=True, help="where to write the pool (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    pool = provision(
        args.host,
        args.admin_key,
        keys=args.keys,
        tenants=args.tenants,
        users_per_tenant=args.users_per_tenant,
        memories_per_user=args.memories_per_user,
        key_rate_limit=args.key_rate_limit,
        probe_keys=args.probe_keys,
    )
    args.out.write_text(pool.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""DATABASE_URL through a transaction-mode pooler, as Supabase users connect (port 6543).

Debian's pgbouncer in `pool_mode=transaction` hands each transaction to any of a few server
connections, like Supabase's pooler: a statement prepared on one server connection is unknown on
the next, and session settings do not stick. The real service (gunicorn, two workers, Redis)
runs against it: adds and searches at once, every search answers with as many results as asked
(the iterative HNSW scan is set per transaction), and nothing in any log mentions a prepared
statement. A control first shows that this pooler does break server-side prepared statements.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.support.postgres import PgBouncer, StandalonePostgres
from tests.support.redis import RedisServer
from tests.support.server import ServiceProcess

pytestmark = [pytest.mark.redis, pytest.mark.slow]

USERS = 3
SEEDED_PER_USER = 120
LIMIT = 30
PREPARED_ERROR = re.compile(r"prepared statement|DuplicatePreparedStatement|InvalidSqlStatementName", re.IGNORECASE)


@dataclass
class PooledStack:
    postgres: StandalonePostgres
    pooler: PgBouncer
    service: ServiceProcess


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PooledStack]:
    root: Path = tmp_path_factory.mktemp("pooler")
    postgres = StandalonePostgres(root / "postgres").start()
    pooler = PgBouncer(root / "pgbouncer", postgres, pool_mode="transaction", pool_size=3).start()
    redis_server = RedisServer(root / "redis").start()
    service = ServiceProcess(
        root / "service",
        {
            "DATABASE_URL": pooler.url,
            "DATABASE_TRANSACTION_POOLER": "true",
            "DB_POOL_SIZE": "6",
            "RATE_LIMIT_STORAGE_URI": redis_server.url,
            "RATE_LIMIT_PER_MINUTE": "1000000",
            "RATE_LIMIT_BURST": "1000000",
            # Not a test of deadlines: a busy shared machine must not turn a slow add into a 503.
            "REQUEST_TIMEOUT": "120",
        },
        workers=2,
    )
    try:
        service.start(timeout=180)
        yield PooledStack(postgres, pooler, service)
    finally:
        service.stop()
        redis_server.stop()
        pooler.stop()
        postgres.stop()


def test_the_pooler_breaks_server_side_prepared_statements(stack: PooledStack) -> None:
    """Control: two clients whose first prepared statement has the same name meet on one server
    connection (pgbouncer reuses the last one freed), so the second PREPARE collides."""
    errors = []
    with (
        psycopg.connect(stack.pooler.url, autocommit=True, prepare_threshold=0) as first,
        psycopg.connect(stack.pooler.url, autocommit=True, prepare_threshold=0) as second,
    ):
        first.execute("SELECT %s::int", (1,))
        for attempt in range(5):
            try:
                second.execute("SELECT %s::text", (str(attempt),))
                first.execute("SELECT %s::int", (attempt,))
            except psycopg.Error as exc:
                errors.append(exc)
    assert errors, "pgbouncer in transaction mode kept prepared statements apart: the proof below proves nothing"
    assert all(PREPARED_ERROR.search(f"{type(e).__name__} {e}") for e in errors), errors


def _add(stack: PooledStack, user: int, texts: list[str]) -> int:
    with stack.service.client() as client:
        body = {"messages": [{"role": "user", "content": t} for t in texts], "user_id": f"pool-user-{user}"}
        return client.post("/v1/memories", json=body, timeout=120).status_code


def _search(stack: PooledStack, user: int, query: str) -> tuple[int, int]:
    with stack.service.client() as client:
        response = client.get(
            "/v1/memories/search", params={"query": query, "user_id": f"pool-user-{user}", "limit": LIMIT}, timeout=60
        )
        found = len(response.json()["data"]["memories"]) if response.status_code == 200 else -1
        return response.status_code, found


def test_concurrent_adds_and_searches_through_the_pooler(stack: PooledStack) -> None:
    topics = ["cooking", "travel", "music", "software", "gardening", "finance"]
    for user in range(USERS):
        for start in range(0, SEEDED_PER_USER, 20):
            texts = [f"Note {i} of pool user {user} about {topics[i % 6]}" for i in range(start, start + 20)]
            assert _add(stack, user, texts) == 201
    rng = random.Random(15)
    adds = [(u, [f"Later note {n} of pool user {u} about {topics[n % 6]}" for n in range(b * 5, b * 5 + 5)])
            for b in range(6) for u in range(USERS)]  # fmt: skip
    searches = [(rng.randrange(USERS), f"something about {rng.choice(topics)}") for _ in range(60)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        added = [pool.submit(_add, stack, user, texts) for user, texts in adds]
        found = [pool.submit(_search, stack, user, query) for user, query in searches]
        add_codes = [f.result() for f in added]
        search_results = [f.result() for f in found]
    assert add_codes == [201] * len(adds)
    assert search_results == [(200, LIMIT)] * len(searches)

    # The service's connections really went through pgbouncer, multiplexed onto few server ones.
    pools = {row["database"]: row for row in stack.pooler.admin("SHOW POOLS")}
    assert pools["postgres"]["pool_mode"] == "transaction"
    stats = {row["database"]: row for row in stack.pooler.admin("SHOW STATS")}
    assert int(stats["postgres"]["total_xact_count"]) > len(adds) + len(searches)
    with psycopg.connect(stack.postgres.url) as conn:
        backends = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'postgres' AND backend_type = 'client backend'"
        ).fetchone()
    assert backends is not None
    assert backends[0] <= 3 + 1  # pgbouncer's pool (3) and this connection

    for name, text in (("service", stack.service.logs()), ("pgbouncer", stack.pooler.logs())):
        assert not PREPARED_ERROR.search(text), f"{name} log mentions prepared statements"
    assert "Traceback" not in stack.service.logs()

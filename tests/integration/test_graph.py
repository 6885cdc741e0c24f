"""The relationship graph in a real Neo4j (ops/neo4j), kept in step through the outbox."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from memory_service.storage.neo4j import Neo4jGraphStore
from neo4j import Driver, GraphDatabase
from neo4j.exceptions import ClientError

from tests.support.api import add_memory, assert_error
from tests.support.neo4j import Neo4jInfo, neo4j_down, neo4j_up
from tests.support.server import ADMIN_KEY, ServiceProcess, new_tenant_key

pytestmark = pytest.mark.neo4j
SEED_MESSAGE = "I love building AI applications with FastAPI"


@pytest.fixture(scope="module")
def neo4j() -> Iterator[Neo4jInfo]:
    yield neo4j_up()
    neo4j_up()  # leave it running for whoever comes next, even if a test stopped it


@pytest.fixture(scope="module")
def driver(neo4j: Neo4jInfo) -> Iterator[Driver]:
    with GraphDatabase.driver(neo4j.uri, auth=(neo4j.user, neo4j.password)) as d:
        yield d


@pytest.fixture(scope="module")
def graph_service(tmp_path_factory: pytest.TempPathFactory, neo4j: Neo4jInfo) -> Iterator[ServiceProcess]:
    env = {
        "NEO4J_URI": neo4j.uri,
        "NEO4J_USER": neo4j.user,
        "NEO4J_PASSWORD": neo4j.password,
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "RATE_LIMIT_BURST": "1000000",
        "HEALTH_INTERVAL": "0.5",
    }
    service = ServiceProcess(tmp_path_factory.mktemp("graph"), env).start()
    yield service
    service.stop()


@pytest.fixture
def tenant_client(graph_service: ServiceProcess) -> Callable[[], tuple[str, httpx.Client]]:
    clients: list[httpx.Client] = []

    def make() -> tuple[str, httpx.Client]:
        tenant = f"g-{uuid.uuid4().hex[:10]}"
        with graph_service.client(ADMIN_KEY) as admin:
            client = graph_service.client(new_tenant_key(admin, tenant))
        clients.append(client)
        return tenant, client

    yield make
    for client in clients:
        client.close()


def _query(driver: Driver, cypher: str, **params: Any) -> list[dict[str, Any]]:
    records, _, _ = driver.execute_query(cypher, params)
    return [r.data() for r in records]


def _eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.2)


def _memories_in_graph(driver: Driver, tenant: str) -> set[str]:
    rows = _query(driver, "MATCH (m:Memory {tenant: $tenant}) RETURN m.id AS id", tenant=tenant)
    return {r["id"] for r in rows}


def test_seed_example_mentions_fastapi_with_a_confidence(
    tenant_client: Callable[[], tuple[str, httpx.Client]], driver: Driver
) -> None:
    tenant, client = tenant_client()
    memory = add_memory(client, SEED_MESSAGE, "test_user_123")
    api_mention = next(r for r in memory["relationships"] if r["entity"] == "FastAPI")
    assert api_mention["type"] == "mentions"
    assert 0 < api_mention["confidence"] <= 1
    _eventually(lambda: memory["id"] in _memories_in_graph(driver, tenant), what="projection")
    rows = _query(
        driver,
        """
        MATCH (t:Tenant {id: $tenant})<-[:BELONGS_TO]-(u:User)-[:WROTE]->(m:Memory {id: $id})
              -[r:MENTIONS]->(e:Entity)
        RETURN u.user_id AS user, e.name AS name, r.confidence AS confidence
        """,
        tenant=tenant,
        id=memory["id"],
    )
    graph = {r["name"]: r["confidence"] for r in rows}
    assert {r["user"] for r in rows} == {"test_user_123"}
    assert graph == {r["entity"]: r["confidence"] for r in memory["relationships"]}
    assert graph["FastAPI"] == api_mention["confidence"]


def test_the_graph_holds_what_the_api_returns(
    tenant_client: Callable[[], tuple[str, httpx.Client]], driver: Driver
) -> None:
    tenant, client = tenant_client()
    texts = [
        "Alice Smith moved to New York with her dog",
        "Alice Smith works at Acme Corp on FastAPI services",
        "We deploy FastAPI behind nginx at Acme Corp",
        "My favourite book is 'The Pragmatic Programmer'",
    ]
    created = [add_memory(client, text, "alice") for text in texts]
    _eventually(lambda: len(_memories_in_graph(driver, tenant)) == 4, what="projection")
    response = client.get("/v1/users/alice/entities").json()["data"]
    assert response["source"] == "neo4j"
    api_counts = {e["key"]: e["memory_count"] for e in response["entities"]}
    expected: dict[str, int] = {}
    for memory in created:
        for name in memory["metadata"]["entities"]:
            key = " ".join(name.lower().split())
            expected[key] = expected.get(key, 0) + 1
    assert api_counts == expected
    assert api_counts["acme corp"] == 2
    graph_counts = _query(
        driver,
        "MATCH (:User {uid: $uid})-[:WROTE]->(m)-[:MENTIONS]->(e) RETURN e.key AS key, count(m) AS n",
        uid=f"{tenant}/alice",
    )
    assert {r["key"]: r["n"] for r in graph_counts} == expected
    acme = client.get("/v1/users/alice/entities/Acme Corp/memories").json()["data"]
    assert [m["id"] for m in acme["memories"]] == [created[2]["id"], created[1]["id"]]
    co = _query(
        driver,
        "MATCH (a:Entity {uid: $a})-[c:CO_OCCURS]-(b:Entity {uid: $b}) RETURN c.count AS n",
        a=f"{tenant}\x1facme corp",
        b=f"{tenant}\x1ffastapi",
    )
    assert co == [{"n": 2}]


def test_tenants_never_see_each_others_entities(
    tenant_client: Callable[[], tuple[str, httpx.Client]], driver: Driver
) -> None:
    tenant_a, a = tenant_client()
    tenant_b, b = tenant_client()
    secret = add_memory(a, "Project Nightingale launches with Globex Corporation", "same-user")
    add_memory(b, "Lunch with Bob at the Riverside Cafe", "same-user")
    _eventually(lambda: secret["id"] in _memories_in_graph(driver, tenant_a), what="projection")
    _eventually(lambda: len(_memories_in_graph(driver, tenant_b)) == 1, what="projection")
    b_entities = {e["key"] for e in b.get("/v1/users/same-user/entities").json()["data"]["entities"]}
    a_entities = {e["key"] for e in a.get("/v1/users/same-user/entities").json()["data"]["entities"]}
    assert "globex corporation" in a_entities
    assert not a_entities & b_entities
    assert b.get("/v1/users/same-user/entities/Globex Corporation/memories").json()["data"]["memories"] == []
    leaked = _query(
        driver,
        "MATCH (:User {uid: $uid})-[:WROTE]->()-[:MENTIONS]->(e:Entity) WHERE e.tenant <> $tenant RETURN e",
        uid=f"{tenant_b}/same-user",
        tenant=tenant_b,
    )
    assert leaked == []


def test_cypher_injection_changes_nothing(
    tenant_client: Callable[[], tuple[str, httpx.Client]], graph_service: ServiceProcess, driver: Driver
) -> None:
    tenant, client = tenant_client()
    before = _query(driver, "MATCH (n) RETURN count(n) AS nodes")[0]["nodes"]
    payloads = [
        "x'}) MATCH (n) DETACH DELETE n //",
        '"}) WITH 1 AS x MATCH (n) DETACH DELETE n RETURN 1 //',
        "Robert'); MATCH (n) SET n.pwned = true //",
    ]
    ids = []
    for i, evil in enumerate(payloads):
        memory = add_memory(
            client, f"Note {i}: {evil}", "mallory", metadata={"entities": [evil], "source": evil, "label": evil}
        )
        ids.append(memory["id"])
    _eventually(lambda: set(ids) <= _memories_in_graph(driver, tenant), what="projection")
    for evil in payloads:
        response = client.get(f"/v1/users/mallory/entities/{quote(evil, safe='')}/memories")
        assert response.status_code == 200
        assert len(response.json()["data"]["memories"]) == 1
    assert_error(client.get("/v1/users/mal'lory})/entities"), 400, "INVALID_REQUEST")
    pwned = _query(driver, "MATCH (n) WHERE n.pwned IS NOT NULL RETURN count(n) AS n")[0]["n"]
    assert pwned == 0
    after = _query(driver, "MATCH (n) RETURN count(n) AS nodes")[0]["nodes"]
    new_nodes = _query(
        driver,
        """
        MATCH (n) WHERE n.tenant = $tenant OR n.id = $tenant RETURN count(n) AS n
        """,
        tenant=tenant,
    )[0]["n"]
    assert after - before == new_nodes  # only this tenant's nodes were added; nothing else changed
    names = {r["name"] for r in _query(driver, "MATCH (e:Entity {tenant: $t}) RETURN e.name AS name", t=tenant)}
    assert set(payloads) <= names


def test_a_constraint_half_made_by_a_crash_is_repaired(neo4j: Neo4jInfo, driver: Driver) -> None:
    """Neo4j killed while creating a constraint comes back with the constraint's index and no
    constraint (seen in the fault suite); the projector's schema step must not fail on it for ever."""
    driver.execute_query("DROP CONSTRAINT user_uid IF EXISTS")
    driver.execute_query("CREATE INDEX user_uid IF NOT EXISTS FOR (u:User) ON (u.uid)")  # what recovery leaves
    with pytest.raises(ClientError, match="IndexWithNameAlreadyExists"):  # why a plain "IF NOT EXISTS" is not enough
        driver.execute_query("CREATE CONSTRAINT user_uid IF NOT EXISTS FOR (u:User) REQUIRE u.uid IS UNIQUE")
    store = Neo4jGraphStore(neo4j.uri, neo4j.user, neo4j.password, timeout=5.0)
    try:
        store.ensure_schema()
        store.ensure_schema()  # and again, now that everything exists
    finally:
        store.close()
    constraints = _query(driver, "SHOW CONSTRAINTS YIELD name, type, ownedIndex RETURN *")
    assert {"name": "user_uid", "type": "UNIQUENESS", "ownedIndex": "user_uid"} in constraints
    assert {c["name"] for c in constraints} >= {"tenant_id", "user_uid", "memory_id", "entity_uid"}


def test_delete_and_erase_remove_graph_nodes(
    tenant_client: Callable[[], tuple[str, httpx.Client]], driver: Driver
) -> None:
    tenant, client = tenant_client()
    lone = add_memory(client, "Only this memory mentions Zanzibar", "eraser")
    others = [add_memory(client, f"Trip {i} to Lisbon", "eraser")["id"] for i in range(3)]
    _eventually(lambda: len(_memories_in_graph(driver, tenant)) == 4, what="projection")
    assert client.delete(f"/v1/memories/{lone['id']}").status_code == 200
    _eventually(lambda: lone["id"] not in _memories_in_graph(driver, tenant), what="delete projection")
    zanzibar = _query(driver, "MATCH (e:Entity {uid: $uid}) RETURN e", uid=f"{tenant}\x1fzanzibar")
    assert zanzibar == []  # nothing mentions it any more
    assert client.delete("/v1/memories/user/eraser").json()["data"]["deleted_count"] == 3
    _eventually(lambda: not _memories_in_graph(driver, tenant), what="erase projection")
    leftovers = _query(
        driver,
        "MATCH (n) WHERE n.tenant = $tenant AND (n:User OR n:Entity OR n:Memory) RETURN labels(n) AS l",
        tenant=tenant,
    )
    assert leftovers == []
    assert set(others).isdisjoint(_memories_in_graph(driver, tenant))


@pytest.mark.slow
def test_neo4j_outage_loses_nothing_and_the_graph_catches_up(
    tenant_client: Callable[[], tuple[str, httpx.Client]], graph_service: ServiceProcess, driver: Driver
) -> None:
    tenant, client = tenant_client()
    neo4j_down()
    try:
        _eventually(
            lambda: httpx.get(f"{graph_service.url}/health").json()["data"]["dependencies"]["neo4j"]["up"] is False,
            what="health reporting neo4j down",
        )
        ids = [add_memory(client, f"Outage note {i} about Kubernetes and Helm", "ops")["id"] for i in range(100)]
        assert len(set(ids)) == 100
        entities = client.get("/v1/users/ops/entities").json()["data"]  # reads fall back to Postgres
        assert entities["source"] == "postgres"
        assert next(e for e in entities["entities"] if e["key"] == "kubernetes")["memory_count"] == 100
        with graph_service.client(ADMIN_KEY) as admin:

            def backlog() -> float:
                lines = admin.get("/v1/metrics").text.splitlines()
                return float(next(line for line in lines if line.startswith("memory_graph_outbox_pending")).split()[-1])

            _eventually(lambda: backlog() >= 100, timeout=10, what="the outbox backlog in the metrics")
    finally:
        neo4j_up()
    with _fresh_driver() as fresh:  # the old driver's connections died with the server
        _eventually(lambda: _memories_in_graph(fresh, tenant) == set(ids), timeout=90, what="catch-up after restart")
        co = _query(  # the backlog drains in batches: co-occurrence counts every memory of every batch
            fresh,
            "MATCH (a:Entity {uid: $a})-[c:CO_OCCURS]-(b:Entity {uid: $b}) RETURN c.count AS n",
            a=f"{tenant}\x1fkubernetes",
            b=f"{tenant}\x1fhelm",
        )
    assert co == [{"n": 100}]
    entities = client.get("/v1/users/ops/entities").json()["data"]
    assert entities["source"] == "neo4j"
    assert {e["key"]: e["memory_count"] for e in entities["entities"]}["helm"] == 100


def _fresh_driver() -> Driver:
    info = neo4j_up()
    return GraphDatabase.driver(info.uri, auth=(info.user, info.password))


def test_without_neo4j_entities_come_from_postgres(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path / "pg-graph").start()
    try:
        with service.client() as client:
            memory = add_memory(client, SEED_MESSAGE, "solo")
            data = client.get("/v1/users/solo/entities").json()["data"]
            assert data["source"] == "postgres"
            fastapi = next(e for e in data["entities"] if e["name"] == "FastAPI")
            assert fastapi["memory_count"] == 1
            assert fastapi["confidence"] == next(
                r["confidence"] for r in memory["relationships"] if r["entity"] == "FastAPI"
            )
            found = client.get("/v1/users/solo/entities/fastapi/memories").json()["data"]
            assert [m["id"] for m in found["memories"]] == [memory["id"]]
    finally:
        service.stop()

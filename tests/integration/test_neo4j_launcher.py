"""The local Neo4j from ops/neo4j is the real engine: Bolt with auth, Cypher, data kept across restarts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from neo4j import Driver, GraphDatabase
from neo4j.exceptions import AuthError, ServiceUnavailable

from tests.support.neo4j import Neo4jInfo, neo4j_down, neo4j_up

pytestmark = pytest.mark.neo4j

LABEL = "LauncherProbe"


@pytest.fixture(scope="module")
def neo4j() -> Iterator[Neo4jInfo]:
    info = neo4j_up()
    yield info
    neo4j_up()  # Whatever a test did (the restart test stops it), leave it up for the tests after us.


@pytest.fixture
def driver(neo4j: Neo4jInfo) -> Iterator[Driver]:
    with GraphDatabase.driver(neo4j.uri, auth=neo4j.auth) as drv:
        yield drv


@pytest.fixture
def probe_id(neo4j: Neo4jInfo) -> Iterator[str]:
    """A unique id for this test's nodes; they are deleted afterwards (with a fresh driver, after restarts)."""
    pid = uuid.uuid4().hex
    yield pid
    with GraphDatabase.driver(neo4j.uri, auth=neo4j.auth) as drv:
        drv.execute_query(f"MATCH (n:{LABEL} {{id: $id}}) DETACH DELETE n", id=pid, database_="neo4j")


def test_connects_with_auth_to_community_5_26(driver: Driver) -> None:
    records, _, _ = driver.execute_query(
        "CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition",
        database_="system",
    )
    assert len(records) == 1
    assert records[0]["name"] == "Neo4j Kernel"
    assert records[0]["edition"] == "community"
    assert records[0]["versions"][0].startswith("5.26.")


def test_writes_and_reads_a_node_with_parameters(driver: Driver, probe_id: str) -> None:
    name = 'it\'s a "quoted" value; MATCH (x) DETACH DELETE x'  # parameters, never string-built Cypher
    summary = driver.execute_query(
        f"CREATE (n:{LABEL} {{id: $id, name: $name, score: $score}})",
        id=probe_id,
        name=name,
        score=0.75,
        database_="neo4j",
    ).summary
    assert summary.counters.nodes_created == 1

    records, _, _ = driver.execute_query(
        f"MATCH (n:{LABEL} {{id: $id}}) RETURN n.name AS name, n.score AS score",
        id=probe_id,
        database_="neo4j",
        routing_="r",
    )
    assert [(r["name"], r["score"]) for r in records] == [(name, 0.75)]


def test_wrong_password_is_refused(neo4j: Neo4jInfo) -> None:
    with (
        GraphDatabase.driver(neo4j.uri, auth=(neo4j.user, neo4j.password + "-wrong")) as drv,
        pytest.raises(AuthError),
    ):
        drv.verify_connectivity()


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of the sockets listening on `port`, read from /proc (no traffic to any address)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def test_bolt_listens_on_loopback_only(neo4j: Neo4jInfo) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp on this system")
    port = int(neo4j.uri.rsplit(":", 1)[1])
    addresses = _listening_addresses(port)
    # 127.0.0.1 as IPv4 (little-endian hex) or as IPv4-mapped IPv6 (::ffff:127.0.0.1).
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}
    assert addresses, f"nothing listens on port {port}"
    assert set(addresses) <= loopback, f"Bolt listens beyond loopback: {addresses}"


def test_data_survives_stop_and_start(neo4j: Neo4jInfo, probe_id: str) -> None:
    with GraphDatabase.driver(neo4j.uri, auth=neo4j.auth) as drv:
        drv.execute_query(
            f"CREATE (:{LABEL} {{id: $id}})-[:LINKS {{w: $w}}]->(:{LABEL} {{id: $id}})",
            id=probe_id,
            w=3,
            database_="neo4j",
        )

    neo4j_down()
    with GraphDatabase.driver(neo4j.uri, auth=neo4j.auth) as drv, pytest.raises(ServiceUnavailable):
        drv.verify_connectivity()  # really stopped, not just a new session

    info = neo4j_up()
    assert info == neo4j
    with GraphDatabase.driver(info.uri, auth=info.auth) as drv:
        records, _, _ = drv.execute_query(
            f"MATCH (a:{LABEL} {{id: $id}})-[r:LINKS]->(b:{LABEL} {{id: $id}}) RETURN r.w AS w",
            id=probe_id,
            database_="neo4j",
        )
    assert [r["w"] for r in records] == [3]

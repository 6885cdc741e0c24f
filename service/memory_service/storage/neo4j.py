"""The Neo4j projection: tenants, users, memories, entities, mentions with confidence, co-occurrence.

Model (every query parameterised; no input is ever part of query text):

    (:Tenant {id})<-[:BELONGS_TO]-(:User {uid, tenant, user_id})-[:WROTE]->(:Memory {id, tenant, created_at})
    (:Memory)-[:MENTIONS {confidence}]->(:Entity {uid, tenant, key, name})
    (:Entity)-[:CO_OCCURS {count}]-(:Entity)      # memories of the tenant mentioning both

Entities are per tenant (`uid` = tenant + separator + normalised name), so two tenants never
share a node. Memory content stays in Postgres; the graph holds ids, entities and links only.
Every write is state-based and idempotent ("make the graph match this memory as it is now"), so
outbox entries can be replayed in any order and any number of times.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from neo4j import Driver, GraphDatabase, ManagedTransaction
from neo4j.exceptions import DriverError, Neo4jError

from memory_service.models.memory import MemoryRecord
from memory_service.models.scope import split_user_key

log = logging.getLogger(__name__)
UID_SEPARATOR = "\x1f"
NEO4J_ERRORS: tuple[type[BaseException], ...] = (DriverError, Neo4jError, OSError)

# name -> the statement that makes it. Names and statements are constants, never input.
_CONSTRAINTS = {
    "tenant_id": "CREATE CONSTRAINT tenant_id IF NOT EXISTS FOR (t:Tenant) REQUIRE t.id IS UNIQUE",
    "user_uid": "CREATE CONSTRAINT user_uid IF NOT EXISTS FOR (u:User) REQUIRE u.uid IS UNIQUE",
    "memory_id": "CREATE CONSTRAINT memory_id IF NOT EXISTS FOR (m:Memory) REQUIRE m.id IS UNIQUE",
    "entity_uid": "CREATE CONSTRAINT entity_uid IF NOT EXISTS FOR (e:Entity) REQUIRE e.uid IS UNIQUE",
}
_INDEXES = {
    "entity_tenant": "CREATE INDEX entity_tenant IF NOT EXISTS FOR (e:Entity) ON (e.tenant)",
    "memory_tenant": "CREATE INDEX memory_tenant IF NOT EXISTS FOR (m:Memory) ON (m.tenant)",
}


def entity_uid(tenant: str, key: str) -> str:
    return f"{tenant}{UID_SEPARATOR}{key}"


@dataclass(frozen=True, slots=True)
class EntityCount:
    name: str
    key: str
    memory_count: int
    confidence: float


def _mentions(record: MemoryRecord) -> list[dict[str, Any]]:
    keys = record.metadata.get("entities", [])
    seen: dict[str, dict[str, Any]] = {}
    by_name = {str(r.get("entity")): float(r.get("confidence", 0.0)) for r in record.relationships}
    for name in keys:
        key = " ".join(str(name).lower().split())
        if key and key not in seen:
            seen[key] = {"key": key, "name": str(name), "confidence": by_name.get(str(name), 0.5)}
    return list(seen.values())


class Neo4jGraphStore:
    name = "neo4j"

    def __init__(self, uri: str, user: str, password: str | None, timeout: float) -> None:
        self.timeout = timeout
        self.driver: Driver = GraphDatabase.driver(
            uri,
            auth=(user, password or ""),
            connection_timeout=timeout,
            connection_acquisition_timeout=timeout,
            max_transaction_retry_time=timeout,
            liveness_check_timeout=30.0,
        )

    def close(self) -> None:
        self.driver.close()

    def ping(self) -> None:
        self.driver.verify_connectivity()

    def ensure_schema(self) -> None:
        """Create the constraints and indexes, repairing what a crash left half-made.

        Neo4j killed while creating a constraint recovers with the constraint's index but not the
        constraint; `CREATE CONSTRAINT ... IF NOT EXISTS` then fails for ever with
        IndexWithNameAlreadyExists, and the projector with it. Such an orphaned index, and any
        index in the FAILED state, is dropped and made again.
        """
        with self.driver.session() as session:
            constraints = {r["name"] for r in session.run("SHOW CONSTRAINTS YIELD name")}
            indexes = {
                r["name"]: (r["state"], r["owningConstraint"])
                for r in session.run("SHOW INDEXES YIELD name, state, owningConstraint")
            }
            for name, create in [*_CONSTRAINTS.items(), *_INDEXES.items()]:
                state, owner = indexes.get(name, (None, None))
                orphaned = name in _CONSTRAINTS and name not in constraints and state is not None and owner is None
                if orphaned or state == "FAILED":
                    log.warning("neo4j: index %s is %s; dropping and making it again", name, state)
                    if name in constraints:
                        session.run(f"DROP CONSTRAINT {name} IF EXISTS").consume()
                    session.run(f"DROP INDEX {name} IF EXISTS").consume()
                session.run(create).consume()

    # -- projection (called by the outbox projector) ---------------------------------------

    def sync_memories(self, items: list[tuple[str, str, MemoryRecord | None]]) -> None:
        """Make the graph match these memories as Postgres has them now (None: no longer exists).

        One transaction per batch, not per memory: after an outage the backlog drains at the
        speed of a few commits, not of one commit per memory.
        """
        if items:
            with self.driver.session() as session:
                session.execute_write(self._sync_memories, items)

    @staticmethod
    def _sync_memories(tx: ManagedTransaction, items: list[tuple[str, str, MemoryRecord | None]]) -> None:
        old: dict[str, list[str]] = {
            row["id"]: list(row["uids"])
            for row in tx.run(
                "UNWIND $ids AS id MATCH (:Memory {id: id})-[:MENTIONS]->(e:Entity) RETURN id, collect(e.uid) AS uids",
                ids=[memory_id for memory_id, _, _ in items],
            )
        }
        gone = [memory_id for memory_id, _, record in items if record is None]
        if gone:
            tx.run("MATCH (m:Memory) WHERE m.id IN $ids DETACH DELETE m", ids=gone).consume()
        present = [(memory_id, user_key, record) for memory_id, user_key, record in items if record is not None]
        new = dict(zip([memory_id for memory_id, _, _ in present], _upsert_memories(tx, present), strict=True))
        _refresh_entities(tx, [{*old.get(memory_id, []), *new.get(memory_id, set())} for memory_id, _, _ in items])

    def reconcile_user(self, user_key: str, existing_ids: Iterable[str]) -> int:
        """Remove the user's memories that Postgres no longer has (an erasure); returns how many."""
        with self.driver.session() as session:
            return session.execute_write(self._reconcile_user, user_key, list(existing_ids))

    @staticmethod
    def _reconcile_user(tx: ManagedTransaction, user_key: str, existing: list[str]) -> int:
        rows = list(
            tx.run(
                """
                MATCH (:User {uid: $user_key})-[:WROTE]->(m:Memory)
                WHERE NOT m.id IN $existing
                OPTIONAL MATCH (m)-[:MENTIONS]->(e:Entity)
                RETURN m.id AS id, collect(e.uid) AS entities
                """,
                user_key=user_key,
                existing=existing,
            )
        )
        gone = [row["id"] for row in rows]
        tx.run("MATCH (m:Memory) WHERE m.id IN $ids DETACH DELETE m", ids=gone).consume()
        if not existing:
            tx.run("MATCH (u:User {uid: $user_key}) DETACH DELETE u", user_key=user_key).consume()
        _refresh_entities(tx, [set(row["entities"]) for row in rows])
        return len(gone)

    # -- reads ---------------------------------------------------------------------------------

    def entities(self, user_key: str, limit: int) -> list[EntityCount]:
        records, _, _ = self.driver.execute_query(
            """
            MATCH (:User {uid: $user_key})-[:WROTE]->(m:Memory)-[r:MENTIONS]->(e:Entity)
            RETURN e.name AS name, e.key AS key, count(DISTINCT m) AS n, max(r.confidence) AS confidence
            ORDER BY n DESC, key
            LIMIT $limit
            """,
            user_key=user_key,
            limit=limit,
            routing_="r",
        )
        return [EntityCount(r["name"], r["key"], int(r["n"]), float(r["confidence"])) for r in records]

    def memory_ids_for_entity(self, user_key: str, key: str, limit: int) -> list[str]:
        tenant, _ = split_user_key(user_key)
        records, _, _ = self.driver.execute_query(
            """
            MATCH (:User {uid: $user_key})-[:WROTE]->(m:Memory)-[:MENTIONS]->(:Entity {uid: $uid})
            RETURN m.id AS id ORDER BY m.created_at DESC, m.id DESC LIMIT $limit
            """,
            user_key=user_key,
            uid=entity_uid(tenant, key),
            limit=limit,
            routing_="r",
        )
        return [str(r["id"]) for r in records]


def _upsert_memories(tx: ManagedTransaction, items: list[tuple[str, str, MemoryRecord]]) -> list[set[str]]:
    """Write the memories with their users, tenants and mentions in one query; returns, per
    memory, the entity uids it mentions now."""
    if not items:  # a batch of deletions only
        return []
    rows: list[dict[str, Any]] = []
    for memory_id, user_key, record in items:
        tenant, user_id = split_user_key(user_key)
        rows.append(
            {
                "id": memory_id,
                "tenant": tenant,
                "user_key": user_key,
                "user_id": user_id,
                "created_at": record.created_at,
                "mentions": _mentions(record),
            }
        )
    tx.run(
        """
        UNWIND $rows AS row
        CALL (row) {
            MERGE (t:Tenant {id: row.tenant})
            MERGE (u:User {uid: row.user_key})
              ON CREATE SET u.tenant = row.tenant, u.user_id = row.user_id
            MERGE (u)-[:BELONGS_TO]->(t)
            MERGE (m:Memory {id: row.id})
            SET m.tenant = row.tenant, m.user_key = row.user_key, m.created_at = row.created_at
            MERGE (u)-[:WROTE]->(m)
            WITH m
            OPTIONAL MATCH (m)-[old:MENTIONS]->(:Entity)
            DELETE old
            WITH DISTINCT m
            UNWIND row.mentions AS mention
            MERGE (e:Entity {uid: row.tenant + $sep + mention.key})
              ON CREATE SET e.tenant = row.tenant, e.key = mention.key
            SET e.name = mention.name
            MERGE (m)-[r:MENTIONS]->(e)
            SET r.confidence = mention.confidence
        }
        """,
        rows=rows,
        sep=UID_SEPARATOR,
    ).consume()
    return [{entity_uid(row["tenant"], m["key"]) for m in row["mentions"]} for row in rows]


def _refresh_entities(tx: ManagedTransaction, mentioned: Iterable[set[str]]) -> None:
    """After changes to some memories (`mentioned`: per changed memory, the entity uids it
    mentioned before or mentions now), drop the entities nothing mentions any more and recount
    co-occurrence for the pairs whose count can have changed: those a changed memory mentions."""
    groups = [sorted(uids) for uids in mentioned]
    uids = sorted({uid for group in groups for uid in group})
    if not uids:
        return
    pairs = sorted({pair for group in groups for pair in combinations(group, 2)})
    tx.run("MATCH (e:Entity) WHERE e.uid IN $uids AND NOT (e)<-[:MENTIONS]-() DETACH DELETE e", uids=uids).consume()
    if not pairs:
        return
    tx.run(
        """
        UNWIND $pairs AS pair
        MATCH (a:Entity {uid: pair[0]}), (b:Entity {uid: pair[1]})
        OPTIONAL MATCH (a)<-[:MENTIONS]-(m:Memory)-[:MENTIONS]->(b)
        WITH a, b, count(DISTINCT m) AS n
        OPTIONAL MATCH (a)-[c:CO_OCCURS]-(b)
        DELETE c
        WITH a, b, n WHERE n > 0
        MERGE (a)-[new:CO_OCCURS]->(b)
        SET new.count = n
        """,
        pairs=[list(pair) for pair in pairs],
    ).consume()

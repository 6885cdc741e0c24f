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

_SCHEMA = (
    "CREATE CONSTRAINT tenant_id IF NOT EXISTS FOR (t:Tenant) REQUIRE t.id IS UNIQUE",
    "CREATE CONSTRAINT user_uid IF NOT EXISTS FOR (u:User) REQUIRE u.uid IS UNIQUE",
    "CREATE CONSTRAINT memory_id IF NOT EXISTS FOR (m:Memory) REQUIRE m.id IS UNIQUE",
    "CREATE CONSTRAINT entity_uid IF NOT EXISTS FOR (e:Entity) REQUIRE e.uid IS UNIQUE",
    "CREATE INDEX entity_tenant IF NOT EXISTS FOR (e:Entity) ON (e.tenant)",
    "CREATE INDEX memory_tenant IF NOT EXISTS FOR (m:Memory) ON (m.tenant)",
)


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
        with self.driver.session() as session:
            for statement in _SCHEMA:
                session.run(statement).consume()

    # -- projection (called by the outbox projector) ---------------------------------------

    def sync_memory(self, memory_id: str, user_key: str, record: MemoryRecord | None) -> None:
        """Make the graph match the memory as Postgres has it now (None: it no longer exists)."""
        with self.driver.session() as session:
            session.execute_write(self._sync_memory, memory_id, user_key, record)

    @staticmethod
    def _sync_memory(tx: ManagedTransaction, memory_id: str, user_key: str, record: MemoryRecord | None) -> None:
        tenant, user_id = split_user_key(user_key)
        old = [
            row["uid"]
            for row in tx.run("MATCH (:Memory {id: $id})-[:MENTIONS]->(e:Entity) RETURN e.uid AS uid", id=memory_id)
        ]
        if record is None:
            tx.run("MATCH (m:Memory {id: $id}) DETACH DELETE m", id=memory_id).consume()
            _refresh_entities(tx, old)
            return
        mentions = _mentions(record)
        tx.run(
            """
            MERGE (t:Tenant {id: $tenant})
            MERGE (u:User {uid: $user_key})
              ON CREATE SET u.tenant = $tenant, u.user_id = $user_id
            MERGE (u)-[:BELONGS_TO]->(t)
            MERGE (m:Memory {id: $id})
            SET m.tenant = $tenant, m.user_key = $user_key, m.created_at = $created_at
            MERGE (u)-[:WROTE]->(m)
            WITH m
            OPTIONAL MATCH (m)-[old:MENTIONS]->(:Entity)
            DELETE old
            WITH DISTINCT m
            UNWIND $mentions AS mention
            MERGE (e:Entity {uid: $tenant + $sep + mention.key})
              ON CREATE SET e.tenant = $tenant, e.key = mention.key
            SET e.name = mention.name
            MERGE (m)-[r:MENTIONS]->(e)
            SET r.confidence = mention.confidence
            """,
            tenant=tenant,
            user_key=user_key,
            user_id=user_id,
            id=memory_id,
            created_at=record.created_at,
            mentions=mentions,
            sep=UID_SEPARATOR,
        ).consume()
        new = [entity_uid(tenant, m["key"]) for m in mentions]
        _refresh_entities(tx, list({*old, *new}))

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
        touched = sorted({uid for row in rows for uid in row["entities"]})
        tx.run("MATCH (m:Memory) WHERE m.id IN $ids DETACH DELETE m", ids=gone).consume()
        if not existing:
            tx.run("MATCH (u:User {uid: $user_key}) DETACH DELETE u", user_key=user_key).consume()
        _refresh_entities(tx, touched)
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


def _refresh_entities(tx: ManagedTransaction, uids: list[str]) -> None:
    """Recount co-occurrence among the touched entities and drop entities nothing mentions."""
    if not uids:
        return
    tx.run("MATCH (e:Entity) WHERE e.uid IN $uids AND NOT (e)<-[:MENTIONS]-() DETACH DELETE e", uids=uids).consume()
    pairs = [list(p) for p in combinations(sorted(set(uids)), 2)]
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
        pairs=pairs,
    ).consume()

"""Entity reads for the API, from the graph that is configured.

With NEO4J_URI the entities come from Neo4j (the projection); without it, from the entity fields
of the memories in Postgres, so the API is the same in both profiles. If Neo4j is unreachable
the answer falls back to Postgres, the system of record, rather than failing: the response's
`source` says which one answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal, TypeVar

from memory_service.domain.entities.extractor import entity_key
from memory_service.models.memory import MemoryRecord
from memory_service.models.scope import Scope
from memory_service.storage.memory_table import MemoryTable
from memory_service.storage.neo4j import NEO4J_ERRORS, EntityCount, Neo4jGraphStore

log = logging.getLogger(__name__)
Source = Literal["neo4j", "postgres"]
T = TypeVar("T")
# A Neo4j read that fails or outlasts its timeout falls back to Postgres.
_FALLBACK_ERRORS: tuple[type[BaseException], ...] = (*NEO4J_ERRORS, TimeoutError)


class GraphService:
    def __init__(
        self,
        table: MemoryTable,
        neo4j: Neo4jGraphStore | None,
        timeout: float,
        neo4j_up: Callable[[], bool] = lambda: True,
    ) -> None:
        self.table = table
        self.neo4j = neo4j
        self.timeout = timeout
        self.neo4j_up = neo4j_up  # the health monitor's last word: skip a Neo4j known to be down

    def _use_neo4j(self) -> bool:
        return self.neo4j is not None and self.neo4j_up()

    async def _from_neo4j(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.wait_for(asyncio.to_thread(fn, *args), self.timeout)

    async def entities(self, scope: Scope, limit: int) -> tuple[list[EntityCount], Source]:
        if self.neo4j is not None and self._use_neo4j():
            try:
                return await self._from_neo4j(self.neo4j.entities, scope.user_key, limit), "neo4j"
            except _FALLBACK_ERRORS as exc:
                log.warning(
                    "neo4j unavailable for an entity read (%s); answering from postgres", exc.__class__.__name__
                )
        rows = await asyncio.to_thread(self.table.user_entities, scope.user_key, limit)
        return [EntityCount(name, key, n, confidence) for key, name, n, confidence in rows], "postgres"

    async def entity_memories(self, scope: Scope, name: str, limit: int) -> tuple[list[MemoryRecord], Source]:
        key = entity_key(name)
        if self.neo4j is not None and self._use_neo4j():
            try:
                ids = await self._from_neo4j(self.neo4j.memory_ids_for_entity, scope.user_key, key, limit)
                records = await asyncio.to_thread(self.table.fetch, ids)
                return [records[i] for i in ids if i in records], "neo4j"
            except _FALLBACK_ERRORS as exc:
                log.warning(
                    "neo4j unavailable for an entity read (%s); answering from postgres", exc.__class__.__name__
                )
        return await asyncio.to_thread(self.table.memories_with_entities, scope.user_key, [key], limit), "postgres"

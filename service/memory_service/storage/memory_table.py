"""Queries mem0 does not offer, on mem0's own collection table.

mem0 lists at most N rows in no order and deletes a user's memories one call at a time. The API
needs stable keyset pagination with a total, per-user statistics, counts, atomic user erasure
and batch reads; these run here as single SQL statements over the same table, using the indexes
created by schema.py. Writes of memory content still go through mem0.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from memory_service.core.timefmt import rfc3339
from memory_service.errors import InvalidRequest
from memory_service.models.filters import Filter
from memory_service.models.memory import MemoryPage, MemoryRecord, UserPage, UserStats, UserSummary
from memory_service.models.scope import split_user_key
from memory_service.models.scope import user_key as qualified_user
from memory_service.models.webhooks import EventType, memory_deleted, memory_event, user_erased
from memory_service.storage.database import Database
from memory_service.storage.filters import compile_filter
from memory_service.storage.history import insert_history
from memory_service.storage.outbox import enqueue_memories, enqueue_user
from memory_service.storage.webhooks import enqueue_events

# The deleted rows' fields that their DELETE history rows record (as mem0's own delete does).
_DELETED = sql.SQL(
    "RETURNING id, payload->>'user_id', payload->>'data', payload->>'created_at', payload->>'actor_id',"
    " payload->>'role'"
)


@dataclass(frozen=True, slots=True)
class EntityRow:
    """A user, agent, app or run of a tenant, as its memories show it."""

    kind: str
    name: str
    memories: int
    first_write: str | None
    last_write: str | None


def encode_cursor(created_at: str, memory_id: str) -> str:
    raw = json.dumps([created_at, memory_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Opaque to clients; anything that is not one of ours is a 400, never a 500."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, memory_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(created_at, str) or not isinstance(memory_id, str):
            raise TypeError(created_at, memory_id)
        uuid.UUID(memory_id)
        if "\x00" in created_at:  # never in ours; Postgres text cannot hold it
            raise ValueError(created_at)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest("cursor is not valid", {"field": "cursor"}) from exc
    return created_at, memory_id


def _scope_filter(agent_id: str | None, run_id: str | None) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = []
    params: list[Any] = []
    if agent_id is not None:
        parts.append(sql.SQL(" AND payload->>'agent_id' = %s"))
        params.append(agent_id)
    if run_id is not None:
        parts.append(sql.SQL(" AND payload->>'run_id' = %s"))
        params.append(run_id)
    return sql.Composed(parts), params


class MemoryTable:
    """SQL over the collection table `table` (mem0's pgvector layout: id, vector, payload)."""

    def __init__(self, db: Database, table: str, *, outbox: bool = False) -> None:
        self.db = db
        self.table = sql.Identifier(table)
        self.outbox = outbox

    def fetch(self, ids: list[str], *, with_vectors: bool = False) -> dict[str, MemoryRecord]:
        if not ids:
            return {}
        columns = sql.SQL("id, payload, vector::text") if with_vectors else sql.SQL("id, payload, NULL")
        query = sql.SQL("SELECT {} FROM {} WHERE id = ANY(%s::uuid[])").format(columns, self.table)
        with self.db.read_connection() as conn:
            rows = conn.execute(query, (ids,)).fetchall()
        records = {}
        for memory_id, payload, vector in rows:
            record = MemoryRecord.from_payload(str(memory_id), payload)
            if vector is not None:
                record.embedding = json.loads(vector)
            records[str(memory_id)] = record
        return records

    def page(
        self,
        user_key: str,
        *,
        limit: int,
        cursor: str | None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> MemoryPage:
        """Newest first; the cursor is the last row's (created_at, id), so pages never shift."""
        extra, extra_params = _scope_filter(agent_id, run_id)
        after = sql.SQL("")
        after_params: list[Any] = []
        if cursor:
            created_at, memory_id = decode_cursor(cursor)
            after = sql.SQL(" AND (payload->>'created_at', id) < (%s, %s::uuid)")
            after_params = [created_at, memory_id]
        page_query = sql.SQL(
            "SELECT id, payload FROM {t} WHERE payload->>'user_id' = %s{extra}{after}"
            " ORDER BY payload->>'created_at' DESC, id DESC LIMIT %s"
        ).format(t=self.table, extra=extra, after=after)
        count_query = sql.SQL("SELECT count(*) FROM {t} WHERE payload->>'user_id' = %s{extra}").format(
            t=self.table, extra=extra
        )
        with self.db.read_connection() as conn:
            rows = conn.execute(page_query, [user_key, *extra_params, *after_params, limit + 1]).fetchall()
            total = conn.execute(count_query, [user_key, *extra_params]).fetchone()
        items = [MemoryRecord.from_payload(str(r[0]), r[1]) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit and items:
            last = items[-1]
            next_cursor = encode_cursor(last.sort_key, last.id)
        return MemoryPage(items=items, total=int(total[0]) if total else 0, next_cursor=next_cursor)

    def users(self, tenant: str, *, limit: int, after: str | None = None) -> UserPage:
        """A tenant's users with their memory counts and last write, by user id, keyset-paged
        (`after` is the last user id of the previous page). Uses the tenant index."""
        prefix = qualified_user(tenant, "")
        after_clause = sql.SQL(" AND payload->>'user_id' > %s") if after is not None else sql.SQL("")
        after_params = [qualified_user(tenant, after)] if after is not None else []
        page_query = sql.SQL(
            "SELECT payload->>'user_id' AS u, count(*), max(coalesce(payload->>'updated_at', payload->>'created_at'))"
            " FROM {t} WHERE payload->>'tenant_id' = %s AND left(payload->>'user_id', %s) = %s{after}"
            " GROUP BY u ORDER BY u LIMIT %s"
        ).format(t=self.table, after=after_clause)
        total_query = sql.SQL(
            "SELECT count(DISTINCT payload->>'user_id') FROM {t}"
            " WHERE payload->>'tenant_id' = %s AND left(payload->>'user_id', %s) = %s"
        ).format(t=self.table)
        scope = [tenant, len(prefix), prefix]
        with self.db.connection() as conn:
            rows = conn.execute(page_query, [*scope, *after_params, limit + 1]).fetchall()
            total = conn.execute(total_query, scope).fetchone()
        users = [UserSummary(split_user_key(str(u))[1], int(n), rfc3339(last)) for u, n, last in rows[:limit]]
        next_after = users[-1].user_id if len(rows) > limit and users else None
        return UserPage(users=users, total=int(total[0]) if total else 0, next_after=next_after)

    def search_text(self, user_key: str, query: str, limit: int) -> list[MemoryRecord]:
        """Full-text search of one user's memories (web-search syntax: words, "phrases", OR,
        -word), ranked by ts_rank_cd, over the same tsvector and GIN index as mem0's keyword
        search. The rank is the record's score (unbounded, unlike the semantic similarity)."""
        statement = sql.SQL(
            "SELECT id, payload, ts_rank_cd(to_tsvector('simple', payload->>'text_lemmatized'), q) AS rank"
            " FROM {t}, websearch_to_tsquery('simple', %s) q"
            " WHERE payload->>'user_id' = %s AND to_tsvector('simple', payload->>'text_lemmatized') @@ q"
            " ORDER BY rank DESC, payload->>'created_at' DESC, id DESC LIMIT %s"
        ).format(t=self.table)
        with self.db.connection() as conn:
            rows = conn.execute(statement, (query, user_key, limit)).fetchall()
        return [MemoryRecord.from_payload(str(r[0]), r[1], score=float(r[2])) for r in rows]

    def stats(self, user_key: str) -> UserStats:
        summary = sql.SQL(
            "SELECT count(*), min(payload->>'created_at'), max(coalesce(payload->>'updated_at',"
            " payload->>'created_at')) FROM {t} WHERE payload->>'user_id' = %s"
        ).format(t=self.table)
        sources = sql.SQL(
            "SELECT coalesce(payload->>'source', 'api') AS s, count(*) FROM {t}"
            " WHERE payload->>'user_id' = %s GROUP BY s ORDER BY count(*) DESC, s"
        ).format(t=self.table)
        entities = sql.SQL(
            "SELECT count(DISTINCT k) FROM {t}, jsonb_array_elements_text(coalesce(payload->'entity_keys',"
            " '[]'::jsonb)) AS k WHERE payload->>'user_id' = %s"
        ).format(t=self.table)
        with self.db.read_connection() as conn:
            count, first, last = conn.execute(summary, (user_key,)).fetchone() or (0, None, None)
            by_source = {s: int(n) for s, n in conn.execute(sources, (user_key,)).fetchall()}
            entity_row = conn.execute(entities, (user_key,)).fetchone()
        _, user_id = user_key.split("/", 1)
        return UserStats(
            user_id=user_id,
            memory_count=int(count),
            first_write=rfc3339(first),
            last_write=rfc3339(last),
            sources=by_source,
            entity_count=int(entity_row[0]) if entity_row else 0,
        )

    def count(self, tenant: str | None = None) -> int:
        if tenant is None:
            query = sql.SQL("SELECT count(*) FROM {t}").format(t=self.table)
            params: tuple[Any, ...] = ()
        else:
            query = sql.SQL("SELECT count(*) FROM {t} WHERE payload->>'tenant_id' = %s").format(t=self.table)
            params = (tenant,)
        with self.db.read_connection() as conn:
            row = conn.execute(query, params).fetchone()
        return int(row[0]) if row else 0

    def annotate(self, memory_id: str, fields: dict[str, Any]) -> None:
        """Merge service-owned fields (entities, relationships) into a payload without a new version.

        Not a change of the memory's content, so no `memory.updated` webhook event (inferred adds
        no longer need it: the vector store merges their entities into the insert itself)."""
        query = sql.SQL("UPDATE {t} SET payload = payload || %s WHERE id = %s::uuid RETURNING payload->>'user_id'")
        with self.db.connection(write=True) as conn, conn.cursor() as cur:
            cur.execute(query.format(t=self.table), (Jsonb(fields), memory_id))
            row = cur.fetchone()
            if self.outbox and row is not None:
                enqueue_memories(cur, [(memory_id, str(row[0]))])

    def erase_user(self, user_key: str) -> list[str]:
        """Delete every memory, history row, message and feedback of one user in one transaction."""
        delete = sql.SQL("DELETE FROM {t} WHERE payload->>'user_id' = %s RETURNING id").format(t=self.table)
        with self.db.connection(write=True) as conn, conn.cursor() as cur:
            ids = [str(r[0]) for r in cur.execute(delete, (user_key,)).fetchall()]
            cur.execute("DELETE FROM memory_history WHERE user_key = %s", (user_key,))
            cur.execute("DELETE FROM memory_messages WHERE user_key = %s", (user_key,))
            cur.execute("DELETE FROM memory_feedback WHERE user_key = %s", (user_key,))
            if self.outbox:
                enqueue_user(cur, user_key)
            enqueue_events(cur, [user_erased(user_key, len(ids))])
        return ids

    # -- queries by filter tree (models/filters.py); the caller confines the tree to a tenant ------

    def select(self, where: Filter, *, limit: int, offset: int = 0) -> list[MemoryRecord]:
        """Matching memories, newest first."""
        condition, params = compile_filter(where)
        query = sql.SQL(
            "SELECT id, payload FROM {t} WHERE {c} ORDER BY payload->>'created_at' DESC, id DESC LIMIT %s OFFSET %s"
        ).format(t=self.table, c=condition)
        with self.db.connection() as conn:
            rows = conn.execute(query, [*params, limit, offset]).fetchall()
        return [MemoryRecord.from_payload(str(r[0]), r[1]) for r in rows]

    def count_where(self, where: Filter) -> int:
        condition, params = compile_filter(where)
        with self.db.connection() as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {t} WHERE {c}").format(t=self.table, c=condition), params)
            found = row.fetchone()
        return int(found[0]) if found else 0

    def delete_where(self, where: Filter, now: str) -> list[str]:
        """Delete the matching memories in one transaction, each with its DELETE history row (as
        mem0's delete writes it) and its outbox row; returns their ids."""
        condition, params = compile_filter(where)
        delete = sql.SQL("DELETE FROM {t} WHERE {c} ").format(t=self.table, c=condition) + _DELETED
        with self.db.connection(write=True) as conn, conn.cursor() as cur:
            rows = cur.execute(delete, params).fetchall()
            history = [
                (uuid.uuid4(), str(i), owner, data, None, "DELETE", created, now, True, actor, role)
                for i, owner, data, created, actor, role in rows
            ]
            insert_history(cur, history)
            if self.outbox:
                enqueue_memories(cur, [(str(r[0]), str(r[1])) for r in rows])
            enqueue_events(cur, [memory_deleted(str(r[0]), str(r[1])) for r in rows])
        return [str(r[0]) for r in rows]

    def erase_where(self, where: Filter) -> list[str]:
        """Delete the matching memories with their history and feedback, in one transaction (an
        entity's erasure: nothing of those memories is kept)."""
        condition, params = compile_filter(where)
        delete = sql.SQL("DELETE FROM {t} WHERE {c} RETURNING id, payload->>'user_id'").format(
            t=self.table, c=condition
        )
        with self.db.connection(write=True) as conn, conn.cursor() as cur:
            rows = cur.execute(delete, params).fetchall()
            ids = [str(r[0]) for r in rows]
            cur.execute("DELETE FROM memory_history WHERE memory_id = ANY(%s)", (ids,))
            cur.execute("DELETE FROM memory_feedback WHERE memory_id = ANY(%s::uuid[])", (ids,))
            if self.outbox:
                enqueue_memories(cur, [(str(r[0]), str(r[1])) for r in rows])
            enqueue_events(cur, [memory_deleted(str(r[0]), str(r[1])) for r in rows])
        return ids

    def merge_payloads(self, changes: dict[str, dict[str, Any]], now: str) -> None:
        """Merge each memory's metadata changes into its payload (updated_at = now), with an UPDATE
        history row each (text unchanged, as mem0 records a metadata-only update) and its outbox
        row: one transaction, one statement, however many memories."""
        if not changes:
            return
        ids = list(changes)
        merged = [Jsonb({**changes[i], "updated_at": now}) for i in ids]
        update = sql.SQL(
            "UPDATE {t} AS m SET payload = m.payload || c.changes"
            " FROM unnest(%s::uuid[], %s::jsonb[]) AS c(id, changes) WHERE m.id = c.id"
            " RETURNING m.id, m.payload->>'user_id', m.payload->>'data', m.payload->>'created_at',"
            " m.payload->>'actor_id', m.payload->>'role', m.payload"
        ).format(t=self.table)
        with self.db.connection(write=True) as conn, conn.cursor() as cur:
            rows = cur.execute(update, (ids, merged)).fetchall()
            history = [
                (uuid.uuid4(), str(i), owner, data, data, "UPDATE", created, now, False, actor, role)
                for i, owner, data, created, actor, role, _ in rows
            ]
            insert_history(cur, history)
            if self.outbox:
                enqueue_memories(cur, [(str(r[0]), str(r[1])) for r in rows])
            enqueue_events(cur, [memory_event(EventType.MEMORY_UPDATED, str(r[0]), r[6]) for r in rows])

    def entities(self, tenant: str, *, limit: int, offset: int) -> tuple[list[EntityRow], dict[str, int]]:
        """The tenant's users, agents, apps and runs with their memory counts (users first, then
        by name), and how many of each kind there are."""
        entities = sql.SQL(
            "FROM {t}, LATERAL (VALUES ('user', 1, split_part(payload->>'user_id', '/', 2)),"
            " ('agent', 2, payload->>'agent_id'), ('app', 3, payload->>'app_id'), ('run', 4, payload->>'run_id'))"
            " AS e(kind, rank, name) WHERE payload->>'tenant_id' = %s AND e.name IS NOT NULL"
        ).format(t=self.table)
        page = (
            sql.SQL("SELECT e.kind, e.name, count(*), min(payload->>'created_at'),")
            + sql.SQL(" max(coalesce(payload->>'updated_at', payload->>'created_at')) ")
            + entities
            + sql.SQL(" GROUP BY e.kind, e.rank, e.name ORDER BY e.rank, e.name LIMIT %s OFFSET %s")
        )
        totals = (
            sql.SQL("SELECT kind, count(*) FROM (SELECT DISTINCT e.kind, e.name ")
            + entities
            + sql.SQL(") d GROUP BY kind")
        )
        with self.db.connection() as conn:
            rows = conn.execute(page, (tenant, limit, offset)).fetchall()
            counts = {str(k): int(n) for k, n in conn.execute(totals, (tenant,)).fetchall()}
        return [EntityRow(k, n, int(c), rfc3339(f), rfc3339(last)) for k, n, c, f, last in rows], counts

    def ids_of_user(self, user_key: str) -> list[str]:
        query = sql.SQL("SELECT id FROM {t} WHERE payload->>'user_id' = %s").format(t=self.table)
        with self.db.connection() as conn:
            return [str(r[0]) for r in conn.execute(query, (user_key,)).fetchall()]

    def memories_with_entities(self, user_key: str, entity_keys: list[str], limit: int) -> list[MemoryRecord]:
        """Memories of a user that mention any of the entity keys (uses the GIN index)."""
        query = sql.SQL(
            "SELECT id, payload FROM {t} WHERE payload->>'user_id' = %s AND payload->'entity_keys' ?| %s"
            " ORDER BY payload->>'created_at' DESC, id DESC LIMIT %s"
        ).format(t=self.table)
        with self.db.connection() as conn:
            rows = conn.execute(query, (user_key, entity_keys, limit)).fetchall()
        return [MemoryRecord.from_payload(str(r[0]), r[1]) for r in rows]

    def user_entities(self, user_key: str, limit: int) -> list[tuple[str, str, int, float]]:
        """(key, name, memories mentioning it, best confidence) for the user, most mentioned first."""
        query = sql.SQL(
            "SELECT lower(regexp_replace(btrim(r->>'entity'), '\\s+', ' ', 'g')) AS k, min(r->>'entity'),"
            " count(DISTINCT id), max((r->>'confidence')::float)"
            " FROM {t}, jsonb_array_elements(coalesce(payload->'relationships', '[]'::jsonb)) r"
            " WHERE payload->>'user_id' = %s GROUP BY k ORDER BY count(DISTINCT id) DESC, k LIMIT %s"
        ).format(t=self.table)
        with self.db.connection() as conn:
            rows = conn.execute(query, (user_key, limit)).fetchall()
        return [(str(k), str(name), int(n), float(c)) for k, name, n, c in rows]

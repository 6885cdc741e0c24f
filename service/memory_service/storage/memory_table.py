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
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from memory_service.core.timefmt import rfc3339
from memory_service.errors import InvalidRequest
from memory_service.models.memory import MemoryPage, MemoryRecord, UserPage, UserStats, UserSummary
from memory_service.models.scope import split_user_key
from memory_service.models.scope import user_key as qualified_user
from memory_service.models.webhooks import user_erased
from memory_service.storage.database import Database
from memory_service.storage.outbox import enqueue_memories, enqueue_user
from memory_service.storage.webhooks import enqueue_events


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
        """Delete every memory, history row and message of one user in one transaction."""
        delete = sql.SQL("DELETE FROM {t} WHERE payload->>'user_id' = %s RETURNING id").format(t=self.table)
        with self.db.connection(write=True) as conn, conn.cursor() as cur:
            ids = [str(r[0]) for r in cur.execute(delete, (user_key,)).fetchall()]
            cur.execute("DELETE FROM memory_history WHERE user_key = %s", (user_key,))
            cur.execute("DELETE FROM memory_messages WHERE user_key = %s", (user_key,))
            if self.outbox:
                enqueue_user(cur, user_key)
            enqueue_events(cur, [user_erased(user_key, len(ids))])
        return ids

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

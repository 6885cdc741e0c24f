"""mem0's pgvector store on the service's pool: bounded waits, iterative scans, timings, outbox.

mem0's PGVector opens its own pool with a 30 s wait and no statement timeout; this subclass routes
every cursor through Database.connection(), which bounds both, sets the HNSW iterative scan for
the transaction, and turns a dead database into 503. Each store call is timed for the
`memory_vector_query_duration_seconds` histogram. Every insert, update and delete also records
its webhook event (storage/webhooks.py) and, when the graph is projected to Neo4j, its outbox row
(storage/outbox.py), in the same transaction as the change.
"""

from __future__ import annotations

import builtins
import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from mem0.vector_stores.pgvector import OutputData, PGVector, _build_filter_conditions
from opentelemetry import trace
from psycopg import sql
from psycopg.types.json import Jsonb

from memory_service.core.context import current_call
from memory_service.models.filters import Filter
from memory_service.models.webhooks import EventType, memory_deleted, memory_event
from memory_service.observability.metrics import VECTOR_DURATION
from memory_service.storage.adapters import PgVector
from memory_service.storage.database import Database
from memory_service.storage.filters import compile_filter
from memory_service.storage.history import insert_history_records
from memory_service.storage.outbox import enqueue_memories
from memory_service.storage.webhooks import enqueue_events

# mem0 casts the field of a range filter (gt, gte, lt, lte) with `::numeric`, which fails the whole
# query when any of the user's memories holds something else there ("high"): one such memory
# turned every `priority >= 3` search of its user into a 500. Only a number (JSON number or
# numeric text, as the cast read them) is compared now; anything else is NULL and does not match.
_NUMERIC_CAST = "(payload->>%s)::numeric"
_NUMBER_OR_NULL = r"substring(payload->>%s from '^\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$')::numeric"


def filter_conditions(filters: dict[str, Any] | None) -> tuple[list[str], list[Any]]:
    """mem0's WHERE conditions and parameters for `filters`, range comparisons made safe."""
    conditions, params = _build_filter_conditions(filters)
    return [c.replace(_NUMERIC_CAST, _NUMBER_OR_NULL) for c in conditions], params


# A filter tree under this key in mem0's `filters` replaces mem0's own flat conditions: mem0 hands
# its filters through to search() and keyword_search() untouched, and needs a `user_id` beside
# it, which the engine gives (domain/memories/engine.py).
WHERE_KEY = "$where"

P = ParamSpec("P")
R = TypeVar("R")
_tracer = trace.get_tracer(__name__)


def _timed(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    histogram = VECTOR_DURATION.labels(operation)

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with _tracer.start_as_current_span(f"vector.{operation}"):
                started = time.perf_counter()
                try:
                    return method(*args, **kwargs)
                finally:
                    histogram.observe(time.perf_counter() - started)

        return wrapper

    return decorate


class _BorrowedPool:
    """Given to mem0's own PGVector at construction: its __del__ closes 'its' pool, not ours."""

    def close(self) -> None:
        return None


BORROWED_POOL = _BorrowedPool()


class ServicePGVector(PGVector):
    """mem0's PGVector whose cursors come from the service's Database."""

    def __init__(self, db: Database, collection_name: str, dims: int, *, outbox: bool = False) -> None:
        super().__init__(  # type: ignore[no-untyped-call]  # mem0's PGVector.__init__ is unannotated
            dbname="",
            collection_name=collection_name,
            embedding_model_dims=dims,
            user=None,
            password=None,
            host=None,
            port=None,
            diskann=False,
            hnsw=True,
            connection_pool=BORROWED_POOL,
        )
        self.db = db
        self.outbox = outbox
        self._collection_ensured = True  # the schema module created it, with our indexes

    @contextmanager
    def _get_cursor(self, commit: bool = False) -> Iterator[Any]:
        """One transaction on the service's pool (it commits on success, rolls back on error); a
        write inside an engine call joins the call's unit of work (storage/database.py)."""
        with self.db.connection(write=commit) as conn, conn.cursor() as cur:
            yield cur

    # Writes are mem0's statements, written here rather than inherited so that the memory row and
    # its outbox row are one transaction (mem0's methods open a cursor of their own).

    @_timed("insert")
    def insert(self, vectors: list[list[float]], payloads: Any = None, ids: Any = None) -> None:
        call = current_call()
        if call is not None and call.payload_fields is not None:  # the entities of inferred facts
            payloads = [{**p, **call.payload_fields(p)} for p in payloads]
        rows = [(i, PgVector(v), Jsonb(p)) for i, v, p in zip(ids, vectors, payloads, strict=True)]
        with self._get_cursor(commit=True) as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} (id, vector, payload) VALUES (%s, %s, %s)").format(self._col()), rows
            )
            if self.outbox:
                enqueue_memories(cur, [(str(i), str(p.get("user_id"))) for i, p in zip(ids, payloads, strict=True)])
            enqueue_events(
                cur, [memory_event(EventType.MEMORY_CREATED, str(i), p) for i, p in zip(ids, payloads, strict=True)]
            )

    @_timed("insert")
    def insert_memories(
        self, ids: list[str], vectors: list[list[float]], payloads: list[dict[str, Any]], owner: str
    ) -> None:
        """New memories, their history rows ("ADD", as mem0's add_history writes them), outbox
        rows and webhook events (memory.created) in one transaction, pipelined: two round trips
        for a whole request's messages instead of three per statement and two transactions per
        message (insert, then history). In an engine call it is the call's unit of work, so the
        commit handshake decides whether it commits."""
        rows = [(i, PgVector(v), Jsonb(p)) for i, v, p in zip(ids, vectors, payloads, strict=True)]
        history = [
            {
                "memory_id": i,
                "old_memory": None,
                "new_memory": p.get("data"),
                "event": "ADD",
                "created_at": p.get("created_at"),
                "updated_at": p.get("updated_at"),
                "actor_id": p.get("actor_id"),
                "role": p.get("role"),
            }
            for i, p in zip(ids, payloads, strict=True)
        ]
        with self.db.connection(write=True) as conn, conn.pipeline(), conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} (id, vector, payload) VALUES (%s, %s, %s)").format(self._col()), rows
            )
            if self.outbox:
                enqueue_memories(cur, [(i, str(p.get("user_id"))) for i, p in zip(ids, payloads, strict=True)])
            insert_history_records(cur, owner, history)
            enqueue_events(
                cur, [memory_event(EventType.MEMORY_CREATED, i, p) for i, p in zip(ids, payloads, strict=True)]
            )

    @_timed("update")
    def update(self, vector_id: str, vector: list[float] | None = None, payload: dict[str, Any] | None = None) -> None:
        with self._get_cursor(commit=True) as cur:
            if vector is not None:
                cur.execute(
                    sql.SQL("UPDATE {} SET vector = %s WHERE id = %s").format(self._col()),
                    (PgVector(vector), vector_id),
                )
            if payload is not None:
                cur.execute(
                    sql.SQL("UPDATE {} SET payload = %s WHERE id = %s").format(self._col()), (Jsonb(payload), vector_id)
                )
                if self.outbox:
                    enqueue_memories(cur, [(str(vector_id), str(payload.get("user_id")))])
                enqueue_events(cur, [memory_event(EventType.MEMORY_UPDATED, str(vector_id), payload)])

    @_timed("delete")
    def delete(self, vector_id: str) -> None:
        with self._get_cursor(commit=True) as cur:
            cur.execute(
                sql.SQL("DELETE FROM {} WHERE id = %s RETURNING payload->>'user_id'").format(self._col()),
                (vector_id,),
            )
            row = cur.fetchone()
            if row is not None:
                if self.outbox:
                    enqueue_memories(cur, [(str(vector_id), str(row[0]))])
                enqueue_events(cur, [memory_deleted(str(vector_id), str(row[0]))])

    @_timed("search")
    def search(
        self, query: str, vectors: list[float], top_k: int | None = 5, filters: dict[str, Any] | None = None
    ) -> list[OutputData]:
        """mem0's query; rows become OutputData without validation (mem0 validates and copies
        every payload of its 60-row over-fetch, a tenth of a search's CPU)."""
        rows = self._filtered_rows(
            "SELECT id, vector <=> %s::vector AS distance, payload FROM {} WHERE {} ORDER BY distance LIMIT %s",
            (PgVector(vectors),),
            filters,
            top_k,
        )
        return [OutputData.model_construct(id=str(r[0]), score=max(0.0, 1.0 - float(r[1])), payload=r[2]) for r in rows]

    @_timed("keyword_search")
    def keyword_search(
        self, query: str, top_k: int = 5, filters: dict[str, Any] | None = None
    ) -> list[OutputData] | None:
        """mem0's full-text query, rows built without validation as in search().

        Without the payloads: mem0 2.2 takes only each row's id and score from the keyword
        results (the candidates and their payloads come from the vector search), and decoding up
        to 60 payloads nobody reads was the largest part of this query's Python time.
        """
        rows = self._filtered_rows(
            "SELECT id, ts_rank_cd(to_tsvector('simple', payload->>'text_lemmatized'),"
            " plainto_tsquery('simple', %s)) AS score FROM {}"
            " WHERE to_tsvector('simple', payload->>'text_lemmatized') @@ plainto_tsquery('simple', %s) AND {}"
            " ORDER BY score DESC LIMIT %s",
            (query, query),
            filters,
            top_k,
        )
        return [OutputData.model_construct(id=str(r[0]), score=float(r[1]), payload={}) for r in rows]

    def hybrid_search(
        self, vector: list[float], keyword_query: str, filters: dict[str, Any], top_k: int, *, exact: bool
    ) -> tuple[list[tuple[str, float, dict[str, Any]]], list[tuple[str, float]]]:
        """mem0's two search queries (search() and keyword_search() above) as one statement, one
        round trip, in autocommit: the `top_k` nearest of the filtered rows with their payloads
        and similarity (1 - cosine distance, at least 0), and the `top_k` best full-text matches
        with their rank.

        `exact`: the nearest come from computing the distance to every matching row (through the
        user index: cost proportional to the user's memories, whatever the table holds, and
        exact); otherwise from the HNSW index with the iterative scan (for users with very many
        memories, where that is cheaper). `cosine_distance()` is the same function as `<=>`, but
        no index can order by it, which is what keeps the planner on the user's rows.
        """
        where, params = self._where(filters)
        distance = sql.SQL("cosine_distance(vector, %s::vector)" if exact else "vector <=> %s::vector")
        query = sql.SQL(
            "WITH semantic AS (SELECT id, {distance} AS distance, payload FROM {t} WHERE {where}"
            " ORDER BY distance LIMIT %s),"
            " keyword AS (SELECT id, ts_rank_cd(to_tsvector('simple', payload->>'text_lemmatized'),"
            " plainto_tsquery('simple', %s)) AS score FROM {t}"
            " WHERE to_tsvector('simple', payload->>'text_lemmatized') @@ plainto_tsquery('simple', %s) AND {where}"
            " ORDER BY score DESC LIMIT %s)"
            " SELECT false, id, distance, payload FROM semantic"
            " UNION ALL SELECT true, id, score, NULL FROM keyword"
        ).format(distance=distance, t=self._col(), where=where)
        args = (PgVector(vector), *params, top_k, keyword_query, keyword_query, *params, top_k)
        operation = "search_exact" if exact else "search_index"  # which access path, in the metrics
        # One span name for every search (what trace queries and dashboards look for); the access
        # path is an attribute.
        with _tracer.start_as_current_span("vector.search", attributes={"vector.access_path": operation}):
            started = time.perf_counter()
            try:
                with self.db.read_connection(read_only=True) as conn:  # the replica when caught up
                    rows = conn.execute(query, args).fetchall()
            finally:
                VECTOR_DURATION.labels(operation).observe(time.perf_counter() - started)
        semantic = [(str(r[1]), max(0.0, 1.0 - float(r[2])), r[3]) for r in rows if not r[0]]
        keyword = [(str(r[1]), float(r[2])) for r in rows if r[0]]
        return semantic, keyword

    @staticmethod
    def _where(filters: dict[str, Any] | None) -> tuple[sql.Composable, builtins.list[Any]]:
        """The condition of mem0's filters and its parameters: the service's filter tree
        (WHERE_KEY), when given, is the whole condition; else mem0's own filters."""
        tree: Filter | None = (filters or {}).get(WHERE_KEY)
        if tree is not None:
            where, params = compile_filter(tree)
            return where, list(params)
        conditions, plain = filter_conditions(filters)
        return sql.SQL(" AND ".join(conditions) if conditions else "TRUE"), list(plain)

    def _filtered_rows(
        self, query: str, leading: tuple[Any, ...], filters: dict[str, Any] | None, top_k: int | None
    ) -> Any:
        """Run one of mem0's queries: `{}` are the collection and its filter conditions (TRUE
        without filters), `leading` the parameters before the filters' own, `top_k` the last.
        The service's filter tree (WHERE_KEY), when given, is the whole condition."""
        where, params = self._where(filters)
        with self.db.read_connection() as conn, conn.cursor() as cur:  # the replica when caught up
            cur.execute(sql.SQL(query).format(self._col(), where), (*leading, *params, top_k))
            return cur.fetchall()

    @_timed("list")
    def list(self, filters: dict[str, Any] | None = None, top_k: int | None = 100) -> builtins.list[Any]:
        """mem0's listing (its get_all), with the safe filter conditions above."""
        rows = self._filtered_rows("SELECT id, NULL, payload FROM {} WHERE {} LIMIT %s", (), filters, top_k)
        return [[OutputData(id=str(r[0]), score=None, payload=r[2]) for r in rows]]

    get = _timed("get")(PGVector.get)

    def __del__(self) -> None:
        """The pool belongs to the service."""

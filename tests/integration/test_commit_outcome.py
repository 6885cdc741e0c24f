"""The commit handshake after a Postgres crash: a transaction id handed out again is not trusted.

Crash recovery restarts transaction ids after the last one the WAL recorded, so the id of a
transaction whose records never reached the WAL goes to another transaction. Looking up the
first one's outcome then reads the second one's "committed": the chaos suite saw a write
acknowledged that way and missing. The lookup must say "unknown" instead (storage/database.py).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psycopg
from memory_service.settings import Settings
from memory_service.storage.database import Database
from pydantic import SecretStr

from tests.support.server import postgres_processes, standalone_postgres


def test_an_id_reused_after_a_crash_reads_unknown_not_committed(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    with standalone_postgres(data_dir) as uri:
        conn = psycopg.connect(uri)
        row = conn.execute("SELECT pg_current_xact_id()::text, pg_postmaster_start_time()::text").fetchone()
        assert row is not None
        xid, started = str(row[0]), str(row[1])
        for process in postgres_processes(data_dir):
            os.kill(process.pid, signal.SIGKILL)
        time.sleep(1)
    with standalone_postgres(data_dir) as uri:
        with psycopg.connect(uri, autocommit=True) as other:
            # Another writer after the restart: it is handed the lost transaction's id and commits.
            reused = False
            for _ in range(100):
                with other.transaction():
                    got = other.execute("SELECT pg_current_xact_id()::text").fetchone()
                    assert got is not None
                if str(got[0]) == xid:
                    reused = True
                    break
            assert reused, "the id was not handed out again"
            status = other.execute("SELECT pg_xact_status(%s::xid8)", (xid,)).fetchone()
            assert status is not None
            assert status[0] == "committed"  # what the id alone says
        db = Database(Settings(database_url=SecretStr(uri), data_dir=data_dir))
        db.open()
        try:
            assert db.transaction_outcome(xid, started) == "unknown"
        finally:
            db.close()

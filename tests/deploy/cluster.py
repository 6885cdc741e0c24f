"""Four throwaway Debian hosts on a bridge, plus a client: the scale-out deploy test's world.

Like tests/deploy/testhost.py (whose caches, wheelhouse and apt repository it shares), but with
a balancer, two API hosts and a data host, each a systemd-nspawn container in its own network
namespace. The controller namespace holds the bridge the test creates: the hosts' veths and a
client namespace's veth are its ports, and the controller itself (which runs `make deploy` and
serves the packages) has the bridge's first address. Nothing talks to any other address.

Each host boots a copy of the cached base rootfs (copies run in parallel; ~300 MB each).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.testhost import (
    CACHE,
    HTTP_PORT,
    REPO,
    VENV_BIN,
    HarnessError,
    PlaybookRun,
    apt_repository,
    base_rootfs,
    http_get_in,
    log,
    project_version,
    run,
    snapshot_repo,
    wheelhouse,
)

NETWORK = "10.213.48"
CONTROLLER_ADDR = f"{NETWORK}.1"
CLIENT_ADDR = f"{NETWORK}.100"
PREFIX = 24
# Inventory name -> last octet; the inventory (tests/deploy/inventory-cluster) reads the addresses
# from DEPLOY_TEST_ADDR_<NAME>.
HOSTS = {"lb": 10, "api-1": 11, "api-2": 12, "data": 13}
CLUSTER_INVENTORY = REPO / "tests/deploy/inventory-cluster/hosts.yml"


def address(name: str) -> str:
    return f"{NETWORK}.{HOSTS[name]}"


@dataclass
class Node:
    name: str
    index: int
    run_dir: Path
    tag: str
    nspawn: subprocess.Popen[bytes] | None = None

    @property
    def ns(self) -> str:
        return f"mdc-{self.tag}-{self.index}"

    @property
    def rootfs(self) -> Path:
        return self.run_dir / f"rootfs-{self.name}"

    @property
    def addr(self) -> str:
        return address(self.name)


@dataclass
class Cluster:
    """The four hosts, the controller with the bridge, and the client namespace."""

    run_dir: Path
    tag: str = field(default_factory=lambda: f"{os.getpid() % 0xFFFF:04x}")
    nodes: dict[str, Node] = field(default_factory=dict)
    http: subprocess.Popen[bytes] | None = None

    @property
    def ctl_ns(self) -> str:
        return f"mdc-{self.tag}-ctl"

    @property
    def client_ns(self) -> str:
        return f"mdc-{self.tag}-cli"

    @property
    def bridge(self) -> str:
        return f"mdcbr{self.tag}"

    @property
    def source(self) -> Path:
        return self.run_dir / "src"

    @property
    def ssh_key(self) -> Path:
        return self.run_dir / "id_ed25519"

    @property
    def inventory(self) -> Path:
        return self.source / CLUSTER_INVENTORY.relative_to(REPO)

    @property
    def logdir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def ca_file(self) -> Path:
        """The balancer's internal CA root, where `make deploy` fetched it."""
        return self.inventory.parent / "ca" / "lb.crt"

    def __enter__(self) -> Cluster:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- building -------------------------------------------------------------------------

    def up(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logdir.mkdir(exist_ok=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        base = base_rootfs(self.logdir)
        repo = apt_repository(base, self.logdir)
        source = snapshot_repo(self.source)
        wheels = wheelhouse(base, source, self.logdir)
        log(f"caches ready in {time.monotonic() - started:.0f}s")
        self.nodes = {name: Node(name, i, self.run_dir, self.tag) for i, name in enumerate(HOSTS)}
        for old in (self.ssh_key, self.ssh_key.with_suffix(".pub")):
            old.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy-test", "-f", self.ssh_key])
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(lambda node: self._prepare_rootfs(base, node), self.nodes.values()))
        serve = self.run_dir / "serve"
        serve.mkdir(exist_ok=True)
        for name, target in (("apt", repo), ("wheels", wheels)):
            link = serve / name
            link.unlink(missing_ok=True)
            link.symlink_to(target)
        self._network(serve)
        for node in self.nodes.values():
            self._boot(node)
        for node in self.nodes.values():
            self._wait_for_ssh(node)
        log(f"cluster up in {time.monotonic() - started:.0f}s")

    def _prepare_rootfs(self, base: Path, node: Node) -> None:
        shutil.rmtree(node.rootfs, ignore_errors=True)
        run(["cp", "-a", "--reflink=auto", f"{base}/.", node.rootfs])
        (node.rootfs / ".complete").unlink(missing_ok=True)
        root_ssh = node.rootfs / "root/.ssh"
        root_ssh.mkdir(mode=0o700, exist_ok=True)
        shutil.copy2(self.ssh_key.with_suffix(".pub"), root_ssh / "authorized_keys")
        (root_ssh / "authorized_keys").chmod(0o600)
        (node.rootfs / "etc/hostname").write_text(f"{node.name}\n")
        (node.rootfs / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {node.name}\n")
        (node.rootfs / "etc/apt/sources.list").write_text(
            f"deb [trusted=yes] http://{CONTROLLER_ADDR}:{HTTP_PORT}/apt ./\n"
        )
        (node.rootfs / "etc/resolv.conf").write_text("# no DNS on the test network\n")
        image_time = time.time() - 2 * 86400
        for path in (node.rootfs / "var/lib/apt/lists", node.rootfs / "var/lib/apt/lists/partial"):
            if path.exists():
                os.utime(path, (image_time, image_time))
        run(["chroot", node.rootfs, "ssh-keygen", "-A"], logfile=self.logdir / f"prepare-{node.name}.log")

    def _veth(self, ns: str, name: str, addr: str, mac_index: int) -> None:
        """A veth from the bridge (in the controller namespace) into `ns` with `addr`."""
        outer, inner = f"mdcv{self.tag}{mac_index}", f"mdci{self.tag}{mac_index}"
        run(["ip", "link", "add", outer, "netns", self.ctl_ns, "type", "veth", "peer", inner, "netns", ns])
        run(["ip", "-n", self.ctl_ns, "link", "set", outer, "master", self.bridge, "up"])
        run(["ip", "-n", ns, "addr", "add", f"{addr}/{PREFIX}", "dev", inner])
        run(["ip", "-n", ns, "link", "set", inner, "up"])
        run(["ip", "-n", ns, "route", "add", "default", "via", CONTROLLER_ADDR])

    def _network(self, serve: Path) -> None:
        for ns in (self.ctl_ns, self.client_ns, *(n.ns for n in self.nodes.values())):
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", self.ctl_ns, "link", "add", self.bridge, "type", "bridge"])
        run(["ip", "-n", self.ctl_ns, "addr", "add", f"{CONTROLLER_ADDR}/{PREFIX}", "dev", self.bridge])
        run(["ip", "-n", self.ctl_ns, "link", "set", self.bridge, "up"])
        for node in self.nodes.values():
            self._veth(node.ns, node.name, node.addr, node.index)
        self._veth(self.client_ns, "client", CLIENT_ADDR, 9)
        http_log = (self.logdir / "http.log").open("ab")
        self.http = subprocess.Popen(
            [
                "ip", "netns", "exec", self.ctl_ns,
                sys.executable, "-m", "http.server", str(HTTP_PORT),
                "--bind", CONTROLLER_ADDR, "--directory", str(serve),
            ],
            stdout=http_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def _boot(self, node: Node) -> None:
        console = (self.logdir / f"console-{node.name}.log").open("ab")
        node.nspawn = subprocess.Popen(
            [
                "systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
                f"--machine=mdc-{self.tag}-{node.index}",
                f"--directory={node.rootfs}",
                f"--network-namespace-path=/run/netns/{node.ns}",
                "--resolv-conf=off", "--timezone=off", "--console=read-only",
                "--capability=CAP_NET_ADMIN",
            ],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"},
        )  # fmt: skip

    def _wait_for_ssh(self, node: Node, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.nspawn is not None and node.nspawn.poll() is not None:
                raise HarnessError(f"{node.name} exited ({node.nspawn.returncode}); see {self.logdir}")
            if self.ssh(node.name, "true", check=False, timeout=10).returncode == 0:
                return
            time.sleep(2)
        raise HarnessError(f"no SSH on {node.name} ({node.addr}) within {timeout:.0f}s")

    # -- using ----------------------------------------------------------------------------

    def in_ns(self, ns: str, args: Sequence[str | os.PathLike[str]]) -> list[str]:
        return ["ip", "netns", "exec", ns, *[str(a) for a in args]]

    def ssh(
        self, name: str, command: str, *, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """A shell command on host `name` as root, over SSH from the controller namespace."""
        argv = self.in_ns(
            self.ctl_ns,
            [
                "ssh", "-i", self.ssh_key,
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
                f"root@{address(name)}", command,
            ],
        )  # fmt: skip
        return run(argv, check=check, capture=True, timeout=timeout)

    def ansible_env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DEPLOY_TEST_SSH_KEY": str(self.ssh_key),
            "DEPLOY_TEST_PACKAGES_URL": f"http://{CONTROLLER_ADDR}:{HTTP_PORT}",
            "DEPLOY_TEST_VERSION": project_version(self.source),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        }
        for name in HOSTS:
            env[f"DEPLOY_TEST_ADDR_{name.upper().replace('-', '_')}"] = address(name)
        return env

    def make(self, target: str, *variables: str, logname: str, env: dict[str, str] | None = None) -> PlaybookRun:
        """`make TARGET INVENTORY=<cluster inventory> ...` in the controller namespace."""
        logfile = self.logdir / f"{logname}.log"
        started = time.monotonic()
        proc = run(
            self.in_ns(
                self.ctl_ns,
                ["make", "--no-print-directory", "-C", self.source, target, f"INVENTORY={self.inventory}", *variables],
            ),
            check=False,
            env={**self.ansible_env(), **(env or {})},
            logfile=logfile,
            timeout=3600,
        )
        result = PlaybookRun.parse(logfile.read_text(errors="replace"), proc.returncode, time.monotonic() - started)
        log(f"make {target}: rc={proc.returncode} {result.recap} in {result.seconds:.0f}s (log {logfile})")
        return result

    def client_get(self, url: str, cafile: Path | None = None, follow_redirects: bool = True) -> tuple[int, str]:
        """GET from the client namespace."""
        return http_get_in(self.in_ns(self.client_ns, []), url, cafile=cafile, follow_redirects=follow_redirects)

    def client_tcp_open(self, addr: str, port: int, timeout: float = 3) -> bool:
        code = (
            "import socket, sys\n"
            f"s = socket.socket(); s.settimeout({timeout})\n"
            f"sys.exit(0 if s.connect_ex(({addr!r}, {port})) == 0 else 1)\n"
        )
        return (
            run(self.in_ns(self.client_ns, [sys.executable, "-c", code]), check=False, timeout=timeout + 10).returncode
            == 0
        )

    def client_python(self, args: Sequence[str], *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """`python -m tests.deploy.client <args>` (the controller's venv) in the client namespace."""
        env = {**os.environ, "SSL_CERT_FILE": str(self.ca_file), "PYTHONPATH": str(REPO)}
        return run(
            self.in_ns(self.client_ns, [sys.executable, "-m", "tests.deploy.client", *args]),
            capture=True,
            env=env,
            timeout=timeout,
            cwd=REPO,
        )

    def client_popen(self, args: Sequence[str], logfile: Path) -> subprocess.Popen[bytes]:
        """A long-running command in the client namespace (SSL_CERT_FILE: the fetched CA)."""
        env = {**os.environ, "SSL_CERT_FILE": str(self.ca_file), "PYTHONPATH": str(REPO)}
        return subprocess.Popen(
            self.in_ns(self.client_ns, list(args)),
            stdout=logfile.open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )

    # -- teardown -------------------------------------------------------------------------

    def down(self) -> None:
        """Stop the containers and the web server, delete the namespaces and the rootfs copies."""
        for node in self.nodes.values():
            if node.nspawn is not None and node.nspawn.poll() is None:
                node.nspawn.send_signal(signal.SIGTERM)
        for node in self.nodes.values():
            if node.nspawn is not None:
                try:
                    node.nspawn.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    node.nspawn.kill()
                    node.nspawn.wait(timeout=30)
        if self.http is not None and self.http.poll() is None:
            self.http.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.http.wait(timeout=10)
        for ns in (self.ctl_ns, self.client_ns, *(n.ns for n in self.nodes.values())):
            if Path(f"/run/netns/{ns}").exists():
                for pid in run(["ip", "netns", "pids", ns], check=False, capture=True).stdout.split():
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                run(["ip", "netns", "del", ns], check=False)
        if os.environ.get("DEPLOY_TEST_KEEP_ROOTFS") != "1":
            for node in self.nodes.values():
                shutil.rmtree(node.rootfs, ignore_errors=True)
            shutil.rmtree(self.source, ignore_errors=True)

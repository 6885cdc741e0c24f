"""A throwaway Debian bookworm host for the deploy test.

The host is a debootstrap'd rootfs booted with systemd-nspawn inside its own network namespace.
A second namespace plays the operator's controller: it runs `make deploy` (ansible-playbook over
SSH) and serves the only package sources the host has: a local apt repository of the .debs the
playbook installs, and a wheelhouse with memory-service and its dependencies. The two namespaces
are joined by a veth pair with private addresses that exist only inside them; nothing in the test
talks to any other address.

What is cached (DEPLOY_TEST_CACHE, default /var/tmp/memory-service-deploy-test) so that a second
run is faster: the debootstrap'd base rootfs, the apt repository and the wheelhouse's dependency
wheels. Every run boots a fresh copy of the base; a run from an empty cache rebuilds everything
(needs the Debian mirror and PyPI, as CI has).

Run by tests/deploy/test_converge.py; `python -m tests.deploy.testhost up` keeps a host running
for debugging (and prints how to reach it), `python -m tests.deploy.testhost down` removes it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

SUITE = "bookworm"
MIRROR = os.environ.get("DEPLOY_TEST_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("DEPLOY_TEST_CACHE", "/var/tmp/memory-service-deploy-test"))

# What a fresh cloud image of Debian has: systemd, SSH, Python for Ansible.
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "iproute2",
    "ca-certificates",
)
# Everything the playbook installs on the test inventory (common, docker with Debian's docker.io,
# the native stack runtime). The local repository holds these and their dependencies, nothing else.
PLAYBOOK_PACKAGES = (
    "sudo",
    "ufw",
    "unattended-upgrades",
    "apt-listchanges",
    "systemd-timesyncd",
    "acl",
    "python3-venv",
    "python3-packaging",
    "redis-server",
    "docker.io",
    "caddy",
)

# Addresses inside the test's own namespaces only.
CONTROLLER_ADDR = "10.213.47.1"
HOST_ADDR = "10.213.47.2"
PREFIX = 24
HTTP_PORT = 8765


class HarnessError(RuntimeError):
    """The test host could not be built or reached."""


def log(message: str) -> None:
    print(f"[deploy-test {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    capture: bool = False,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    logfile: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; with logfile, stdout and stderr go there (and a failure shows its tail)."""
    argv = [str(a) for a in args]
    if logfile is not None:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with logfile.open("a") as out:
            out.write(f"\n$ {' '.join(argv)}\n")
            out.flush()
            proc = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd, timeout=timeout
            )
        if check and proc.returncode != 0:
            tail = "".join(logfile.read_text(errors="replace").splitlines(keepends=True)[-60:])
            raise HarnessError(f"{' '.join(argv)} exited {proc.returncode}; log {logfile}:\n{tail}")
        return proc
    proc = subprocess.run(argv, capture_output=capture, text=True, env=env, cwd=cwd, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        detail = f"\n{proc.stdout}\n{proc.stderr}" if capture else ""
        raise HarnessError(f"{' '.join(argv)} exited {proc.returncode}{detail}")
    return proc


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def base_rootfs(logdir: Path) -> Path:
    """The debootstrap'd bookworm rootfs (cached, never booted itself)."""
    target = CACHE / f"rootfs-{SUITE}-{_digest(MIRROR, *BASE_PACKAGES)}"
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    log(f"debootstrap {SUITE} from {MIRROR} (first run only)")
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            SUITE,
            target,
            MIRROR,
        ],
        logfile=logdir / "debootstrap.log",
        timeout=1800,
    )
    # No host keys baked into the cache: each booted copy generates its own (see boot()).
    for key in (target / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (target / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    return target


SNAPSHOT_SKIP = {".venv", ".git", "data", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "build", "dist"}
SNAPSHOT_SKIP_PATHS = {"ops/neo4j/target", "ops/neo4j/run", "loadtests/reports"}


def snapshot_repo(dest: Path) -> Path:
    """A copy of this checkout (without .git and caches; .venv linked) that `make deploy` runs from.

    Other work may change the checkout while the test runs; the two converges must see one tree.
    """

    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = Path(directory).relative_to(REPO)
        return {
            n for n in names if n in SNAPSHOT_SKIP or n.endswith(".egg-info") or str(rel / n) in SNAPSHOT_SKIP_PATHS
        }

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)
    (dest / ".venv").symlink_to(REPO / ".venv")
    return dest


def write_packages_index(repo: Path) -> None:
    """Packages and Packages.gz of a flat repository (what dpkg-scanpackages writes, without dpkg-dev)."""
    stanzas = []
    for deb in sorted(repo.glob("*.deb")):
        control = run(["dpkg-deb", "-f", deb], capture=True).stdout.rstrip("\n")
        data = deb.read_bytes()
        stanzas.append(
            f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
            f"MD5sum: {hashlib.md5(data, usedforsecurity=False).hexdigest()}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    index = "\n".join(stanzas).encode()
    (repo / "Packages").write_bytes(index)
    (repo / "Packages.gz").write_bytes(gzip.compress(index, 9))


def apt_repository(base: Path, logdir: Path) -> Path:
    """A flat apt repository with PLAYBOOK_PACKAGES and their dependencies missing from base.

    Resolved by apt itself, in a scratch copy of the base rootfs, against the same mirror, with
    recommends as the playbook's apt tasks install them.
    """
    repo = CACHE / f"apt-{SUITE}-{_digest(MIRROR, *BASE_PACKAGES, *PLAYBOOK_PACKAGES)}"
    if (repo / "Packages.gz").exists():
        return repo
    log("building the local apt repository (first run only)")
    scratch = Path(tempfile.mkdtemp(prefix="apt-build-", dir=CACHE))
    try:
        run(["cp", "-a", f"{base}/.", scratch], logfile=logdir / "apt-repo.log")
        (scratch / "etc/apt/sources.list").write_text(f"deb {MIRROR} {SUITE} main\n")
        shutil.copy2("/etc/resolv.conf", scratch / "etc/resolv.conf")
        run(["chroot", scratch, "apt-get", "update", "-q"], logfile=logdir / "apt-repo.log", timeout=900)
        run(
            ["chroot", scratch, "apt-get", "install", "-y", "-q", "--download-only", *PLAYBOOK_PACKAGES],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            logfile=logdir / "apt-repo.log",
            timeout=1800,
        )
        debs = sorted((scratch / "var/cache/apt/archives").glob("*.deb"))
        if not debs:
            raise HarnessError("apt downloaded no packages")
        tmp_repo = Path(tempfile.mkdtemp(prefix="apt-repo-", dir=CACHE))
        for deb in debs:
            shutil.copy2(deb, tmp_repo / deb.name)
        write_packages_index(tmp_repo)
        shutil.rmtree(repo, ignore_errors=True)
        tmp_repo.rename(repo)
        log(f"apt repository: {len(debs)} packages")
        return repo
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _builder_pip_env(builder: Path) -> dict[str, str]:
    """The controller's way to PyPI (index, proxy, CA bundle), for pip inside the builder chroot."""
    ca = Path(os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    if ca.is_file():
        shutil.copy2(ca, builder / "etc/ssl/controller-ca.crt")
        env["PIP_CERT"] = "/etc/ssl/controller-ca.crt"
    passed = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT")
    proxies = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
    env.update({k: v for k, v in os.environ.items() if k in passed + proxies})
    return env


def wheelhouse(base: Path, source: Path, logdir: Path) -> Path:
    """memory-service (built from this checkout) and every dependency, as wheels for the host.

    Resolved by the host's own Python (bookworm's 3.11.2: environment markers such as
    python_full_version differ from the controller's), in a cached builder chroot made from the
    base rootfs plus python3-venv, with PyPI reachable; pip's cache stays in the builder.
    """
    builder = CACHE / f"wheel-builder-{base.name}"
    pip = "/opt/wheel-builder/bin/pip"
    if not (builder / ".complete").exists():
        log("preparing the wheel builder chroot (first run only)")
        shutil.rmtree(builder, ignore_errors=True)
        run(["cp", "-a", f"{base}/.", builder], logfile=logdir / "wheelhouse.log")
        (builder / ".complete").unlink(missing_ok=True)
        (builder / "etc/apt/sources.list").write_text(f"deb {MIRROR} {SUITE} main\n")
        shutil.copy2("/etc/resolv.conf", builder / "etc/resolv.conf")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["chroot", builder, "apt-get", "update", "-q"], logfile=logdir / "wheelhouse.log", timeout=900)
        run(
            ["chroot", builder, "apt-get", "install", "-y", "-q", "--no-install-recommends", "python3-venv"],
            env=env,
            logfile=logdir / "wheelhouse.log",
            timeout=900,
        )
        run(["chroot", builder, "python3", "-m", "venv", "/opt/wheel-builder"], logfile=logdir / "wheelhouse.log")
        (builder / ".complete").write_text("ok\n")
    house = builder / "wheelhouse"
    house.mkdir(exist_ok=True)
    # The same sources as the wheels there (the other deploy test of this run built them): reuse.
    digest = source_digest(source)
    marker = house / ".source-digest"
    if marker.exists() and marker.read_text() == digest and len(list(house.glob("memory_service-*.whl"))) == 2:
        log("memory-service wheels of these sources are in the wheelhouse already")
        return house
    marker.unlink(missing_ok=True)
    src = builder / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (source / name).exists():
            shutil.copy2(source / name, src / name)
    shutil.copytree(source / "service", src / "service", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for old in house.glob("memory_service-*.whl"):
        old.unlink()
    log("building the memory-service wheel and its dependency wheels (host Python)")
    run(
        ["chroot", builder, pip, "wheel", "--disable-pip-version-check", "-q", "--wheel-dir", "/wheelhouse", "/src"],
        env=_builder_pip_env(builder),
        logfile=logdir / "wheelhouse.log",
        timeout=1800,
    )
    # A second release of the same code, so that an upgrade and `make rollback` have somewhere to go.
    pyproject = src / "pyproject.toml"
    version = project_version(source)
    text = pyproject.read_text()
    pyproject.write_text(text.replace(f'version = "{version}"', f'version = "{next_version(version)}"', 1))
    run(
        ["chroot", builder, pip, "wheel", "--no-deps", "-q", "--wheel-dir", "/wheelhouse", "/src"],
        env=_builder_pip_env(builder),
        logfile=logdir / "wheelhouse.log",
        timeout=600,
    )
    marker.write_text(digest)
    return house


def source_digest(source: Path) -> str:
    """What the memory-service wheels are built from: pyproject.toml, README.md and service/."""
    files = [source / "pyproject.toml", source / "README.md"]
    files += sorted(
        p
        for p in (source / "service").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not any(part.endswith(".egg-info") for part in p.parts)
    )
    digest = hashlib.sha256()
    for path in files:
        if path.exists():
            digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def project_version(source: Path) -> str:
    version: str = tomllib.loads((source / "pyproject.toml").read_text())["project"]["version"]
    return version


def next_version(version: str) -> str:
    """The release the upgrade test moves to: a post-release of the checkout's version."""
    return f"{version}.post1"


@dataclass
class ThrowawayHost:
    """One booted test host plus its controller namespace; use as a context manager."""

    run_dir: Path
    tag: str = field(default_factory=lambda: f"{os.getpid() % 0xFFFF:04x}")
    nspawn: subprocess.Popen[bytes] | None = None
    http: subprocess.Popen[bytes] | None = None

    @property
    def ctl_ns(self) -> str:
        return f"mdt-ctl-{self.tag}"

    @property
    def host_ns(self) -> str:
        return f"mdt-host-{self.tag}"

    @property
    def machine(self) -> str:
        return f"mdt-{self.tag}"

    @property
    def rootfs(self) -> Path:
        return self.run_dir / "rootfs"

    @property
    def source(self) -> Path:
        """The snapshot of the checkout that is built and deployed."""
        return self.run_dir / "src"

    @property
    def ssh_key(self) -> Path:
        return self.run_dir / "id_ed25519"

    @property
    def inventory(self) -> Path:
        return self.source / TEST_INVENTORY.relative_to(REPO)

    @property
    def logdir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def serve_dir(self) -> Path:
        return self.run_dir / "serve"

    def __enter__(self) -> ThrowawayHost:
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
        self._prepare_rootfs(base)
        self._serve(repo, wheels)
        self._network()
        self._boot()
        self._wait_for_ssh()
        log(f"test host {HOST_ADDR} up in {time.monotonic() - started:.0f}s")

    def _prepare_rootfs(self, base: Path) -> None:
        shutil.rmtree(self.rootfs, ignore_errors=True)
        run(["cp", "-a", f"{base}/.", self.rootfs])
        (self.rootfs / ".complete").unlink(missing_ok=True)
        for old in (self.ssh_key, self.ssh_key.with_suffix(".pub")):
            old.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy-test", "-f", self.ssh_key])
        root_ssh = self.rootfs / "root/.ssh"
        root_ssh.mkdir(mode=0o700, exist_ok=True)
        shutil.copy2(self.ssh_key.with_suffix(".pub"), root_ssh / "authorized_keys")
        (root_ssh / "authorized_keys").chmod(0o600)
        (self.rootfs / "etc/hostname").write_text("memory-test\n")
        (self.rootfs / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 memory-test\n")
        # The only package source: the controller's local repository.
        (self.rootfs / "etc/apt/sources.list").write_text(
            f"deb [trusted=yes] http://{CONTROLLER_ADDR}:{HTTP_PORT}/apt ./\n"
        )
        (self.rootfs / "etc/resolv.conf").write_text("# no DNS on the test network\n")
        # Like a cloud image built a while ago: its apt lists are older than cache_valid_time.
        image_time = time.time() - 2 * 86400
        for path in (self.rootfs / "var/lib/apt/lists", self.rootfs / "var/lib/apt/lists/partial"):
            if path.exists():
                os.utime(path, (image_time, image_time))
        # The cached base has no host keys (see base_rootfs): each host gets its own.
        run(["chroot", self.rootfs, "ssh-keygen", "-A"], logfile=self.logdir / "prepare.log")

    def _serve(self, repo: Path, wheels: Path) -> None:
        self.serve_dir.mkdir(exist_ok=True)
        for name, target in (("apt", repo), ("wheels", wheels)):
            link = self.serve_dir / name
            link.unlink(missing_ok=True)
            link.symlink_to(target)

    def _network(self) -> None:
        ctl_if, host_if = f"mdtc{self.tag}", f"mdth{self.tag}"
        for ns in (self.ctl_ns, self.host_ns):
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "link", "add", ctl_if, "netns", self.ctl_ns, "type", "veth", "peer", host_if, "netns", self.host_ns])
        run(["ip", "-n", self.ctl_ns, "addr", "add", f"{CONTROLLER_ADDR}/{PREFIX}", "dev", ctl_if])
        run(["ip", "-n", self.host_ns, "addr", "add", f"{HOST_ADDR}/{PREFIX}", "dev", host_if])
        run(["ip", "-n", self.ctl_ns, "link", "set", ctl_if, "up"])
        run(["ip", "-n", self.host_ns, "link", "set", host_if, "up"])
        run(["ip", "-n", self.host_ns, "route", "add", "default", "via", CONTROLLER_ADDR])
        http_log = (self.logdir / "http.log").open("ab")
        self.http = subprocess.Popen(
            [
                "ip", "netns", "exec", self.ctl_ns,
                sys.executable, "-m", "http.server", str(HTTP_PORT),
                "--bind", CONTROLLER_ADDR, "--directory", str(self.serve_dir),
            ],
            stdout=http_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def _boot(self) -> None:
        console = (self.logdir / "console.log").open("ab")
        self.nspawn = subprocess.Popen(
            [
                "systemd-nspawn",
                "--quiet",
                "--boot",
                "--register=no",
                "--keep-unit",
                f"--machine={self.machine}",
                f"--directory={self.rootfs}",
                f"--network-namespace-path=/run/netns/{self.host_ns}",
                "--resolv-conf=off",
                "--timezone=off",
                "--console=read-only",
                # ufw manages the firewall of the host's own network namespace.
                "--capability=CAP_NET_ADMIN",
            ],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # dockerd and ufw set /proc/sys/net/* (forwarding, bridge settings) of the host's own
            # network namespace, which nspawn otherwise mounts read-only.
            env={**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"},
        )

    def _wait_for_ssh(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nspawn is not None and self.nspawn.poll() is not None:
                raise HarnessError(f"the container exited ({self.nspawn.returncode}); see {self.logdir}/console.log")
            if self.ssh("true", check=False, timeout=10).returncode == 0:
                return
            time.sleep(2)
        raise HarnessError(f"no SSH on {HOST_ADDR} within {timeout:.0f}s; see {self.logdir}/console.log")

    # -- using ----------------------------------------------------------------------------

    def in_controller(self, args: Sequence[str | os.PathLike[str]]) -> list[str]:
        """argv that runs `args` inside the controller namespace."""
        return ["ip", "netns", "exec", self.ctl_ns, *[str(a) for a in args]]

    def ssh(self, command: str, *, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the test host as root, over SSH from the controller namespace."""
        argv = self.in_controller(
            [
                "ssh", "-i", self.ssh_key,
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
                f"root@{HOST_ADDR}", command,
            ]
        )  # fmt: skip
        return run(argv, check=check, capture=True, timeout=timeout)

    def ansible_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DEPLOY_TEST_SSH_KEY": str(self.ssh_key),
            "DEPLOY_TEST_HOST_ADDR": HOST_ADDR,
            "DEPLOY_TEST_PACKAGES_URL": f"http://{CONTROLLER_ADDR}:{HTTP_PORT}",
            "DEPLOY_TEST_VERSION": project_version(self.source),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        }

    def make(self, target: str, *variables: str, logname: str) -> PlaybookRun:
        """`make TARGET INVENTORY=<test inventory> ...` in the controller namespace."""
        logfile = self.logdir / f"{logname}.log"
        started = time.monotonic()
        proc = run(
            self.in_controller(
                ["make", "--no-print-directory", "-C", self.source, target, f"INVENTORY={self.inventory}", *variables]
            ),
            check=False,
            env=self.ansible_env(),
            logfile=logfile,
            timeout=3600,
        )
        result = PlaybookRun.parse(logfile.read_text(errors="replace"), proc.returncode, time.monotonic() - started)
        log(f"make {target}: rc={proc.returncode} {result.recap} in {result.seconds:.0f}s (log {logfile})")
        return result

    def http_get(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
        cafile: Path | None = None,
        follow_redirects: bool = True,
    ) -> tuple[int, str]:
        """GET from inside the controller namespace (curl-free: a short Python client).

        HTTPS is verified against `cafile` (the CA root `make deploy` fetched) and nothing else.
        """
        return http_get_in(self.in_controller([]), url, headers, timeout, cafile, follow_redirects)

    def ca_file(self, balancer: str = "memory-test") -> Path:
        """Where `make deploy` put the balancer's internal CA root (proxy_ca_fetch_dest)."""
        return self.inventory.parent / "ca" / f"{balancer}.crt"

    def tcp_open(self, port: int, timeout: float = 3) -> bool:
        """Whether the controller can open a TCP connection to the test host's port."""
        code = (
            "import socket, sys\n"
            f"s = socket.socket(); s.settimeout({timeout})\n"
            f"sys.exit(0 if s.connect_ex(({HOST_ADDR!r}, {port})) == 0 else 1)\n"
        )
        return run(self.in_controller([sys.executable, "-c", code]), check=False, timeout=timeout + 10).returncode == 0

    # -- teardown -------------------------------------------------------------------------

    def down(self) -> None:
        """Stop the container and the web server, delete the namespaces and the rootfs copy."""
        if self.nspawn is not None and self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
            try:
                self.nspawn.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait(timeout=30)
        if self.http is not None and self.http.poll() is None:
            self.http.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.http.wait(timeout=10)
        for ns in (self.ctl_ns, self.host_ns):
            if Path(f"/run/netns/{ns}").exists():
                # Whatever is still running in the namespace (only our own processes) goes first.
                pids = run(["ip", "netns", "pids", ns], check=False, capture=True).stdout.split()
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                run(["ip", "netns", "del", ns], check=False)
        if os.environ.get("DEPLOY_TEST_KEEP_ROOTFS") != "1":
            shutil.rmtree(self.rootfs, ignore_errors=True)
            shutil.rmtree(self.source, ignore_errors=True)


TEST_INVENTORY = REPO / "tests/deploy/inventory/hosts.yml"


def http_get_in(
    prefix: Sequence[str],
    url: str,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
    cafile: Path | None = None,
    follow_redirects: bool = True,
) -> tuple[int, str]:
    """GET with a short Python client run under `prefix` (e.g. `ip netns exec NS`): (status, body).

    The status is 0 and the body the client's error when no HTTP answer came (refused, TLS failed).
    A redirect not followed comes back as its status with the Location header as the body.
    """
    code = (
        "import ssl, sys, urllib.request, urllib.error\n"
        f"cafile = {str(cafile) if cafile else None!r}\n"
        "ctx = ssl.create_default_context(cafile=cafile) if cafile else None\n"
        "class NoRedirect(urllib.request.HTTPRedirectHandler):\n"
        "    def redirect_request(self, *args, **kwargs):\n"
        "        return None\n"
        f"handlers = [urllib.request.HTTPSHandler(context=ctx)] + ([] if {follow_redirects!r} else [NoRedirect()])\n"
        "opener = urllib.request.build_opener(*handlers)\n"
        "try:\n"
        f"    r = opener.open(urllib.request.Request({url!r}, headers={headers or {}!r}), timeout={timeout})\n"
        "    print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.headers.get('Location') or e.read().decode())\n"
    )
    proc = run([*prefix, sys.executable, "-c", code], check=False, capture=True, timeout=timeout + 10)
    if proc.returncode != 0:
        return 0, proc.stderr
    status, _, body = proc.stdout.partition("\n")
    return int(status), body


RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)
TASK = re.compile(r"^TASK \[(?P<name>.*)\]", re.MULTILINE)


@dataclass
class PlaybookRun:
    returncode: int
    seconds: float
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    changed_tasks: list[str] = field(default_factory=list)
    output: str = ""

    @property
    def recap(self) -> str:
        return f"ok={self.ok} changed={self.changed} failed={self.failed} unreachable={self.unreachable}"

    @classmethod
    def parse(cls, output: str, returncode: int, seconds: float) -> PlaybookRun:
        result = cls(returncode=returncode, seconds=seconds, output=output)
        for m in RECAP.finditer(output):
            result.ok += int(m["ok"])
            result.changed += int(m["changed"])
            result.failed += int(m["failed"])
            result.unreachable += int(m["unreachable"])
        task = ""
        for line in output.splitlines():
            if m := TASK.match(line):
                task = m["name"]
            elif line.startswith("changed:") and task not in result.changed_tasks:
                result.changed_tasks.append(task)
        return result


def _main(argv: list[str]) -> int:
    """`up` boots a host and leaves it running (state in CACHE/debug.json); `down` removes it."""
    state = CACHE / "debug.json"
    if argv[:1] == ["up"]:
        host = ThrowawayHost(run_dir=CACHE / "debug-run")
        try:
            host.up()
        except BaseException:
            host.down()
            raise
        pids = [p.pid for p in (host.nspawn, host.http) if p is not None]
        state.write_text(json.dumps({"tag": host.tag, "run_dir": str(host.run_dir), "pids": pids}))
        print(f"ssh: {' '.join(host.in_controller(['ssh', '-i', str(host.ssh_key), f'root@{HOST_ADDR}']))}")
        print(f"deploy: {' '.join(host.in_controller(['make', 'deploy', f'INVENTORY={TEST_INVENTORY}']))}")
        print(f"(the host was built from the snapshot {host.source})")
        print(f"env: DEPLOY_TEST_SSH_KEY={host.ssh_key}")
        return 0
    if argv[:1] == ["down"]:
        data = json.loads(state.read_text())
        host = ThrowawayHost(run_dir=Path(data["run_dir"]), tag=data["tag"])
        # nspawn and the web server were started by `up` (another process): stop them by pid.
        for pid in data["pids"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
        time.sleep(10)
        host.down()
        state.unlink()
        return 0
    print("usage: python -m tests.deploy.testhost up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

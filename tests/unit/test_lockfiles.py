"""The lockfiles agree with pyproject.toml, so `make install` installs what the project declares.

A dependency added to pyproject.toml without `make lock` fails here, before a fresh machine would
install something else than CI tested.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if match := PIN.match(line):
            pins[_name(match.group(1))] = match.group(3)
    return pins


def _declared(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        match = PIN.match(requirement)
        assert match, f"not pinned exactly: {requirement}"
        pins[_name(match.group(1))] = match.group(3)
    return pins


def test_every_declared_dependency_is_locked_at_its_pinned_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, dev = _locked(ROOT / "requirements.lock"), _locked(ROOT / "requirements-dev.lock")
    assert {n: runtime.get(n) for n in _declared(project["dependencies"])} == _declared(project["dependencies"])
    declared_dev = _declared(project["optional-dependencies"]["dev"])
    assert {n: dev.get(n) for n in declared_dev} == declared_dev


def test_the_dev_lock_installs_the_runtime_lock_unchanged() -> None:
    runtime, dev = _locked(ROOT / "requirements.lock"), _locked(ROOT / "requirements-dev.lock")
    assert {n: dev.get(n) for n in runtime} == runtime


def test_every_locked_package_carries_hashes() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / lock).read_text()
        entries = re.split(r"\n(?=[A-Za-z0-9])", text)
        unhashed = [e.split()[0] for e in entries if PIN.match(e) and "--hash=sha256:" not in e]
        assert unhashed == [], f"{lock}: {unhashed}"

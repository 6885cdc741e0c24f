"""Write load with an exact ledger, for the fault suite (tests/chaos, `make chaos`).

Every writer thread adds memories with unique contents for its own user and records what the
service answered: acknowledged (201, with the memory's id), refused (an error envelope: the write
must not exist), or unknown (no answer: a transport error, a client timeout, or the one 503 that
says its outcome is unknown). After the faults, `verify` lists every writer's memories and counts
the two things that must never happen: an acknowledged write that is missing and a refused write
that is stored. Unknown outcomes are counted too, and whether they were stored.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

# The suite's size: 1 in `make test` (a bounded round of each fault), more with `make chaos`.
SCALE = max(1, int(os.environ.get("CHAOS_SCALE", "1")))
REPORT = os.environ.get("CHAOS_REPORT")


@dataclass
class Write:
    user_id: str
    content: str
    started: float
    finished: float
    outcome: str  # "acked", "refused" or "unknown"
    memory_id: str | None = None
    error: str | None = None


@dataclass
class Ledger:
    writes: list[Write] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, write: Write) -> None:
        with self.lock:
            self.writes.append(write)

    def of(self, outcome: str) -> list[Write]:
        with self.lock:
            return [w for w in self.writes if w.outcome == outcome]

    def first_ack_after(self, moment: float) -> float | None:
        """When the first write that started after `moment` was acknowledged."""
        with self.lock:
            acked = [w.finished for w in self.writes if w.outcome == "acked" and w.started >= moment]
        return min(acked) if acked else None

    def acks_since(self, moment: float) -> int:
        with self.lock:
            return sum(1 for w in self.writes if w.outcome == "acked" and w.started >= moment)


class WriteLoad:
    """`writers` threads, each adding memories for its own user in a loop until stopped."""

    def __init__(
        self, url: str, key: str, *, writers: int = 4, prefix: str = "chaos", client_timeout: float = 60.0
    ) -> None:
        self.url = url
        self.key = key
        self.writers = writers
        self.prefix = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.client_timeout = client_timeout
        self.ledger = Ledger()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def users(self) -> list[str]:
        return [f"{self.prefix}-w{i}" for i in range(self.writers)]

    def start(self) -> WriteLoad:
        for user in self.users:
            thread = threading.Thread(target=self._write, args=(user,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _write(self, user: str) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=self.client_timeout) as client:
            sequence = 0
            while not self._stop.is_set():
                content = f"{user} note {sequence} {uuid.uuid4().hex}"
                sequence += 1
                body = {"messages": [{"role": "user", "content": content}], "user_id": user}
                started = time.monotonic()
                try:
                    response = client.post("/v1/memories", json=body)
                except httpx.HTTPError as exc:
                    self.ledger.record(Write(user, content, started, time.monotonic(), "unknown", error=repr(exc)))
                    time.sleep(0.05)
                    continue
                finished = time.monotonic()
                self.ledger.record(self._classify(user, content, started, finished, response))
                if response.status_code != 201:
                    time.sleep(0.05)  # an outage: do not spin

    @staticmethod
    def _classify(user: str, content: str, started: float, finished: float, response: httpx.Response) -> Write:
        if response.status_code == 201:
            memories = response.json()["data"]["memories"]
            assert len(memories) == 1, response.text
            assert memories[0]["content"] == content, response.text
            return Write(user, content, started, finished, "acked", memory_id=memories[0]["id"])
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            error_text = f"{response.status_code} not in the envelope"
            return Write(user, content, started, finished, "unknown", error=error_text)
        outcome = "unknown" if error.get("details", {}).get("outcome") == "unknown" else "refused"
        return Write(user, content, started, finished, outcome, error=f"{response.status_code} {error['code']}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.client_timeout + 10)


@dataclass
class Verdict:
    scenario: str
    acknowledged: int
    refused: int
    unknown: int
    acknowledged_missing: list[str]
    refused_stored: list[str]
    unknown_stored: int
    recovery_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["acknowledged_missing"] = len(self.acknowledged_missing)
        data["refused_stored"] = len(self.refused_stored)
        return data


def stored_contents(url: str, key: str, users: list[str], timeout: float = 120.0) -> dict[str, str]:
    """content -> memory id of every memory of these users (pages through each user's list)."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        for user in users:
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"limit": 100}
                if cursor:
                    params["cursor"] = cursor
                response = client.get(f"/v1/memories/user/{user}", params=params)
                if response.status_code != 200:  # the service may still be settling after a fault
                    assert time.monotonic() < deadline, response.text
                    time.sleep(0.5)
                    continue
                data = response.json()["data"]
                found.update({m["content"]: m["id"] for m in data["memories"]})
                cursor = data["next_cursor"]
                if not cursor:
                    break
    return found


def verify(scenario: str, load: WriteLoad, url: str, key: str, **extra: Any) -> Verdict:
    stored = stored_contents(url, key, load.users)
    acked, refused, unknown = load.ledger.of("acked"), load.ledger.of("refused"), load.ledger.of("unknown")
    verdict = Verdict(
        scenario=scenario,
        acknowledged=len(acked),
        refused=len(refused),
        unknown=len(unknown),
        acknowledged_missing=[w.content for w in acked if stored.get(w.content) != w.memory_id],
        refused_stored=[f"{w.content} ({w.error})" for w in refused if w.content in stored],
        unknown_stored=sum(1 for w in unknown if w.content in stored),
        **extra,
    )
    return verdict


def report(verdict: Verdict) -> None:
    """Print the figures, and append them to CHAOS_REPORT (JSON lines) when set."""
    summary = verdict.summary()
    print(f"\nchaos {json.dumps(summary, sort_keys=True)}")
    if REPORT:
        with Path(REPORT).open("a") as handle:
            handle.write(json.dumps(summary, sort_keys=True) + "\n")

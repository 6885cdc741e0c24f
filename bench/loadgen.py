"""A lean closed-loop load generator: N keep-alive HTTP/1.1 clients on one asyncio loop.

Why not httpx threads: on this 2-core machine the load generator shares the CPU with the server,
and httpx costs about a millisecond of CPU per request, a tenth of what a search costs the
server; every millisecond the generator spends is one the server does not get. This client
writes a prebuilt request and reads the response by Content-Length (uvicorn always sends it for
JSON), about 0.1 ms per request, so the figures are the server's, not the client's.

Every request carries a unique query text (a counter and words drawn from it), so an embedding
or result cache never hits: this measures the miss path. Each response is checked: status 200
and, for searches, how many results came back (`short` counts those with fewer than asked).

Run as a module function (`run`) or as a script printing JSON:
`python bench/loadgen.py <url> <kind> <clients> <seconds> [auth-header] [users] [limit]`.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

TOPICS = ["cooking", "travel", "music", "software", "gardening", "finance", "sports", "movies", "books", "health"]
WORDS = [
    "morning",
    "evening",
    "plans",
    "friend",
    "family",
    "weekend",
    "dinner",
    "recipe",
    "flight",
    "hotel",
    "concert",
    "guitar",
    "python",
    "garden",
    "budget",
    "football",
    "cinema",
    "novel",
    "doctor",
    "coffee",
    "meeting",
    "project",
    "holiday",
    "birthday",
    "school",
    "office",
    "train",
    "city",
]


def query_text(i: int, salt: str) -> str:
    """A unique, agent-like question of 9 to 11 words (the salt keeps runs apart)."""
    w = WORDS
    n = len(w)
    return f"what did I say about {TOPICS[i % 10]} and {w[i % n]} {w[(i // n) % n]} {w[(i // (n * n)) % n]} ({salt}{i})"


def add_text(i: int, salt: str) -> str:
    w = WORDS
    n = len(w)
    return f"Note {salt}{i} about {TOPICS[i % 10]}: {w[i % n]} with {w[(i // n) % n]} on day {i // 10}"


@dataclass
class Target:
    """How to phrase one request for a server: the service's contract or mem0's server."""

    host: str
    port: int
    # "search", "search-repeat" (20 query texts over and over: the cache's hit path), "add" (the
    # service), "mem0-search", "mem0-add" (the baseline)
    kind: str
    auth: str | None = None
    users: int = 10
    limit: int = 5
    salt: str = field(default_factory=lambda: os.urandom(3).hex())

    def request(self, i: int) -> bytes:
        user = f"user-{i % self.users}"
        headers = f"Host: {self.host}:{self.port}\r\n"
        if self.auth:
            headers += f"Authorization: {self.auth}\r\n"
        if self.kind in ("search", "search-repeat"):
            text = query_text(i, self.salt) if self.kind == "search" else query_text(i % 20, "repeat")
            query = urllib.parse.urlencode({"query": text, "user_id": user, "limit": self.limit})
            return f"GET /v1/memories/search?{query} HTTP/1.1\r\n{headers}\r\n".encode()
        if self.kind == "mem0-search":
            body = orjson.dumps({"query": query_text(i, self.salt), "user_id": user})
            return self._post("/search", headers, body)
        content = add_text(i, self.salt)
        body = orjson.dumps(
            {"messages": [{"role": "user", "content": content}], "user_id": f"adder-{i % self.users}", "infer": False}
            if self.kind == "add"
            else {"messages": [{"role": "user", "content": content}], "user_id": f"adder-{i % self.users}"}
        )
        return self._post("/v1/memories" if self.kind == "add" else "/memories", headers, body)

    @staticmethod
    def _post(path: str, headers: str, body: bytes) -> bytes:
        head = f"POST {path} HTTP/1.1\r\n{headers}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    def results(self, status: int, body: bytes) -> int | None:
        """How many memories a search returned (None for adds)."""
        if self.kind in ("search", "search-repeat"):
            return len(orjson.loads(body)["data"]["memories"])
        if self.kind == "mem0-search":
            return len(orjson.loads(body)["results"])
        return None

    @property
    def expected_status(self) -> int:
        return 201 if self.kind == "add" else 200


class Failure(Exception):
    pass


class Closed(Exception):
    """The server closed the keep-alive connection before answering (a worker recycled)."""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server asked to close the connection after it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
        if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
            raise Failure(f"connection closed inside a response head: {exc.partial[:200]!r}") from exc
        raise Closed from exc
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    close = False
    for line in lines[1:]:
        name = line[:15].lower()
        if name == b"content-length:":
            length = int(line[15:])
        elif name.startswith(b"connection:") and b"close" in line.lower():
            close = True
    if length is None:
        raise Failure(f"no Content-Length in {head[:200]!r}")
    body = await reader.readexactly(length)
    return status, body, close


async def _client(
    target: Target, index: int, clients: int, stop: float, out: dict[str, Any], counter: Callable[[], int]
) -> None:
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        while time.monotonic() < stop:
            i = counter()
            request = target.request(i)
            started = time.perf_counter()
            writer.write(request)
            try:
                status, body, close = await _read_response(reader)
            except Closed:
                # As a keep-alive client does: nothing of an answer came, so the request was not
                # taken (gunicorn closes idle connections of a recycling worker); send it again
                # on a new connection, the reconnect counted in the latency.
                writer.close()
                reader, writer = await asyncio.open_connection(target.host, target.port)
                out["reconnects"] += 1
                writer.write(request)
                status, body, close = await _read_response(reader)
            elapsed = time.perf_counter() - started
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(target.host, target.port)
                out["reconnects"] += 1
            if status != target.expected_status:
                out["errors"] += 1
                if len(out["error_samples"]) < 3:
                    out["error_samples"].append(f"{status}: {body[:300]!r}")
                continue
            out["latencies"].append(elapsed)
            found = target.results(status, body)
            if found is not None:
                out["returned"].append(found)
    finally:
        writer.close()


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


async def _run(target: Target, clients: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "returned": [], "errors": 0, "error_samples": [], "reconnects": 0}
    sequence = iter(range(10**12))

    def counter() -> int:
        return next(sequence)

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    stop = started + seconds
    await asyncio.gather(*(_client(target, i, clients, stop, out, counter) for i in range(clients)))
    wall = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    latencies = sorted(x * 1000 for x in out["latencies"])
    done = len(latencies)
    result: dict[str, Any] = {
        "clients": clients,
        "requests": done,
        "per_second": round(done / wall, 1),
        "errors": out["errors"],
        "reconnects": out["reconnects"],
        "loadgen_cpu_ms_per_request": round(cpu * 1000 / max(1, done), 3),
    }
    if latencies:
        result.update(
            p50_ms=round(statistics.median(latencies), 1),
            p95_ms=round(_percentile(latencies, 0.95), 1),
            p99_ms=round(_percentile(latencies, 0.99), 1),
        )
    if out["returned"]:
        result["short_results"] = sum(1 for n in out["returned"] if n < target.limit)
        result["mean_results"] = round(statistics.fmean(out["returned"]), 2)
    if out["error_samples"]:
        result["error_samples"] = out["error_samples"]
    return result


def run(target: Target, clients: int, seconds: float) -> dict[str, Any]:
    try:
        import uvloop

        return uvloop.run(_run(target, clients, seconds))
    except ImportError:
        return asyncio.run(_run(target, clients, seconds))


def main(argv: list[str]) -> int:
    url, kind, clients, seconds = argv[0], argv[1], int(argv[2]), float(argv[3])
    auth = argv[4] if len(argv) > 4 and argv[4] else None
    users = int(argv[5]) if len(argv) > 5 else 10
    limit = int(argv[6]) if len(argv) > 6 else 5
    parsed = urllib.parse.urlsplit(url)
    target = Target(parsed.hostname or "127.0.0.1", parsed.port or 80, kind, auth, users, limit)
    print(json.dumps(run(target, clients, seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

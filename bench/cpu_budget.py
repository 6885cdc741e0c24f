"""Where a request's CPU goes: py-spy samples of the service under load, sorted into categories.

`py-spy record --format raw` writes one line per distinct stack, `frame;frame;...;leaf count`,
root first. Each stack is charged to one category: walking from the leaf towards the root, the
first frame that belongs to a known component decides (a psycopg frame under mem0 under the
engine is SQL; a json frame under FastAPI's response code is serialisation). Frames of the
standard library's plumbing (copy, re, uuid, functools, contextlib, typing...) are skipped, so
their time goes to whoever called them. Only on-CPU samples are recorded (py-spy leaves idle
threads out), and ONNX runs with the GIL released, so the model's compute shows under its
Python caller. The shares are then scaled by the CPU time the process really used (psutil),
giving milliseconds of CPU per request in each category.

Run on its own: `python bench/cpu_budget.py <raw-profile> [cpu-ms-per-request]` prints the table;
`... <raw-profile> 0 "<category>"` the category's most sampled stacks.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

# Innermost frames that wait rather than compute: a thread blocked in one of them is not using CPU
# (py-spy counts a thread as active when it is runnable, and on a busy machine a thread that just
# woke up waits for a core in these frames).
WAITING = re.compile(
    r"^(Condition\.wait|Condition\._acquire_restore|Event\.wait|_worker|"
    r"EpollSelector\.select|select|sleep|Queue\.get|wait_conn|_wait_for_tstate_lock) \("
)
WAITING_CATEGORY = "waiting (not CPU)"

# (category, pattern on "function (file:line)"), tried in order for each frame, leaf first.
RULES: list[tuple[str, re.Pattern[str]]] = [
    ("embedding", re.compile(r"providers/(onnx|batching|embedding)\.py|onnxruntime|tokenizers")),
    ("embedding", re.compile(r"embedding_cache|providers/cache\.py")),
    ("sql (client side)", re.compile(r"/psycopg/|/psycopg_pool/|storage/adapters\.py")),
    ("logging", re.compile(r"/structlog/|/logging/__init__\.py|observability/logging\.py")),
    ("metrics", re.compile(r"/prometheus_client/|observability/metrics\.py")),
    ("tracing", re.compile(r"/opentelemetry/")),
    ("rate limit", re.compile(r"services/ratelimit\.py|/limits/|/redis/")),
    ("auth", re.compile(r"domain/auth/|storage/keys\.py|authenticate \(.*api/deps\.py")),
    (
        "serialisation",
        re.compile(
            r"/orjson|/json/encoder|/json/__init__|jsonable_encoder|serialize_response|"
            r"api/envelope\.py|api/responses\.py|render \("
        ),
    ),
    ("validation", re.compile(r"/fastapi/dependencies/|/pydantic/|api/schemas\.py|domain/memories/filters\.py")),
    ("mem0", re.compile(r"/mem0/")),
    ("search (domain, storage)", re.compile(r"memory_service/(domain|storage)/")),
    ("route handler", re.compile(r"memory_service/api/routes/")),
    ("middleware", re.compile(r"api/middleware\.py|/starlette/middleware/")),
    ("HTTP (uvicorn, starlette, fastapi)", re.compile(r"/uvicorn/|/httptools/|/h11/|/starlette/|/fastapi/")),
    ("event loop, threads", re.compile(r"/asyncio/|uvloop|/concurrent/futures/|/threading\.py|/queue\.py")),
]
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def categorise(stack: list[str]) -> str:
    if stack and WAITING.match(stack[-1]):
        return WAITING_CATEGORY
    for frame in reversed(stack):
        for category, pattern in RULES:
            if pattern.search(frame):
                return category
    return "other"


def parse(raw: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        counts[categorise(stack_text.split(";"))] += int(count)
    return counts


def budget(counts: Counter[str], cpu_ms_per_request: float) -> dict[str, float]:
    """Milliseconds of CPU per request in each category (largest first); waiting samples left out."""
    busy = {category: n for category, n in counts.items() if category != WAITING_CATEGORY}
    total = sum(busy.values()) or 1
    return {
        category: round(cpu_ms_per_request * n / total, 2)
        for category, n in sorted(busy.items(), key=lambda item: -item[1])
    }


def leaves(raw: str, category: str, top: int = 15) -> list[tuple[int, str]]:
    """The most sampled innermost frames of one category (what to look at next)."""
    found: Counter[str] = Counter()
    for line in raw.splitlines():
        stack_text, _, count = line.rpartition(" ")
        if stack_text and count.isdigit():
            stack = stack_text.split(";")
            if categorise(stack) == category:
                found[" <- ".join(reversed(stack[-3:]))] += int(count)
    return [(n, frames) for frames, n in found.most_common(top)]


def main(argv: list[str]) -> int:
    if len(argv) > 2:
        for n, frames in leaves(Path(argv[0]).read_text(), argv[2]):
            print(f"{n:6d}  {frames}")
        return 0
    counts = parse(Path(argv[0]).read_text())
    per_request = float(argv[1]) if len(argv) > 1 else 100.0
    total = sum(counts.values())
    for category, ms in budget(counts, per_request).items():
        print(f"{category:40s} {ms:8.2f}  ({100 * counts[category] / total:4.1f} % of samples)")
    print(f"{WAITING_CATEGORY:40s} {'':8s}  ({100 * counts[WAITING_CATEGORY] / total:4.1f} % of samples)")
    print(f"{'samples':40s} {total:8d}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

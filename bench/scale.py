"""`make bench-scale`: search at 10k, 100k and 1M memories, users of ~1,000 memories each (issue 20).

Why this shape: memories per user stay in the thousands while the table grows with its users, so
the table grows by users (10, 100, 1,000 users of PER_USER memories). One fresh embedded Postgres;
the collection is made by the real service's own migrations (the service runs throughout and
answers the searches), so the table and its indexes are exactly production's.

The data, and why it is not uniform noise: BASE_TEXTS generated sentences are embedded with the
service's own ONNX model (all-MiniLM-L6-v2 int8); each memory is one of them plus Gaussian noise,
normalised (cosine about 0.85 to its sentence). That keeps a realistic neighbour structure
(clusters of related sentences, near-duplicates) at a load rate of about 10^4 rows/s; random unit
vectors in 384 dimensions have no structure at all (every point is about equally far from every
other), which is the hardest case for HNSW and nothing like real memories. The noise still makes
it harder than real text for an index: every memory has many near-ties at almost the same
distance from a query. A user's memories are written in random order among everyone else's (each
block of 100 users shuffled), as they are in production, where users write over time: the exact
scan of one user reads about one page per memory.

The load: the secondary indexes are dropped, the rows go in by binary COPY with the payload keys
the service writes, then every index is recreated from its own definition (pg_get_indexdef), each
build timed, the HNSW index (pgvector's defaults m=16, ef_construction=64, as the migration makes
it) with maintenance_work_mem MAINTENANCE_WORK_MEM. Should the HNSW build of a step not fit before
BENCH_SCALE_DEADLINE (UTC HH:MM; extrapolated from the previous build), that step is measured
without the HNSW index and the JSON says so: the service's path for users of 1,000 memories is
the exact scan, which does not use it.

At each size:
- `api`: QUERIES searches through the running service's HTTP API (auth, access-path choice, mem0's
  ranking with BM25), one client, random users, unique query texts: p50/p95/p99, results complete
  (LIMIT returned), and how many of the 5 returned are among the exact vector top 5 (the service
  mixes keyword ranks into the score, so this is agreement, not the access path's recall);
- `sql`: the same query vectors (embedded here with the same model) at the SQL level, the
  service's semantic statement for one user (over-fetch 60, as mem0 asks): the exact path
  (`cosine_distance`, through the user index) and the HNSW path (`<=>`, iterative scan
  relaxed_order) at ef_search 40/100/200: latency p50/p95 and recall@5, where recall@5 is the
  share of the exact top 5 (ORDER BY cosine_distance LIMIT 5 over the user's rows: the truth)
  among the path's 5 nearest;
- the table's and each index's size.

The SEARCH_EXACT_MAX_ROWS crossover: the last step also loads one user of each CROSSOVER size
(5k ... 50k memories), spread over that step's rows like everyone's, so the largest table holds
1M + 85k rows; both paths are timed for these users (CROSSOVER_QUERIES queries each).

Progress goes to stderr; stdout is one JSON document. Environment: BENCH_SCALE_SIZES
(10000,100000,1000000), BENCH_SCALE_QUERIES (200), BENCH_SCALE_CROSSOVER (5000,10000,20000,50000),
BENCH_SCALE_DEADLINE (none), BENCH_SCALE_DIR (a temporary directory).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import random
import statistics
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import psycopg
from mem0.utils.lemmatization import lemmatize_for_bm25
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "service"))

from memory_service.domain.entities.extractor import make_extractor, merge_entities, payload_fields  # noqa: E402
from memory_service.models.filters import Condition, Field, Op  # noqa: E402
from memory_service.providers.onnx import OnnxMiniLMEmbedder  # noqa: E402
from memory_service.storage import adapters  # noqa: E402
from memory_service.storage.adapters import PgVector  # noqa: E402
from memory_service.storage.filters import compile_filter  # noqa: E402

from bench.common import LOAD_ENV, log  # noqa: E402
from bench.loadgen import TOPICS, WORDS, query_text  # noqa: E402
from tests.support.server import ServiceProcess, embedded_conninfo  # noqa: E402

SIZES = [int(s) for s in os.environ.get("BENCH_SCALE_SIZES", "10000,100000,1000000").split(",")]
QUERIES = int(os.environ.get("BENCH_SCALE_QUERIES", "200"))
CROSSOVER = [int(s) for s in os.environ.get("BENCH_SCALE_CROSSOVER", "5000,10000,20000,50000").split(",") if s]
CROSSOVER_QUERIES = int(os.environ.get("BENCH_SCALE_CROSSOVER_QUERIES", "60"))
DEADLINE = os.environ.get("BENCH_SCALE_DEADLINE", "")
HNSW = os.environ.get("BENCH_SCALE_HNSW", "on") != "off"  # off: the exact path only (a quick crossover run)
PER_USER = 1000
BASE_TEXTS = int(os.environ.get("BENCH_SCALE_BASE_TEXTS", "4000"))
NOISE = 0.6  # norm of the noise added to a sentence's unit vector: cosine to it about 1/sqrt(1 + 0.36)
LIMIT = 5
FETCH = 60  # the service's over-fetch: max(4 x top_k, 60) nearest (domain/memories/engine.py)
EF_SEARCH = [40, 100, 200]
MAINTENANCE_WORK_MEM = "4GB"
TABLE = "memories"
TENANT = "default"
AUTH = "Bearer mem0_dev_key_123456789"
DIMS = 384
SUBJECTS = ["I", "My sister", "My manager", "We", "My doctor", "Our team", "My son", "A friend", "My partner", "Dad"]
VERBS = [
    "prefer",
    "booked",
    "need to buy",
    "talked about",
    "want to try",
    "cancelled",
    "loved",
    "forgot about",
    "planned",
    "complained about",
    "recommended",
    "paid for",
]
THINGS = {
    "cooking": ["a vegan lasagne", "sourdough bread", "the new wok", "a Thai curry", "spicy ramen"],
    "travel": ["a flight to Lisbon", "the hotel in Kyoto", "a train pass", "the Alps trip", "a beach house"],
    "music": ["jazz concert tickets", "guitar lessons", "the vinyl collection", "a piano teacher", "festival passes"],
    "software": ["the Python migration", "a code review", "the database upgrade", "CI pipelines", "a Rust rewrite"],
    "gardening": ["tomato seedlings", "the rose bushes", "a compost bin", "the lawn mower", "herb planters"],
    "finance": ["the mortgage", "a savings plan", "tax returns", "the monthly budget", "index funds"],
    "sports": ["football training", "a marathon", "the tennis club", "yoga classes", "a climbing gym"],
    "movies": ["the cinema night", "a horror film", "the Oscar winners", "a documentary", "the sci-fi series"],
    "books": ["a crime novel", "the library card", "a poetry book", "the book club", "a biography"],
    "health": ["the dentist appointment", "allergy pills", "a sleep tracker", "the blood test", "vitamin D"],
}
WHEN = ["this morning", "last weekend", "for the holiday", "before the meeting", "next month", "every evening"]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50_ms": round(statistics.median(ordered), 2), "p95_ms": at(0.95), "p99_ms": at(0.99), "n": len(ordered)}


def base_texts() -> list[str]:
    """BASE_TEXTS distinct sentences about the load generator's topics and words."""
    rng = random.Random(20)
    texts: set[str] = set()
    while len(texts) < BASE_TEXTS:
        topic = rng.choice(TOPICS)
        texts.add(
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(THINGS[topic])} "
            f"{rng.choice(WHEN)} with the {rng.choice(WORDS)}"
        )
    return sorted(texts)


class Corpus:
    """Every memory as (text, vector) from its user and position, reproducibly."""

    def __init__(self, embedder: OnnxMiniLMEmbedder) -> None:
        self.texts = base_texts()
        started = time.monotonic()
        self.vectors = np.vstack(
            [np.asarray(embedder.embed_batch(self.texts[i : i + 64])) for i in range(0, BASE_TEXTS, 64)]
        )
        self.embed_seconds = round(time.monotonic() - started, 1)
        extractor = make_extractor()  # the service's entity fields of each sentence, as an add writes them
        self.fields = [payload_fields(merge_entities(extractor.extract(text), [])) for text in self.texts]

    def user(self, user: int, count: int, first: int = 0) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
        rng = np.random.default_rng([user, first])
        which = rng.integers(0, BASE_TEXTS, count)
        noise = rng.standard_normal((count, DIMS), dtype=np.float32) * np.float32(NOISE / np.sqrt(DIMS))
        vectors = self.vectors[which] + noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        texts = [f"{self.texts[b]} (note {first + j})" for j, b in enumerate(which)]
        return texts, vectors.astype(np.float32), [self.fields[b] for b in which]


_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_WRITTEN = itertools.count()
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_VECTOR_PREFIX = struct.pack(">iHH", 4 + 4 * DIMS, DIMS, 0)


def copy_rows(
    conn: psycopg.Connection[Any], rows: list[tuple[str, str, np.ndarray, dict[str, Any]]], template: dict[str, Any]
) -> None:
    """(user key, text, vector, entity fields) rows by binary COPY, payloads as the service writes them."""
    big_endian = np.asarray([r[2] for r in rows], dtype=">f4")
    parts = [_HEADER]
    for k, (owner, text, _, fields) in enumerate(rows):
        created = (_EPOCH + dt.timedelta(seconds=next(_WRITTEN))).isoformat()  # in writing order, as the service
        payload = {
            **template,
            **fields,
            "timestamp": created.replace("+00:00", "Z"),
            "user_id": owner,
            "data": text,
            "hash": hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
            "created_at": created,
            "updated_at": created,
            "text_lemmatized": lemmatize_for_bm25(text),
        }
        body = orjson.dumps(payload)
        parts.append(b"\x00\x03\x00\x00\x00\x10" + uuid.uuid4().bytes)
        parts.append(_VECTOR_PREFIX + big_endian[k].tobytes())
        parts.append(struct.pack(">i", len(body) + 1) + b"\x01" + body)
    parts.append(struct.pack(">h", -1))
    with conn.cursor() as cur, cur.copy(f"COPY {TABLE} (id, vector, payload) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.write(b"".join(parts))


def user_key(user: int | str) -> str:
    return f"{TENANT}/user-{user}"


def load_users(
    conn: psycopg.Connection[Any], corpus: Corpus, users: range, template: dict[str, Any], large: dict[int, int]
) -> None:
    """PER_USER memories for each user, and `large` users (rows by size) spread over the same
    rows, in random order: a user's memories land all over the table, as when users write
    over time (blocks of 100 users, each block shuffled)."""
    chunk_users = 100
    blocks = range(users.start, users.stop, chunk_users)
    for number, first in enumerate(blocks):
        block = range(first, min(first + chunk_users, users.stop))
        rows = []
        for u in block:
            texts, vectors, fields = corpus.user(u, PER_USER)
            rows += [(user_key(u), texts[j], vectors[j], fields[j]) for j in range(PER_USER)]
        for size in large:  # this block's share of each large user
            offset, count = (
                size * number // len(blocks),
                size * (number + 1) // len(blocks) - size * number // len(blocks),
            )
            texts, vectors, fields = corpus.user(10**6 + size, count, first=offset)
            rows += [(user_key(f"large-{size}"), texts[j], vectors[j], fields[j]) for j in range(count)]
        random.Random(first).shuffle(rows)
        for i in range(0, len(rows), 20_000):
            copy_rows(conn, rows[i : i + 20_000], template)
        log(f"  loaded users {block.start}..{block.stop - 1}" + (" and the large users' share" if large else ""))


def run_semantic(
    conn: psycopg.Connection[Any], key: str, vector: np.ndarray, exact: bool, limit: int
) -> tuple[list[tuple[str, float]], float]:
    """The semantic half of the service's search statement for one user (storage/vector_store.py:
    hybrid_search, with the condition domain/memories/engine.py: search gives it): rows, ms."""
    where, params = compile_filter(Condition(Field.USER_KEY, Op.EQ, key))
    distance = "cosine_distance(vector, %s::vector)" if exact else "vector <=> %s::vector"
    query = sql.SQL("SELECT id, {d} AS distance FROM {t} WHERE {w} ORDER BY distance LIMIT %s").format(
        d=sql.SQL(distance), t=sql.Identifier(TABLE), w=where
    )
    started = time.perf_counter()
    rows = conn.execute(query, (PgVector(vector.tolist()), *params, limit)).fetchall()
    elapsed = (time.perf_counter() - started) * 1000
    return [(str(r[0]), float(r[1])) for r in rows], elapsed


def nearest5(rows: list[tuple[str, float]]) -> list[str]:
    return [i for i, _ in sorted(rows, key=lambda r: r[1])[:LIMIT]]


def measure_paths(
    conn: psycopg.Connection[Any], queries: list[tuple[str, np.ndarray]], with_index: bool
) -> tuple[dict[str, Any], list[list[str]]]:
    """Exact and HNSW paths for (user key, vector) queries: latency and recall@5 against the truth."""
    truth = [nearest5(run_semantic(conn, key, vector, True, LIMIT)[0]) for key, vector in queries]
    result: dict[str, Any] = {}
    exact_times, exact_hits = [], 0
    for (key, vector), expected in zip(queries, truth, strict=True):
        rows, ms = run_semantic(conn, key, vector, True, FETCH)
        exact_times.append(ms)
        exact_hits += len(set(nearest5(rows)) & set(expected))
    result["exact"] = {**percentiles(exact_times), "recall_at_5": round(exact_hits / (LIMIT * len(queries)), 4)}
    result["exact"]["plan"] = plan(conn, queries[0][0], queries[0][1], exact=True)
    if not with_index:
        return result, truth
    key, vector = queries[0]
    plans = {"unforced (what the service's <=> statement gets)": plan(conn, key, vector)}
    # The index path is measured as such: without sorts the planner cannot answer ORDER BY
    # distance from the user index, so it takes the HNSW index (checked: `plan` below).
    conn.execute("SET enable_sort = off")
    result["plans"] = {**plans, "measured as the HNSW path": plan(conn, key, vector)}
    for ef in EF_SEARCH:
        conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef),))
        times, hits, short = [], 0, 0
        for (key, vector), expected in zip(queries, truth, strict=True):
            rows, ms = run_semantic(conn, key, vector, False, FETCH)
            times.append(ms)
            hits += len(set(nearest5(rows)) & set(expected))
            short += len(rows) < LIMIT
        result[f"hnsw_ef_search_{ef}"] = {
            **percentiles(times),
            "recall_at_5": round(hits / (LIMIT * len(queries)), 4),
            "short_results": short,
        }
    conn.execute("RESET enable_sort")
    return result, truth


def plan(conn: psycopg.Connection[Any], key: str, vector: np.ndarray, exact: bool = False) -> str:
    """The plan's nodes for the service's statement of either path."""
    where, params = compile_filter(Condition(Field.USER_KEY, Op.EQ, key))
    distance = "cosine_distance(vector, %s::vector)" if exact else "vector <=> %s::vector"
    query = sql.SQL(
        "EXPLAIN (FORMAT JSON) SELECT id, {d} AS distance FROM {t} WHERE {w} ORDER BY distance LIMIT %s"
    ).format(d=sql.SQL(distance), t=sql.Identifier(TABLE), w=where)
    found = conn.execute(query, (PgVector(vector.tolist()), *params, FETCH)).fetchone()[0]  # type: ignore[index]
    names: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        names.append(f"{node['Node Type']}" + (f" on {node['Index Name']}" if "Index Name" in node else ""))
        for child in node.get("Plans", []):
            walk(child)

    walk(found[0]["Plan"])
    return " > ".join(names)


def sizes(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = %s::regclass ORDER BY 1",
        (TABLE,),
    ).fetchall()
    mb = 1024 * 1024
    return {
        "rows": conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0],  # type: ignore[index]
        "table_total_mb": round(conn.execute("SELECT pg_total_relation_size(%s)", (TABLE,)).fetchone()[0] / mb, 1),  # type: ignore[index]
        "heap_mb": round(conn.execute("SELECT pg_relation_size(%s)", (TABLE,)).fetchone()[0] / mb, 1),  # type: ignore[index]
        "indexes_mb": {name: round(size / mb, 1) for name, size in rows},
    }


def api_searches(
    url: str, conn: psycopg.Connection[Any], embedder: OnnxMiniLMEmbedder, users: int, salt: str
) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """QUERIES searches through the HTTP API, one at a time; returns the figures and the queries
    (user key, vector) for the SQL-level measurement."""
    rng = random.Random(salt)
    picked = [(rng.randrange(users), query_text(i, salt)) for i in range(QUERIES)]
    vectors = np.asarray(embedder.embed_batch([text for _, text in picked], "search"), dtype=np.float32)
    times, short, agreement = [], 0, 0
    with httpx.Client(base_url=url, headers={"Authorization": AUTH}, timeout=120) as client:
        for i in range(3):  # warm: connections, lazy imports
            client.get("/v1/memories/search", params={"query": f"warm {salt} {i}", "user_id": "user-0", "limit": LIMIT})
        answers = []
        for user, text in picked:
            started = time.perf_counter()
            response = client.get(
                "/v1/memories/search", params={"query": text, "user_id": f"user-{user}", "limit": LIMIT}
            )
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
            answers.append([m["id"] for m in response.json()["data"]["memories"]])
    queries = [(user_key(user), vector) for (user, _), vector in zip(picked, vectors, strict=True)]
    for (key, vector), ids in zip(queries, answers, strict=True):
        short += len(ids) < LIMIT
        agreement += len(set(ids) & set(nearest5(run_semantic(conn, key, vector, True, LIMIT)[0])))
    return {
        **percentiles(times),
        "searches": len(times),
        "short_results": short,
        "results_complete": short == 0,
        "top5_agreement_with_exact_vector_top5": round(agreement / (LIMIT * len(queries)), 4),
    }, queries


def index_definitions(conn: psycopg.Connection[Any]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = %s::regclass AND NOT i.indisprimary",
        (TABLE,),
    ).fetchall()
    return {str(name): str(definition) for name, definition in rows}


def deadline_seconds() -> float:
    """Seconds left until BENCH_SCALE_DEADLINE (UTC HH:MM), or infinity."""
    if not DEADLINE:
        return float("inf")
    now = dt.datetime.now(dt.UTC)
    hour, minute = (int(x) for x in DEADLINE.split(":"))
    return (now.replace(hour=hour, minute=minute, second=0, microsecond=0) - now).total_seconds()


def crossover(conn: psycopg.Connection[Any], embedder: OnnxMiniLMEmbedder, with_index: bool) -> dict[str, Any]:
    """The large users (loaded with the last step, spread over its rows): exact path against the index."""
    out: dict[str, Any] = {}
    texts = [query_text(i, "crossover") for i in range(CROSSOVER_QUERIES)]
    vectors = np.asarray(embedder.embed_batch(texts, "search"), dtype=np.float32)
    for size in CROSSOVER:
        if deadline_seconds() < 60:
            out[f"user_{size}"] = "not measured: the deadline"
            continue
        measured, _ = measure_paths(conn, [(user_key(f"large-{size}"), v) for v in vectors], with_index)
        out[f"user_{size}"] = measured
        index = measured.get("hnsw_ef_search_100", {}).get("p50_ms", "not measured")
        log(f"  user of {size}: exact p50 {measured['exact']['p50_ms']} ms, hnsw(100) p50 {index} ms")
    conn.execute("SELECT set_config('hnsw.ef_search', '100', false)")
    return out


def main() -> int:
    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average_start": load_average()},
        "settings": {
            "sizes": SIZES,
            "memories_per_user": PER_USER,
            "queries_per_size": QUERIES,
            "top_k": LIMIT,
            "over_fetch": FETCH,
            "maintenance_work_mem": MAINTENANCE_WORK_MEM,
            "data": (
                f"{BASE_TEXTS} generated sentences embedded with the service's ONNX model; each memory one of them "
                f"plus Gaussian noise of norm {NOISE}, normalised; a user's rows interleaved with all others'"
            ),
            "hnsw": "m=16, ef_construction=64 (pgvector's defaults, as the collection migration creates it)",
        },
        "definitions": {
            "api.top5_agreement_with_exact_vector_top5": (
                "share of the 5 memories the API returned that are among the exact vector top 5 of the user "
                "(the service adds BM25 keyword ranks to the vector score, so below 1 is ranking, not a miss)"
            ),
            "sql.*.recall_at_5": (
                "share of the exact top 5 (ORDER BY cosine_distance LIMIT 5 over the user's rows) among the 5 "
                "nearest of the path's over-fetch of 60, the statement the service runs"
            ),
            "sql.exact": (
                "cosine_distance through the (user, created_at, id) index: the service's path below "
                "SEARCH_EXACT_MAX_ROWS (the truth is this path with LIMIT 5, so its recall is a consistency check)"
            ),
            "sql.hnsw_ef_search_N": "vector <=> through the HNSW index, iterative scan relaxed_order, hnsw.ef_search N",
        },
    }
    embedder = OnnxMiniLMEmbedder(threads=2)
    corpus = Corpus(embedder)
    results["settings"]["base_embedding_seconds"] = corpus.embed_seconds
    log(f"embedded {BASE_TEXTS} base texts in {corpus.embed_seconds} s")
    base = Path(os.environ["BENCH_SCALE_DIR"]) if os.environ.get("BENCH_SCALE_DIR") else None
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=base) as tmp:
        service = ServiceProcess(Path(tmp) / "service", LOAD_ENV).start(timeout=300)
        try:
            with service.client() as client:
                response = client.post(
                    "/v1/memories",
                    json={
                        "messages": [{"role": "user", "content": "likes quiet mornings"}],
                        "user_id": "template",
                        "infer": False,
                    },
                )
                assert response.status_code == 201, response.text
            conn = psycopg.connect(embedded_conninfo(service.data_dir), autocommit=True, prepare_threshold=None)
            adapters.register(conn)
            conn.execute("SELECT '[1]'::vector")  # loads pgvector, whose settings follow
            conn.execute("SET plan_cache_mode = force_custom_plan")
            conn.execute("SET hnsw.iterative_scan = relaxed_order")
            conn.execute(f"SET maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
            results["postgres"] = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in (
                    "server_version",
                    "shared_buffers",
                    "max_parallel_maintenance_workers",
                    "hnsw.max_scan_tuples",
                )
            }
            results["postgres"]["pgvector"] = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()[0]  # type: ignore[index]
            template = conn.execute(
                f"SELECT payload FROM {TABLE} WHERE payload->>'user_id' = %s", (f"{TENANT}/template",)
            ).fetchone()[0]  # type: ignore[index]
            conn.execute(f"DELETE FROM {TABLE}")
            template = {k: v for k, v in template.items() if k not in {"entities", "entity_keys", "relationships"}}
            results["settings"]["payload_keys"] = sorted({*template, "data", "hash", "text_lemmatized"})
            definitions = index_definitions(conn)
            hnsw_name = next(n for n, d in definitions.items() if "hnsw" in d)
            results["steps"] = []
            loaded_users = 0
            last_build: tuple[int, float] | None = None
            for position, size in enumerate(SIZES):
                step: dict[str, Any] = {
                    "memories": size,
                    "users": size // PER_USER,
                    "load_average_start": load_average(),
                }
                log(f"step {size}: dropping the secondary indexes")
                for name in definitions:
                    conn.execute(f'DROP INDEX IF EXISTS "{name}"')
                t0 = time.monotonic()
                large = {n: n for n in CROSSOVER} if position == len(SIZES) - 1 else {}
                load_users(conn, corpus, range(loaded_users, size // PER_USER), template, large)
                loaded_users = size // PER_USER
                step["load_seconds"] = round(time.monotonic() - t0, 1)
                builds: dict[str, Any] = {}
                for name, definition in definitions.items():
                    if name == hnsw_name:
                        continue
                    t0 = time.monotonic()
                    conn.execute(definition)
                    builds[name] = round(time.monotonic() - t0, 1)
                rows = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]  # type: ignore[index]
                estimate = last_build[1] * (rows / last_build[0]) * 1.3 if last_build else 0.0
                with_index = HNSW and estimate + 300 < deadline_seconds()
                if with_index:
                    log(f"step {size}: building the HNSW index (estimate {estimate:.0f} s)")
                    t0 = time.monotonic()
                    conn.execute(definitions[hnsw_name])
                    builds[hnsw_name] = round(time.monotonic() - t0, 1)
                    last_build = (rows, builds[hnsw_name])
                else:
                    builds[hnsw_name] = (
                        "not built: BENCH_SCALE_HNSW=off"
                        if not HNSW
                        else f"not built: extrapolated {estimate:.0f} s from the previous build passes the deadline "
                        f"{DEADLINE} UTC; the exact path (users of {PER_USER}) does not use it"
                    )
                step["index_build_seconds"] = builds
                t0 = time.monotonic()
                conn.execute(f"VACUUM ANALYZE {TABLE}")
                step["vacuum_analyze_seconds"] = round(time.monotonic() - t0, 1)
                step["size"] = sizes(conn)
                log(f"step {size}: {QUERIES} API searches (load average {load_average()[0]})")
                step["api"], queries = api_searches(service.url, conn, embedder, loaded_users, f"s{size}")
                log(
                    f"  api p50 {step['api']['p50_ms']} p95 {step['api']['p95_ms']} ms,"
                    f" short {step['api']['short_results']}"
                )
                step["sql"], _ = measure_paths(conn, queries, with_index)
                conn.execute("SELECT set_config('hnsw.ef_search', '100', false)")
                brief = {k: (v["p50_ms"], v["recall_at_5"]) for k, v in step["sql"].items() if k != "plans"}
                log(f"  sql (p50 ms, recall@5): {json.dumps(brief)}")
                step["load_average_end"] = load_average()
                results["steps"].append(step)
                if position == len(SIZES) - 1 and CROSSOVER:
                    log(f"crossover: users of {CROSSOVER} memories in the {size}-memory table")
                    results["crossover"] = {"table_rows": step["size"]["rows"], "hnsw_index": with_index}
                    results["crossover"] |= crossover(conn, embedder, with_index)
            conn.close()
        finally:
            service.stop()
    results["summary"] = summary(results)
    results["machine"]["load_average_end"] = load_average()
    results["duration_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, indent=2))
    return 0


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The 10k/100k/1M table and issue 20's targets: recall@5 >= 0.98 and p95 <= 2 x p95 at 10k."""
    table = []
    for step in results["steps"]:
        row = {
            "memories": step["memories"],
            "api_p50_ms": step["api"]["p50_ms"],
            "api_p95_ms": step["api"]["p95_ms"],
            "results_complete": step["api"]["results_complete"],
            "service_path_recall_at_5 (exact)": step["sql"]["exact"]["recall_at_5"],
            "hnsw_ef100_recall_at_5": step["sql"].get("hnsw_ef_search_100", {}).get("recall_at_5", "no index"),
            "hnsw_mb": next((v for k, v in step["size"]["indexes_mb"].items() if "hnsw" in k), None),
            "table_total_mb": step["size"]["table_total_mb"],
        }
        table.append(row)
    out: dict[str, Any] = {"table": table}
    if len(table) > 1:
        first, last = table[0], table[-1]
        out["targets"] = {
            f"recall_at_5>=0.98 at {last['memories']}": [
                last["service_path_recall_at_5 (exact)"],
                last["service_path_recall_at_5 (exact)"] >= 0.98,
            ],
            f"p95 at {last['memories']} <= 2 x p95 at {first['memories']}": [
                [last["api_p95_ms"], first["api_p95_ms"]],
                last["api_p95_ms"] <= 2 * first["api_p95_ms"],
            ],
        }
    cross = results.get("crossover")
    if isinstance(cross, dict):
        faster = [
            int(k.split("_")[1])
            for k, v in cross.items()
            if k.startswith("user_")
            and isinstance(v, dict)
            and "hnsw_ef_search_100" in v
            and v["hnsw_ef_search_100"]["p50_ms"] < v["exact"]["p50_ms"]
        ]
        out["crossover_index_faster_from_user_rows"] = min(faster) if faster else "not within the sizes measured"
    return out


if __name__ == "__main__":
    sys.exit(main())

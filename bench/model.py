"""`make bench-model`: what the embedding model alone costs, the floor under a search's CPU (issue 20).

A search on the miss path runs the model once for its query; no plumbing work can take a search
below that. This measures the service's own embedder (providers/onnx.py, one intra-op thread as in
the service) on query-like texts of about 15 tokens, on one thread, without HTTP or Postgres:

- CPU per query at batch sizes 1, 4, 16 and 32 (the micro-batcher's range), thread CPU time, so
  another process on the machine inflates it less than wall time;
- where a run of one query spends its time, by operator type, from onnxruntime's own profiler.

JSON on stdout; BENCH_MODEL_QUERIES sets how many queries each batch size embeds (default 480).
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "service"))
sys.path.insert(0, str(ROOT))

from bench.common import TOPICS, log  # noqa: E402

QUERIES = int(os.environ.get("BENCH_MODEL_QUERIES", "480"))
BATCHES = (1, 4, 16, 32)


def texts(n: int) -> list[str]:
    """Unique, agent-like questions of 13 to 17 tokens (the throughput run's shape)."""
    return [f"what did the user say about {TOPICS[i % len(TOPICS)]} during the week of item {i}" for i in range(n)]


def per_query_cpu_ms(encode: Any, queries: list[str], batch: int) -> float:
    for i in range(0, 4 * batch, batch):  # warm-up: first runs of a shape allocate
        encode(queries[i : i + batch])
    started = time.thread_time()
    for i in range(0, len(queries), batch):
        encode(queries[i : i + batch])
    return round((time.thread_time() - started) / len(queries) * 1000, 3)


def operator_split(model_path: Path, runs: int = 200) -> dict[str, Any]:
    """onnxruntime's profile of `runs` single-query runs: milliseconds per run by operator type."""
    import numpy as np
    import onnxruntime as ort
    from memory_service.providers.onnx import session_options

    ort.disable_telemetry_events()
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        options = session_options(threads=1)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        ids = np.array([[101, *range(2000, 2013), 102]], dtype=np.int64)  # [CLS] 13 words [SEP]
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"]
    total = sum(by_op.values())
    return {
        "kernel_ms_per_run_profiled": round(total / runs / 1000, 3),
        "share_by_operator": {op: round(us / total, 3) for op, us in by_op.most_common(6)},
    }


def main() -> int:
    from memory_service.providers.onnx import OnnxMiniLMEmbedder, default_model_files

    embedder = OnnxMiniLMEmbedder(threads=1)
    queries = texts(QUERIES + 4 * max(BATCHES))
    tokens = [sum(e.attention_mask) for e in embedder._tokenizer.encode_batch(queries[:QUERIES])]
    log(f"model: {QUERIES} queries of {min(tokens)}..{max(tokens)} tokens per batch size")
    cpu = {str(b): per_query_cpu_ms(embedder._encode, queries, b) for b in BATCHES}
    log(f"model: CPU ms per query by batch size {cpu}")
    result = {
        "queries": QUERIES,
        "tokens_min_max": [min(tokens), max(tokens)],
        "cpu_ms_per_query_by_batch": cpu,
        "batch_32_vs_1": round(cpu["32"] / cpu["1"], 3),
        "single_query_profile": operator_split(default_model_files()[0]),
    }
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

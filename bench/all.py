"""`make bench`: every benchmark of the service in one run, one JSON document on stdout.

Issue 20 asks for its figures "in one run on this machine": the model's own CPU per query by batch
size (bench/model.py: the floor under a search's CPU), the scale table (bench/scale.py:
10k/100k/1M memories, recall@5 against an exact scan), the throughput run (bench/throughput.py:
searches/s and p50/p95/p99 at 1/8/32 clients for one and two workers beside the mem0-server
pattern, adds/s, CPU per search, the hit path) reading that scale result, and the latency run
(bench/run.py: add/search latency at 1k and 10k memories, the Platform dialect, MCP, webhooks,
the limiter). Each runs as its own process, one after the other, so none measures while another
loads the machine; their progress goes to stderr. The scale result is also kept as
bench/results/scale-<date>-<HHMM>.json (what `make bench-throughput` reads on its own).

BENCH_ONLY (e.g. `throughput,latency`) runs a subset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench/results"
PARTS = ("model", "scale", "throughput", "latency")
SCRIPTS = {
    "model": "bench/model.py",
    "scale": "bench/scale.py",
    "throughput": "bench/throughput.py",
    "latency": "bench/run.py",
}


def run(part: str, env: dict[str, str]) -> dict[str, Any]:
    print(f"[{time.strftime('%H:%M:%S')}] make bench: {part} ({SCRIPTS[part]})", file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(ROOT / SCRIPTS[part])], stdout=subprocess.PIPE, env=env, text=True, check=False
    )
    if done.returncode != 0:
        return {"failed": f"{SCRIPTS[part]} exited {done.returncode} (its stderr above)"}
    result: dict[str, Any] = json.loads(done.stdout)
    result.setdefault("duration_seconds", round(time.monotonic() - started, 1))
    return result


def main() -> int:
    wanted = [p for p in os.environ.get("BENCH_ONLY", ",".join(PARTS)).split(",") if p]
    unknown = set(wanted) - set(PARTS)
    if unknown:
        print(f"BENCH_ONLY: unknown parts {sorted(unknown)}; known: {', '.join(PARTS)}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for part in (p for p in PARTS if p in wanted):  # PARTS order: the scale result feeds throughput
        results[part] = run(part, env)
        if part == "scale" and "failed" not in results["scale"]:
            RESULTS.mkdir(parents=True, exist_ok=True)
            kept = RESULTS / f"scale-{time.strftime('%Y-%m-%d-%H%M', time.gmtime())}.json"
            kept.write_text(json.dumps(results["scale"], indent=1) + "\n")
            env["BENCH_SCALE_RESULT"] = str(kept)
    results["targets"] = {
        part: results[part]["targets"]
        for part in ("throughput",)
        if isinstance(results.get(part), dict) and "targets" in results[part]
    }
    print(json.dumps(results, indent=1))
    return 1 if any(isinstance(r, dict) and "failed" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

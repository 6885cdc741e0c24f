"""Plot capacity runs: throughput and search latency against users, one or more runs overlaid.

`python -m loadtests.plot loadtests/reports/capacity-1w/capacity.json [more.json ...] -o out.png`
Top: achieved requests per second (offered load dashed). Bottom: search p95 as Locust saw it
(solid) and as the server measured it (dotted), the SLO as a horizontal line; the capacity step of
each run is circled.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot(inputs: Sequence[Path], output: Path) -> None:
    runs: list[dict[str, Any]] = [json.loads(Path(p).read_text()) for p in inputs]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True)
    slo = None
    for n, run in enumerate(runs):
        color = f"C{n}"
        steps = run["steps"]
        if not steps:
            continue
        users = [s["users"] for s in steps]
        label = run.get("label") or f"run {n + 1}"
        top.plot(users, [s["rps"] for s in steps], "o-", color=color, label=f"{label}: achieved")
        top.plot(users, [s["offered_rps"] for s in steps], "--", color=color, alpha=0.4, label=f"{label}: offered")
        p95 = [s["search_p95_ms"] for s in steps]
        bottom.plot(users, p95, "o-", color=color, label=f"{label}: search p95 (Locust)")
        server = [s.get("server", {}).get("search_p95_ms") for s in steps]
        if any(v is not None for v in server):
            bottom.plot(users, server, ":", color=color, label=f"{label}: search p95 (server)")
        found = run.get("capacity")
        if found:
            top.plot([found["users"]], [found["rps"]], "o", ms=14, mfc="none", mec=color, mew=2)
            top.annotate(
                f"{found['rps']:.0f} req/s",
                (found["users"], found["rps"]),
                textcoords="offset points",
                xytext=(8, -14),
                color=color,
            )
        slo = run["slo"]["search_p95_ms"]
    if slo is not None:
        bottom.axhline(slo, color="red", lw=1, label=f"SLO: search p95 <= {slo:g} ms")
    top.set_ylabel("requests per second")
    top.set_title("Memory service capacity: search-heavy mix (60 % search)")
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    bottom.set_ylabel("search latency p95 (ms)")
    bottom.set_xlabel("concurrent users (each paced at most 1 request per second)")
    bottom.set_yscale("log")
    bottom.grid(alpha=0.3, which="both")
    bottom.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="capacity.json files")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    plot(args.inputs, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

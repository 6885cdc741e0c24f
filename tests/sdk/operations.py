"""The OpenAPI document's operations of the contract, and which of them the SDKs deliberately
leave out.

Every other operation must be reached by a call of each SDK (the coverage tests record the
requests the SDKs send and map them to the document's path templates), so a route added to the
service without an SDK method fails those tests until it gets one or is listed here with a reason.

Only the contract's operations count: the routes tagged "mem0 Platform compatible" (api/platform/)
are the mem0 Platform's dialect, served for mem0's own clients (PyPI and npm `mem0ai`), which
tests/compat drives method by method; the SDKs in sdk/ speak the contract and never call them.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from memory_service.api.dialects import PLATFORM_TAG

# (method, path template) -> why no SDK method calls it.
LEFT_OUT: dict[tuple[str, str], str] = {
    ("GET", "/health"): "root alias of GET /v1/health (the seed's curl path); the SDKs call /v1/health",
    ("GET", "/status"): "root alias of GET /v1/status; the SDKs call /v1/status",
    ("GET", "/metrics"): "root alias of GET /v1/metrics; the SDKs call /v1/metrics",
}
# Liveness and readiness describe the one process that answers, for the orchestrator or load
# balancer in front of it; behind that balancer an application learns nothing from them that
# `health()` does not tell it (and a 503 from them is the balancer's cue, not the caller's).
_PROBE = "per-process probe for orchestrators and load balancers; applications call health()"
LEFT_OUT.update({("GET", f"{prefix}/health/{probe}"): _PROBE for prefix in ("", "/v1") for probe in ("live", "ready")})


def operations(base_url: str) -> set[tuple[str, str]]:
    """The contract's operations: every one not tagged as the mem0 Platform dialect's."""
    document: dict[str, Any] = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
    return {
        (method.upper(), path)
        for path, ops in document["paths"].items()
        for method, operation in ops.items()
        if PLATFORM_TAG not in operation.get("tags", [])
    }


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def template_of(method: str, raw_path: str, ops: set[tuple[str, str]]) -> tuple[str, str] | None:
    """The operation a request reached: among matching templates, the most literal one
    (`/v1/memories/search` before `/v1/memories/{memory_id}`)."""
    path = raw_path.split("?", 1)[0]
    matches = [op for op in ops if op[0] == method and _pattern(op[1]).match(path)]
    return min(matches, key=lambda op: op[1].count("{"), default=None)


def missing(reached: set[tuple[str, str]], ops: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return ops - reached - set(LEFT_OUT)

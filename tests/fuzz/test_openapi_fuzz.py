"""Schema-driven fuzzing of the running service (issue 19): schemathesis over /openapi.json.

Every operation of the document gets requests generated from its schema, valid ones (positive
mode) and invalid ones (negative mode), sent over HTTP to the real service with a user key (an
admin key on admin routes). Every response must:

- not be a 5xx;
- carry an X-Request-ID and speak its route's dialect (api/dialects.py): the contract's routes
  answer the envelope (`success` true with `data`, or false with `error.code/message/details`;
  the metrics exposition is Prometheus text, by design); the mem0 Platform dialect's routes (paths
  ending in `/`) answer the Platform's own bodies, errors as `PlatformError` (`detail`, `code`),
  which mem0's clients read (docs/mem0-compat.md);
- conform to the document (status code documented, schema, content type), and a request the
  document says is valid must not be refused with 400, one it says is invalid must be refused:
  the document states every rule the service enforces.

Cross-tenant probes: the fuzzing key's tenant (B) never sees tenant A's data; ids of A's memory
and job are substituted into generated paths, and must answer 404, never the data.

Bounded for CI (FUZZ_EXAMPLES per operation, deterministic); `make fuzz FUZZ_EXAMPLES=500` runs
longer with random data. The counts are printed at the end.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from memory_service.api.dialects import PLATFORM, dialect_of
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from tests.support.api import add_memory
from tests.support.server import ADMIN_KEY, ServiceProcess, new_tenant_key

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
RANDOM = os.environ.get("FUZZ_RANDOM", "") not in ("", "0")
# Admin routes get an admin key; so do the Platform's webhook routes (admin only, 403 otherwise).
ADMIN_PREFIXES = ("/v1/admin", "/v1/metrics", "/metrics", "/api/v1/webhooks")
STATS: Counter[str] = Counter()


class Tenants:
    """Tenant A holds a canary memory and job; the fuzzer uses tenant B's key."""

    def __init__(self, service: ServiceProcess) -> None:
        with service.client(ADMIN_KEY) as admin:
            self.key_a = key_a = new_tenant_key(admin, f"fuzz-a-{uuid.uuid4().hex[:8]}")
            self.key_b = new_tenant_key(admin, f"fuzz-b-{uuid.uuid4().hex[:8]}")
        self.canary = f"canary-{uuid.uuid4().hex}"
        with service.client(key_a) as client_a:
            self.memory_a = add_memory(client_a, f"tenant A's secret {self.canary}", user_id="shared")["id"]
            body = {"messages": [{"role": "user", "content": f"queued {self.canary}"}], "user_id": "shared"}
            self.job_a = client_a.post("/v1/memories", params={"async": "true"}, json=body).json()["data"]["job_id"]
        self.foreign_ids = {"memory_id": self.memory_a, "job_id": self.job_a}


@pytest.fixture(scope="module")
def tenants(service: ServiceProcess) -> Tenants:
    return Tenants(service)


@pytest.fixture(scope="module")
def api_schema(service: ServiceProcess) -> Any:
    config = schemathesis.Config()
    config.projects.default.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES,
        deterministic=not RANDOM,
        allow_x00=False,  # NUL is refused everywhere (documented); tests/api/test_hostile_input.py sends it
        # Unknown query parameters are ignored, as by most APIs (OpenAPI cannot forbid them).
        allow_extra_parameters=False,
        database="none",
    )
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json", config=config)


def _operations() -> list[str]:
    """The document's operations, from the app in-process: tests are collected before the service
    runs (the fuzzing itself uses the document the running service serves)."""
    from memory_service.main import create_app
    from memory_service.settings import Settings

    document = create_app(Settings(app_env="development", log_level="WARNING", _env_file=None)).openapi()
    return sorted(f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops)


def _is_platform_error(body: Any) -> bool:
    """The Platform dialect's error body (PlatformError): mem0's clients read `detail`."""
    return isinstance(body, dict) and isinstance(body.get("detail"), str) and isinstance(body.get("code"), str)


def _is_envelope(body: Any) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("timestamp"), str):
        return False
    if body.get("success") is True:
        return "data" in body and isinstance(body.get("message"), str)
    error = body.get("error")
    return (
        body.get("success") is False
        and isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
        and isinstance(error.get("details"), dict)
    )


@schemathesis.check
def envelope_and_request_id(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every answer carries an X-Request-ID and is in its route's dialect: the envelope on the
    contract's routes; on the Platform's, errors are PlatformError (successes are the Platform's
    shapes, which the schema conformance check holds to the document)."""
    assert response.headers.get("x-request-id"), "no X-Request-ID"
    if dialect_of(case.path) == PLATFORM:
        if response.status_code >= 400:
            assert _is_platform_error(response.json()), f"not the Platform's error body: {response.text[:300]}"
        return True
    is_metrics = case.path.endswith("/metrics") and response.status_code == 200
    if not is_metrics:
        assert _is_envelope(response.json()), f"not the envelope: {response.text[:300]}"
    return True


CHECKS = [
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.positive_data_acceptance,
    envelope_and_request_id,
]


# Strings whose grammar a JSON Schema cannot state: `filters` is JSON, `cursor` is the service's own
# token; in the Platform dialect also `metadata` (a JSON object in a query). Likewise the Platform's
# filter language in a body (`filters`, and search's `metadata` conditions): recursive, its
# operators depend on the field. A generated value is almost never valid, so their refusal is not a
# finding (tests/compat/test_filters.py holds the language to a table of cases).
OPAQUE_PARAMETERS = ("filters", "cursor", "metadata")
OPAQUE_BODY_FIELDS = ("filters", "metadata")
OPAQUE_CHECKS = [check for check in CHECKS if check is not openapi_checks.positive_data_acceptance]


def _opaque_body(case: Any) -> bool:
    """A Platform body holding the filter language (an add's `filters` are plain ids, stated)."""
    body = case.body
    if not isinstance(body, dict) or case.path == "/v3/memories/add/":
        return False
    fields = OPAQUE_BODY_FIELDS if case.path == "/v3/memories/search/" else ("filters",)
    return any(body.get(name) not in (None, {}) for name in fields)


def _names_none_required(case: Any) -> bool:
    """`x-required-one-of`: parameters of which the document says at least one must be given (an
    OpenAPI document cannot state it in the parameters' schemas); a case without any is invalid."""
    names = case.operation.definition.raw.get("x-required-one-of")
    given = {**(case.query or {}), **(case.path_parameters or {})}
    return bool(names) and not any(given.get(name) not in (None, "") for name in names)


def _not_offered(case: Any) -> bool:
    """A Platform-only feature's route (api/platform/unsupported.py): it exists to answer 501
    NOT_OFFERED, documented as its one answer, which mem0's clients raise as their MemoryError."""
    return str(case.operation.definition.raw.get("summary", "")).startswith("Not offered")


def _substitute_foreign_ids(case: Any, tenants: Tenants) -> bool:
    """Every other case that has a memory or job id in its path gets tenant A's instead."""
    params = case.path_parameters or {}
    names = [name for name in tenants.foreign_ids if name in params]
    if not names or STATS["requests"] % 2:
        return False
    for name in names:
        params[name] = tenants.foreign_ids[name]
    return True


def _call(case: Any, tenants: Tenants) -> None:
    admin = case.path.startswith(ADMIN_PREFIXES)
    foreign = not admin and _substitute_foreign_ids(case, tenants)
    headers = {"Authorization": f"Bearer {ADMIN_KEY if admin else tenants.key_b}"}
    response = case.call(headers=headers, timeout=30)
    STATS["requests"] += 1
    where = f"{case.method} {case.formatted_path}"
    not_offered = _not_offered(case) and response.status_code == 501
    if not_offered:  # the route's documented refusal, not a server error; no other 5xx is
        assert response.json().get("code") == "NOT_OFFERED", f"{where}: {response.text[:300]}"
        STATS["501 not offered"] += 1
    else:
        STATS[f"{response.status_code // 100}xx"] += 1
    if foreign:
        STATS["cross-tenant probes"] += 1
    assert not_offered or response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    if foreign and case.method != "POST":  # 401 when a negative case dropped the key
        assert response.status_code in (400, 401, 404), f"{where}: {response.text[:300]}"
    assert tenants.canary not in response.text, "tenant A's data reached tenant B"
    opaque = any(name in (case.query or {}) for name in OPAQUE_PARAMETERS) or _opaque_body(case)
    if _names_none_required(case):  # invalid by the document's own statement, whatever the mode
        assert response.status_code in (400, 401), f"{where}: {response.status_code} {response.text[:300]}"
        opaque = True
    case.validate_response(response, checks=OPAQUE_CHECKS if opaque or _not_offered(case) else CHECKS, headers=headers)


@pytest.mark.parametrize("operation", _operations())
def test_fuzz(operation: str, api_schema: Any, tenants: Tenants) -> None:
    """Generated requests, valid and invalid, for one operation (Hypothesis drives schemathesis'
    strategies directly: its pytest plugin does not run on pytest 9.2)."""
    method, path = operation.split(" ", 1)
    api_operation = api_schema[path][method]
    strategy = api_operation.as_strategy(GenerationMode.POSITIVE) | api_operation.as_strategy(GenerationMode.NEGATIVE)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    def fuzz(case: Any) -> None:
        _call(case, tenants)

    fuzz()


def test_cross_tenant_ids_answer_404_and_never_data(service: ServiceProcess, tenants: Tenants) -> None:
    """The deterministic part of the probes: each route that takes an id, with tenant A's ids."""
    probes = [
        ("GET", f"/v1/memories/{tenants.memory_a}", None),
        ("PUT", f"/v1/memories/{tenants.memory_a}", {"content": "taken over"}),
        ("DELETE", f"/v1/memories/{tenants.memory_a}", None),
        ("GET", f"/v1/memories/{tenants.memory_a}/history", None),
        ("GET", f"/v1/jobs/{tenants.job_a}", None),
    ]
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {tenants.key_b}"}) as client_b:
        for method, path, body in probes:
            response = client_b.request(method, path, json=body)
            STATS["requests"] += 1
            STATS["cross-tenant probes"] += 1
            assert response.status_code == 404, (method, path, response.text)
            assert tenants.canary not in response.text
        for path, params in [
            ("/v1/memories/user/shared", None),
            ("/v1/memories/search", {"query": "secret", "user_id": "shared"}),
            ("/v1/users/shared/stats", None),
            ("/v1/users/shared/entities", None),
        ]:
            response = client_b.get(path, params=params)
            STATS["requests"] += 1
            STATS["cross-tenant probes"] += 1
            assert response.status_code == 200, response.text
            assert tenants.canary not in response.text
    with service.client(tenants.key_a) as client_a:  # A's memory is untouched by B's attempts
        response = client_a.get(f"/v1/memories/{tenants.memory_a}")
        assert response.status_code == 200
        assert response.json()["data"]["content"] == f"tenant A's secret {tenants.canary}"
    assert STATS["cross-tenant probes"] >= 9


def test_fuzz_report(capsys: pytest.CaptureFixture[str]) -> None:
    """The counts of this run (runs last in the module): requests, statuses, 5xx = 0."""
    with capsys.disabled():
        print(f"\nfuzz: {dict(sorted(STATS.items()))} (FUZZ_EXAMPLES={EXAMPLES}, random={RANDOM})")
    assert STATS["requests"] >= 100
    assert STATS["5xx"] == 0

"""Both dialects on one port: the path decides, nothing redirects between them, one auth, one engine.

Raw HTTP here, because the boundary is about what goes over the wire: `/v1/memories/{id}` answers in
the contract's envelope and `/v1/memories/{id}/` in the Platform's shapes, in both directions, for
successes and errors alike.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.compat.conftest import platform_http
from tests.support.api import add_memory, assert_error
from tests.support.server import ADMIN_KEY, ServiceProcess, new_tenant_key


def platform_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert "success" not in body
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert response.headers.get("x-request-id")
    return body


def test_one_memory_two_dialects(service: ServiceProcess, key: str) -> None:
    with service.client(key) as contract, platform_http(service, key) as platform:
        created = add_memory(contract, "I keep bees on my balcony", "yara")
        enveloped = contract.get(f"/v1/memories/{created['id']}")
        assert enveloped.status_code == 200
        assert enveloped.json()["data"]["content"] == "I keep bees on my balcony"
        plain = platform.get(f"/v1/memories/{created['id']}/")
        assert plain.status_code == 200
        assert "success" not in plain.json()
        assert plain.json()["memory"] == "I keep bees on my balcony"
        assert contract.get(f"/v1/memories/{created['id']}/history").json()["data"]["history"][0]["event"] == "ADD"
        assert platform.get(f"/v1/memories/{created['id']}/history/").json()[0]["event"] == "ADD"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        # the contract's add is /v1/memories; the Platform's is /v3/memories/add/
        ("POST", "/v1/memories/", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/v1/memories/search/", 404, "MEMORY_NOT_FOUND"),  # a memory id "search", Platform dialect
        ("GET", "/v3/memories/add/", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/v1/memories/user/yara/", 404, "NOT_FOUND"),
        ("GET", "/v1/ping", 404, "NOT_FOUND"),
        ("GET", "/v3/memories/search", 404, "NOT_FOUND"),
        ("DELETE", "/v1/memories", 405, "METHOD_NOT_ALLOWED"),
        ("PUT", "/v1/batch", 404, "NOT_FOUND"),
    ],
)
def test_no_redirect_crosses_the_boundary(
    service: ServiceProcess, key: str, method: str, path: str, status: int, code: str
) -> None:
    with platform_http(service, key) as http:
        response = http.request(method, path, json={})
    assert not response.is_redirect
    if path.endswith("/"):
        platform_error(response, status, code)
    else:
        assert_error(response, status, code)


def test_the_console_is_neither_dialect_and_keeps_its_address(service: ServiceProcess) -> None:
    """`/console/...` ends with `/` but is the console's (HTML), not the Platform's; `/console`
    as typed still reaches it: the one redirect the app keeps, outside both dialects."""
    with httpx.Client(base_url=service.url) as browser:
        typed = browser.get("/console")
        assert (typed.status_code, typed.headers["location"]) == (307, "/console/")
        page = browser.get("/console/", follow_redirects=True)
        assert page.status_code == 200, page.text[:500]
        assert page.headers["content-type"].startswith("text/html")
        unknown = browser.get("/console/no-such-page/")
        assert unknown.status_code == 404
        assert "detail" not in unknown.text  # the console's own error page, not the Platform's body


def test_errors_answer_in_the_dialect_of_the_path(service: ServiceProcess, key: str) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    with service.client(key) as contract, platform_http(service, key) as platform:
        assert_error(contract.get(f"/v1/memories/{missing}"), 404, "MEMORY_NOT_FOUND")
        platform_error(platform.get(f"/v1/memories/{missing}/"), 404, "MEMORY_NOT_FOUND")
        assert_error(contract.put(f"/v1/memories/{missing}", json={"bogus": 1}), 400, "INVALID_REQUEST")
        body = platform_error(
            platform.post("/v3/memories/search/", json={"filters": {"user_id": "x"}}), 400, "INVALID_REQUEST"
        )
        assert "query" in str(body["detail"])
        platform_error(
            platform.post("/v3/memories/search/", content=b"{not json", headers={"Content-Type": "application/json"}),
            400,
            "INVALID_REQUEST",
        )
    with httpx.Client(base_url=service.url) as anonymous:
        assert_error(anonymous.get(f"/v1/memories/{missing}"), 401, "UNAUTHORIZED")
        platform_error(anonymous.get("/v1/ping/"), 401, "UNAUTHORIZED")


def test_token_and_bearer_both_authenticate_the_same_key(service: ServiceProcess, key: str, tenant: str) -> None:
    with service.client(key) as bearer, platform_http(service, key) as token:
        created = add_memory(bearer, "Zoe paints watercolours", "zoe")
        via_token_on_contract = token.get(f"/v1/memories/{created['id']}")
        assert via_token_on_contract.json()["data"]["id"] == created["id"]
        via_bearer_on_platform = bearer.get(f"/v1/memories/{created['id']}/")
        assert via_bearer_on_platform.json()["id"] == created["id"]
        ping = token.get("/v1/ping/").json()
        assert (ping["status"], ping["org_id"]) == ("ok", tenant)
        for scheme in ("token", "TOKEN"):
            response = httpx.get(f"{service.url}/v1/ping/", headers={"Authorization": f"{scheme} {key}"})
            assert response.status_code == 200
        platform_error(
            httpx.get(f"{service.url}/v1/ping/", headers={"Authorization": f"Basic {key}"}), 401, "UNAUTHORIZED"
        )


def test_rate_limit_headers_and_429_in_the_platform_dialect(
    service: ServiceProcess, admin: httpx.Client, tenant: str
) -> None:
    limited = new_tenant_key(admin, tenant, rate_limit=2)
    with platform_http(service, limited) as http:
        first = http.get("/v1/ping/")
        assert first.headers["X-RateLimit-Limit"] == "2"
        http.get("/v1/ping/")
        refused = http.get("/v1/ping/")
    body = platform_error(refused, 429, "RATE_LIMIT_EXCEEDED")
    assert int(refused.headers["Retry-After"]) == body["retry_after"] >= 1
    assert f"retry after {body['retry_after']} seconds" in str(body["detail"])


def test_openapi_lists_the_compatible_routes_under_their_own_tag(service: ServiceProcess) -> None:
    document = httpx.get(f"{service.url}/openapi.json").json()
    tagged = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "mem0 Platform compatible" in operation.get("tags", [])
    }
    assert {
        ("GET", "/v1/ping/"),
        ("POST", "/v3/memories/add/"),
        ("POST", "/v3/memories/"),
        ("POST", "/v3/memories/search/"),
        ("GET", "/v1/memories/{memory_id}/"),
        ("PUT", "/v1/memories/{memory_id}/"),
        ("DELETE", "/v1/memories/{memory_id}/"),
        ("DELETE", "/v1/memories/"),
        ("GET", "/v1/memories/{memory_id}/history/"),
        ("GET", "/v1/entities/"),
        ("DELETE", "/v2/entities/{entity_type}/{entity_id}/"),
        ("PUT", "/v1/batch/"),
        ("DELETE", "/v1/batch/"),
        ("POST", "/v1/exports/"),
        ("POST", "/v1/exports/get/"),
        ("POST", "/v1/feedback/"),
        ("GET", "/v1/event/{event_id}/"),
    } <= tagged
    assert all(path.endswith("/") for _, path in tagged)
    contract_paths = {
        p
        for p, ops in document["paths"].items()
        if any("mem0 Platform compatible" not in o.get("tags", []) for o in ops.values())
    }
    assert "/v1/memories/{memory_id}" in contract_paths
    assert not any(p.endswith("/") and p != "/" for p in contract_paths)


def test_metrics_count_requests_and_operations_by_dialect(service: ServiceProcess, key: str) -> None:
    with service.client(key) as contract, platform_http(service, key) as platform:
        created = add_memory(contract, "Metrics see both dialects", "abe")
        assert platform.get(f"/v1/memories/{created['id']}/").status_code == 200
    with service.client(ADMIN_KEY) as admin:
        text = admin.get("/v1/metrics").text
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def count(name: str, **labels: str) -> float:
        matching = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
        assert matching, (name, labels)
        return sum(matching)

    requests = "memory_http_requests_total"
    assert count(requests, dialect="platform", method="GET", route="/v1/memories/{memory_id}/", status="200") >= 1
    assert count(requests, dialect="contract", method="POST", route="/v1/memories", status="201") >= 1
    operations = "memory_operations_total"
    assert count(operations, dialect="platform", operation="get", outcome="success") >= 1
    assert count(operations, dialect="contract", operation="add", outcome="success") >= 1
    dialects = {s.labels.get("dialect") for s in samples if s.name in (requests, operations)}
    assert dialects == {"contract", "platform"}


def test_metadata_integer_beyond_64_bits_reads_back_in_both_dialects(service: ServiceProcess, key: str) -> None:
    """Found by the fuzz suite: orjson cannot write an integer beyond 64 bits, so one stored memory
    holding one made its user's Platform list and search answer 500 until it was erased."""
    huge = 2**70
    with service.client(key) as contract, platform_http(service, key) as platform:
        created = add_memory(contract, "my lucky number is enormous", "zeno", metadata={"lucky": huge})
        listed = platform.post("/v3/memories/", json={"filters": {"user_id": "zeno"}})
        assert listed.status_code == 200, listed.text
        assert [m["metadata"]["lucky"] for m in listed.json()["results"]] == [huge]
        found = platform.post("/v3/memories/search/", json={"query": "lucky number", "filters": {"user_id": "zeno"}})
        assert found.status_code == 200, found.text
        assert found.json()["results"][0]["id"] == created["id"]
        assert contract.get(f"/v1/memories/{created['id']}").json()["data"]["metadata"]["lucky"] == huge


def test_openapi_states_the_platform_rules_the_service_enforces(service: ServiceProcess, key: str) -> None:
    """Issue 19: a client generated from the document sends no request the service refuses; the
    limits read from the served document are the ones the service applies."""
    schemas = httpx.get(f"{service.url}/openapi.json").json()["components"]["schemas"]
    batch = schemas["BatchDeleteRequest"]["properties"]["memories"]
    top_k = schemas["SearchRequest"]["properties"]["top_k"]["maximum"]
    with platform_http(service, key) as platform:
        platform_error(platform.request("DELETE", "/v1/batch/", json={"memories": []}), 400, "INVALID_REQUEST")
        too_many = [{"memory_id": f"m{i}"} for i in range(batch["maxItems"] + 1)]
        platform_error(platform.request("DELETE", "/v1/batch/", json={"memories": too_many}), 400, "INVALID_REQUEST")
        body = {"query": "tea", "filters": {"user_id": "zeno"}}
        assert platform.post("/v3/memories/search/", json={**body, "top_k": top_k}).status_code == 200
        platform_error(platform.post("/v3/memories/search/", json={**body, "top_k": top_k + 1}), 400, "INVALID_REQUEST")
        platform_error(platform.put("/v1/memories/x/", json={}), 400, "INVALID_REQUEST")
    assert batch["minItems"] == 1


def test_a_path_ending_in_line_breaks_keeps_the_contracts_dialect(service: ServiceProcess, key: str) -> None:
    """Found by the fuzz suite: Starlette's `request.url` drops CR, LF and tab (urllib's WHATWG
    rule), so `/v1/memories/%0D%0D` read as `/v1/memories/` and its error came in the Platform's
    body; the dialect is decided on the path as routed."""
    with service.client(key) as contract:
        response = contract.put("/v1/memories/%0D%0D", json={"content": "x"})
    assert_error(response, 404, "MEMORY_NOT_FOUND")


def test_pages_are_bounded_so_the_offset_stays_a_bigint(service: ServiceProcess, key: str) -> None:
    """Found by the fuzz suite: `GET /v1/entities/?page=10**16` answered 500 (Postgres: bigint out
    of range); the page has a documented maximum, which still answers (an empty page)."""
    document = httpx.get(f"{service.url}/openapi.json").json()
    parameters = document["paths"]["/v1/entities/"]["get"]["parameters"]
    last = next(p for p in parameters if p["name"] == "page")["schema"]["maximum"]
    with platform_http(service, key) as platform:
        assert platform.get("/v1/entities/", params={"page": last}).json()["results"] == []
        platform_error(platform.get("/v1/entities/", params={"page": 10**16}), 400, "INVALID_REQUEST")
        listed = platform.post("/v3/memories/", params={"page": last}, json={"filters": {"user_id": "zeno"}})
        assert listed.json()["results"] == []
        too_far = platform.post("/v3/memories/", json={"page": 10**16, "filters": {"user_id": "zeno"}})
        platform_error(too_far, 400, "INVALID_REQUEST")

"""The API's documents cover every route: OpenAPI, docs/api.md curl examples, the Postman collection."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec(service: ServiceProcess) -> dict:
    response = httpx.get(f"{service.url}/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(spec: dict) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops]


def _template_regex(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", r"[^/?\\s]+", re.escape(path)) + r"(\?.*)?$")


def test_openapi_documents_the_envelope_and_errors(spec: dict) -> None:
    assert len(_operations(spec)) >= 18
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            if "/health" in path:  # the probes need no key and answer without the error set
                continue
            # The mem0 Platform dialect (paths ending with "/") has its own error body.
            error_model = "/PlatformError" if path.endswith("/") else "/ErrorEnvelope"
            for status in ("400", "401", "500", "503"):
                assert status in responses, (method, path, status)
                ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith(error_model), (method, path, status)
    assert {"ErrorEnvelope", "PlatformError"} <= set(spec["components"]["schemas"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_docs_have_a_curl_example_for_every_route(spec: dict) -> None:
    """docs/api.md for the contract's routes, docs/mem0-compat.md for the Platform dialect's."""
    text = (ROOT / "docs/api.md").read_text() + (ROOT / "docs/mem0-compat.md").read_text()
    examples: list[tuple[str, str]] = []
    for command in re.findall(r"^curl .*$", text, flags=re.MULTILINE):
        method = re.search(r"-X (\w+)", command)
        url = re.search(r'"?http://localhost:8080(/[^"\s]*)"?', command)
        assert url, command
        examples.append((method.group(1) if method else "GET", url.group(1)))
    missing = [
        (method, path)
        for method, path in _operations(spec)
        if not any(m == method and _template_regex(path).match(u) for m, u in examples)
    ]
    assert missing == []


def test_postman_collection_is_current_and_complete(spec: dict) -> None:
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, 'scripts'); import postman; print(postman.render(), end='')",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    committed = (ROOT / "docs/postman_collection.json").read_text()
    assert fresh == committed, "run `make docs` and commit docs/postman_collection.json"
    collection = json.loads(committed)
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    requests = {item["name"] for folder in collection["item"] for item in folder["item"]}
    assert requests == {f"{method} {path}" for method, path in _operations(spec)}


def _operation(spec: dict, method: str, path: str) -> dict:
    return spec["paths"][path][method]


def _parameter(spec: dict, method: str, path: str, name: str) -> dict:
    return next(p for p in _operation(spec, method, path)["parameters"] if p["name"] == name)


def _body_schema(spec: dict, method: str, path: str) -> dict:
    ref = _operation(spec, method, path)["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_openapi_states_the_rules_the_service_enforces(spec: dict) -> None:
    """A client generated from the document must not send requests the service refuses (issue 19)."""
    assert _parameter(spec, "get", "/v1/memories/search", "limit")["schema"]["maximum"] == 50  # SEARCH_LIMIT
    for method, path, name in [
        ("get", "/v1/memories/search", "user_id"),
        ("get", "/v1/memories/user/{user_id}", "user_id"),
        ("get", "/v1/memories/user/{user_id}", "agent_id"),
        ("get", "/v1/users/{user_id}/stats", "user_id"),
    ]:
        schema = _parameter(spec, method, path, name)["schema"]
        patterns = [schema.get("pattern")] + [o.get("pattern") for o in schema.get("anyOf", [])]
        assert "^[A-Za-z0-9_.:@+=-][A-Za-z0-9_.:@+=~-]{0,127}$" in patterns, (path, name)
    # No text parameter may carry a NUL character.
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                if schema.get("type") == "string" or any(o.get("type") == "string" for o in schema.get("anyOf", [])):
                    assert "pattern" in schema or "enum" in schema, (method, path, parameter["name"])
            if "requestBody" in operation:
                assert {"408", "413"} <= set(operation["responses"]), (method, path)

    update = _body_schema(spec, "put", "/v1/memories/{memory_id}")
    assert {tuple(option["required"]) for option in update["anyOf"]} == {("content",), ("metadata",)}
    add = _body_schema(spec, "post", "/v1/memories")
    assert add["properties"]["messages"]["contains"]["properties"]["role"]["const"] == "user"
    for field in ("user_id", "agent_id", "run_id"):
        assert add["properties"][field]["pattern"] == "^[A-Za-z0-9_.:@+=-][A-Za-z0-9_.:@+=~-]{0,127}$"
    metadata = add["properties"]["metadata"]
    assert metadata["maxProperties"] == 128
    assert metadata["propertyNames"]["maxLength"] == 64
    assert "user_id" in metadata["propertyNames"]["not"]["enum"]
    assert "10 levels" in metadata["description"]
    key_request = _body_schema(spec, "post", "/v1/admin/keys")
    assert key_request["properties"]["tenant"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
    assert _parameter(spec, "get", "/v1/admin/keys", "tenant")["schema"]["anyOf"][0]["pattern"].startswith(
        "^[A-Za-z0-9]"
    )

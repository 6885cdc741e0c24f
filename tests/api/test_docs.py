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
            if path.endswith("/health"):
                continue
            for status in ("400", "401", "500", "503"):
                assert status in responses, (method, path, status)
                ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorEnvelope")
    assert "ErrorEnvelope" in spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_docs_api_md_has_a_curl_example_for_every_route(spec: dict) -> None:
    text = (ROOT / "docs/api.md").read_text()
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

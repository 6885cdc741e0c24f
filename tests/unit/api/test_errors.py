"""The one error mapping (api/errors.py), in-process on a tiny app that installs it.

Every failure becomes the contract's envelope: `{"success": false, "error": {code, message,
details}, "timestamp"}` with the status the code stands for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from memory_service.api import errors
from memory_service.errors import (
    Forbidden,
    InvalidRequest,
    MemoryNotFound,
    PayloadTooLarge,
    RateLimitExceeded,
    ServiceError,
    ServiceUnavailable,
    Unauthorized,
)
from pydantic import BaseModel, Field


class Body(BaseModel):
    content: str = Field(min_length=1)
    limit: int = Field(10, ge=1, le=50)


def build_app() -> FastAPI:
    app = FastAPI()
    errors.install(app)
    raised: dict[str, ServiceError] = {
        "invalid": InvalidRequest("limit is too large", {"field": "limit"}),
        "unauthorized": Unauthorized("Invalid API key"),
        "forbidden": Forbidden("admin role required"),
        "missing": MemoryNotFound("6f1c0a52-5f0e-4a55-9d2e-2a6b7b1f3c11"),
        "large": PayloadTooLarge("content over 10 bytes", {"max_bytes": 10}),
        "limited": RateLimitExceeded(
            "Rate limit exceeded: 20 requests per 10 seconds",
            {"limit": 20, "window_seconds": 10, "window": "burst", "retry_after": 7},
            7,
            {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1754000000"},
        ),
        "down": ServiceUnavailable("postgres", retry_after=3),
        "internal": ServiceError("something broke"),
    }

    @app.get("/raise/{name}")
    async def raise_named(name: str) -> None:
        raise raised[name]

    @app.post("/items")
    async def create(body: Body, tag: str = Query("x", max_length=3)) -> dict[str, str]:
        return {"content": body.content}

    return app


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(build_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def envelope(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"success", "error", "timestamp"}
    assert body["success"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timestamp"])
    assert set(body["error"]) == {"code", "message", "details"}
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    ("name", "status", "code", "message", "details"),
    [
        ("invalid", 400, "INVALID_REQUEST", "limit is too large", {"field": "limit"}),
        ("unauthorized", 401, "UNAUTHORIZED", "Invalid API key", {}),
        ("forbidden", 403, "FORBIDDEN", "admin role required", {}),
        (
            "missing",
            404,
            "MEMORY_NOT_FOUND",
            "Memory with ID '6f1c0a52-5f0e-4a55-9d2e-2a6b7b1f3c11' not found",
            {"id": "6f1c0a52-5f0e-4a55-9d2e-2a6b7b1f3c11"},
        ),
        ("large", 413, "PAYLOAD_TOO_LARGE", "content over 10 bytes", {"max_bytes": 10}),
        ("down", 503, "SERVICE_UNAVAILABLE", "postgres is unavailable; retry later", {"dependency": "postgres"}),
        ("internal", 500, "INTERNAL_ERROR", "something broke", {}),
    ],
)
def test_domain_errors_map_to_their_status_code_and_envelope(
    client: TestClient, name: str, status: int, code: str, message: str, details: dict[str, object]
) -> None:
    response = client.get(f"/raise/{name}")
    assert response.status_code == status
    assert envelope(response) == {"code": code, "message": message, "details": details}


def test_a_refused_request_says_when_to_retry(client: TestClient) -> None:
    response = client.get("/raise/limited")
    assert response.status_code == 429
    assert envelope(response)["code"] == "RATE_LIMIT_EXCEEDED"
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-ratelimit-limit"] == "20"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert response.headers["x-ratelimit-reset"] == "1754000000"


def test_an_unavailable_dependency_says_when_to_retry(client: TestClient) -> None:
    response = client.get("/raise/down")
    assert response.headers["retry-after"] == "3"


def test_validation_errors_are_a_400_listing_each_field(client: TestClient) -> None:
    response = client.post("/items?tag=toolong", json={"content": "", "limit": 99})
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "INVALID_REQUEST"
    fields = {(e["location"], e["field"], e["type"]) for e in error["details"]["errors"]}
    assert fields == {
        ("body", "content", "string_too_short"),
        ("body", "limit", "less_than_equal"),
        ("query", "tag", "string_too_long"),
    }
    first = error["details"]["errors"][0]
    assert error["message"] == f"Invalid request: {first['field']}: {first['message']}"


def test_a_value_error_message_loses_pydantics_prefix(client: TestClient) -> None:
    response = client.post("/items", json={"limit": 5})
    error = envelope(response)
    assert error["details"] == {
        "errors": [{"field": "content", "location": "body", "message": "Field required", "type": "missing"}]
    }
    assert error["message"] == "Invalid request: content: Field required"


def test_malformed_json_is_a_400_not_a_500(client: TestClient) -> None:
    response = client.post("/items", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert envelope(response)["code"] == "INVALID_REQUEST"


def test_an_unknown_route_is_a_404_in_the_envelope(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert envelope(response) == {"code": "NOT_FOUND", "message": "No route for GET /nowhere", "details": {}}


def test_a_wrong_method_is_a_405_in_the_envelope(client: TestClient) -> None:
    response = client.delete("/items")
    assert response.status_code == 405
    assert envelope(response) == {
        "code": "METHOD_NOT_ALLOWED",
        "message": "Method DELETE is not allowed on /items",
        "details": {},
    }
    assert response.headers["allow"] == "POST"

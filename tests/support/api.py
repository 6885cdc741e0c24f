"""Small HTTP helpers shared by the API tests."""

from __future__ import annotations

from typing import Any

import httpx


def add_memory(client: httpx.Client, content: str, user_id: str = "u1", **extra: Any) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": content}], "user_id": user_id, **extra}
    response = client.post("/v1/memories", json=body)
    assert response.status_code == 201, response.text
    memories = response.json()["data"]["memories"]
    assert len(memories) == 1
    return memories[0]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The seed's error envelope, with the request id header every response carries."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert body["timestamp"].endswith("Z")
    assert response.headers.get("x-request-id")
    return body["error"]

"""The OpenAPI document as the API really behaves: every rule the service enforces, stated.

FastAPI documents a 422 `HTTPValidationError` on every route with parameters; this service maps
those failures to 400 INVALID_REQUEST in the envelope (api/errors.py), so the 422 entries and
their schemas are removed and every operation lists the error envelope for the statuses it can
answer with.

Rules that are not visible in the route signatures are added here, so that a client generated
from the document does not send requests the service refuses: the search `limit` (and the
Platform dialect's `top_k`) is at most SEARCH_LIMIT (a setting); no text parameter may hold a NUL
character (api/middleware.py refuses it on every route); every operation with a body can answer 408
(body too slow) and 413 (body too large). Body rules (ids, metadata limits, "content or metadata")
are in api/schemas.py and, for the Platform dialect, api/platform/schemas.py.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from memory_service.api.envelope import error_responses
from memory_service.api.schemas import NO_NUL_PATTERN
from memory_service.settings import Settings


def _is_text(schema: dict[str, Any]) -> bool:
    if schema.get("type") == "string":
        return True
    return any(option.get("type") == "string" for option in schema.get("anyOf", ()))


def _state_no_nul(parameter: dict[str, Any]) -> None:
    schema = parameter.get("schema", {})
    if _is_text(schema) and "pattern" not in schema and "enum" not in schema:
        schema["pattern"] = NO_NUL_PATTERN


def _state_search_limit(path: str, parameter: dict[str, Any], search_limit: int) -> None:
    if path.endswith("/memories/search") and parameter.get("name") == "limit":
        parameter["schema"]["maximum"] = search_limit
        parameter["description"] = f"At most SEARCH_LIMIT ({search_limit}); 400 above"


def _state_top_k(path: str, operation: dict[str, Any], components: dict[str, Any], search_limit: int) -> None:
    """The Platform dialect's search body: `top_k` at most SEARCH_LIMIT, like the contract's `limit`."""
    if path != "/v3/memories/search/":
        return
    ref = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    body = components.get(str(ref.get("$ref", "")).rsplit("/", 1)[-1], {})
    if "top_k" in body.get("properties", {}):
        body["properties"]["top_k"]["maximum"] = search_limit
        body["properties"]["top_k"]["description"] = f"At most SEARCH_LIMIT ({search_limit}); 400 above"


def _body_errors(operation: dict[str, Any]) -> None:
    """408 and 413 come from the middleware, for any route that takes a body."""
    if "requestBody" not in operation:
        return
    responses = operation.setdefault("responses", {})
    ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for status, entry in error_responses(408, 413).items():
        if status in (408, 413) and str(status) not in responses:
            responses[str(status)] = {
                "description": entry["description"],
                "content": {"application/json": {"schema": ref}},
            }


def _unrouted_paths(operation: dict[str, Any]) -> None:
    """A path parameter holding '/' (or a line break) routes nowhere: 404 NOT_FOUND, for any
    operation with path parameters, whatever it answers for a well-formed id."""
    if any(p.get("in") == "path" for p in operation.get("parameters", ())):
        operation.setdefault("responses", {}).setdefault(
            "404",
            {
                "description": "NOT_FOUND: the path matches no route (a parameter holding '/' or a line break)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
            },
        )


def install_openapi(app: FastAPI, settings: Settings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
        )
        components = schema.get("components", {}).get("schemas", {})
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                _state_top_k(path, operation, components, settings.search_limit)
                operation.get("responses", {}).pop("422", None)
                for parameter in operation.get("parameters", ()):
                    _state_no_nul(parameter)
                    _state_search_limit(path, parameter, settings.search_limit)
                _body_errors(operation)
                _unrouted_paths(operation)
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema

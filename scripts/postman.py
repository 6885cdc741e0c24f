"""Generate the Postman (v2.1) collection from the service's OpenAPI document.

Run `make docs` after changing a route; tests/api/test_docs.py fails when the committed
collection differs from a fresh one or misses a route.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "postman_collection.json"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"


def openapi() -> dict[str, Any]:
    from memory_service.main import create_app
    from memory_service.settings import Settings

    return create_app(Settings(log_level="WARNING")).openapi()


def _example(spec: dict[str, Any], operation: dict[str, Any]) -> str | None:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if not content:
        return None
    schema = content.get("schema", {})
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    examples = schema.get("examples") or [{}]
    return json.dumps(examples[0], indent=2)


def _request(spec: dict[str, Any], path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    postman_path = re.sub(r"\{(\w+)\}", r":\1", path)
    segments = [s for s in postman_path.split("/") if s]
    variables = [{"key": name, "value": f"<{name}>"} for name in re.findall(r"\{(\w+)\}", path)]
    query = [
        {
            "key": p["name"],
            "value": "",
            "disabled": not p.get("required", False),
            "description": p.get("description", ""),
        }
        for p in operation.get("parameters", [])
        if p.get("in") == "query"
    ]
    request: dict[str, Any] = {
        "method": method.upper(),
        "header": [{"key": "Content-Type", "value": "application/json"}],
        "url": {
            "raw": "{{baseUrl}}" + postman_path,
            "host": ["{{baseUrl}}"],
            "path": segments,
            "query": query,
            "variable": variables,
        },
        "description": operation.get("description") or operation.get("summary", ""),
    }
    if not operation.get("security") and path.endswith("/health"):
        request["auth"] = {"type": "noauth"}
    body = _example(spec, operation)
    if body is not None:
        request["body"] = {"mode": "raw", "raw": body, "options": {"raw": {"language": "json"}}}
    return {"name": f"{method.upper()} {path}", "request": request}


def collection(spec: dict[str, Any]) -> dict[str, Any]:
    folders: dict[str, list[dict[str, Any]]] = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            tag = (operation.get("tags") or ["other"])[0]
            folders.setdefault(tag, []).append(_request(spec, path, method, operation))
    return {
        "info": {
            "name": spec["info"]["title"],
            "description": spec["info"].get("description", ""),
            "schema": SCHEMA,
            "version": spec["info"]["version"],
        },
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}]},
        "variable": [
            {"key": "baseUrl", "value": "http://localhost:8080"},
            {"key": "apiKey", "value": "mem0_dev_key_123456789"},
        ],
        "item": [{"name": tag, "item": items} for tag, items in folders.items()],
    }


def render() -> str:
    return json.dumps(collection(openapi()), indent=2, sort_keys=False) + "\n"


def main() -> int:
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Metadata filters for search, in two spellings.

- `metadata.<key>=<value>`: equality, the curl-friendly form; repeating a key means "any of".
- `filters=<JSON>`: mem0's operator syntax, e.g. `{"source": "chat", "priority": {"gte": 3},
  "topic": {"in": ["ai", "ml"]}}`; operators: eq, ne, gt, gte, lt, lte, in, nin, contains, icontains.

Both combine with AND. Only the client's own metadata keys can be filtered: ids and the tenant
are set by the service, so a filter can never widen a search beyond the caller's user. The JSON
is parsed strictly (core/json_rules.py): NUL characters, NaN, Infinity and numbers that overflow
are a 400, like malformed JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from memory_service.core.json_rules import loads_strict
from memory_service.errors import InvalidRequest
from memory_service.models.memory import RESERVED_METADATA_KEYS

OPERATORS = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "icontains"})
MAX_FILTERS = 20
MAX_VALUES = 100  # of an `in` / `nin` list
_SCALARS = (str, int, float, bool)
_NOT_FILTERABLE = RESERVED_METADATA_KEYS | {"entities"}
# Keys mem0 reads as logical operators (over lists of conditions), not as metadata.
_MEM0_LOGICAL = frozenset({"AND", "OR", "NOT"})


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid filters: {message}", {"field": "filters"})


def _equals(value: Any) -> Any:
    """Equality with `value`; mem0 would read a bare `*` as "has the key", so that one is spelled out."""
    return {"eq": value} if value == "*" else value


def _check_condition(key: str, condition: Any) -> Any:
    if isinstance(condition, _SCALARS):
        return _equals(condition)
    if not isinstance(condition, Mapping) or not condition:
        raise _invalid(f"'{key}' must be a value or an object of operators")
    for op, value in condition.items():
        if op not in OPERATORS:
            raise _invalid(f"unknown operator '{op}' for '{key}' (use one of {', '.join(sorted(OPERATORS))})")
        if op in ("in", "nin"):
            if not isinstance(value, list) or not value or not all(isinstance(v, _SCALARS) for v in value):
                raise _invalid(f"'{key}.{op}' needs a non-empty list of values")
            if len(value) > MAX_VALUES:
                raise _invalid(f"'{key}.{op}' takes at most {MAX_VALUES} values")
        elif op in ("gt", "gte", "lt", "lte"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _invalid(f"'{key}.{op}' needs a number")
        elif not isinstance(value, _SCALARS):
            raise _invalid(f"'{key}.{op}' needs a value")
    return dict(condition)


def _check_key(key: str) -> None:
    if not key or len(key) > 64:
        raise _invalid("keys must be 1-64 characters")
    if key in _NOT_FILTERABLE or key in _MEM0_LOGICAL or key.startswith("$"):
        raise _invalid(f"'{key}' cannot be filtered on")


def check_filters(decoded: Mapping[str, Any]) -> dict[str, Any]:
    """Filters in mem0's operator syntax, checked: what `filters=<JSON>` decodes to, and what MCP
    clients send as an object."""
    filters: dict[str, Any] = {}
    for key, condition in decoded.items():
        _check_key(key)
        filters[key] = _check_condition(key, condition)
    if len(filters) > MAX_FILTERS:
        raise _invalid(f"at most {MAX_FILTERS} keys")
    return filters


def parse_search_filters(raw: str | None, shorthand: Mapping[str, list[str]]) -> dict[str, Any]:
    """`raw`: the `filters` JSON; `shorthand`: `metadata.<key>` parameters, key -> values."""
    filters: dict[str, Any] = {}
    if raw:
        try:
            decoded = loads_strict(raw)
        except json.JSONDecodeError as exc:
            raise _invalid(f"not valid JSON ({exc.msg})") from exc
        except ValueError as exc:  # NUL, NaN, Infinity, nesting: json_rules says which
            raise _invalid(str(exc)) from exc
        if not isinstance(decoded, dict):
            raise _invalid("must be a JSON object")
        filters = check_filters(decoded)
    for key, values in shorthand.items():
        _check_key(key)
        if key in filters:
            raise _invalid(f"'{key}' is given twice")
        filters[key] = _equals(values[0]) if len(values) == 1 else {"in": list(values)}
    if len(filters) > MAX_FILTERS:
        raise _invalid(f"at most {MAX_FILTERS} keys")
    return filters

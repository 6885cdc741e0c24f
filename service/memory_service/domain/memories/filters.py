"""Filters in both dialects, parsed into one tree (models/filters.py) that storage turns into SQL.

The contract's search (`GET /v1/memories/search`) takes metadata filters in two spellings:
- `metadata.<key>=<value>`: equality, the curl-friendly form; repeating a key means "any of";
- `filters=<JSON>`: mem0's operator syntax, e.g. `{"source": "chat", "priority": {"gte": 3}}`.
Both combine with AND, and only the client's own metadata keys can be named: the user, agent and
run come from the request's own parameters.

The JSON is parsed strictly (core/json_rules.py): NUL characters, NaN, Infinity and numbers that
overflow are a 400, like malformed JSON. A bare "*" is equality with "*" here (mem0 would read it
as "has the key"); the Platform dialect gives "*" its wildcard meaning.

The mem0 Platform dialect takes mem0's filter language: `AND`, `OR`, `NOT` nested; the entity
fields `user_id`, `agent_id`, `run_id`, `app_id`; `created_at`, `updated_at`; `memory_ids`;
`keywords`/`text` (the memory's content); `metadata` (an object of keys); any other key is a
metadata key, as in mem0's open-source filters. User ids are qualified with the caller's tenant
here, and every Platform filter is ANDed with the tenant, so no filter reaches another tenant.

Operators: eq, ne, in, nin, gt, gte, lt, lte, contains, icontains, and the wildcard "*".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from memory_service.core.ids import is_valid_id
from memory_service.core.json_rules import loads_strict
from memory_service.errors import InvalidRequest
from memory_service.models.filters import And, Condition, Field, Filter, Not, Op, Or, all_of
from memory_service.models.memory import RESERVED_METADATA_KEYS
from memory_service.models.scope import user_key

OPERATORS = frozenset(op.value for op in Op if op is not Op.EXISTS)
MAX_FILTERS = 20  # the contract's flat filters
MAX_CONDITIONS = 50  # a Platform filter tree
MAX_DEPTH = 8
MAX_VALUES = 100  # of an `in` / `nin` list
WILDCARD = "*"
_SCALARS = (str, int, float, bool)
_NOT_FILTERABLE = RESERVED_METADATA_KEYS | {"entities"}
# Keys mem0 reads as logical operators (over lists of conditions), not as metadata.
_MEM0_LOGICAL = frozenset({"AND", "OR", "NOT"})
_ENTITY_FIELDS = {"user_id": Field.USER_KEY, "agent_id": Field.AGENT_ID, "run_id": Field.RUN_ID, "app_id": Field.APP_ID}
_TIME_FIELDS = {"created_at": Field.CREATED_AT, "updated_at": Field.UPDATED_AT}
_TEXT_FIELDS = ("keywords", "text")
_REFUSED_FIELDS = {
    "categories": "categories are assigned by the mem0 Platform's LLM; this server does not offer them",
    "expiration_date": "memory expiration is a mem0 Platform feature this server does not offer",
    "keywords_search": "use 'keywords' with contains or icontains",
}


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid filters: {message}", {"field": "filters"})


def _text_of(value: Any) -> str:
    """A scalar as the payload's `->>` shows it (JSON's spelling of booleans)."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key or len(key) > 64:
        raise _invalid("keys must be 1-64 characters")
    if key in _NOT_FILTERABLE or key in _MEM0_LOGICAL or key.startswith("$"):
        raise _invalid(f"'{key}' cannot be filtered on")


def check_filters(decoded: Mapping[str, Any]) -> Filter | None:
    """Filters in mem0's operator syntax under the contract's rules, as a tree: what
    `filters=<JSON>` decodes to, and what MCP clients send as an object."""
    conditions = [_metadata_condition(key, condition, platform=False) for key, condition in decoded.items()]
    if len(conditions) > MAX_FILTERS:
        raise _invalid(f"at most {MAX_FILTERS} keys")
    return all_of(*conditions) if conditions else None


def _metadata_condition(key: str, condition: Any, *, platform: bool = True) -> Filter:
    """One metadata key: a value (equality), an object of operators, and in the Platform's
    language also "*" (the key is present) and a list (any of). The contract keeps its own rules:
    "*" is a value, a list is a 400."""
    _check_key(key)
    if platform and condition == WILDCARD:
        return Condition(Field.METADATA, Op.EXISTS, key=key)
    if isinstance(condition, _SCALARS):
        return Condition(Field.METADATA, Op.EQ, _text_of(condition), key=key)
    if platform and isinstance(condition, list):
        return _metadata_operator(key, "in", condition)
    if not isinstance(condition, Mapping) or not condition:
        raise _invalid(f"'{key}' must be a value or an object of operators")
    return all_of(*(_metadata_operator(key, op, value) for op, value in condition.items()))


def _metadata_operator(key: str, op: str, value: Any) -> Condition:
    if op not in OPERATORS:
        raise _invalid(f"unknown operator '{op}' for '{key}' (use one of {', '.join(sorted(OPERATORS))})")
    if op in ("in", "nin"):
        if not isinstance(value, list) or not value or not all(isinstance(v, _SCALARS) for v in value):
            raise _invalid(f"'{key}.{op}' needs a non-empty list of values")
        if len(value) > MAX_VALUES:
            raise _invalid(f"'{key}.{op}' takes at most {MAX_VALUES} values")
        return Condition(Field.METADATA, Op(op), [_text_of(v) for v in value], key=key)
    if op in ("gt", "gte", "lt", "lte"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(f"'{key}.{op}' needs a number")
        return Condition(Field.METADATA, Op(op), value, key=key)
    if not isinstance(value, _SCALARS):
        raise _invalid(f"'{key}.{op}' needs a value")
    return Condition(Field.METADATA, Op(op), _text_of(value), key=key)


# -- the contract --------------------------------------------------------------------------------


def parse_search_filters(raw: str | None, shorthand: Mapping[str, list[str]]) -> Filter | None:
    """`raw`: the `filters` JSON; `shorthand`: `metadata.<key>` parameters, key -> values."""
    conditions: dict[str, Filter] = {}
    if raw:
        try:
            decoded = loads_strict(raw)
        except json.JSONDecodeError as exc:
            raise _invalid(f"not valid JSON ({exc.msg})") from exc
        except ValueError as exc:  # NUL, NaN, Infinity, nesting: json_rules says which
            raise _invalid(str(exc)) from exc
        if not isinstance(decoded, dict):
            raise _invalid("must be a JSON object")
        for key, condition in decoded.items():
            conditions[key] = _metadata_condition(key, condition, platform=False)
    for key, values in shorthand.items():
        _check_key(key)
        if key in conditions:
            raise _invalid(f"'{key}' is given twice")
        conditions[key] = (
            Condition(Field.METADATA, Op.EQ, values[0], key=key)
            if len(values) == 1
            else Condition(Field.METADATA, Op.IN, list(values), key=key)
        )
    if len(conditions) > MAX_FILTERS:
        raise _invalid(f"at most {MAX_FILTERS} keys")
    return all_of(*conditions.values()) if conditions else None


# -- the mem0 Platform dialect -------------------------------------------------------------------


class _PlatformParser:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.conditions = 0

    def count(self, node: Filter) -> Filter:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise _invalid(f"at most {MAX_CONDITIONS} conditions")
        return node

    def object(self, value: Any, depth: int) -> Filter | None:
        if not isinstance(value, Mapping):
            raise _invalid("each condition must be an object")
        parts = [self.entry(key, condition, depth) for key, condition in value.items()]
        present = [p for p in parts if p is not None]
        return all_of(*present) if present else None

    def children(self, key: str, value: Any, depth: int) -> tuple[Filter, ...]:
        if depth >= MAX_DEPTH:
            raise _invalid(f"nested too deep (at most {MAX_DEPTH} levels of AND, OR and NOT)")
        if not isinstance(value, list) or not value:
            raise _invalid(f"{key} needs a non-empty list of conditions")
        children = [self.object(item, depth + 1) for item in value]
        return tuple(c for c in children if c is not None)

    def entry(self, key: Any, condition: Any, depth: int) -> Filter | None:
        if key == "AND":
            return And(self.children(key, condition, depth))
        if key == "OR":
            return Or(self.children(key, condition, depth))
        if key == "NOT":  # one object, or a list meaning "none of them"
            items = self.children(key, condition if isinstance(condition, list) else [condition], depth)
            return Not(items[0] if len(items) == 1 else Or(items))
        if not isinstance(key, str):
            raise _invalid("keys must be strings")
        if key in _REFUSED_FIELDS:
            raise _invalid(f"'{key}': {_REFUSED_FIELDS[key]}")
        if key in _ENTITY_FIELDS:
            return self.count(self.entity(key, condition))
        if key in _TIME_FIELDS:
            return self.count(self.time(key, condition))
        if key == "memory_ids":
            return self.count(self.memory_ids(condition))
        if key in _TEXT_FIELDS:
            return self.count(self.text(key, condition))
        if key == "metadata":
            if not isinstance(condition, Mapping) or not condition:
                raise _invalid("'metadata' needs an object of metadata keys")
            return all_of(*(self.count(_metadata_condition(k, v)) for k, v in condition.items()))
        return self.count(_metadata_condition(key, condition))

    def entity_value(self, field: str, value: Any) -> str:
        text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
        if text is None or not is_valid_id(text):
            raise _invalid(f"'{field}' values must be ids (1-128 letters, digits and _ . : @ + = ~ -)")
        return user_key(self.tenant, text) if field == "user_id" else text

    def entity(self, key: str, condition: Any) -> Filter:
        field = _ENTITY_FIELDS[key]
        if condition == WILDCARD:
            return Condition(field, Op.EXISTS)
        if not isinstance(condition, Mapping):
            return Condition(field, Op.EQ, self.entity_value(key, condition))
        parts: list[Filter] = []
        for op, value in condition.items():
            if op in ("eq", "ne"):
                parts.append(Condition(field, Op(op), self.entity_value(key, value)))
            elif op in ("in", "nin"):
                if not isinstance(value, list) or not value:
                    raise _invalid(f"'{key}.{op}' needs a non-empty list of ids")
                parts.append(Condition(field, Op(op), [self.entity_value(key, v) for v in value]))
            else:
                raise _invalid(f"'{key}' takes eq, ne, in, nin or \"*\", not '{op}'")
        if not parts:
            raise _invalid(f"'{key}' needs a value or an object of operators")
        return all_of(*parts)

    def time(self, key: str, condition: Any) -> Filter:
        field = _TIME_FIELDS[key]
        if not isinstance(condition, Mapping):
            return Condition(field, Op.EQ, _instant(key, condition))
        parts: list[Filter] = []
        for op, value in condition.items():
            if op in ("eq", "ne", "gt", "gte", "lt", "lte"):
                parts.append(Condition(field, Op(op), _instant(key, value)))
            elif op in ("in", "nin"):
                if not isinstance(value, list) or not value:
                    raise _invalid(f"'{key}.{op}' needs a non-empty list of dates")
                parts.append(Condition(field, Op(op), [_instant(key, v) for v in value]))
            else:
                raise _invalid(f"'{key}' takes eq, ne, gt, gte, lt, lte, in or nin, not '{op}'")
        if not parts:
            raise _invalid(f"'{key}' needs a date or an object of operators")
        return all_of(*parts)

    @staticmethod
    def memory_ids(condition: Any) -> Filter:
        values = condition.get("in") if isinstance(condition, Mapping) and set(condition) == {"in"} else condition
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise _invalid("'memory_ids' needs a non-empty list of memory ids")
        valid = []
        for value in values:  # an id that is not a UUID names no memory: it simply matches nothing
            try:
                valid.append(str(uuid.UUID(value)))
            except ValueError:
                continue
        return Condition(Field.MEMORY_ID, Op.IN, valid)

    @staticmethod
    def text(key: str, condition: Any) -> Filter:
        if isinstance(condition, str):
            return Condition(Field.TEXT, Op.CONTAINS, condition)
        if not isinstance(condition, Mapping) or not condition:
            raise _invalid(f"'{key}' needs a string or an object of contains/icontains")
        parts: list[Filter] = []
        for op, value in condition.items():
            if op not in ("contains", "icontains") or not isinstance(value, str) or not value:
                raise _invalid(f"'{key}' takes contains or icontains with a string")
            parts.append(Condition(Field.TEXT, Op(op), value))
        return all_of(*parts)


def _instant(field: str, value: Any) -> str:
    """A date, a date-time (naive = UTC) or Unix seconds, as an ISO 8601 UTC instant."""
    try:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str) and len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value)
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        else:
            raise TypeError(value)
    except (ValueError, TypeError, OverflowError, OSError) as exc:
        raise _invalid(f"'{field}': {value!r} is not a date, a date-time or Unix seconds") from exc
    return moment.isoformat()


def parse_platform_filters(value: Any, tenant: str) -> Filter | None:
    """mem0's filter language (a JSON object) as a tree, or None for no condition."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _invalid("must be an object")
    return _PlatformParser(tenant).object(value, 0)


def tenant_scope(tenant: str, node: Filter | None) -> Filter:
    """A Platform filter confined to the tenant: the only way the domain hands one to storage."""
    return all_of(Condition(Field.TENANT, Op.EQ, tenant), node)

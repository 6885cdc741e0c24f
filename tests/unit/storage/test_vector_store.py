"""The SQL of a filtered search: what the vector store's WHERE is for the contract's filters.

ServicePGVector runs mem0's queries with the conditions of mem0's `_build_filter_conditions`
over the filters the API parsed (plus the tenant-qualified user the engine adds). For the
operators the API accepts, mem0's own filter processing passes them through unchanged, so this
is the WHERE clause Postgres sees, with its parameters in order.
"""

from __future__ import annotations

from typing import Any

from mem0.vector_stores.pgvector import _build_filter_conditions
from memory_service.domain.memories.filters import parse_search_filters
from memory_service.storage.vector_store import filter_conditions


def where(raw: str | None, shorthand: dict[str, list[str]] | None = None) -> tuple[list[str], list[Any]]:
    filters = parse_search_filters(raw, shorthand or {})
    conditions, params = _build_filter_conditions({**filters, "user_id": "acme/alice"})
    return conditions, params


def test_the_contract_example() -> None:
    conditions, params = where('{"source": "chat", "priority": {"gte": 3}, "topic": {"in": ["ai", "ml"]}}')
    assert conditions == [
        "payload->>%s = %s",
        "(payload->>%s)::numeric >= %s",
        "payload->>%s = ANY(%s)",
        "payload->>%s = %s",
    ]
    assert params == ["source", "chat", "priority", 3.0, "topic", ["ai", "ml"], "user_id", "acme/alice"]


def test_the_shorthand_equality_and_any_of() -> None:
    conditions, params = where(None, {"source": ["chat"], "tag": ["a", "b"]})
    assert conditions == ["payload->>%s = %s", "payload->>%s = ANY(%s)", "payload->>%s = %s"]
    assert params == ["source", "chat", "tag", ["a", "b"], "user_id", "acme/alice"]


def test_every_search_is_scoped_to_the_tenant_qualified_user() -> None:
    conditions, params = where(None)
    assert conditions == ["payload->>%s = %s"]
    assert params == ["user_id", "acme/alice"]


def test_values_are_compared_as_the_text_postgres_stores_in_jsonb() -> None:
    conditions, params = where('{"flag": true, "n": 3, "tags": {"nin": [1, "x"]}, "w": {"lt": 2.5}, "s": {"ne": "z"}}')
    assert conditions == [
        "payload->>%s = %s",
        "payload->>%s = %s",
        "NOT (payload->>%s = ANY(%s))",
        "(payload->>%s)::numeric < %s",
        "payload->>%s != %s",
        "payload->>%s = %s",
    ]
    # true is jsonb's `true`, numbers and list members their text; range bounds are numbers.
    assert params == ["flag", "true", "n", "3", "tags", ["1", "x"], "w", 2.5, "s", "z", "user_id", "acme/alice"]


def test_contains_escapes_like_wildcards() -> None:
    conditions, params = where('{"note": {"contains": "50%_off\\\\"}, "title": {"icontains": "Tea"}}')
    assert conditions == ["payload->>%s LIKE %s ESCAPE '\\'", "payload->>%s ILIKE %s ESCAPE '\\'", "payload->>%s = %s"]
    assert params == ["note", "%50\\%\\_off\\\\%", "title", "%Tea%", "user_id", "acme/alice"]


def test_values_are_parameters_never_sql() -> None:
    conditions, params = where("{\"x'; DROP TABLE memories; --\": \"1' OR '1'='1\"}")
    assert conditions == ["payload->>%s = %s", "payload->>%s = %s"]
    assert params[:2] == ["x'; DROP TABLE memories; --", "1' OR '1'='1"]


def test_a_star_is_compared_as_text_not_as_mem0s_has_key_wildcard() -> None:
    conditions, params = where(None, {"source": ["*"]})
    assert conditions == ["payload->>%s = %s", "payload->>%s = %s"]
    assert params == ["source", "*", "user_id", "acme/alice"]


def test_range_filters_compare_only_numbers() -> None:
    """mem0's `(payload->>key)::numeric` fails the query on a stored "high"; the store's
    conditions take the number out of the text, or NULL (no match) when there is none."""
    conditions, params = filter_conditions(
        {**parse_search_filters('{"priority": {"gte": 3, "lt": 10}, "source": "chat"}', {}), "user_id": "acme/alice"}
    )
    number = r"substring(payload->>%s from '^\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$')::numeric"
    assert conditions == [f"{number} >= %s", f"{number} < %s", "payload->>%s = %s", "payload->>%s = %s"]
    assert params == ["priority", 3.0, "priority", 10.0, "source", "chat", "user_id", "acme/alice"]

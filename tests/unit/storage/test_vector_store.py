"""The SQL of a filtered search: the WHERE Postgres sees for the contract's filters.

The engine confines every contract search to the tenant-qualified user and ANDs the parsed
filters (a tree, models/filters.py); storage/filters.py compiles the tree into one condition
that the vector store runs in place of mem0's own (storage/vector_store.py: WHERE_KEY). So this
is the WHERE clause of mem0's query, with its parameters in order.
"""

from __future__ import annotations

from typing import Any

from memory_service.domain.memories.filters import parse_search_filters
from memory_service.models.filters import Condition, Field, Op, all_of
from memory_service.storage.filters import compile_filter
from memory_service.storage.vector_store import filter_conditions

USER = "(payload->>'user_id') = %s"
# psycopg writes a literal with backslashes as an E string, after a space.
NUMBER = r"substring(payload->>%s from  E'^\\s*([-+]?(\\d+\\.?\\d*|\\.\\d+)([eE][-+]?\\d+)?)\\s*$')::numeric"


def where(raw: str | None, shorthand: dict[str, list[str]] | None = None) -> tuple[str, list[Any]]:
    tree = all_of(Condition(Field.USER_KEY, Op.EQ, "acme/alice"), parse_search_filters(raw, shorthand or {}))
    condition, params = compile_filter(tree)
    return condition.as_string(None), params


def test_the_contract_example() -> None:
    text, params = where('{"source": "chat", "priority": {"gte": 3}, "topic": {"in": ["ai", "ml"]}}')
    assert text == (f"({USER} AND ((payload->>%s) = %s AND {NUMBER} >= %s::numeric AND (payload->>%s) = ANY(%s)))")
    assert params == ["acme/alice", "source", "chat", "priority", "3", "topic", ["ai", "ml"]]


def test_the_shorthand_equality_and_any_of() -> None:
    text, params = where(None, {"source": ["chat"], "tag": ["a", "b"]})
    assert text == f"({USER} AND ((payload->>%s) = %s AND (payload->>%s) = ANY(%s)))"
    assert params == ["acme/alice", "source", "chat", "tag", ["a", "b"]]


def test_every_search_is_scoped_to_the_tenant_qualified_user() -> None:
    assert where(None) == (USER, ["acme/alice"])


def test_values_are_compared_as_the_text_postgres_stores_in_jsonb() -> None:
    text, params = where('{"flag": true, "n": 3, "tags": {"nin": [1, "x"]}, "w": {"lt": 2.5}, "s": {"ne": "z"}}')
    assert text == (
        f"({USER} AND ((payload->>%s) = %s AND (payload->>%s) = %s"
        " AND NOT COALESCE((payload->>%s) = ANY(%s), false)"  # nin: a memory without the key matches
        f" AND {NUMBER} < %s::numeric AND (payload->>%s) IS DISTINCT FROM %s))"
    )
    # true is jsonb's `true`, numbers and list members their text.
    assert params == ["acme/alice", "flag", "true", "n", "3", "tags", ["1", "x"], "w", "2.5", "s", "z"]


def test_contains_escapes_like_wildcards() -> None:
    text, params = where('{"note": {"contains": "50%_off\\\\"}, "title": {"icontains": "Tea"}}')
    assert text == f"({USER} AND ((payload->>%s) LIKE %s ESCAPE '\\' AND (payload->>%s) ILIKE %s ESCAPE '\\'))"
    assert params == ["acme/alice", "note", "%50\\%\\_off\\\\%", "title", "%Tea%"]


def test_values_are_parameters_never_sql() -> None:
    text, params = where("{\"x'; DROP TABLE memories; --\": \"1' OR '1'='1\"}")
    assert text == f"({USER} AND (payload->>%s) = %s)"
    assert params == ["acme/alice", "x'; DROP TABLE memories; --", "1' OR '1'='1"]


def test_a_star_is_compared_as_text_not_as_mem0s_has_key_wildcard() -> None:
    assert where(None, {"source": ["*"]}) == (f"({USER} AND (payload->>%s) = %s)", ["acme/alice", "source", "*"])


def test_range_filters_compare_only_numbers() -> None:
    """mem0's `(payload->>key)::numeric` fails the query on a stored "high"; the compiled
    condition takes the number out of the text, or NULL (no match) when there is none."""
    text, params = where('{"priority": {"gte": 3, "lt": 10}, "source": "chat"}')
    assert text == (f"({USER} AND (({NUMBER} >= %s::numeric AND {NUMBER} < %s::numeric) AND (payload->>%s) = %s))")
    assert params == ["acme/alice", "priority", "3", "priority", "10", "source", "chat"]


def test_mem0s_own_flat_filters_keep_the_safe_range_comparison() -> None:
    """Calls without a tree (mem0's own filters) still get the range comparison made safe."""
    conditions, params = filter_conditions({"priority": {"gte": 3}, "user_id": "acme/alice"})
    number = r"substring(payload->>%s from '^\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$')::numeric"
    assert conditions == [f"{number} >= %s", "payload->>%s = %s"]
    assert params == ["priority", 3, "user_id", "acme/alice"]

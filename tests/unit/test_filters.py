"""Filter trees, in-process: what each dialect's syntax parses to, and that its SQL carries exactly
one parameter per placeholder in order. tests/compat/test_filters.py proves the answers on a real
database; this is the fast loop for the parser and the compiler."""

from __future__ import annotations

from typing import Any

import pytest
from memory_service.domain.memories.filters import parse_platform_filters, parse_search_filters, tenant_scope
from memory_service.errors import InvalidRequest
from memory_service.models.filters import And, Condition, Field, Not, Op, Or
from memory_service.storage.filters import compile_filter

EVERY_FORM: list[dict[str, Any]] = [
    {"user_id": "a"},
    {"user_id": "*"},
    {"agent_id": {"ne": "x"}},
    {"run_id": {"in": ["r1", "r2"]}},
    {"app_id": {"nin": ["p"]}},
    {"created_at": "2025-01-01"},
    {"updated_at": {"gt": 1_700_000_000, "lte": "2025-07-30T20:15:00+02:00", "ne": "2025-02-01"}},
    {"created_at": {"in": ["2025-01-01"], "nin": ["2025-01-02T00:00:00Z"]}},
    {"memory_ids": ["0b7e3c0e-3f43-4b8e-bf2a-9a8e2b7f7b0e", "not-a-uuid"]},
    {"keywords": {"contains": "100%_sure", "icontains": "x"}},
    {"text": "plain"},
    {"metadata": {"k": 1, "b": True, "s": "*", "l": ["a", 2]}},
    {"k": {"eq": "v", "ne": 1, "in": [1], "nin": ["x"], "gt": 1, "gte": 2.5, "lt": 3, "lte": 4}},
    {"k": {"contains": "a", "icontains": "B"}},
    {"NOT": [{"a": 1}, {"b": 2}]},
    {"OR": [{"AND": [{"user_id": "u"}, {"NOT": {"k": {"gt": 1}}}]}, {"agent_id": "*"}]},
]


@pytest.mark.parametrize("filters", EVERY_FORM, ids=str)
def test_every_form_compiles_with_one_parameter_per_placeholder(filters: dict[str, Any]) -> None:
    condition, params = compile_filter(tenant_scope("acme", parse_platform_filters(filters, "acme")))
    text = condition.as_string(None)
    assert text.count("%s") == len(params), text
    assert text.startswith("((payload->>'tenant_id') = %s")
    assert params[0] == "acme"


def test_users_are_tenant_qualified_and_other_ids_are_not() -> None:
    tree = parse_platform_filters({"user_id": {"in": ["a", "b"]}, "agent_id": "a"}, "acme")
    assert tree == And((Condition(Field.USER_KEY, Op.IN, ["acme/a", "acme/b"]), Condition(Field.AGENT_ID, Op.EQ, "a")))


def test_not_of_a_list_is_none_of_them_and_values_compare_as_text() -> None:
    tree = parse_platform_filters({"NOT": [{"flag": True}, {"n": 3}]}, "acme")
    flag = Condition(Field.METADATA, Op.EQ, "true", key="flag")
    assert tree == Not(Or((flag, Condition(Field.METADATA, Op.EQ, "3", key="n"))))


def test_times_become_utc_instants() -> None:
    tree = parse_platform_filters({"created_at": {"gte": "2025-07-30T22:15:00+02:00", "lt": "2025-08-01"}}, "t")
    assert tree == And(
        (
            Condition(Field.CREATED_AT, Op.GTE, "2025-07-30T20:15:00+00:00"),
            Condition(Field.CREATED_AT, Op.LT, "2025-08-01T00:00:00+00:00"),
        )
    )


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"k": {"gt": "high"}}, "needs a number"),
        ({"k": {"like": "x"}}, "unknown operator"),
        ({"tenant_id": "other"}, "cannot be filtered on"),
        ({"metadata": {"data": "x"}}, "cannot be filtered on"),
        ({"categories": {"in": ["a"]}}, "categories"),
        ({"user_id": "has space"}, "must be ids"),
        ({"user_id": {"gt": "a"}}, "not 'gt'"),
        ({"OR": []}, "non-empty list"),
        ({"created_at": "yesterday"}, "not a date"),
    ],
)
def test_bad_platform_filters_say_what_is_wrong(filters: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_platform_filters(filters, "acme")


def test_depth_and_size_are_bounded() -> None:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(8):
        deep = {"AND": [deep]}
    assert parse_platform_filters(deep, "t") is not None
    with pytest.raises(InvalidRequest, match="nested too deep"):
        parse_platform_filters({"OR": [deep]}, "t")
    with pytest.raises(InvalidRequest, match="at most 50 conditions"):
        parse_platform_filters({f"k{i}": i for i in range(51)}, "t")


def test_the_contracts_filters_name_metadata_only() -> None:
    tree = parse_search_filters('{"priority": {"gte": 3}}', {"source": ["chat", "sms"]})
    assert tree == And(
        (
            Condition(Field.METADATA, Op.GTE, 3, key="priority"),
            Condition(Field.METADATA, Op.IN, ["chat", "sms"], key="source"),
        )
    )
    with pytest.raises(InvalidRequest, match="cannot be filtered on"):
        parse_search_filters('{"user_id": "victim"}', {})

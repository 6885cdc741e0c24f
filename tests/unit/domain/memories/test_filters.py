"""Search filters: the two spellings, what they become, and every refusal (400 with field `filters`)."""

from __future__ import annotations

import json
import re

import pytest
from memory_service.domain.memories.filters import MAX_FILTERS, MAX_VALUES, parse_search_filters
from memory_service.errors import InvalidRequest
from memory_service.models.filters import And, Condition, Field, Filter, Op


def m(key: str, op: Op, value: object) -> Condition:
    """A condition on a client metadata key, as the parser builds it."""
    return Condition(Field.METADATA, op, value, key=key)


def and_(*items: Filter) -> And:
    return And(tuple(items))


def test_the_contract_example_and_the_shorthand_combine() -> None:
    filters = parse_search_filters(
        '{"source": "chat", "priority": {"gte": 3}, "topic": {"in": ["ai", "ml"]}}',
        {"lang": ["en"], "tag": ["a", "b"]},
    )
    assert filters == and_(
        m("source", Op.EQ, "chat"),
        m("priority", Op.GTE, 3),
        m("topic", Op.IN, ["ai", "ml"]),
        m("lang", Op.EQ, "en"),  # one value: equality
        m("tag", Op.IN, ["a", "b"]),  # a repeated key: any of
    )


def test_no_filters() -> None:
    assert parse_search_filters(None, {}) is None
    assert parse_search_filters("", {}) is None


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"eq": "x"}, m("k", Op.EQ, "x")),
        ({"ne": 1}, m("k", Op.NE, "1")),  # compared as the payload's text shows it
        ({"gt": 1.5}, m("k", Op.GT, 1.5)),
        ({"lte": -2}, m("k", Op.LTE, -2)),
        ({"nin": ["a", 1, True]}, m("k", Op.NIN, ["a", "1", "true"])),
        ({"contains": "50%"}, m("k", Op.CONTAINS, "50%")),
        ({"icontains": "Chat"}, m("k", Op.ICONTAINS, "Chat")),
        ({"gte": 1, "lt": 10}, and_(m("k", Op.GTE, 1), m("k", Op.LT, 10))),
    ],
)
def test_every_operator_is_accepted(condition: dict[str, object], expected: Filter) -> None:
    assert parse_search_filters(json.dumps({"k": condition}), {}) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{bad", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"chat"', "must be a JSON object"),
        ('{"a": null}', "'a' must be a value or an object of operators"),
        ('{"a": {}}', "'a' must be a value or an object of operators"),
        ('{"a": [1]}', "'a' must be a value or an object of operators"),
        ('{"a": {"like": "x"}}', "unknown operator 'like' for 'a'"),
        ('{"a": {"in": []}}', "'a.in' needs a non-empty list of values"),
        ('{"a": {"nin": "x"}}', "'a.nin' needs a non-empty list of values"),
        ('{"a": {"in": [{"b": 1}]}}', "'a.in' needs a non-empty list of values"),
        ('{"a": {"gte": "3"}}', "'a.gte' needs a number"),
        ('{"a": {"gt": true}}', "'a.gt' needs a number"),  # a bool is an int to Python, not to the filter
        ('{"a": {"eq": [1]}}', "'a.eq' needs a value"),
        ('{"": 1}', "keys must be 1-64 characters"),
        ('{"' + "k" * 65 + '": 1}', "keys must be 1-64 characters"),
    ],
)
def test_malformed_filters_are_a_400_naming_the_field(raw: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_search_filters(raw, {})
    assert message in caught.value.message
    assert caught.value.message.startswith("Invalid filters: ")
    assert caught.value.details == {"field": "filters"}
    assert caught.value.status_code == 400


@pytest.mark.parametrize("key", ["user_id", "agent_id", "run_id", "tenant_id", "hash", "data", "entities", "id"])
def test_the_service_keys_cannot_be_filtered_so_a_filter_never_widens_the_scope(key: str) -> None:
    for raw, shorthand in ((f'{{"{key}": "x"}}', {}), (None, {key: ["x"]})):
        with pytest.raises(InvalidRequest, match=f"'{key}' cannot be filtered on"):
            parse_search_filters(raw, shorthand)


def test_a_key_in_both_spellings_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="'source' is given twice"):
        parse_search_filters('{"source": "chat"}', {"source": ["api"]})


def test_at_most_max_filters_keys() -> None:
    most = parse_search_filters(None, {f"k{i}": ["1"] for i in range(MAX_FILTERS)})
    assert isinstance(most, And)
    assert len(most.items) == MAX_FILTERS
    with pytest.raises(InvalidRequest, match=f"at most {MAX_FILTERS} keys"):
        parse_search_filters(None, {f"k{i}": ["1"] for i in range(MAX_FILTERS + 1)})


def test_the_result_does_not_alias_the_input() -> None:
    values = ["a", "b"]
    filters = parse_search_filters(None, {"tag": values})
    values.append("c")
    assert filters == m("tag", Op.IN, ["a", "b"])


@pytest.mark.parametrize("key", ["$or", "$not", "$and", "AND", "OR", "NOT"])
def test_mem0s_logical_operators_are_not_metadata_keys(key: str) -> None:
    """mem0 reads these keys as logical operators over lists of conditions; given anything else
    it raised (AttributeError: a 500). They are not the client's metadata keys."""
    for raw, shorthand in ((json.dumps({key: {"eq": "x"}}), {}), (json.dumps({key: "x"}), {}), (None, {key: ["x"]})):
        with pytest.raises(InvalidRequest, match=re.escape(f"'{key}' cannot be filtered on")):
            parse_search_filters(raw, shorthand)


def test_a_star_is_a_value_to_compare_not_mem0s_wildcard() -> None:
    """`metadata.source=*` is equality (the contract); mem0 would read a bare `*` as "has the key"."""
    assert parse_search_filters('{"source": "*"}', {}) == m("source", Op.EQ, "*")
    assert parse_search_filters(None, {"source": ["*"]}) == m("source", Op.EQ, "*")
    assert parse_search_filters(None, {"source": ["*", "chat"]}) == m("source", Op.IN, ["*", "chat"])


@pytest.mark.parametrize(
    "raw",
    [
        '{"n": {"gt": NaN}}',
        '{"n": {"lte": Infinity}}',
        '{"n": {"lt": 1e999}}',
        '{"n": "a\\u0000b"}',
        '{"k\\u0000": 1}',
        '{"n": {"eq": {"nested": 1}}}',
        "[" * 50_000,
    ],
)
def test_nul_non_finite_and_runaway_json_are_a_400(raw: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_search_filters(raw, {})
    assert raised.value.details == {"field": "filters"}


def test_in_lists_are_bounded() -> None:
    parse_search_filters(json.dumps({"n": {"in": list(range(MAX_VALUES))}}), {})
    with pytest.raises(InvalidRequest):
        parse_search_filters(json.dumps({"n": {"nin": list(range(MAX_VALUES + 1))}}), {})

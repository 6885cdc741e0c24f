"""core/json_rules.py: NUL, non-finite numbers and nesting are refused; ordinary JSON passes untouched."""

from __future__ import annotations

import json

import pytest
from memory_service.core.json_rules import (
    TRUNCATED,
    JSONProblem,
    body_problem,
    clamp_depth,
    depth_exceeds,
    loads_strict,
    value_problem,
)


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "body",
    [
        b'{"content": "a\\u0000b"}',
        b'{"k\\u0000": 1}',
        b'{"content": "\\\\\\u0000"}',  # an escaped backslash, then a NUL escape
        b'{"content": "a\x00b"}',
        b'{"n": NaN}',
        b'{"n": Infinity}',
        b'{"n": -Infinity}',
        b'{"n": 1e999}',
        b'{"n": 1E+0400}',
        b'{"n": ' + b"9" * 400 + b".5}",
    ],
)
def test_refused_bodies(body: bytes) -> None:
    assert body_problem(body) is not None
    with pytest.raises(JSONProblem):
        loads_strict(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"content": "a\\\\u0000b"}',  # a literal backslash followed by "u0000": no NUL
        b'{"content": "NaN and Infinity are words here", "n": 1e308, "m": -2.5e-300}',
        b'{"n": ' + b"9" * 400 + b"}",  # a big integer is exact, not infinite
        b"",
        b"not json at all",  # the route reports malformed JSON itself
    ],
)
def test_accepted_bodies(body: bytes) -> None:
    assert body_problem(body) is None


def test_loads_strict_parses_ordinary_json_like_json() -> None:
    text = '{"a": [1, 2.5, "x", null, true], "b": {"c": "é"}}'
    assert loads_strict(text) == json.loads(text)


def test_loads_strict_turns_runaway_nesting_into_a_problem_not_a_crash() -> None:
    with pytest.raises(JSONProblem):
        loads_strict("[" * 100_000 + "]" * 100_000)


def test_value_problem_counts_depth_keys_and_content() -> None:
    assert value_problem(_nested(10), max_depth=10, max_keys=100) is None
    assert "10 levels" in (value_problem(_nested(11), max_depth=10, max_keys=100) or "")
    assert "10 levels" in (value_problem({"a": [[[[[[[[[[1]]]]]]]]]]}, max_depth=10, max_keys=100) or "")
    assert "keys" in (value_problem({str(i): i for i in range(101)}, max_depth=10, max_keys=100) or "")
    assert "keys" in (value_problem({"a": {str(i): i for i in range(100)}}, max_depth=10, max_keys=100) or "")
    assert "NUL" in (value_problem({"a": ["ok", "b\x00"]}, max_depth=10, max_keys=100) or "")
    assert "NUL" in (value_problem({"a": {"b\x00": 1}}, max_depth=10, max_keys=100) or "")
    assert "finite" in (value_problem({"a": float("nan")}, max_depth=10, max_keys=100) or "")
    assert "finite" in (value_problem({"a": [float("-inf")]}, max_depth=10, max_keys=100) or "")


def test_value_problem_walks_a_hostile_document_without_recursion() -> None:
    assert value_problem(_nested(50_000), max_depth=10, max_keys=100) is not None


def test_clamp_depth_keeps_shallow_documents_as_they_are() -> None:
    document = {"a": {"b": [1, {"c": 2}]}}
    assert clamp_depth(document, 5) is document
    assert not depth_exceeds(document, 4)
    assert depth_exceeds(document, 3)


def test_clamp_depth_replaces_only_what_is_too_deep() -> None:
    clamped = clamp_depth({"keep": 1, "deep": _nested(300)}, 4)
    assert clamped["keep"] == 1
    assert clamped["deep"]["a"]["a"] == {"a": TRUNCATED}
    assert not depth_exceeds(clamped, 4)
    json.dumps(clamped)  # serializable again

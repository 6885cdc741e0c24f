"""The id rules: what a tenant and a user/agent/run id may be (they end up in paths, filters and keys)."""

from __future__ import annotations

import pytest
from memory_service.core.ids import (
    ID_PATTERN,
    TENANT_PATTERN,
    is_valid_id,
    is_valid_tenant,
    validate_tenant,
    validate_user_id,
)


@pytest.mark.parametrize(
    "value",
    ["a", "acme", "Acme-Corp_2.eu", "0tenant", "t" * 64],
)
def test_tenants_that_are_allowed(value: str) -> None:
    assert is_valid_tenant(value)
    assert validate_tenant(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "t" * 65,  # over 64 characters
        "-acme",  # must start with a letter or digit
        ".acme",
        "acme/other",  # the separator of the user key
        "ac me",
        "acme\n",  # `match` with `$` would accept the trailing newline
        "acmé",
        "acme:1",
    ],
)
def test_tenants_that_are_refused(value: str) -> None:
    assert not is_valid_tenant(value)
    with pytest.raises(ValueError, match="tenant must be 1-64 characters"):
        validate_tenant(value)


@pytest.mark.parametrize(
    "value",
    ["u", "alice", "user-42", "a.b_c:d@e+f=g~h", "=starts-with-equals", "x" * 128, "mail@example.org"],
)
def test_ids_that_are_allowed(value: str) -> None:
    assert is_valid_id(value)
    assert validate_user_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x" * 129,
        "~tilde-first",  # `~` may follow, not lead
        "has space",
        "tab\there",
        "a/b",
        "alice\n",
        "ümlaut",
        "semi;colon",
        "quote'",
    ],
)
def test_ids_that_are_refused(value: str) -> None:
    assert not is_valid_id(value)
    with pytest.raises(ValueError, match=r"^user_id must be 1-128 characters"):
        validate_user_id(value)


def test_the_error_names_the_field_it_checked() -> None:
    with pytest.raises(ValueError, match=r"^agent_id must be"):
        validate_user_id("no spaces allowed", field="agent_id")


def test_the_documented_patterns_are_anchored() -> None:
    """OpenAPI shows these patterns; without anchors a schema validator would accept substrings."""
    for pattern in (TENANT_PATTERN, ID_PATTERN):
        assert pattern.startswith("^")
        assert pattern.endswith("$")

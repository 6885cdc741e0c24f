"""A memory filter as a tree: AND, OR and NOT over conditions on one field of a memory.

Plain data shared by the layers: the domain parses each dialect's filter syntax into it
(domain/memories/filters.py), storage compiles it to one parameterised SQL condition over the
memory table (storage/filters.py). Values are already validated and, for users, tenant-qualified
(`Field.USER_KEY` compares the stored `tenant/user` id), so storage needs no knowledge of tenants
or of either dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Field(StrEnum):
    """What a condition looks at. Metadata keys are `Condition.key` with `Field.METADATA`."""

    TENANT = "tenant"  # the payload's tenant_id
    USER_KEY = "user_key"  # the tenant-qualified user id
    AGENT_ID = "agent_id"
    RUN_ID = "run_id"
    APP_ID = "app_id"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    MEMORY_ID = "memory_id"
    TEXT = "text"  # the memory's content
    METADATA = "metadata"


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    NIN = "nin"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    CONTAINS = "contains"
    ICONTAINS = "icontains"
    EXISTS = "*"  # present and not null


@dataclass(frozen=True, slots=True)
class Condition:
    """`field op value`: for eq/ne/in/nin the value's text is compared (lists for in/nin); for
    gt/gte/lt/lte a number (metadata) or an ISO 8601 UTC instant (created_at, updated_at);
    for contains/icontains a substring; nothing for EXISTS."""

    field: Field
    op: Op
    value: Any = None
    key: str | None = None  # the metadata key, for Field.METADATA


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Filter


Filter = Condition | And | Or | Not


def all_of(*items: Filter | None) -> Filter:
    """AND of the given filters (None ones left out; one stays itself)."""
    present = tuple(i for i in items if i is not None)
    return present[0] if len(present) == 1 else And(present)


def single_user_key(node: Filter) -> str | None:
    """The one user a filter is confined to (an `eq` on the user at the top level), if any."""
    if isinstance(node, Condition):
        return str(node.value) if node.field is Field.USER_KEY and node.op is Op.EQ else None
    if isinstance(node, And):
        for item in node.items:
            found = single_user_key(item)
            if found is not None:
                return found
    return None

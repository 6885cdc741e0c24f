"""A filter tree (models/filters.py) as one parameterised SQL condition over the memory table.

Nothing from a filter is spliced into the statement: keys and values travel as parameters, the
SQL text comes only from this module. Two rules keep answers exact:

- Every NOT sees a two-valued operand (`NOT COALESCE(x, false)`): a condition on a key a memory
  does not have is false, never NULL, so NOT is the exact complement of what it wraps.
- Comparisons only compare like with like: `gt`/`gte`/`lt`/`lte` on metadata match numbers (JSON
  numbers or numeric text; a value like "high" is NULL, never cast, so it cannot fail the query), and times are
  compared as instants only when the stored text is an ISO 8601 timestamp.

Top-level conditions stay plain expressions (`payload->>'user_id' = %s`), so the indexes on the
memory table serve them exactly as they serve mem0's own filters.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from memory_service.models.filters import And, Condition, Field, Filter, Not, Op

_COLUMNS: dict[Field, sql.Composable] = {
    Field.TENANT: sql.SQL("(payload->>'tenant_id')"),
    Field.USER_KEY: sql.SQL("(payload->>'user_id')"),
    Field.AGENT_ID: sql.SQL("(payload->>'agent_id')"),
    Field.RUN_ID: sql.SQL("(payload->>'run_id')"),
    Field.APP_ID: sql.SQL("(payload->>'app_id')"),
    Field.TEXT: sql.SQL("(payload->>'data')"),
    Field.CREATED_AT: sql.SQL("(payload->>'created_at')"),
    Field.UPDATED_AT: sql.SQL("(payload->>'updated_at')"),
}
_ISO_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
# A JSON number or numeric text (as mem0's `::numeric` cast read them), anything else NULL: a
# value like "high" never matches and never fails the query.
_NUMBER_OR_NULL = sql.SQL("substring(payload->>%s from {})::numeric").format(
    sql.Literal(r"^\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")
)
_ORDER = {Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<=", Op.EQ: "=", Op.NE: "<>"}


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with LIKE's own characters escaped."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def compile_filter(node: Filter) -> tuple[sql.Composable, list[Any]]:
    """The condition and its parameters, in order."""
    params: list[Any] = []
    return _node(node, params), params


def _node(node: Filter, params: list[Any]) -> sql.Composable:
    if isinstance(node, Condition):
        return _condition(node, params)
    if isinstance(node, Not):
        return sql.SQL("NOT COALESCE({}, false)").format(_node(node.item, params))
    joiner = " AND " if isinstance(node, And) else " OR "
    if not node.items:
        return sql.SQL("TRUE" if isinstance(node, And) else "FALSE")
    parts = [_node(item, params) for item in node.items]
    return sql.SQL("({})").format(sql.SQL(joiner).join(parts))


def _condition(c: Condition, params: list[Any]) -> sql.Composable:
    if c.field is Field.MEMORY_ID:
        params.append(list(c.value))
        return sql.SQL("id = ANY(%s::uuid[])")
    if c.field in (Field.CREATED_AT, Field.UPDATED_AT) and c.op not in (Op.EXISTS, Op.CONTAINS, Op.ICONTAINS):
        return _instant(_COLUMNS[c.field], c, params)
    if c.field is Field.METADATA:
        return _metadata(c, params)
    return _text(_COLUMNS[c.field], (), c, params)


def _text(column: sql.Composable, column_params: tuple[Any, ...], c: Condition, params: list[Any]) -> sql.Composable:
    """A condition on a text value; `column_params` are the column expression's own parameters."""
    params.extend(column_params)
    op = c.op
    if op is Op.EQ:
        params.append(c.value)
        return sql.SQL("{} = %s").format(column)
    if op is Op.NE:
        params.append(c.value)
        return sql.SQL("{} IS DISTINCT FROM %s").format(column)
    if op is Op.IN:
        params.append(list(c.value))
        return sql.SQL("{} = ANY(%s)").format(column)
    if op is Op.NIN:
        params.append(list(c.value))
        return sql.SQL("NOT COALESCE({} = ANY(%s), false)").format(column)
    if op in (Op.CONTAINS, Op.ICONTAINS):
        params.append(like_pattern(str(c.value)))
        return sql.SQL("{} " + ("LIKE" if op is Op.CONTAINS else "ILIKE") + " %s ESCAPE '\\'").format(column)
    if op is Op.EXISTS:
        return sql.SQL("{} IS NOT NULL").format(column)
    raise ValueError(f"operator {op} does not apply to {c.field}")  # the domain never builds it


def _metadata(c: Condition, params: list[Any]) -> sql.Composable:
    """A client metadata key: a top-level key of the payload (the key travels as a parameter)."""
    if c.op is Op.EXISTS:  # present, and not JSON null
        params.append(c.key)
        return sql.SQL("COALESCE(jsonb_typeof(payload->%s) <> 'null', false)")
    if c.op in (Op.GT, Op.GTE, Op.LT, Op.LTE):  # numbers only: "high" is no match, never a cast error
        params.extend([c.key, str(c.value)])
        return sql.SQL("{} " + _ORDER[c.op] + " %s::numeric").format(_NUMBER_OR_NULL)
    return _text(sql.SQL("(payload->>%s)"), (c.key,), c, params)


def _instant(column: sql.Composable, c: Condition, params: list[Any]) -> sql.Composable:
    """created_at / updated_at as instants (stored as ISO 8601 text by mem0 and the service)."""
    instant = sql.SQL("CASE WHEN {col} ~ {pattern} THEN {col}::timestamptz END").format(
        col=column, pattern=sql.Literal(_ISO_TIMESTAMP)
    )
    if c.op in (Op.IN, Op.NIN):
        params.append(list(c.value))
        expression = sql.SQL("{} = ANY(%s::timestamptz[])").format(instant)
        return expression if c.op is Op.IN else sql.SQL("NOT COALESCE({}, false)").format(expression)
    params.append(c.value)
    if c.op is Op.NE:
        return sql.SQL("{} IS DISTINCT FROM %s::timestamptz").format(instant)
    return sql.SQL("{} " + _ORDER[c.op] + " %s::timestamptz").format(instant)

"""What JSON the service accepts, in one place: no NUL, finite numbers, bounded nesting.

Postgres cannot store a NUL character in text or jsonb, and jsonb has no NaN or Infinity (Python's
`json` accepts both, and turns `1e999` into infinity), so such input would fail deep in a query
with a 500 after validation passed. The rules here refuse it at the door instead: `body_problem`
checks a raw request body (cheaply: a byte scan, and a strict parse only when a non-finite number
is possible), `loads_strict` parses JSON text carried elsewhere (the search `filters` parameter),
and `value_problem` walks an already decoded value (metadata that reaches the engine another
way). `clamp_depth` defends the read path against documents stored before these limits existed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

NUL = "\x00"
# A `\u0000` escape, i.e. preceded by an even number of backslashes (an odd one would escape the
# backslash of `\u0000` itself). Outside strings JSON has no backslashes, so this is exact.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
# Every way JSON text can denote a non-finite number in Python's parser: the NaN and Infinity
# literals, an exponent of three digits or more, or a mantissa long enough to overflow a double.
# A match only means "parse to be sure" (it also matches inside strings).
_MAYBE_NON_FINITE = re.compile(rb"NaN|Infinity|[eE][+]?0*[0-9]{3}|[0-9]{300}")
TRUNCATED = "[truncated: nested too deeply]"


class JSONProblem(ValueError):
    """The JSON is well-formed but carries something the service refuses (the message says what)."""


def has_nul(text: str) -> bool:
    return NUL in text


def _refuse_constant(name: str) -> Any:
    raise JSONProblem(f"{name} is not a number JSON allows; numbers must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONProblem(f"the number {text[:40]} is too large to store (numbers must be finite)")
    return value


def loads_strict(text: str | bytes) -> Any:
    """`json.loads` that refuses NUL characters, NaN, Infinity and overflowing numbers.

    Raises json.JSONDecodeError for malformed JSON and JSONProblem for refused content (both are
    ValueError); nesting beyond the interpreter's recursion limit is a JSONProblem, not a crash.
    """
    raw = text.encode() if isinstance(text, str) else text
    if _NUL_ESCAPE.search(raw) or b"\x00" in raw:
        raise JSONProblem("NUL characters (\\u0000) are not allowed")
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise JSONProblem("JSON nested too deeply") from None


def body_problem(body: bytes) -> str | None:
    """Why a request body must be refused with 400, or None (including when it is not JSON at
    all: the route's own parsing reports that). Fast on ordinary bodies: two byte scans."""
    if b"\x00" in body or _NUL_ESCAPE.search(body):
        return "NUL characters (\\u0000) are not allowed"
    if not _MAYBE_NON_FINITE.search(body):
        return None
    try:
        loads_strict(body)
    except JSONProblem as exc:
        return str(exc)
    except ValueError:  # malformed JSON or not UTF-8: the route answers its own 400
        return None
    return None


def _children(value: Any) -> Iterator[tuple[str | None, Any]]:
    if isinstance(value, dict):
        yield from value.items()
    elif isinstance(value, list | tuple):
        for item in value:
            yield None, item


def value_problem(value: Any, *, max_depth: int, max_keys: int) -> str | None:
    """Why a decoded JSON value must be refused, or None.

    Depth counts containers: `{"a": 1}` is 1, `{"a": [1]}` is 2. Keys are counted over every
    nested object. The walk is iterative and stops at the first problem, so a hostile document
    costs at most `max_keys` keys and `max_depth` levels of work.
    """
    keys = 0
    stack: list[tuple[Any, int]] = [(value, 1 if isinstance(value, dict | list | tuple) else 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if NUL in node:
                return "NUL characters (\\u0000) are not allowed"
        elif isinstance(node, float):
            if not math.isfinite(node):
                return "numbers must be finite (no NaN or Infinity)"
        elif isinstance(node, dict | list | tuple):
            if depth > max_depth:
                return f"nested more than {max_depth} levels deep"
            for key, child in _children(node):
                if key is not None:
                    keys += 1
                    if keys > max_keys:
                        return f"more than {max_keys} keys in all"
                    if not isinstance(key, str) or NUL in key:
                        return "keys must be strings without NUL characters"
                stack.append((child, depth + 1))
    return None


def depth_exceeds(value: Any, limit: int) -> bool:
    """True when `value` nests containers more than `limit` levels deep (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for _, child in _children(node))
    return False


def clamp_depth(value: Any, limit: int) -> Any:
    """`value` with every container deeper than `limit` levels replaced by TRUNCATED.

    The read path's defence: a document stored before the write limits existed must not make
    every later read of its owner fail. Returns `value` itself (no copy) when it is within limit.
    """
    if not depth_exceeds(value, limit):
        return value

    def clamp(node: Any, depth: int) -> Any:
        # Recursion is bounded by `limit`: deeper containers are replaced, not entered.
        if isinstance(node, dict):
            return TRUNCATED if depth > limit else {k: clamp(v, depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return TRUNCATED if depth > limit else [clamp(v, depth + 1) for v in node]
        return node

    return clamp(value, 1)

"""psycopg adapters for the two conversions that dominate a search's CPU on the event-loop's GIL.

Profiling `make bench` showed a search holding the GIL for about a third of a millisecond to dump
its 384-float query vector (psycopg's generic float-list dumper, element by element, into a
`float8[]` literal that Postgres then casts) and as long again to decode the 60 jsonb payloads
of mem0's over-fetch with the standard `json` module. pgvector's binary wire format packs the
vector in microseconds, and orjson decodes the payloads about four times faster (except the rare
payload holding an integer beyond 64 bits, which orjson would round to a float).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types.json import set_json_loads


class PgVector:
    """A vector to send in pgvector's binary format (`%s` in a query whose type is `vector`)."""

    __slots__ = ("values",)

    def __init__(self, values: Sequence[float]) -> None:
        self.values = values


class PgVectorBinaryDumper(Dumper):
    """pgvector's `vector_recv` format: dimensions, a reserved zero, then big-endian float4s.

    The oid stays 0 ("unknown"): Postgres takes the parameter's type from its context (a
    `::vector` cast or the target column), so no per-connection type lookup is needed, and the
    dumper works on a connection opened before `CREATE EXTENSION vector`.
    """

    format = Format.BINARY

    def dump(self, obj: PgVector) -> bytes:
        dims = len(obj.values)
        return struct.pack(f">HH{dims}f", dims, 0, *obj.values)


# 19 digits in a row may be an integer beyond 64 bits, which orjson would turn into a float.
_LONG_NUMBER = re.compile(rb"\d{19}")


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """orjson, except for payloads with integers it would silently round (the standard module keeps them)."""
    raw = bytes(data) if isinstance(data, memoryview) else data.encode() if isinstance(data, str) else data
    if not _LONG_NUMBER.search(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # whatever orjson is stricter about, the standard module decides
    return json.loads(raw)


def register(conn: psycopg.Connection[Any]) -> None:
    """Installed on every pooled connection (ConnectionPool's `configure`)."""
    conn.adapters.register_dumper(PgVector, PgVectorBinaryDumper)
    set_json_loads(loads, conn)

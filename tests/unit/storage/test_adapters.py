"""The psycopg adapters: jsonb decoding that never rounds an integer, and pgvector's binary format."""

from __future__ import annotations

import json
import struct

import orjson
import pytest
from memory_service.storage.adapters import PgVector, PgVectorBinaryDumper, loads
from psycopg.pq import Format

BIG = 12345678901234567890123  # beyond 64 bits
BIG_JSON = f'{{"n": {BIG}}}'


def test_orjson_alone_would_round_a_big_integer() -> None:
    """Why loads() exists: this is what the standard module must catch."""
    assert orjson.loads(BIG_JSON) == {"n": 1.2345678901234568e22}


@pytest.mark.parametrize(
    "data", [f'{{"n": {BIG}}}', f'{{"n": {BIG}}}'.encode(), memoryview(f'{{"n": {BIG}}}'.encode())]
)
def test_big_integers_survive_whatever_psycopg_hands_over(data: str | bytes | memoryview) -> None:
    decoded = loads(data)
    assert decoded == {"n": BIG}
    assert isinstance(decoded["n"], int)


@pytest.mark.parametrize(
    "number",
    [
        9223372036854775807,  # int64 max: 19 digits
        -9223372036854775808,
        18446744073709551615,  # uint64 max
        18446744073709551616,  # one more
        10**30,
    ],
)
def test_integers_at_and_beyond_64_bits_are_exact(number: int) -> None:
    assert loads(json.dumps({"n": number, "s": "x"}).encode()) == {"n": number, "s": "x"}


def test_ordinary_payloads() -> None:
    payload = {"data": "likes tea", "n": 42, "f": 1.5, "ok": True, "none": None, "list": [1, "a"], "nested": {"k": "v"}}
    assert loads(json.dumps(payload).encode()) == payload
    assert loads("[]") == []
    assert loads(bytearray(b'{"a": "\\u00e9"}')) == {"a": "\u00e9"}


def test_what_orjson_refuses_the_standard_module_decides() -> None:
    assert str(loads(b'{"a": NaN}')["a"]) == "nan"
    with pytest.raises(json.JSONDecodeError):
        loads(b"{not json")


def test_the_binary_vector_is_dims_a_zero_then_big_endian_float4s() -> None:
    dumper = PgVectorBinaryDumper(PgVector)
    assert dumper.format == Format.BINARY
    assert dumper.dump(PgVector([1.0, -2.5, 0.0])) == bytes.fromhex("000300003f800000c020000000000000")


def test_a_384_dimension_vector_packs_to_its_exact_size_and_values() -> None:
    values = [i / 384 for i in range(384)]
    raw = PgVectorBinaryDumper(PgVector).dump(PgVector(values))
    assert len(raw) == 4 + 4 * 384
    dims, reserved = struct.unpack(">HH", raw[:4])
    assert (dims, reserved) == (384, 0)
    unpacked = struct.unpack(">384f", raw[4:])
    assert unpacked == pytest.approx(values, abs=1e-7)

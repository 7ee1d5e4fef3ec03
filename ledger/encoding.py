"""Canonical msgpack encoding: one byte string per value, and only one.

Rules (see docs/protocol.md, section "Encoding"):
- Values are ``None``, ``bool``, ``int`` (-2**63 .. 2**64-1), ``str`` (UTF-8), ``bytes``,
  ``list`` and ``dict`` with ``str`` keys. No floats, no extension types.
- Integers and lengths use the shortest msgpack form; strings use the str family,
  bytes the bin family; maps are written with keys sorted by their UTF-8 bytes.
- ``decode`` accepts an input only if re-encoding the decoded value gives back exactly
  the same bytes. That single check rejects non-minimal integers and lengths, unsorted
  or duplicate keys and any other second spelling of a value: the encoding is
  non-malleable, so a hash or signature over it identifies one value.
- Sizes are bounded before anything is allocated (``Limits``); nesting is bounded.
- ``decode`` raises ``DecodeError`` and nothing else, whatever the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from ledger.errors import DecodeError

Value = Any  # None | bool | int | str | bytes | list[Value] | dict[str, Value]

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """Upper bounds applied while decoding untrusted bytes."""

    input_bytes_max: int = 8 * 1024 * 1024
    str_bytes_max: int = 1024 * 1024
    bin_bytes_max: int = 4 * 1024 * 1024
    array_len_max: int = 100_000
    map_len_max: int = 1_024
    depth_max: int = 32


DEFAULT_LIMITS = Limits()


def _canonical(value: Value, depth: int, limits: Limits) -> Value:
    """Check ``value`` and return it with every map's keys in canonical order, in one pass.

    Keys are sorted by code point, which is the same order as their UTF-8 bytes (UTF-8
    preserves code point order); a lone surrogate, which has no UTF-8 form, is caught by
    ``encode``.
    """
    if depth > limits.depth_max:
        raise DecodeError(f"value nested deeper than {limits.depth_max} levels")
    if value is None or isinstance(value, (bool, str, bytes)):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise DecodeError(f"integer {value} outside the 64-bit range")
        return value
    if isinstance(value, (list, tuple)):
        return [_canonical(item, depth + 1, limits) for item in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise DecodeError("map keys must be strings")
        return {key: _canonical(value[key], depth + 1, limits) for key in sorted(value)}
    raise DecodeError(f"type {type(value).__name__} cannot be encoded (floats are forbidden)")


def encode(value: Value, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Return the canonical bytes of ``value``; raise ``DecodeError`` if it has none."""
    canonical = _canonical(value, 0, limits)
    try:
        packed: bytes = msgpack.packb(canonical, use_bin_type=True)
    except UnicodeEncodeError as exc:  # a lone surrogate has no UTF-8 spelling
        raise DecodeError("a text string is not valid Unicode (lone surrogate)") from exc
    return packed


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Value:
    """Decode canonical bytes; raise ``DecodeError`` for anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("input is not bytes")
    data = bytes(data)
    if len(data) > limits.input_bytes_max:
        raise DecodeError(f"input of {len(data)} bytes exceeds {limits.input_bytes_max}")
    if not data:
        raise DecodeError("input is empty")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=limits.str_bytes_max,
            max_bin_len=limits.bin_bytes_max,
            max_array_len=limits.array_len_max,
            max_map_len=limits.map_len_max,
            max_ext_len=0,
        )
    except msgpack.ExtraData as exc:
        raise DecodeError("trailing bytes after the value") from exc
    except Exception as exc:  # msgpack raises many types; callers see exactly one
        raise DecodeError(f"not valid msgpack: {type(exc).__name__}") from exc
    try:
        again = encode(value, limits)
    except RecursionError as exc:
        raise DecodeError("value nested too deeply") from exc
    if again != data:
        raise DecodeError("input is not in canonical form")
    return value

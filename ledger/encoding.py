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
- Two paths, one answer. The reference path (``_canonical`` then ``msgpack.packb``)
  rebuilds every container in Python. The fast path (``_plain``) only inspects: exact
  types, text keys already in order, depth; when it holds, msgpack's C packer gives the
  canonical bytes directly. Anything the fast path does not vouch for (an unsorted map, a
  tuple, a subclass, a float, an out-of-range integer) goes to the reference path, which
  decides and explains. The property tests check both paths accept and reject the same
  inputs (tests/ledger/test_encoding.py).
- ``encode_array`` assembles an array from elements that are already canonical bytes
  (a block from its stored transactions); ``split_array`` is its inverse and returns each
  element's exact bytes, so a record decoded from them can keep its wire bytes.
- ``decode_stored`` skips the canonical check, for bytes this node wrote itself with
  ``encode`` and reads back from its own store (state values), never for bytes that
  came from outside.
- Sizes are bounded before anything is allocated (``Limits``); nesting is bounded.
- ``decode`` raises ``DecodeError`` and nothing else, whatever the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
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


_SCALARS = frozenset({type(None), bool, int, str, bytes})
"""Exact types the fast path passes through untouched (``int``: msgpack's C packer refuses,
with ``OverflowError``, anything outside the 64-bit range, which sends it to the reference
path)."""


def _plain(value: Value, depth_max: int) -> bool:
    """Whether ``value`` is already in canonical shape: exact allowed types only, text map
    keys strictly increasing, nesting at most ``depth_max``. Inspects, builds nothing.

    ``True`` means ``msgpack.packb(value)`` is the canonical encoding (or raises, for an
    integer out of range or a lone surrogate); ``False`` means "ask the reference path",
    not "invalid". Written for speed: per container, C-level checks (``str.join`` fails on
    a non-text key, list comparison with ``sorted``), and Python work only per child
    container."""
    if type(value) in _SCALARS:
        return True
    stack: list[tuple[Value, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth >= depth_max:  # a container at depth_max holds items at depth_max + 1
            return False
        kind = type(item)
        if kind is dict:
            keys = list(item)
            try:
                "".join(keys)  # TypeError unless every key is text
            except TypeError:
                return False
            if keys != sorted(keys):  # keys of a dict are distinct: sorted means strictly
                return False
            children = item.values()
        elif kind is list:
            children = item
        else:
            return False
        for child in children:
            child_kind = type(child)
            if child_kind in _SCALARS:
                continue
            if child_kind is not list and child_kind is not dict:
                return False
            stack.append((child, depth + 1))
    return True


def encode(value: Value, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Return the canonical bytes of ``value``; raise ``DecodeError`` if it has none."""
    if _plain(value, limits.depth_max):
        try:
            fast: bytes = msgpack.packb(value, use_bin_type=True)
        except (OverflowError, UnicodeEncodeError, ValueError):
            pass  # the reference path below names the problem
        else:
            return fast
    return _encode_reference(value, limits)


def _encode_reference(value: Value, limits: Limits) -> bytes:
    """The reference encoder: rebuild with sorted keys, checking every item, then pack."""
    canonical = _canonical(value, 0, limits)
    try:
        packed: bytes = msgpack.packb(canonical, use_bin_type=True)
    except UnicodeEncodeError as exc:  # a lone surrogate has no UTF-8 spelling
        raise DecodeError("a text string is not valid Unicode (lone surrogate)") from exc
    return packed


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Value:
    """Decode canonical bytes; raise ``DecodeError`` for anything else."""
    data, value = _unpack(data, limits)
    if _plain(value, limits.depth_max):
        # Sorted text keys, allowed types, bounded depth: what is left to check is the
        # shortest form of every integer and length (and no duplicate key, which
        # unpacking collapses), which re-packing in C and comparing settles.
        if msgpack.packb(value, use_bin_type=True) != data:
            raise DecodeError("input is not in canonical form")
        return value
    return _check_reference(data, value, limits)


def decode_stored(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Value:
    """Decode bytes this node wrote itself with ``encode`` (a state value read back from
    its own store), bounded like ``decode`` but without the canonical check.

    The check would re-encode every value a contract reads, about a fifth of executing a
    transaction, to confirm what ``encode`` guaranteed when it wrote them: the bytes came
    from no one else, and their hash is in the state root every validator agrees on, so a
    changed value shows as a root that no longer matches, not here. Never use it for bytes
    from a client, a peer or a file: ``decode`` is for those."""
    return _unpack(data, limits)[1]


def _decode_reference(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Value:
    """``decode`` by the reference path only (kept for the property tests)."""
    data, value = _unpack(data, limits)
    return _check_reference(data, value, limits)


def _check_reference(data: bytes, value: Value, limits: Limits) -> Value:
    try:
        again = _encode_reference(value, limits)
    except RecursionError as exc:
        raise DecodeError("value nested too deeply") from exc
    if again != data:
        raise DecodeError("input is not in canonical form")
    return value


def _unpack(data: bytes, limits: Limits) -> tuple[bytes, Value]:
    """Bounded msgpack parsing (no canonical check yet): the bytes and the value."""
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
    return data, value


def array_header(length: int) -> bytes:
    """The canonical (shortest) msgpack header of an array of ``length`` items."""
    if length < 16:
        return bytes([0x90 | length])
    if length < 2**16:
        return b"\xdc" + length.to_bytes(2, "big")
    if length < 2**32:
        return b"\xdd" + length.to_bytes(4, "big")
    raise DecodeError(f"an array of {length} items has no msgpack form")


def encode_array(items: list[bytes] | tuple[bytes, ...]) -> bytes:
    """The canonical encoding of an array whose items are given as their canonical bytes.

    Equal to ``encode([decode(i) for i in items])`` without decoding or re-encoding: a
    canonical array is its shortest header followed by its canonical items."""
    return array_header(len(items)) + b"".join(items)


def split_array(data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[bytes]:
    """The exact bytes of each item of the encoded array ``data``.

    Checks the array header is the shortest one and that nothing trails the last item;
    the items themselves are NOT checked here: decode each with ``decode`` (or a record's
    ``decode``), which is what makes the whole canonical. Raises ``DecodeError``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("input is not bytes")
    data = bytes(data)
    if len(data) > limits.input_bytes_max:
        raise DecodeError(f"input of {len(data)} bytes exceeds {limits.input_bytes_max}")
    unpacker = msgpack.Unpacker(
        raw=False, use_list=True, strict_map_key=True, max_buffer_size=max(1, len(data)),
        max_str_len=limits.str_bytes_max, max_bin_len=limits.bin_bytes_max,
        max_array_len=limits.array_len_max, max_map_len=limits.map_len_max, max_ext_len=0,
    )
    unpacker.feed(data)
    try:
        length = unpacker.read_array_header()
        if data[:unpacker.tell()] != array_header(length):
            raise DecodeError("input is not in canonical form (array header)")
        bounds = [unpacker.tell()]
        for _ in range(length):
            unpacker.skip()
            bounds.append(unpacker.tell())
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises many types; callers see exactly one
        raise DecodeError(f"not a valid msgpack array: {type(exc).__name__}") from exc
    if bounds[-1] != len(data):
        raise DecodeError("trailing bytes after the array")
    return [data[a:b] for a, b in pairwise(bounds)]

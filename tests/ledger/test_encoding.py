"""ledger.encoding: one canonical msgpack spelling per value, and a decoder that refuses
every other spelling, every forbidden type and every oversize input with DecodeError."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.encoding import (
    INT_MAX,
    INT_MIN,
    Limits,
    _decode_reference,
    _encode_reference,
    decode,
    decode_stored,
    encode,
    encode_array,
    split_array,
)
from ledger.errors import DecodeError

values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(INT_MIN, INT_MAX), st.text(max_size=40),
        st.binary(max_size=40),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=10), inner, max_size=6)
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(values)
def test_round_trip(value: Any) -> None:
    data = encode(value)
    assert decode(data) == value
    assert encode(decode(data)) == data


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.integers(0, 9), min_size=2, max_size=8))
def test_maps_are_written_with_keys_sorted_bytewise(m: dict[str, int]) -> None:
    reversed_insertion = dict(reversed(list(m.items())))
    assert encode(m) == encode(reversed_insertion)
    keys = list(decode(encode(m)))
    assert [k.encode() for k in keys] == sorted(k.encode() for k in keys)


@pytest.mark.parametrize(
    ("value", "hex_bytes"),
    [
        (0, "00"), (127, "7f"), (128, "cc80"), (255, "ccff"), (256, "cd0100"),
        (65536, "ce00010000"), (2**32, "cf0000000100000000"), (INT_MAX, "cfffffffffffffffff"),
        (-1, "ff"), (-32, "e0"), (-33, "d0df"), (-129, "d1ff7f"), (INT_MIN, "d38000000000000000"),
        (None, "c0"), (False, "c2"), (True, "c3"),
        ("", "a0"), ("é", "a2c3a9"), ("a" * 32, "d920" + "61" * 32),
        (b"", "c400"), (b"\x01\x02", "c4020102"),
        ([], "90"), ([1, [2]], "920191" + "02"),
        ({"b": 1, "a": 2}, "82a16102a16201"),
    ],
)
def test_known_spellings(value: Any, hex_bytes: str) -> None:
    """The exact bytes a client in another language must produce (docs/protocol.md)."""
    assert encode(value).hex() == hex_bytes
    assert decode(bytes.fromhex(hex_bytes)) == value


@pytest.mark.parametrize(
    ("hex_bytes", "why"),
    [
        ("cc05", "uint8 for a fixint"),
        ("cd0005", "uint16 for a fixint"),
        ("cd00ff", "uint16 for a uint8"),
        ("ce000000ff", "uint32 for a uint8"),
        ("cf00000000000000ff", "uint64 for a uint8"),
        ("d005", "int8 for a positive fixint"),
        ("d0ff", "int8 for a negative fixint"),
        ("d1ff80", "int16 for an int8"),
        ("d2ffffffff", "int32 for -1"),
        ("d3ffffffffffffffff", "int64 for -1"),
        ("d90161", "str8 for a fixstr"),
        ("da000161", "str16 for a fixstr"),
        ("c5000161", "bin16 for a bin8"),
        ("dc000101", "array16 for a fixarray"),
        ("de0001a16101", "map16 for a fixmap"),
        ("82a16201a16102", "unsorted keys"),
        ("82a16101a16102", "duplicate key"),
        ("ca3f800000", "float32"),
        ("cb3ff0000000000000", "float64"),
        ("c0c0", "trailing bytes"),
        ("910000", "trailing byte after a complete array"),
        ("", "empty input"),
        ("c1", "never-used byte"),
        ("d40100", "fixext1"),
        ("c70001", "ext8 of length zero"),
        ("c7000100", "ext8 of length zero followed by a byte"),
        ("d6ff00000000", "timestamp ext"),
        ("a2fffe", "invalid UTF-8"),
        ("a3eda080", "UTF-8 encoded surrogate"),
        ("81c40161" + "01", "bytes map key"),
        ("8101" + "01", "integer map key"),
        ("dbffffffff61", "str32 claiming 4 GiB"),
        ("c6ffffffff61", "bin32 claiming 4 GiB"),
        ("ddffffffff", "array32 claiming 4 billion items"),
        ("dfffffffff", "map32 claiming 4 billion pairs"),
        ("92" + "01", "truncated array"),
    ],
)
def test_rejects_non_canonical_and_forbidden(hex_bytes: str, why: str) -> None:
    data = bytes.fromhex(hex_bytes)
    with pytest.raises(DecodeError):
        decode(data)


def test_rejects_excessive_nesting() -> None:
    limit = Limits().depth_max
    ok = bytes([0x91]) * limit + b"\xc0"
    assert decode(ok) is not None
    with pytest.raises(DecodeError, match="nested"):
        decode(bytes([0x91]) * (limit + 1) + b"\xc0")
    with pytest.raises(DecodeError):
        decode(bytes([0x91]) * 100_000 + b"\xc0")  # far past any recursion limit
    deep: Any = None
    for _ in range(limit + 1):
        deep = [deep]
    with pytest.raises(DecodeError, match="nested"):
        encode(deep)


def test_limits_are_applied_before_allocation() -> None:
    small = Limits(input_bytes_max=64, str_bytes_max=8, bin_bytes_max=8, array_len_max=4,
                   map_len_max=2)
    assert decode(encode("a" * 8), small) == "a" * 8
    with pytest.raises(DecodeError, match="exceeds 64"):
        decode(encode("a" * 70), small)
    for too_big in ("a" * 9, b"b" * 9, [0] * 5, {"a": 0, "b": 0, "c": 0}):
        with pytest.raises(DecodeError):
            decode(encode(too_big), small)


@settings(max_examples=200, deadline=None)
@given(values)
def test_stored_values_decode_to_what_was_encoded(value: Any) -> None:
    data = encode(value)
    assert decode_stored(data) == decode(data) == value


def test_decode_stored_is_bounded_but_does_not_judge_the_spelling() -> None:
    # What the node wrote itself is not checked again (the state root covers it)...
    non_minimal = bytes.fromhex("cc05")  # 5 as a uint8: decode refuses the second spelling
    with pytest.raises(DecodeError, match="canonical"):
        decode(non_minimal)
    assert decode_stored(non_minimal) == 5
    # ...but the limits and the refusal of garbage hold as for any input.
    small = Limits(input_bytes_max=64, str_bytes_max=8)
    for bad in (encode("a" * 70), encode("a" * 9), b"", b"\xc1", encode(1) + b"\x00"):
        with pytest.raises(DecodeError):
            decode_stored(bad, small)


@pytest.mark.parametrize(
    "value",
    [1.5, float("nan"), {1: 2}, {b"k": 1}, 2**64, INT_MIN - 1, "\ud800", {"\udc00": 1},
     object(), bytearray(b"x"), {"a": [1, {"b": 0.0}]}],
)
def test_encode_refuses_values_without_a_canonical_form(value: Any) -> None:
    with pytest.raises(DecodeError):
        encode(value)


@pytest.mark.parametrize("not_bytes", ["c0", None, 5, ["c0"]])
def test_decode_refuses_non_bytes(not_bytes: Any) -> None:
    with pytest.raises(DecodeError, match="not bytes"):
        decode(not_bytes)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    try:
        value = decode(data)
    except DecodeError:
        return
    assert encode(value) == data  # anything accepted is canonical


@settings(max_examples=200, deadline=None)
@given(values, st.data())
def test_any_byte_change_is_rejected_or_decodes_to_another_value(value: Any, data: Any) -> None:
    encoded = encode(value)
    position = data.draw(st.integers(0, len(encoded) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != encoded[position]))
    mutated = encoded[:position] + bytes([byte]) + encoded[position + 1:]
    try:
        other = decode(mutated)
    except DecodeError:
        return
    # Non-malleable: what was accepted re-encodes to the mutated bytes, so it is another
    # value (Python's 1 == True makes == too weak a comparison here).
    assert encode(other) == mutated != encoded


# --------------------------------------------------------------------------- two paths
# ``encode`` and ``decode`` take a fast path (inspect, then msgpack's C packer) whenever
# it can vouch for a value, and the reference path (rebuild in Python, re-encode, compare)
# otherwise. The two must accept and reject exactly the same inputs, with the same result.

loose_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(INT_MIN - 2, INT_MAX + 2), st.text(max_size=8),
        st.binary(max_size=8), st.floats(allow_nan=False), st.just("\ud800"),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=4), st.binary(max_size=2),
                                  st.integers(0, 3)), inner, max_size=4),
    ),
    max_leaves=16,
)
"""Values with and without a canonical form: unsorted maps, tuples, floats, non-text
keys, integers just outside the 64-bit range, lone surrogates."""


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except DecodeError:
        return "refused", None


@settings(max_examples=400, deadline=None)
@given(loose_values)
def test_fast_and_reference_encoders_agree(value: Any) -> None:
    fast, reference = _outcome(encode, value), _outcome(_encode_reference, value, Limits())
    assert fast == reference


def _mutations() -> st.SearchStrategy[bytes]:
    """Canonical encodings with one byte changed, inserted or deleted, and raw bytes."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(encode(draw(values)))
        position = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(("set", "insert", "delete")))
        byte = draw(st.integers(0, 255))
        if how == "set":
            data[position] = byte
        elif how == "insert":
            data.insert(position, byte)
        else:
            del data[position]
        return bytes(data)

    return st.one_of(mutate(), st.binary(max_size=48))


@settings(max_examples=600, deadline=None)
@given(_mutations())
def test_fast_and_reference_decoders_accept_and_reject_the_same_bytes(data: bytes) -> None:
    fast, reference = _outcome(decode, data), _outcome(_decode_reference, data)
    assert fast[0] == reference[0], data.hex()
    if fast[0] == "ok":
        assert encode(fast[1]) == data == _encode_reference(reference[1], Limits())


@pytest.mark.parametrize("hex_bytes", [
    "82a16201a16102",  # unsorted keys: the fast path alone would re-pack them unchanged
    "cb3ff0000000000000",  # float64: packs back to the same bytes
    "91cb3ff0000000000000",  # float64 inside an array
    "81c40161" + "01",  # bytes key: packs back to the same bytes
    "c70001",  # ext8 of length zero: packs back to the same bytes
])
def test_inputs_that_survive_a_bare_re_pack_are_still_refused(hex_bytes: str) -> None:
    """What ``packb(unpackb(data)) == data`` alone would accept: the fast path must not."""
    data = bytes.fromhex(hex_bytes)
    with pytest.raises(DecodeError):
        decode(data)
    with pytest.raises(DecodeError):
        _decode_reference(data)


def test_depth_limit_is_the_same_on_both_paths() -> None:
    for limit in (1, 2, 5):
        limits = Limits(depth_max=limit)
        for depth in range(limit + 3):
            data = bytes([0x91]) * depth + b"\xc0"
            nested = bytes([0x81, 0xa1, 0x61]) * depth + b"\xc0"
            for sample in (data, nested):
                assert _outcome(decode, sample, limits) == _outcome(
                    _decode_reference, sample, limits), (limit, depth, sample.hex())


# --------------------------------------------------------------------------- arrays of bytes


@settings(max_examples=100, deadline=None)
@given(st.lists(values, max_size=8))
def test_encode_array_and_split_array_are_inverse(items: list[Any]) -> None:
    parts = [encode(item) for item in items]
    assembled = encode_array(parts)
    assert assembled == encode(items)
    assert split_array(assembled) == parts


@pytest.mark.parametrize(("hex_bytes", "why"), [
    ("dc000101", "array16 header for a fixarray"),
    ("920101" + "01", "trailing byte"),
    ("9201", "truncated"),
    ("01", "not an array"),
    ("", "empty"),
])
def test_split_array_refuses(hex_bytes: str, why: str) -> None:
    with pytest.raises(DecodeError):
        split_array(bytes.fromhex(hex_bytes))

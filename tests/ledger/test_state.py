"""The authenticated state tree (ledger.state): roots, versions, proofs and their failures.

Roots are checked against an independent, naive definition of the compressed sparse
Merkle tree (``reference_root`` below), so a bug shared by ``apply`` and ``compute_root``
cannot hide.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.encoding import decode, encode
from ledger.errors import CorruptionError, InvalidProof, StoreError
from ledger.hashing import Tag, sha256, tagged_hash
from ledger.state import (
    EMPTY_STATE_ROOT,
    KEY_BYTES_MAX,
    LATEST_VERSION_KEY,
    PLACEHOLDER_HASH,
    PROOF_SIBLINGS_MAX,
    VALUE_BYTES_MAX,
    MemoryNodeStore,
    StateProof,
    StateTree,
    compute_root,
    verify_state_proof,
)

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A small key pool makes updates, overwrites and deletions of the same keys frequent.
POOL = [bytes([i]) for i in range(24)] + [b"", b"deliberation/2024-017", b"x" * KEY_BYTES_MAX]
keys = st.sampled_from(POOL)
values = st.binary(max_size=8)
changes = st.dictionaries(keys, st.none() | values, max_size=12)


def reference_root(items: Mapping[bytes, bytes]) -> bytes:
    """The root by its definition: split the leaves bit by bit; one leaf is its own hash."""
    leaves = sorted(
        (int.from_bytes(tagged_hash(Tag.STATE_KEY, k), "big"), tagged_hash(Tag.STATE_KEY, k), v)
        for k, v in items.items()
    )

    def subtree(group: list[tuple[int, bytes, bytes]], bit: int) -> bytes:
        if not group:
            return tagged_hash(Tag.STATE_NODE, b"")
        if len(group) == 1:
            _, kh, value = group[0]
            return tagged_hash(Tag.STATE_LEAF, kh + sha256(value))
        left = [leaf for leaf in group if not leaf[0] >> (255 - bit) & 1]
        right = [leaf for leaf in group if leaf[0] >> (255 - bit) & 1]
        return tagged_hash(Tag.STATE_NODE, subtree(left, bit + 1) + subtree(right, bit + 1))

    return subtree(leaves, 0)


def applied(
    state: Mapping[bytes, bytes], change: Mapping[bytes, bytes | None]
) -> dict[bytes, bytes]:
    """The state after ``change`` (``None``: the key is deleted), as a plain dict."""
    new = dict(state)
    for key, value in change.items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    return new


def flip(data: bytes, index: int) -> bytes:
    index %= len(data)
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# ----------------------------------------------------------------------------- roots, versions


def test_known_roots_are_pinned() -> None:
    """The hashing rules are consensus-critical: these values must never change."""
    assert EMPTY_STATE_ROOT == PLACEHOLDER_HASH == tagged_hash(Tag.STATE_NODE, b"")
    assert compute_root({}) == EMPTY_STATE_ROOT
    single = tagged_hash(Tag.STATE_LEAF, tagged_hash(Tag.STATE_KEY, b"a") + sha256(b"1"))
    assert compute_root({b"a": b"1"}) == single
    assert compute_root({b"a": b"1", b"b": b"2"}).hex() == (
        reference_root({b"a": b"1", b"b": b"2"}).hex()
    )
    assert EMPTY_STATE_ROOT.hex() == tagged_hash(Tag.STATE_NODE, b"").hex()


@PROPERTY
@given(st.lists(changes, min_size=1, max_size=8))
def test_every_version_matches_the_definition_and_stays_readable(
    sequence: list[dict[bytes, bytes | None]],
) -> None:
    tree = StateTree(MemoryNodeStore())
    history: list[dict[bytes, bytes]] = []
    state: dict[bytes, bytes] = {}
    for version, change in enumerate(sequence):
        state = applied(state, change)
        root = tree.apply(version, change)
        assert root == compute_root(state) == reference_root(state)
        assert tree.latest_version() == version
        history.append(state)
    for version, past in enumerate(history):  # old versions survive later updates
        assert tree.root(version) == reference_root(past)
        for key in POOL:
            assert tree.get(key, version) == past.get(key)


@PROPERTY
@given(st.dictionaries(keys, values, max_size=20), st.data())
def test_root_does_not_depend_on_the_order_of_updates(
    items: dict[bytes, bytes], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(list(items)))
    tree = StateTree(MemoryNodeStore())
    tree.apply(0, {})
    for version, key in enumerate(order, start=1):
        tree.apply(version, {key: items[key]})
    assert tree.root(len(order)) == compute_root(items)


def test_deleting_everything_gives_the_empty_root_and_keeps_history() -> None:
    tree = StateTree(MemoryNodeStore())
    items = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(300)}
    full = tree.apply(0, items)
    assert tree.apply(1, dict.fromkeys(items)) == EMPTY_STATE_ROOT
    assert tree.root(1) == EMPTY_STATE_ROOT
    assert tree.get(b"key-7", 1) is None
    assert tree.root(0) == full
    assert tree.get(b"key-7", 0) == b"value-7"
    assert tree.apply(2, {b"key-7": b"again"}) == compute_root({b"key-7": b"again"})
    assert tree.get(b"key-7", 0) == b"value-7"


def test_an_empty_block_keeps_the_root_and_writes_one_node() -> None:
    store = MemoryNodeStore()
    tree = StateTree(store)
    root = tree.apply(0, {b"a": b"1", b"b": b"2", b"c": b"3"})
    before = len(store)
    assert tree.apply(1, {}) == root
    assert tree.apply(2, {b"zz": None, b"a": b"1"}) == root  # no-op changes
    assert len(store) == before + 2  # one root per version, the latest marker rewritten
    assert tree.get(b"b", 2) == b"2"


def test_an_update_writes_only_the_nodes_on_its_path() -> None:
    store = MemoryNodeStore()
    tree = StateTree(store)
    tree.apply(0, {i.to_bytes(4, "big"): b"v" for i in range(3000)})
    before = set(store.nodes)
    tree.apply(1, {(17).to_bytes(4, "big"): b"changed"})
    written = set(store.nodes) - before
    depth_nibbles = len(tree.prove((17).to_bytes(4, "big"), 1).siblings) // 4 + 1
    # one node per nibble level on the path, plus the leaf; the latest marker is rewritten
    assert 2 <= len(written) <= depth_nibbles + 1
    assert LATEST_VERSION_KEY not in written


def reachable(store: MemoryNodeStore, version: int, path: str = "") -> set[bytes]:
    """Store keys of every node the root of ``version`` leads to."""
    from ledger.state import _decode_node, node_key  # internals: the layout is under test

    key = node_key(version, path)
    node = _decode_node(key, store.nodes[key])
    found = {key}
    if isinstance(node, dict):
        for nibble, child in node.items():
            found |= reachable(store, child[0], path + format(nibble, "x"))
    return found


@PROPERTY
@given(st.lists(changes, min_size=1, max_size=8))
def test_every_stored_node_belongs_to_some_version(
    sequence: list[dict[bytes, bytes | None]],
) -> None:
    """No garbage: leaves that move up when a subtree shrinks are not left behind."""
    store = MemoryNodeStore()
    tree = StateTree(store)
    for version, change in enumerate(sequence):
        tree.apply(version, change)
    live = set().union(*(reachable(store, v) for v in range(len(sequence))))
    assert set(store.nodes) == live | {LATEST_VERSION_KEY}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_long_seeded_history_keeps_every_version_and_no_garbage(seed: int) -> None:
    """Dense updates on a small key space: subtrees split, shrink and merge many times."""
    rnd = random.Random(seed)
    store = MemoryNodeStore()
    tree = StateTree(store)
    history: list[dict[bytes, bytes]] = []
    state: dict[bytes, bytes] = {}
    for version in range(50):
        change: dict[bytes, bytes | None] = {}
        for _ in range(rnd.randint(0, 30)):
            key = bytes([rnd.randrange(64)])
            change[key] = None if rnd.random() < 0.45 else bytes([rnd.randrange(4)])
        state = applied(state, change)
        assert tree.apply(version, change) == reference_root(state)
        history.append(state)
    for version, past in enumerate(history):
        assert tree.root(version) == reference_root(past)
        assert sorted(tree.items(version)) == sorted(past.items())
        for i in range(64):
            assert tree.get(bytes([i]), version) == past.get(bytes([i]))
    live = set().union(*(reachable(store, v) for v in range(len(history))))
    assert set(store.nodes) == live | {LATEST_VERSION_KEY}


def test_versions_are_applied_one_block_at_a_time() -> None:
    tree = StateTree(MemoryNodeStore())
    with pytest.raises(StoreError, match="no state at height 0"):
        tree.root(0)
    tree.apply(0, {b"a": b"1"})
    with pytest.raises(StoreError, match="next: 1"):
        tree.apply(2, {b"a": b"2"})
    with pytest.raises(StoreError, match="next: 1"):
        tree.apply(0, {b"a": b"2"})
    with pytest.raises(StoreError, match="no state at height 1"):
        tree.get(b"a", 1)
    with pytest.raises(StoreError):
        tree.root(-1)
    assert tree.get(b"a", 0) == b"1"


def test_a_state_may_start_at_a_later_height() -> None:
    tree = StateTree(MemoryNodeStore())
    assert tree.apply(5, {b"a": b"1"}) == compute_root({b"a": b"1"})
    with pytest.raises(StoreError, match="no state at height 4"):
        tree.root(4)
    with pytest.raises(StoreError, match="next: 6"):
        tree.apply(7, {})


def test_oversized_keys_and_values_are_rejected_without_writing() -> None:
    store = MemoryNodeStore()
    tree = StateTree(store)
    with pytest.raises(StoreError, match=f"at most {KEY_BYTES_MAX} bytes"):
        tree.apply(0, {b"k" * (KEY_BYTES_MAX + 1): b"v"})
    with pytest.raises(StoreError, match=str(VALUE_BYTES_MAX)):
        tree.apply(0, {b"k": b"v" * (VALUE_BYTES_MAX + 1)})
    with pytest.raises(StoreError):
        tree.apply(0, {b"a": b"v", "text key": b"v"})  # type: ignore[dict-item]  # bad input on purpose
    assert len(store) == 0
    assert tree.latest_version() is None
    big = {b"k" * KEY_BYTES_MAX: b"v" * VALUE_BYTES_MAX, b"": b""}
    tree.apply(0, big)
    assert tree.get(b"k" * KEY_BYTES_MAX, 0) == b"v" * VALUE_BYTES_MAX
    assert tree.get(b"", 0) == b""


def test_a_damaged_node_is_reported_not_returned() -> None:
    store = MemoryNodeStore()
    tree = StateTree(store)
    tree.apply(0, {b"a": b"secret value", b"b": b"other"})
    for node_key, data in list(store.nodes.items()):
        if data.endswith(b"secret value"):
            store.nodes[node_key] = data[:-1] + b"X"
    with pytest.raises(CorruptionError, match="restore the data directory"):
        tree.get(b"a", 0)
    with pytest.raises(CorruptionError):
        tree.prove(b"a", 0)


# ----------------------------------------------------------------------------- proofs


def proof_mutations(proof: StateProof) -> list[StateProof]:
    """Every single-byte flip of the proof, plus structural changes."""
    out: list[StateProof] = []
    for i, sibling in enumerate(proof.siblings):
        for j in (0, 17, 31):
            siblings = list(proof.siblings)
            siblings[i] = flip(sibling, j)
            out.append(StateProof(proof.leaf, tuple(siblings)))
    if proof.leaf is not None:
        kh, vh = proof.leaf
        out += [StateProof((flip(kh, j), vh), proof.siblings) for j in (0, 5, 31)]
        out += [StateProof((kh, flip(vh, j)), proof.siblings) for j in (0, 31)]
        out.append(StateProof(None, proof.siblings))
    else:
        out.append(StateProof((PLACEHOLDER_HASH, PLACEHOLDER_HASH), proof.siblings))
    if proof.siblings:
        out.append(StateProof(proof.leaf, proof.siblings[:-1]))
        out.append(StateProof(proof.leaf, proof.siblings[1:]))
    out.append(StateProof(proof.leaf, (*proof.siblings, PLACEHOLDER_HASH)))
    return out


@PROPERTY
@given(st.dictionaries(keys, values, max_size=25), keys, st.integers(0, 31))
def test_proofs_verify_and_fail_after_any_change(
    items: dict[bytes, bytes], key: bytes, position: int
) -> None:
    tree = StateTree(MemoryNodeStore())
    root = tree.apply(0, items)
    value = items.get(key)
    proof = tree.prove(key, 0)
    verify_state_proof(root, key, value, proof)
    # the proof survives its canonical encoding (JSON, receipts)
    again = StateProof.from_value(decode(encode(proof.to_value())))
    assert again == proof
    verify_state_proof(root, key, value, again)

    for bad in proof_mutations(proof):
        with pytest.raises(InvalidProof):
            verify_state_proof(root, key, value, bad)
    with pytest.raises(InvalidProof):
        verify_state_proof(flip(root, position), key, value, proof)
    for other_value in (None, b"", flip(value or b"\x00", position), (value or b"") + b"!"):
        if other_value != value:
            with pytest.raises(InvalidProof):
                verify_state_proof(root, key, other_value, proof)
    if value is not None:  # an inclusion proof names its key
        with pytest.raises(InvalidProof):
            verify_state_proof(root, flip(key + b"\x00", position), value, proof)


@PROPERTY
@given(st.dictionaries(keys, values, max_size=25), keys)
def test_a_proof_never_supports_a_false_claim(items: dict[bytes, bytes], key: bytes) -> None:
    """Moving a proof to another key or value: it may still verify only if the claim is
    true (an absence proof covers every key of the empty or one-leaf subtree it reaches)."""
    tree = StateTree(MemoryNodeStore())
    root = tree.apply(0, items)
    proof = tree.prove(key, 0)
    claims = {None, b"", *items.values()}
    for other_key in POOL:
        for claimed in claims:
            try:
                verify_state_proof(root, other_key, claimed, proof)
            except InvalidProof:
                continue
            assert items.get(other_key) == claimed


def test_proofs_at_old_versions_verify_against_old_roots() -> None:
    tree = StateTree(MemoryNodeStore())
    roots = [tree.apply(v, {b"counter": str(v).encode(), str(v).encode(): b"x"}) for v in range(20)]
    for version, root in enumerate(roots):
        proof = tree.prove(b"counter", version)
        verify_state_proof(root, b"counter", str(version).encode(), proof)
        absent = tree.prove(str(version + 1).encode(), version)
        verify_state_proof(root, str(version + 1).encode(), None, absent)
        if version + 1 < len(roots):
            with pytest.raises(InvalidProof):
                verify_state_proof(roots[version + 1], b"counter", str(version).encode(), proof)


def test_proof_of_the_empty_state() -> None:
    tree = StateTree(MemoryNodeStore())
    tree.apply(0, {})
    proof = tree.prove(b"anything", 0)
    assert proof == StateProof(None, ())
    verify_state_proof(EMPTY_STATE_ROOT, b"anything", None, proof)
    with pytest.raises(InvalidProof):
        verify_state_proof(EMPTY_STATE_ROOT, b"anything", b"", proof)


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        [None],
        [None, [b"short"]],
        [None, [b"\x00" * 32] * (PROOF_SIBLINGS_MAX + 1)],
        [[b"\x00" * 32], []],
        [[b"\x00" * 32, b"\x00" * 31], []],
        [[b"\x00" * 32, "text"], []],
        [None, "siblings"],
        [None, [], 3],
    ],
)
def test_malformed_proofs_are_rejected_on_decoding(value: object) -> None:
    with pytest.raises(InvalidProof):
        StateProof.from_value(value)


def test_an_overlong_proof_is_rejected_by_the_verifier() -> None:
    proof = StateProof(None, (PLACEHOLDER_HASH,) * (PROOF_SIBLINGS_MAX + 1))
    with pytest.raises(InvalidProof, match="at most 256"):
        verify_state_proof(EMPTY_STATE_ROOT, b"k", None, proof)


@pytest.mark.parametrize(
    "proof",
    [
        StateProof(None, (b"\x00" * 31,)),
        StateProof(None, ("not bytes",)),  # type: ignore[arg-type]  # bad input on purpose
        StateProof((b"\x00" * 32, b"\x00"), ()),
        StateProof((b"\x00" * 32, None), ()),  # type: ignore[arg-type]  # bad input on purpose
    ],
)
def test_a_badly_built_proof_is_refused_not_crashed_on(proof: StateProof) -> None:
    for value in (None, b"v"):
        with pytest.raises(InvalidProof):
            verify_state_proof(EMPTY_STATE_ROOT, b"k", value, proof)

"""The fast paths of the state tree (ledger.state): node cache and incremental hashing.

An update keeps the binary hashes inside each cached internal node and recomputes only
those above the children it changed, and the nodes it writes enter the cache once the
store accepted them (docs/adr/0006-authenticated-state.md). None of this may change a
root, a proof or a stored byte. The checks here are independent of that code:

- ``check_stored_version`` reads every stored node of a version with its own small
  decoder (the layout of ADR 0006) and recomputes every hash inside every node from
  scratch, from the leaves up;
- roots are also compared with ``compute_root`` of the expected pairs (a fresh tree,
  built in one version: no cache, no incremental hashing);
- a digest of every stored key and byte after a seeded history is pinned, as written
  by the implementation before these fast paths (commit 71ab31e).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import StoreError
from ledger.hashing import Tag, sha256, tagged_hash
from ledger.kv import KV, Batch
from ledger.state import (
    DECODED_DEPTH_MAX,
    EMPTY_STATE_ROOT,
    NODE_CACHE_ENTRIES_MAX,
    STORED_DEPTH_MAX,
    STORED_ENTRY_OVERHEAD_BYTES,
    STORED_NODE_CACHE_BYTES_MAX,
    MemoryNodeStore,
    StateTree,
    compute_root,
    key_hash,
    node_key,
    verify_state_proof,
)
from ledger.state_store import PersistentState
from tests.ledger.test_state import applied

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PLACEHOLDER = tagged_hash(Tag.STATE_NODE, b"")


def _sharing(prefix_nibbles: int, count: int, stem: bytes) -> list[bytes]:
    """``count`` keys whose key hashes share their first ``prefix_nibbles`` nibbles: they
    make chains of internal nodes, which collapse again when keys are deleted."""
    seen: dict[str, list[bytes]] = {}
    for i in range(1_000_000):
        key = stem + b"%d" % i
        group = seen.setdefault(key_hash(key).hex()[:prefix_nibbles], [])
        group.append(key)
        if len(group) == count:
            return group
    raise AssertionError("no such keys found")


# A small pool: inserts, overwrites and deletes of the same keys are frequent; the
# clusters reach depth 3 to 5 nibbles, so lone leaves move up several levels.
POOL = (
    [b"k%d" % i for i in range(40)]
    + _sharing(3, 3, b"triple/")
    + _sharing(5, 2, b"pair/")
    + _sharing(2, 4, b"four/")
)
changes = st.dictionaries(st.sampled_from(POOL), st.none() | st.binary(max_size=6), max_size=16)
cache_sizes = st.sampled_from([0, 1, 3, NODE_CACHE_ENTRIES_MAX])
stored_sizes = st.sampled_from([0, 1, 600, STORED_NODE_CACHE_BYTES_MAX])


# ----------------------------------------------------------------------------- reference


def _fold_from_scratch(slots: list[tuple[bytes, str]]) -> tuple[bytes, str]:
    """Hash of a range of binary subtrees, each (hash, "empty" | "leaf" | "many"), by the
    definition: an empty range or a lone leaf is its own hash, anything else is hashed."""
    if len(slots) == 1:
        return slots[0]
    half = len(slots) // 2
    left, right = _fold_from_scratch(slots[:half]), _fold_from_scratch(slots[half:])
    if left[1] == "empty" and right[1] != "many":
        return right
    if right[1] == "empty" and left[1] == "leaf":
        return left
    return tagged_hash(Tag.STATE_NODE, left[0] + right[0]), "many"


def _subtree(
    store: MemoryNodeStore, version: int, path: str, pairs: dict[bytes, bytes]
) -> tuple[bytes, str]:
    """Decode the node stored at (version, path) by the layout of ADR 0006, recompute its
    hash from scratch, collect its leaves into ``pairs``."""
    data = store.nodes[node_key(version, path)]
    if data[0] == 0x00:
        assert data == b"\x00" and path == ""
        return PLACEHOLDER, "empty"
    if data[0] == 0x01:
        kh, vh = data[1:33], data[33:65]
        size = int.from_bytes(data[65:67], "big")
        key, value = data[67 : 67 + size], data[67 + size :]
        assert kh == tagged_hash(Tag.STATE_KEY, key) and vh == sha256(value)
        assert kh.hex().startswith(path)  # a leaf lies on its own key's path
        pairs[key] = value
        return tagged_hash(Tag.STATE_LEAF, kh + vh), "leaf"
    assert data[0] == 0x02
    bitmap, leafmask = int.from_bytes(data[1:3], "big"), int.from_bytes(data[3:5], "big")
    present = [n for n in range(16) if bitmap >> n & 1]
    count = len(present)
    assert len(data) == 5 + 40 * count
    slots: list[tuple[bytes, str]] = [(PLACEHOLDER, "empty")] * 16
    for i, nibble in enumerate(present):
        child_version = int.from_bytes(data[5 + 8 * i : 13 + 8 * i], "big")
        stored_hash = data[5 + 8 * count + 32 * i : 5 + 8 * count + 32 * i + 32]
        assert child_version <= version
        child = _subtree(store, child_version, path + format(nibble, "x"), pairs)
        assert child[0] == stored_hash, f"stale child hash under {path or '(root)'}"
        assert (child[1] == "leaf") == bool(leafmask >> nibble & 1)
        slots[nibble] = child
    # no chain of single-child nodes: a node holding one leaf would be that leaf
    assert not (count == 1 and leafmask), "a lone leaf was left below an internal node"
    return _fold_from_scratch(slots)


def check_stored_version(
    store: MemoryNodeStore, tree: StateTree, version: int, expected: Mapping[bytes, bytes]
) -> None:
    pairs: dict[bytes, bytes] = {}
    root, _ = _subtree(store, version, "", pairs)
    assert pairs == expected
    assert tree.root(version) == root
    assert root == (compute_root(expected) if expected else EMPTY_STATE_ROOT)


# ----------------------------------------------------------------------------- properties


@PROPERTY
@given(st.lists(changes, min_size=1, max_size=10), cache_sizes, stored_sizes)
def test_every_version_matches_a_recomputation_from_scratch(
    sequence: list[dict[bytes, bytes | None]], cache_entries_max: int, stored_bytes_max: int
) -> None:
    """Whatever the sizes of the two cache tiers (either may be 0): the same roots,
    proofs and stored bytes, and the tiers hold only what the store holds."""
    store = MemoryNodeStore()
    tree = StateTree(store, cache_entries_max=cache_entries_max,
                     stored_cache_bytes_max=stored_bytes_max)
    history: list[dict[bytes, bytes]] = []
    state: dict[bytes, bytes] = {}
    for version, change in enumerate(sequence):
        state = applied(state, change)
        root = tree.apply(version, change)
        history.append(state)
        check_stored_version(store, tree, version, state)
        check_tiers(tree, store, stored_bytes_max)
        assert root == tree.root(version)
    for version, expected in enumerate(history):  # older versions, read after newer ones
        check_stored_version(store, tree, version, expected)
        root = tree.root(version)
        for key in POOL[::7]:
            assert tree.get(key, version) == expected.get(key)
            verify_state_proof(root, key, expected.get(key), tree.prove(key, version))


@PROPERTY
@given(st.lists(changes, min_size=1, max_size=6), cache_sizes)
def test_a_cold_tree_reads_what_a_warm_tree_wrote(
    sequence: list[dict[bytes, bytes | None]], cache_entries_max: int
) -> None:
    """A tree opened on the store afterwards (empty cache, every inner hash recomputed
    from stored bytes) continues the history with the same roots and bytes."""
    warm_store, cold_store = MemoryNodeStore(), MemoryNodeStore()
    warm = StateTree(warm_store, cache_entries_max=cache_entries_max)
    for version, change in enumerate(sequence):
        warm.apply(version, change)
        cold_store.nodes = dict(warm_store.nodes)
        cold = StateTree(cold_store)
        follow_up = {POOL[version % len(POOL)]: None, POOL[-1 - version]: b"next"}
        assert cold.apply(version + 1, follow_up) == StateTree(dict_copy(warm_store)).apply(
            version + 1, follow_up
        )
        assert cold.root(version) == warm.root(version)


def dict_copy(store: MemoryNodeStore) -> MemoryNodeStore:
    copy = MemoryNodeStore()
    copy.nodes = dict(store.nodes)
    return copy


def check_tiers(tree: StateTree, store: MemoryNodeStore, stored_bytes_max: int) -> None:
    """What the tiers hold: only bytes the store holds under the same key, within bounds."""
    reader = tree._reader
    counted = 0
    for key, data in reader.stored.items():
        assert store.nodes.get(key) == data, "the stored tier holds bytes the store has not"
        assert key[8] <= STORED_DEPTH_MAX
        counted += len(data) + STORED_ENTRY_OVERHEAD_BYTES
    assert counted == reader.stored_bytes <= stored_bytes_max
    assert len(reader.cache) <= reader.entries_max
    assert all(key in store.nodes and key[8] <= DECODED_DEPTH_MAX for key in reader.cache)


class FailingStore(MemoryNodeStore):
    """A store whose next ``write_nodes`` fails (a full disk, a closed database)."""

    __slots__ = ("fail_next",)

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = False

    def write_nodes(self, nodes: Mapping[bytes, bytes], *, version: int) -> None:
        if self.fail_next:
            self.fail_next = False
            raise StoreError("disk full")
        super().write_nodes(nodes, version=version)


@PROPERTY
@given(st.lists(changes, min_size=1, max_size=6), changes, changes, cache_sizes, stored_sizes)
def test_a_failed_write_leaves_nothing_in_the_cache(
    sequence: list[dict[bytes, bytes | None]],
    lost: dict[bytes, bytes | None],
    retried: dict[bytes, bytes | None],
    cache_entries_max: int,
    stored_bytes_max: int,
) -> None:
    """The nodes of a version whose write failed are never read back, from either cache
    tier: the retried version (other changes, same node keys) reads as written, at every
    height."""
    store = FailingStore()
    tree = StateTree(store, cache_entries_max=cache_entries_max,
                     stored_cache_bytes_max=stored_bytes_max)
    state: dict[bytes, bytes] = {}
    for version, change in enumerate(sequence):
        tree.apply(version, change)
        state = applied(state, change)
    failed = len(sequence)
    before = dict(store.nodes)
    store.fail_next = True
    with pytest.raises(StoreError, match="disk full"):
        tree.apply(failed, lost)
    assert store.nodes == before
    check_tiers(tree, store, stored_bytes_max)
    assert tree.latest_version() == failed - 1
    with pytest.raises(StoreError, match="no state at height"):
        tree.root(failed)
    check_stored_version(store, tree, failed - 1, state)

    retried_state = applied(state, retried)
    root = tree.apply(failed, retried)
    assert root == (compute_root(retried_state) if retried_state else EMPTY_STATE_ROOT)
    check_stored_version(store, tree, failed, retried_state)
    check_tiers(tree, store, stored_bytes_max)
    for key in POOL:
        assert tree.get(key, failed) == retried_state.get(key)
        verify_state_proof(root, key, retried_state.get(key), tree.prove(key, failed))
    # and the history goes on from the retried version
    tree.apply(failed + 1, lost)
    check_stored_version(store, tree, failed + 1, applied(retried_state, lost))


# ----------------------------------------------------------------------------- stored bytes


def test_stored_keys_and_bytes_are_those_of_the_previous_implementation() -> None:
    """Every node key and byte of a seeded history (inserts, overwrites, deletes, empty
    versions) equals what the implementation before the fast paths wrote: its digest was
    computed with commit 71ab31e."""
    rnd = random.Random(11)
    store = MemoryNodeStore()
    tree = StateTree(store)
    for version in range(40):
        change: dict[bytes, bytes | None] = {}
        for _ in range(rnd.choice([0, 1, 5, 30, 120])):
            key = b"k%d" % rnd.randrange(300)
            change[key] = None if rnd.random() < 0.3 else rnd.randbytes(rnd.randrange(20))
        tree.apply(version, change)
    digest = hashlib.sha256()
    for key in sorted(store.nodes):
        data = store.nodes[key]
        digest.update(len(key).to_bytes(4, "big") + key + len(data).to_bytes(4, "big") + data)
    assert len(store.nodes) == 1796
    assert digest.hexdigest() == (
        "3eb59a4ce2741115e3b66ac4b36c381527e295b62a8a0007ac20192b64c23859"
    )
    assert tree.root(39).hex() == (
        "f32fec506d0e3f6c3738a7b32bc793b7f120d885a8e6a1cf57973266918c1749"
    )


def test_the_cache_size_is_bounded() -> None:
    with pytest.raises(StoreError, match="node cache"):
        StateTree(MemoryNodeStore(), cache_entries_max=NODE_CACHE_ENTRIES_MAX + 1)
    with pytest.raises(StoreError, match="node cache"):
        StateTree(MemoryNodeStore(), cache_entries_max=-1)


# ----------------------------------------------------------------------------- on LevelDB


@contextmanager
def _failing_batch(self: KV, *, sync: bool = True) -> Iterator[Batch]:
    raise StoreError("disk full")
    yield  # pragma: no cover - a generator for contextmanager


def test_a_failed_batch_of_persistent_state_caches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On LevelDB the tree's one write is the synced batch of nodes and index: when it
    fails, the version is absent everywhere, and the retried version reads as written
    (also after reopening the data directory)."""
    kv = KV.open(tmp_path / "db")
    try:
        state = PersistentState(kv.prefixed(b"s/"))
        base = {b"k%d" % i: b"v%d" % i for i in range(300)}
        state.apply(0, base)
        lost: dict[bytes, bytes | None] = {b"k%d" % i: b"lost" for i in range(0, 300, 3)}
        with monkeypatch.context() as patch:
            patch.setattr(KV, "batch", _failing_batch)
            with pytest.raises(StoreError, match="disk full"):
                state.apply(1, lost)
        assert state.latest_version() == 0
        assert state.get_latest(b"k0") == b"v0"
        retried: dict[bytes, bytes | None] = {b"k%d" % i: None for i in range(0, 300, 2)}
        root = state.apply(1, retried)
        expected = applied(base, retried)
        assert root == compute_root(expected)
        for key in (b"k0", b"k3", b"k5", b"k6"):
            assert state.tree.get(key, 1) == expected.get(key)
            verify_state_proof(root, key, expected.get(key), state.prove(key, 1))
        assert state.verify_index() == len(expected)
    finally:
        kv.close()
    reopened = KV.open(tmp_path / "db")
    try:
        state = PersistentState(reopened.prefixed(b"s/"))
        assert state.root(1) == root
        assert dict(state.tree.items(1)) == expected
    finally:
        reopened.close()


def test_the_tree_of_persistent_state_is_not_written_around_it(tmp_path: Path) -> None:
    """Its writes carry the index: writing the tree alone would leave the index behind."""
    kv = KV.open(tmp_path / "db")
    try:
        state = PersistentState(kv.prefixed(b"s/"))
        state.apply(0, {b"a": b"1"})
        with pytest.raises(StoreError, match=r"PersistentState\.apply"):
            state.tree.apply(1, {b"a": b"2"})
        assert state.latest_version() == 0 and state.get_latest(b"a") == b"1"
        assert state.apply(1, {b"a": b"2"}) == compute_root({b"a": b"2"})
    finally:
        kv.close()

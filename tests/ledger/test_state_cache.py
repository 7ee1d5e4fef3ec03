"""The two tiers of the state tree's node cache (ledger.state, ADR 0006).

Decoded nodes (with inner hashes) for the upper levels, stored bytes for the level below:
here, that the stored tier spares store reads and stays within its bound. That neither
tier changes a root, a proof or a stored byte, and that both hold only what the store
holds (also after a failed write), are test_state_fast's property tests, which draw the
sizes of both tiers.
"""

from __future__ import annotations

import random

import pytest

from ledger.errors import StoreError
from ledger.state import (
    STORED_DEPTH_MAX,
    STORED_NODE_CACHE_BYTES_MAX,
    MemoryNodeStore,
    StateTree,
)
from tests.ledger.test_state_fast import (
    check_tiers,
)


class CountingStore(MemoryNodeStore):
    """Counts reads of internal nodes (first byte 2) that the tiers may hold (depth at
    most ``STORED_DEPTH_MAX``)."""

    __slots__ = ("internal_reads",)

    def __init__(self) -> None:
        super().__init__()
        self.internal_reads = 0

    def get_node(self, node_key: bytes) -> bytes | None:
        data = super().get_node(node_key)
        if data is not None and data[:1] == b"\x02" and node_key[8] <= STORED_DEPTH_MAX:
            self.internal_reads += 1
        return data


def _grown_tree(stored_bytes_max: int) -> tuple[StateTree, CountingStore, list[bytes]]:
    """A tree of 6,000 keys grown in versions of 400 new keys (depth 4 is populated)."""
    rnd = random.Random(5)
    store = CountingStore()
    tree = StateTree(store, stored_cache_bytes_max=stored_bytes_max)
    keys = [b"key/%d" % n for n in range(6_000)]
    for version in range(15):
        tree.apply(version, {key: rnd.randbytes(20) for key in keys[version * 400 :][:400]})
    return tree, store, keys


def test_the_stored_tier_spares_store_reads_of_internal_nodes() -> None:
    """Updates of a grown tree read internal nodes from memory, not from the store,
    with the same roots as without the tier."""
    with_tier, with_store, keys = _grown_tree(STORED_NODE_CACHE_BYTES_MAX)
    without_tier, without_store, _ = _grown_tree(0)
    with_store.internal_reads = without_store.internal_reads = 0
    for version in range(15, 20):
        change: dict[bytes, bytes | None] = {key: b"new" for key in keys[version::97]}
        assert with_tier.apply(version, change) == without_tier.apply(version, change)
    assert without_store.internal_reads > 0
    assert with_store.internal_reads == 0


def test_the_stored_tier_is_bounded() -> None:
    tree, store, _ = _grown_tree(5_000)
    check_tiers(tree, store, 5_000)
    assert tree._reader.stored, "a few nodes fit"
    with pytest.raises(StoreError, match="stored-node cache"):
        StateTree(MemoryNodeStore(), stored_cache_bytes_max=STORED_NODE_CACHE_BYTES_MAX + 1)
    with pytest.raises(StoreError, match="stored-node cache"):
        StateTree(MemoryNodeStore(), stored_cache_bytes_max=-1)

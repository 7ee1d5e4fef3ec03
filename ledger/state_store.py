"""The authenticated state on LevelDB: tree nodes plus a flat index of the latest values.

Rules:
- ``KVNodeStore`` keeps the nodes of a ``ledger.state.StateTree`` in a ``KV``, one entry
  per node under its node key (version || nibble path); ``write_nodes`` is one synced
  LevelDB batch.
- ``PersistentState`` lays out the KV it is given (the node passes the chain store's
  ``s/`` space) as:
    ``n/`` + node key          tree nodes (ledger.state);
    ``latest``                 the latest version applied (the tree's marker);
    ``i/`` + state key         the value of that key in the latest version (flat index).
  ``apply`` writes the new nodes, the index changes and the marker in ONE synced batch,
  so after a crash the index and the recorded version always agree: either the whole
  version is there or none of it. In a data directory the nodes have a LevelDB of their
  own (``ledger.layout.STORES``), written first: a crash may leave nodes of the version
  above the marker, never a marker without its nodes; nodes are keyed by version, so
  those are read by nothing until applying that version again writes them again. That
  batch is the tree's own ``write_nodes`` call, so the tree caches the nodes of a
  version only once the batch holding them (and the index) was written. A caller may
  add its own writes to that batch (``also``: the node stores the block that produced
  the version with it, so a crash never separates a block from its state).
- A marker still under ``n/`` (written by an earlier version, when it was a node key) is
  moved to ``latest`` on opening, before anything reads it.
- Reading the latest value of a key is one LevelDB read (``get_latest``), or none for a
  key read or written recently: the latest values (absent ones too) of the last
  ``LATEST_CACHE_ENTRIES_MAX`` keys are kept in memory, values of at most
  ``LATEST_CACHE_VALUE_BYTES_MAX`` bytes. The cache is written through by ``apply``
  once its batch is written (a failed write leaves it as it was), and this object is
  the only writer of its KV space, so it never holds a value the index does not.
  Reading at an older version, or proving, walks the tree (O(depth) reads).
- Nothing is ever deleted from the tree: every version stays provable (no pruning yet,
  see docs/adr/0006-authenticated-state.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from enum import Enum

from ledger.errors import CorruptionError, StoreError
from ledger.kv import KV, Batch
from ledger.layout import STATE_INDEX_PREFIX, STATE_NODES_PREFIX, STATE_VERSION_MARK
from ledger.lru import Lru
from ledger.state import (
    KEY_BYTES_MAX,
    LATEST_VERSION_KEY,
    StateProof,
    StateTree,
)

NODES_PREFIX = STATE_NODES_PREFIX
INDEX_PREFIX = STATE_INDEX_PREFIX
SCAN_ITEMS_MAX = 100_000


class _Unknown(Enum):
    """What the recent values answer for a key they do not hold (``None``: absent)."""

    KEY = 0


LATEST_CACHE_ENTRIES_MAX = 8_192
"""Keys whose latest value ``PersistentState`` keeps in memory, the least recently used
forgotten first. A contract reads the same few keys for every transaction (the signer's
enrolment, an aid scheme and its totals): through the overlays and LevelDB each read
cost about 25 µs on a busy node, a seventh of executing a disbursement (py-spy,
``tabellion bench``)."""
LATEST_CACHE_VALUE_BYTES_MAX = 4_096
"""Larger values are read from LevelDB every time: the cache holds at most about
``LATEST_CACHE_ENTRIES_MAX`` times this (32 MiB), typically a few MiB."""


def _index_damaged(version: int | None, what: str) -> CorruptionError:
    return CorruptionError(
        f"the latest-value index of the state (version {version}) disagrees with the state "
        f"tree: {what}; the data directory was altered or damaged: restore it from a "
        "healthy copy or resynchronise"
    )


class KVNodeStore:
    """A ``NodeStore`` over a ``KV`` (typically a prefixed view of the chain store)."""

    __slots__ = ("kv",)

    def __init__(self, kv: KV) -> None:
        self.kv = kv

    def get_node(self, node_key: bytes) -> bytes | None:
        return self.kv.get(node_key)

    def write_nodes(self, nodes: Mapping[bytes, bytes], *, version: int) -> None:
        with self.kv.batch(sync=True) as batch:
            for key, data in nodes.items():
                batch.put(key, data)


class _NodesWithIndex:
    """The tree's ``NodeStore`` inside ``PersistentState``: reads go to the stored nodes;
    the one ``write_nodes`` call of an ``apply`` writes the nodes, the latest-version
    marker and that version's index changes (``index_changes``, set by ``apply`` for the
    duration of the call), and the caller's own writes (``also``), in ONE synced batch."""

    __slots__ = ("also", "index_changes", "kv", "nodes")

    def __init__(self, kv: KV) -> None:
        self.kv = kv
        self.nodes = KVNodeStore(kv.prefixed(NODES_PREFIX))
        self.index_changes: Mapping[bytes, bytes | None] | None = None
        self.also: Callable[[Batch], None] | None = None

    def get_node(self, node_key: bytes) -> bytes | None:
        if node_key == LATEST_VERSION_KEY:
            return self.kv.get(STATE_VERSION_MARK)
        return self.nodes.get_node(node_key)

    def write_nodes(self, nodes: Mapping[bytes, bytes], *, version: int) -> None:
        changes = self.index_changes
        if changes is None:
            raise StoreError("the state is written through PersistentState.apply only")
        if LATEST_VERSION_KEY not in nodes:
            raise AssertionError("StateTree.apply always records the new version")
        with self.kv.batch(sync=True) as batch:
            if self.also is not None:
                self.also(batch)
            for node_key, data in nodes.items():
                if node_key == LATEST_VERSION_KEY:
                    batch.put(STATE_VERSION_MARK, data)
                else:
                    batch.put(NODES_PREFIX + node_key, data)
            for key in sorted(changes):
                value = changes[key]
                if value is None:
                    batch.delete(INDEX_PREFIX + key)
                else:
                    batch.put(INDEX_PREFIX + key, value)


class LatestView:
    """The latest state as a read-only view (``contracts.view.StateView``)."""

    __slots__ = ("_state",)

    def __init__(self, state: PersistentState) -> None:
        self._state = state

    def get(self, key: bytes) -> bytes | None:
        return self._state.get_latest(key)


class PersistentState:
    """The versioned authenticated state of a node, on LevelDB."""

    __slots__ = ("_index", "_kv", "_latest", "_nodes", "_recent", "_tree")

    def __init__(self, kv: KV) -> None:
        self._kv = kv
        self._index = kv.prefixed(INDEX_PREFIX)
        self._recent: Lru[bytes, bytes | None] = Lru(LATEST_CACHE_ENTRIES_MAX)
        """Latest values (``None``: absent) of recently read or written keys."""
        self._nodes = _NodesWithIndex(kv)
        self._move_legacy_marker()
        self._tree = StateTree(self._nodes)
        # This object is the only writer of its KV space, so the version it last
        # committed is the stored one; cached to spare a read on every ``get``.
        self._latest = self._tree.latest_version()

    def _move_legacy_marker(self) -> None:
        """The module's rules: the marker an earlier version kept as a node key."""
        legacy = self._nodes.nodes.get_node(LATEST_VERSION_KEY)
        if legacy is None:
            return
        # Two writes, the marker first: the old key lives in the tree's LevelDB, which a
        # batch spanning both would write first (``ledger.kv``).
        if self._kv.get(STATE_VERSION_MARK) is None:
            self._kv.put(STATE_VERSION_MARK, legacy, sync=True)
        self._kv.delete(NODES_PREFIX + LATEST_VERSION_KEY, sync=True)

    @property
    def tree(self) -> StateTree:
        """The tree itself (reads only: writes go through ``apply``)."""
        return self._tree

    def latest_version(self) -> int | None:
        """The last version committed (block height), or None if nothing was applied yet."""
        return self._latest

    def root(self, version: int) -> bytes:
        return self._tree.root(version)

    def get(self, key: bytes, version: int) -> bytes | None:
        """Value of ``key`` at ``version``; at the latest version, from the index."""
        if version == self._latest and not isinstance(version, bool):
            return self.get_latest(key)
        return self._tree.get(key, version)

    def prove(self, key: bytes, version: int) -> StateProof:
        return self._tree.prove(key, version)

    def get_latest(self, key: bytes) -> bytes | None:
        """Value of ``key`` in the latest version: one LevelDB read."""
        if len(key) > KEY_BYTES_MAX:
            return None  # no such key can have been written
        known = self._recent.get(key, _Unknown.KEY)
        if known is not _Unknown.KEY:
            return known
        value = self._index.get(key)
        self._remember(key, value)
        return value

    def _remember(self, key: bytes, value: bytes | None) -> None:
        if value is not None and len(value) > LATEST_CACHE_VALUE_BYTES_MAX:
            self._recent.forget(key)
        else:
            self._recent.remember(key, value)

    def latest_view(self) -> LatestView:
        return LatestView(self)

    def items_latest(
        self, prefix: bytes = b"", *, limit: int = SCAN_ITEMS_MAX
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs of the latest version whose key starts with ``prefix``, in
        key order, at most ``limit`` of them."""
        if not 0 <= limit <= SCAN_ITEMS_MAX:
            raise StoreError(f"a state scan returns at most {SCAN_ITEMS_MAX} items")
        for count, item in enumerate(self._index.items(prefix=prefix)):
            if count >= limit:
                return
            yield item

    def verify_index(self) -> int:
        """Check that the flat index holds exactly the latest version's pairs (one walk of
        the tree, one index read per key); return the number of keys. Raises
        ``CorruptionError`` naming the first key that differs."""
        version = self._latest
        tree_count = 0
        if version is not None:
            for key, value in self._tree.items(version):
                if self._index.get(key) != value:
                    raise _index_damaged(version, f"key {key!r:.80} has another value there")
                tree_count += 1
        index_count = sum(1 for _ in self._index.items())
        if index_count != tree_count:
            raise _index_damaged(
                version, f"it holds {index_count} keys where the state holds {tree_count}"
            )
        return tree_count

    def apply(
        self,
        version: int,
        changes: Mapping[bytes, bytes | None],
        *,
        also: Callable[[Batch], None] | None = None,
    ) -> bytes:
        """Build ``version`` from the previous one (see ``StateTree.apply``) and commit
        nodes, index and version marker in one synced batch; return the new root.
        ``also`` adds the caller's writes to that batch (a ``Batch`` of this state's KV,
        which another view of the same database can ``join``); if it raises, nothing is
        written."""
        self._nodes.index_changes = changes
        self._nodes.also = also
        try:
            root = self._tree.apply(version, changes)
        finally:
            self._nodes.index_changes = None
            self._nodes.also = None
        self._latest = version
        for key, value in changes.items():  # written: the cache follows the index
            self._remember(key, value)
        return root

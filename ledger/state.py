"""Authenticated key-value state: a versioned, compressed sparse Merkle tree (Jellyfish style).

Rules (docs/adr/0006-authenticated-state.md gives the reasons):

- A key is any byte string of at most ``KEY_BYTES_MAX`` bytes, a value any byte string of at
  most ``VALUE_BYTES_MAX`` bytes (``b""`` is a value; ``None`` means "absent").
- The tree is a binary Merkle tree of depth 256. The path of a key is the 256 bits of
  ``key_hash = tagged_hash(STATE_KEY, key)``, most significant bit first (bit 0 = left).
- Hashes, which define the root and are therefore consensus-critical:
    * a leaf:          ``tagged_hash(STATE_LEAF, key_hash || value_hash)``,
      where ``value_hash = SHA-256(value)``;
    * an empty subtree: ``PLACEHOLDER_HASH = tagged_hash(STATE_NODE, b"")``;
    * a subtree holding exactly one leaf: that leaf's hash (no chain of single-child nodes);
    * any other subtree: ``tagged_hash(STATE_NODE, left_hash || right_hash)``.
  The root is therefore a function of the set of (key, value) pairs alone, never of the
  order in which they were written. The empty tree's root is ``EMPTY_STATE_ROOT``
  (= the placeholder).
- Storage follows the Jellyfish Merkle tree: one stored node stands for four binary
  levels (a nibble, 16 children). Nodes are keyed by ``(version, nibble path)``; an update
  at version ``v`` writes new nodes only along the changed paths (O(depth) per key) and
  never rewrites a node of an older version, so every version's root stays readable.
  A child reference records the version at which the child was written.
- Version = block height. ``apply(v, changes)`` builds version ``v`` from ``v - 1`` (or
  from the empty tree for the very first version), applies the changes in key-hash order
  (the tree's own order, whatever the mapping's order) and hands every new node, plus
  the latest-version marker, to ONE ``write_nodes`` call.
- Stored node bytes are checked when read; damaged bytes raise ``CorruptionError``.
- Internal nodes are cached in two bounded tiers: the upper levels (at most
  ``DECODED_DEPTH_MAX`` nibbles deep) decoded, with their inner binary hashes, so an
  update rehashes only above the children it changed (``NODE_CACHE_ENTRIES_MAX``
  nodes); the level below as the stored bytes of its nodes, so an update decodes them
  from memory instead of reading them from the store (``STORED_NODE_CACHE_BYTES_MAX``
  bytes). A tier holds only what the store holds: the nodes an update wrote enter both
  only after ``write_nodes`` returned (a failed write leaves nothing cached), the stored
  tier holds the very bytes written or read. The caches never change a byte, a root or
  a proof.
- Proofs list the sibling hashes from the root down to the point where the key's path
  ends (in a leaf or an empty subtree); a proof verifies against a root alone.
This module is pure: no I/O besides the ``NodeStore`` handed to it.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol, Self

from ledger.errors import CorruptionError, InvalidProof, StoreError
from ledger.hashing import HASH_BYTES, Tag, sha256, tagged_hash

KEY_BYTES_MAX = 512
"""Longest state key; at least ``contracts.view.KEY_BYTES_MAX`` so no contract write is refused."""
VALUE_BYTES_MAX = 256 * 1024
"""Largest state value; at least ``contracts.view.VALUE_BYTES_MAX`` for the same reason."""
CHANGES_PER_VERSION_MAX = 1_000_000
VERSION_MAX = 2**64 - 1
KEY_BITS = 8 * HASH_BYTES
PROOF_SIBLINGS_MAX = KEY_BITS
NIBBLES_MAX = KEY_BITS // 4
NODE_CACHE_ENTRIES_MAX = 8_192
"""Decoded internal nodes kept in memory per tree (with their inner hashes), the least
recently used evicted first: the upper tier of the node cache, for nodes at most
``DECODED_DEPTH_MAX`` nibbles deep (root, 16, 256 and 4,096 nodes: what every update
reads) and room for those of older versions read by proofs. Measured (tracemalloc):
about 4.7 KB for a node of 16 children, so at most about 38 MB.
See docs/adr/0006-authenticated-state.md."""
DECODED_DEPTH_MAX = 3
"""Deepest nodes (in nibbles) kept decoded. Below, a node is touched by an update once in
many versions (a tree of 1,000,000 keys has 65,536 nodes at depth 4): kept decoded, they
would push the upper levels out; as stored bytes they take about a sixth of the room."""
STORED_NODE_CACHE_BYTES_MAX = 24 * 1024 * 1024
"""The lean tier below the decoded nodes: stored bytes of internal nodes at most
``STORED_DEPTH_MAX`` nibbles deep, per tree, the least recently used evicted first
(``_Reader``). A hit costs a decode instead of a store read. With the decoded tier, at
most about 62 MB (38 MB and 24 MiB). It was 40 MiB, full at a million keys, where a node
held 292-303 MiB, over the 300 MB a validator may use (issue 11); 24 MiB holds depth 4
whole up to about 600,000 keys and most of it beyond."""
STORED_DEPTH_MAX = 4
"""Deepest nodes (in nibbles) kept as stored bytes: depth 4 holds at most 65,536 nodes
(about 0.8 KB each when full, at about 2,000,000 keys; about 0.45 KB at 600,000).
Deeper nodes are far more numerous than the bound (a tree of 3,000,000 keys has about
800,000 at depth 5), each touched about once in two thousand versions: caching them
would only evict the ones above."""
STORED_ENTRY_OVERHEAD_BYTES = 190
"""What an entry of the stored-bytes tier costs besides its bytes, counted against
``STORED_NODE_CACHE_BYTES_MAX``: the bytes object's header, its key (a bytes object of 9
to 41 bytes) and its ordered-dict slot. Measured (tracemalloc): 182 bytes per entry for
50,000 entries of 11-byte keys."""

PLACEHOLDER_HASH = tagged_hash(Tag.STATE_NODE, b"")
"""Hash of an empty subtree. Its input (0 bytes) can never be a node's input (64 bytes)."""
EMPTY_STATE_ROOT: bytes = PLACEHOLDER_HASH
"""Root of the state that holds no key."""

LATEST_VERSION_KEY = b"latest"
"""Reserved store key holding the latest applied version (8 bytes, big-endian). Node keys
are at least 9 bytes long, so this key can never name a node."""

_NULL = 0
_LEAF = 1
_INTERNAL = 2
_EMPTY, _ONE_LEAF, _MANY = 0, 1, 2  # what a binary range inside a node holds


# ----------------------------------------------------------------------------- hashing


# Prefixes of tagged_hash (tag || 0x00), computed once: hashing is the hot path of updates.
_KEY_PREFIX = Tag.STATE_KEY.value + b"\x00"
_LEAF_PREFIX = Tag.STATE_LEAF.value + b"\x00"
_NODE_PREFIX = Tag.STATE_NODE.value + b"\x00"


def key_hash(key: bytes) -> bytes:
    """The 256-bit path of ``key`` in the tree: ``tagged_hash(STATE_KEY, key)``."""
    return hashlib.sha256(_KEY_PREFIX + key).digest()


def value_hash(value: bytes) -> bytes:
    """Hash of a value; only ever hashed again inside a tagged leaf hash."""
    return sha256(value)


def leaf_hash(key_hash_: bytes, value_hash_: bytes) -> bytes:
    """``tagged_hash(STATE_LEAF, key_hash || value_hash)``."""
    return hashlib.sha256(_LEAF_PREFIX + key_hash_ + value_hash_).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``tagged_hash(STATE_NODE, left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# ----------------------------------------------------------------------------- stores


class NodeStore(Protocol):
    """Where a ``StateTree`` keeps its nodes. Keys and values are opaque bytes."""

    def get_node(self, node_key: bytes) -> bytes | None: ...

    def write_nodes(self, nodes: Mapping[bytes, bytes], *, version: int) -> None:
        """Write all ``nodes`` at once (atomically): either all are stored or none."""
        ...


class MemoryNodeStore:
    """A dict-backed ``NodeStore`` for tests, replays and ``compute_root``."""

    __slots__ = ("nodes",)

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}

    def get_node(self, node_key: bytes) -> bytes | None:
        return self.nodes.get(node_key)

    def write_nodes(self, nodes: Mapping[bytes, bytes], *, version: int) -> None:
        self.nodes.update(nodes)

    def __len__(self) -> int:
        return len(self.nodes)


def node_key(version: int, path: str) -> bytes:
    """Store key of the node at ``path`` (hex nibbles) written at ``version``:
    version (8 bytes big-endian) || nibble count (1 byte) || nibbles packed two per byte."""
    packed = bytes.fromhex(path + "0") if len(path) & 1 else bytes.fromhex(path)
    return version.to_bytes(8, "big") + _COUNT_BYTE[len(path)] + packed


_COUNT_BYTE = [bytes((count,)) for count in range(NIBBLES_MAX + 1)]
_DEPTH_AT = 8
"""Where a node key holds its nibble count (the node's depth)."""


# ----------------------------------------------------------------------------- nodes


class _Leaf(NamedTuple):  # NamedTuple, not a frozen dataclass: built on every node read
    key_hash: bytes
    value_hash: bytes
    key: bytes
    value: bytes

    @property
    def hash(self) -> bytes:
        return leaf_hash(self.key_hash, self.value_hash)


_Child = tuple[int, bytes, bool]
"""A reference from an internal node to the child stored at (version, path + nibble):
(version, hash, is_leaf). A plain tuple: thousands are built per update."""

_Children = dict[int, _Child]
"""A decoded internal node: its children by nibble. A plain dict of tuples of atomic
values, which the garbage collector stops tracking: a cache of tens of thousands of
nodes then costs it nothing (measured: a dict subclass, always tracked, made updates of
1,000 keys 1.5 times slower)."""

# The binary hashes inside an internal node, in heap order: slot 1 is the node itself, the
# halves of slot s are slots 2s and 2s + 1, and the 16 child slots are 16-31 (slot 0 is
# unused). Each slot has a hash and what its range holds (_EMPTY, _ONE_LEAF, _MANY).
# Kept as (hashes tuple, held bytes), untracked by the garbage collector too.
_Inner = tuple[tuple[bytes, ...], bytes]
_INNER_SLOTS = 32
_FIRST_CHILD_SLOT = 16


_Node = _Leaf | _Children | None  # None: the empty tree (only ever a root)


def _new_leaf(key: bytes, value: bytes) -> _Leaf:
    return _Leaf(key_hash(key), value_hash(value), key, value)


_VERSIONS = [struct.Struct(f">{count}Q") for count in range(17)]
"""Packers of an internal node's child versions, by child count."""
_LAYOUTS = [struct.Struct(f">{count}Q" + "32s" * count) for count in range(17)]
"""Readers of an internal node's versions and hashes at once, by child count."""
_LEAF_KIND = bytes((_LEAF,))
_INTERNAL_KIND = bytes((_INTERNAL,))


def _encode_node(node: _Node) -> bytes:
    if node is None:
        return bytes((_NULL,))
    if isinstance(node, _Leaf):
        return (
            _LEAF_KIND
            + node.key_hash
            + node.value_hash
            + len(node.key).to_bytes(2, "big")
            + node.key
            + node.value
        )
    bitmap = leafmask = 0
    versions = []
    hashes = []
    for nibble in sorted(node):
        version, hash_, is_leaf = node[nibble]
        bitmap |= 1 << nibble
        if is_leaf:
            leafmask |= 1 << nibble
        versions.append(version)
        hashes.append(hash_)
    return (
        _INTERNAL_KIND
        + (bitmap << 16 | leafmask).to_bytes(4, "big")
        + _VERSIONS[len(versions)].pack(*versions)
        + b"".join(hashes)
    )


def _describe(key: bytes) -> str:
    """Where a store key points, in words an operator can report."""
    if len(key) >= 9 and len(key) == 9 + (key[8] + 1) // 2:
        path = key[9:].hex()[: key[8]] or "(root)"
        return f"state node written at height {int.from_bytes(key[:8], 'big')}, path {path}"
    return f"state record {key!r:.80}"


def _damaged(key: bytes, what: str) -> CorruptionError:
    return CorruptionError(
        f"{_describe(key)} is damaged ({what}); the state data was altered or "
        "corrupted: restore the data directory from a healthy copy or resynchronise"
    )


_NIBBLES: dict[int, tuple[int, ...]] = {}


def _nibbles(bitmap: int) -> tuple[int, ...]:
    """The child slots present in a 16-bit bitmap (memoised: at most 65,536 entries)."""
    found = _NIBBLES.get(bitmap)
    if found is None:
        found = _NIBBLES[bitmap] = tuple(n for n in range(16) if bitmap >> n & 1)
    return found


def _decode_node(key: bytes, data: bytes) -> _Node:
    if not data:
        raise _damaged(key, "empty record")
    kind = data[0]
    if kind == _NULL and len(data) == 1:
        return None
    if kind == _LEAF:
        if len(data) < 67:
            raise _damaged(key, "leaf too short")
        key_len = int.from_bytes(data[65:67], "big")
        if key_len > KEY_BYTES_MAX or len(data) < 67 + key_len:
            raise _damaged(key, "bad key length")
        leaf = _Leaf(data[1:33], data[33:65], data[67 : 67 + key_len], data[67 + key_len :])
        if len(leaf.value) > VALUE_BYTES_MAX or key_hash(leaf.key) != leaf.key_hash:
            raise _damaged(key, "leaf key does not match its hash")
        if value_hash(leaf.value) != leaf.value_hash:
            raise _damaged(key, "leaf value does not match its hash")
        return leaf
    if kind == _INTERNAL and len(data) >= 5:
        bitmap = int.from_bytes(data[1:3], "big")
        leafmask = int.from_bytes(data[3:5], "big")
        nibbles = _nibbles(bitmap)
        count = len(nibbles)
        if leafmask & ~bitmap or len(data) != 5 + 40 * count or not count:
            raise _damaged(key, "bad internal node layout")
        fields = _LAYOUTS[count].unpack_from(data, 5)  # count versions, then count hashes
        leaves = [leafmask >> nibble & 1 == 1 for nibble in nibbles]
        children = zip(fields[:count], fields[count:], leaves, strict=True)
        return dict(zip(nibbles, children, strict=True))
    raise _damaged(key, f"unknown node kind {kind}")


def _fold(hashes: list[bytes], held: bytearray, slots: tuple[int, ...]) -> None:
    """Recompute the inner ``slots`` (each listed after its halves: in descending order),
    each from its two halves, by the compression rules of the module docstring: an empty
    range or a lone leaf moves up unchanged. Inlined: the hot path of updates."""
    sha256_, prefix = hashlib.sha256, _NODE_PREFIX
    for slot in slots:
        left = slot << 1
        left_held, right_held = held[left], held[left + 1]
        if left_held == _EMPTY and right_held != _MANY:
            hashes[slot], held[slot] = hashes[left + 1], right_held
        elif right_held == _EMPTY and left_held == _ONE_LEAF:
            hashes[slot], held[slot] = hashes[left], _ONE_LEAF
        else:
            hashes[slot] = sha256_(prefix + hashes[left] + hashes[left + 1]).digest()
            held[slot] = _MANY


_ABOVE: dict[int, tuple[int, ...]] = {}


def _slots_above(changed: int) -> tuple[int, ...]:
    """The inner slots above the children whose nibbles are set in the 16-bit mask
    ``changed``, in descending order (memoised: at most 65,536 entries)."""
    found = _ABOVE.get(changed)
    if found is None:
        slots = set()
        for nibble in _nibbles(changed):
            slot = (_FIRST_CHILD_SLOT + nibble) >> 1
            while slot:
                slots.add(slot)
                slot >>= 1
        found = _ABOVE[changed] = tuple(sorted(slots, reverse=True))
    return found


_ALL_CHILDREN = 0xFFFF
_EMPTY_HASHES = [PLACEHOLDER_HASH] * _INNER_SLOTS


def _inner(children: _Children) -> _Inner:
    """The inner hashes of a node (see ``_Inner``), all 15 computed afresh."""
    hashes, held = _EMPTY_HASHES[:], bytearray(_INNER_SLOTS)
    for nibble, (_, hash_, is_leaf) in children.items():
        hashes[_FIRST_CHILD_SLOT + nibble] = hash_
        held[_FIRST_CHILD_SLOT + nibble] = _ONE_LEAF if is_leaf else _MANY
    _fold(hashes, held, _slots_above(_ALL_CHILDREN))
    return tuple(hashes), bytes(held)


def _inner_from(children: _Children, base: _Inner | None, changed: int) -> _Inner:
    """The inner hashes of ``children``, which are those of a node with inner hashes
    ``base`` but for the children at the nibbles of the mask ``changed`` (replaced or
    removed): only the slots above them are recomputed (4 for one child, instead of up
    to 15 for the node). Without ``base`` (a node just read from the store, never
    updated) they are computed afresh, once."""
    if base is None:
        return _inner(children)
    hashes, held = list(base[0]), bytearray(base[1])
    for nibble in _nibbles(changed):
        child = children.get(nibble)
        slot = _FIRST_CHILD_SLOT + nibble
        if child is None:
            hashes[slot], held[slot] = PLACEHOLDER_HASH, _EMPTY
        else:
            hashes[slot], held[slot] = child[1], _ONE_LEAF if child[2] else _MANY
    _fold(hashes, held, _slots_above(changed))
    return tuple(hashes), bytes(held)


def _node_hash(node: _Node) -> bytes:
    if node is None:
        return EMPTY_STATE_ROOT
    if isinstance(node, _Leaf):
        return node.hash
    return _inner(node)[0][1]


# ----------------------------------------------------------------------------- proofs


@dataclass(frozen=True, slots=True)
class StateProof:
    """Proof that a key has a given value, or none, under a state root.

    Encoded (``to_value``) as ``[leaf, siblings]`` where ``leaf`` is ``None`` or
    ``[key_hash, value_hash]`` (32 bytes each) and ``siblings`` a list of 32-byte hashes.
    """

    leaf: tuple[bytes, bytes] | None
    """The leaf where the key's path ends: (key_hash, value_hash), or None if it ends in
    an empty subtree. For an absence proof it may be another key's leaf."""
    siblings: tuple[bytes, ...]
    """Sibling hashes along the key's path, from the root (bit 0) downwards."""

    def to_value(self) -> list[object]:
        leaf = None if self.leaf is None else [self.leaf[0], self.leaf[1]]
        return [leaf, list(self.siblings)]

    @classmethod
    def from_value(cls, value: object) -> Self:
        shape = "a state proof is [leaf or nil, [sibling hashes]]"
        if not (isinstance(value, list) and len(value) == 2):
            raise InvalidProof(shape)
        leaf, siblings = value
        if not isinstance(siblings, list) or len(siblings) > PROOF_SIBLINGS_MAX:
            raise InvalidProof(f"{shape}, with at most {PROOF_SIBLINGS_MAX} siblings")
        if not all(isinstance(h, bytes) and len(h) == HASH_BYTES for h in siblings):
            raise InvalidProof("every sibling of a state proof must be a 32-byte hash")
        if leaf is None:
            return cls(None, tuple(siblings))
        if not (
            isinstance(leaf, list)
            and len(leaf) == 2
            and all(isinstance(h, bytes) and len(h) == HASH_BYTES for h in leaf)
        ):
            raise InvalidProof("the leaf of a state proof is [key_hash, value_hash], 32 bytes each")
        return cls((leaf[0], leaf[1]), tuple(siblings))


def _shared_prefix_bits(a: bytes, b: bytes) -> int:
    diff = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return KEY_BITS - diff.bit_length()


def verify_state_proof(root: bytes, key: bytes, value: bytes | None, proof: StateProof) -> None:
    """Raise ``InvalidProof`` unless ``value`` is the value of ``key`` under ``root``
    (``value`` None: unless ``key`` is absent under ``root``)."""
    if len(proof.siblings) > PROOF_SIBLINGS_MAX:
        raise InvalidProof(f"a state proof holds at most {PROOF_SIBLINGS_MAX} siblings")
    if not all(isinstance(h, bytes) and len(h) == HASH_BYTES for h in proof.siblings):
        raise InvalidProof("every sibling of a state proof must be a 32-byte hash")
    path = key_hash(key)
    leaf = proof.leaf
    if leaf is not None and not all(isinstance(h, bytes) and len(h) == HASH_BYTES for h in leaf):
        raise InvalidProof("the leaf of a state proof is [key_hash, value_hash], 32 bytes each")
    if value is not None:
        if leaf is None or leaf[0] != path:
            raise InvalidProof("the proof shows that this key has no value in this state")
        if leaf[1] != value_hash(value):
            raise InvalidProof("the proof is for another value of this key")
        current = leaf_hash(leaf[0], leaf[1])
    elif leaf is None:
        current = PLACEHOLDER_HASH
    else:
        if leaf[0] == path:
            raise InvalidProof("the proof shows that this key has a value in this state")
        if _shared_prefix_bits(leaf[0], path) < len(proof.siblings):
            raise InvalidProof("the proof's leaf does not lie on this key's path")
        current = leaf_hash(leaf[0], leaf[1])
    bits = int.from_bytes(path, "big")
    for depth in range(len(proof.siblings) - 1, -1, -1):
        sibling = proof.siblings[depth]
        if bits >> (KEY_BITS - 1 - depth) & 1:
            current = node_hash(sibling, current)
        else:
            current = node_hash(current, sibling)
    if current != root:
        raise InvalidProof("the state proof does not lead to the expected state root")


# ----------------------------------------------------------------------------- the tree


@dataclass(frozen=True, slots=True)
class _Placed:
    """A lone leaf returned to its parent, with where it is stored now (if anywhere)."""

    leaf: _Leaf
    version: int | None
    path: str | None


_Result = _Placed | _Child | None  # None: the subtree became empty
_Change = tuple[str, bytes, bytes | None, bytes]  # (key_hash hex, key, value, key_hash)
_Item = tuple[str, _Leaf, int | None, str | None]  # (key_hash hex, leaf, stored at version, path)


def _check_changes(changes: Mapping[bytes, bytes | None]) -> list[_Change]:
    if len(changes) > CHANGES_PER_VERSION_MAX:
        raise StoreError(
            f"{len(changes)} state changes in one version exceed {CHANGES_PER_VERSION_MAX}"
        )
    out: list[_Change] = []
    for key, value in changes.items():
        if not isinstance(key, bytes) or len(key) > KEY_BYTES_MAX:
            raise StoreError(f"a state key must be at most {KEY_BYTES_MAX} bytes: {key!r:.80}")
        if value is not None and (not isinstance(value, bytes) or len(value) > VALUE_BYTES_MAX):
            raise StoreError(
                f"the value of state key {key!r:.80} must be bytes of at most "
                f"{VALUE_BYTES_MAX} bytes"
            )
        kh = key_hash(key)
        out.append((kh.hex(), key, value, kh))
    out.sort()  # tree order (by key hash), whatever order the mapping came in: determinism
    return out


def _groups(items: list[_Change], depth: int) -> list[tuple[int, list[_Change]]]:
    """Split items (sorted by key hash) by their nibble at ``depth``."""
    groups: list[tuple[int, list[_Change]]] = []
    current = ""
    for item in items:
        nibble = item[0][depth]
        if nibble != current:
            groups.append((int(nibble, 16), []))
            current = nibble
        groups[-1][1].append(item)
    return groups


class _Reader:
    """Reads and decodes stored nodes, keeping internal nodes in two bounded LRU tiers.

    A stored node never changes (its key holds the version that wrote it, and a version is
    written once), so a cached node is always current. Only internal nodes are kept: the
    upper levels are read by every update and proof; leaves carry values and are read once.
    - ``cache``: decoded nodes, with their inner hashes once an update computed them (None
      before), at most ``entries_max`` of them: the levels every update reads.
    - ``stored``: the stored bytes of internal nodes, at most ``stored_bytes_max`` bytes
      counted as ``len(data) + STORED_ENTRY_OVERHEAD_BYTES``: about six times as many
      nodes as the decoded tier in the same memory, so the levels below it are decoded
      from memory instead of read from the store again.
    The nodes an update writes enter both tiers (``remember``) only after the store
    accepted them, so a failed write leaves nothing behind that was never stored.
    The decoded nodes are shared, so nothing may mutate them (updates copy them first)."""

    __slots__ = ("cache", "entries_max", "store", "stored", "stored_bytes", "stored_bytes_max")

    def __init__(
        self,
        store: NodeStore,
        entries_max: int = NODE_CACHE_ENTRIES_MAX,
        stored_bytes_max: int = STORED_NODE_CACHE_BYTES_MAX,
    ) -> None:
        self.store = store
        self.entries_max = entries_max
        self.cache: OrderedDict[bytes, tuple[_Children, _Inner | None]] = OrderedDict()
        self.stored_bytes_max = stored_bytes_max
        self.stored: OrderedDict[bytes, bytes] = OrderedDict()
        self.stored_bytes = 0

    def read(self, key: bytes) -> _Node:
        cached = self.cache.get(key)
        if cached is not None:
            self.cache.move_to_end(key)
            return cached[0]
        data = self.stored.get(key)
        if data is not None:
            self.stored.move_to_end(key)
        else:
            data = self.store.get_node(key)
            if data is None:
                raise _damaged(key, "missing node")
        node = _decode_node(key, data)
        if isinstance(node, dict):
            if key[_DEPTH_AT] <= DECODED_DEPTH_MAX:
                self.cache[key] = (node, None)
                if len(self.cache) > self.entries_max:
                    self.cache.popitem(last=False)
            self._keep(key, data)
        return node

    def inner(self, key: bytes) -> _Inner | None:
        """The inner hashes of the cached node at ``key``, if known."""
        cached = self.cache.get(key)
        return None if cached is None else cached[1]

    def remember(
        self,
        nodes: Mapping[bytes, tuple[_Children, _Inner | None]],
        superseded: Iterable[bytes],
        stored: Mapping[bytes, bytes],
    ) -> None:
        """Cache ``nodes``, which the store holds as ``stored`` (their stored bytes),
        evicting the least recently used. ``superseded`` nodes (replaced by ``nodes`` in
        the latest version, so read again only for an older version) leave first."""
        cache, lean = self.cache, self.stored
        for key in superseded:
            cache.pop(key, None)
            dropped = lean.pop(key, None)
            if dropped is not None:
                self.stored_bytes -= len(dropped) + STORED_ENTRY_OVERHEAD_BYTES
        for key, entry in nodes.items():
            if key[_DEPTH_AT] <= DECODED_DEPTH_MAX:
                cache[key] = entry
        while len(cache) > self.entries_max:
            cache.popitem(last=False)
        for key, data in stored.items():
            self._keep(key, data)

    def _keep(self, key: bytes, data: bytes) -> None:
        """Keep the stored bytes of the internal node at ``key`` in the lean tier."""
        lean = self.stored
        if key in lean:  # the same bytes: a node is written once
            lean.move_to_end(key)
            return
        if not self.stored_bytes_max or key[_DEPTH_AT] > STORED_DEPTH_MAX:
            return
        lean[key] = data
        self.stored_bytes += len(data) + STORED_ENTRY_OVERHEAD_BYTES
        while self.stored_bytes > self.stored_bytes_max:
            _, dropped = lean.popitem(last=False)
            self.stored_bytes -= len(dropped) + STORED_ENTRY_OVERHEAD_BYTES


class _Update:
    """One application of changes at ``version``; collects the nodes to write, and the
    internal nodes among them in decoded form (``internal``) for the reader's cache."""

    __slots__ = ("internal", "reader", "superseded", "version", "writes")

    def __init__(self, reader: _Reader, version: int) -> None:
        self.reader = reader
        self.version = version
        self.writes: dict[bytes, bytes] = {}
        self.internal: dict[bytes, tuple[_Children, _Inner | None]] = {}
        self.superseded: list[bytes] = []

    def load(self, version: int, path: str) -> _Node:
        key = node_key(version, path)
        data = self.writes.get(key)
        if data is None:
            return self.reader.read(key)
        return _decode_node(key, data)

    def place(self, path: str, result: _Placed | _Child) -> _Child:
        """Store a child result at ``path`` (if not already there) and reference it."""
        if not isinstance(result, _Placed):
            return result  # internal nodes are always written at their own path
        leaf = result.leaf
        if result.version is not None and result.path == path:
            return (result.version, leaf.hash, True)
        self.writes[node_key(self.version, path)] = _encode_node(leaf)
        return (self.version, leaf.hash, True)

    def update_child(self, path: str, ref: _Child | None, changes: list[_Change]) -> _Result:
        if ref is None:
            return self.update_leaf(path, None, None, changes)
        version, _, is_leaf = ref
        key = node_key(version, path)
        data = self.writes.get(key)
        node = self.reader.read(key) if data is None else _decode_node(key, data)
        if isinstance(node, _Leaf) and is_leaf:
            return self.update_leaf(path, node, version, changes)
        if isinstance(node, dict) and not is_leaf:
            return self.update_internal(path, node, key, ref, changes)
        raise _damaged(key, "node kind differs from its reference")

    def update_leaf(
        self, path: str, leaf: _Leaf | None, at: int | None, changes: list[_Change]
    ) -> _Result:
        """Apply changes to a subtree that holds at most one leaf."""
        items: list[_Item] = []
        kept = leaf is not None
        for hex_, key, value, kh in changes:
            if leaf is not None and kh == leaf.key_hash:
                if value is not None and value_hash(value) == leaf.value_hash:
                    continue  # same value: keep the stored leaf
                kept = False
            if value is not None:
                items.append((hex_, _Leaf(kh, value_hash(value), key, value), None, None))
        if kept and leaf is not None:
            items.append((leaf.key_hash.hex(), leaf, at, path if at is not None else None))
            items.sort(key=lambda item: item[0])
        return self.build(path, items)

    def build(self, path: str, items: list[_Item]) -> _Result:
        """Build a fresh subtree at ``path`` holding ``items`` (sorted by key hash)."""
        if not items:
            return None
        if len(items) == 1:
            _, leaf, at_version, at_path = items[0]
            return _Placed(leaf, at_version, at_path)
        depth = len(path)
        if depth >= NIBBLES_MAX:
            raise StoreError("two different state keys share a 256-bit hash")
        children: _Children = {}
        start = 0
        while start < len(items):
            nibble = items[start][0][depth]
            end = start
            while end < len(items) and items[end][0][depth] == nibble:
                end += 1
            sub = self.build(path + nibble, items[start:end])
            assert sub is not None  # a non-empty group builds a non-empty subtree
            children[int(nibble, 16)] = self.place(path + nibble, sub)
            start = end
        return self.write_internal(path, children, _inner(children))

    def write_internal(self, path: str, children: _Children, inner: _Inner) -> _Child:
        """Write the node ``children``, whose inner hashes are ``inner``."""
        key = node_key(self.version, path)
        self.writes[key] = _encode_node(children)
        self.internal[key] = (children, inner)
        return (self.version, inner[0][1], False)

    def update_internal(
        self, path: str, children: _Children, key: bytes, ref: _Child, changes: list[_Change]
    ) -> _Result:
        """Apply changes to the internal node ``children``, stored at ``key`` and
        referenced by ``ref``."""
        new = dict(children)
        changed = 0  # mask of the nibbles whose child changed
        for nibble, group in _groups(changes, len(path)):
            sub_path = path + format(nibble, "x")
            old = children.get(nibble)
            result = self.update_child(sub_path, old, group)
            if result is None:
                if old is not None:
                    del new[nibble]
                    changed |= 1 << nibble
            else:
                placed = self.place(sub_path, result)
                if placed != old:
                    new[nibble] = placed
                    changed |= 1 << nibble
        if not changed:
            return ref
        if not new:
            return None
        if len(new) == 1:
            ((nibble, only),) = new.items()
            only_version, _, only_is_leaf = only
            if only_is_leaf:  # a lone leaf moves up: no chain of single-child nodes
                sub_path = path + format(nibble, "x")
                node = self.load(only_version, sub_path)
                assert isinstance(node, _Leaf)
                if only_version == self.version:
                    del self.writes[node_key(only_version, sub_path)]  # never left orphaned
                return _Placed(node, None, None)
        self.superseded.append(key)
        return self.write_internal(path, new, _inner_from(new, self.reader.inner(key), changed))


class StateTree:
    """The versioned authenticated state over a ``NodeStore``."""

    __slots__ = ("_reader", "store")

    def __init__(
        self,
        store: NodeStore,
        *,
        cache_entries_max: int = NODE_CACHE_ENTRIES_MAX,
        stored_cache_bytes_max: int = STORED_NODE_CACHE_BYTES_MAX,
    ) -> None:
        """``cache_entries_max``: internal nodes kept decoded in memory;
        ``stored_cache_bytes_max``: bytes of stored internal nodes kept below them (tests
        use tiny caches to exercise eviction; the defaults suit a node)."""
        if not 0 <= cache_entries_max <= NODE_CACHE_ENTRIES_MAX:
            raise StoreError(f"the node cache holds 0 to {NODE_CACHE_ENTRIES_MAX} entries")
        if not 0 <= stored_cache_bytes_max <= STORED_NODE_CACHE_BYTES_MAX:
            raise StoreError(
                f"the stored-node cache holds 0 to {STORED_NODE_CACHE_BYTES_MAX} bytes"
            )
        self.store = store
        self._reader = _Reader(store, cache_entries_max, stored_cache_bytes_max)

    def latest_version(self) -> int | None:
        """The last version applied, or None before the first ``apply``."""
        data = self.store.get_node(LATEST_VERSION_KEY)
        if data is None:
            return None
        if len(data) != 8:
            raise _damaged(LATEST_VERSION_KEY, "bad latest-version record")
        return int.from_bytes(data, "big")

    def _root_node(self, version: int) -> _Node:
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise StoreError(f"a state version is a block height, not {version!r}")
        latest = self.latest_version()
        key = node_key(version, "") if latest is not None and version <= latest else b""
        # A height below the first version applied has no root either (a state started
        # from a later height); the cache spares the second read for known roots.
        if not key or (key not in self._reader.cache and self.store.get_node(key) is None):
            shown = "none yet" if latest is None else str(latest)
            raise StoreError(
                f"there is no state at height {version} (latest state height: {shown})"
            )
        return self._reader.read(key)

    def root(self, version: int) -> bytes:
        """State root after ``version``; ``EMPTY_STATE_ROOT`` if that state is empty."""
        node = self._root_node(version)
        if isinstance(node, dict):  # its hash is known if an update wrote it recently
            inner = self._reader.inner(node_key(version, "")) or _inner(node)
            return inner[0][1]
        return _node_hash(node)

    def get(self, key: bytes, version: int) -> bytes | None:
        """Value of ``key`` in the state at ``version``, or None if absent."""
        node = self._root_node(version)
        path = key_hash(key)
        hex_ = path.hex()
        depth = 0
        while isinstance(node, dict):
            child = node.get(int(hex_[depth], 16))
            if child is None:
                return None
            depth += 1
            node = self._load(child[0], hex_[:depth])
        if isinstance(node, _Leaf) and node.key_hash == path:
            return node.value
        return None

    def _load(self, version: int, path: str) -> _Node:
        return self._reader.read(node_key(version, path))

    def items(self, version: int) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of the state at ``version``, in key-hash order. Walks the
        whole tree: for audits and checks, not for the hot path."""
        stack: list[tuple[_Node, str]] = [(self._root_node(version), "")]
        while stack:
            node, path = stack.pop()
            if isinstance(node, _Leaf):
                yield node.key, node.value
            elif isinstance(node, dict):
                for nibble in sorted(node, reverse=True):  # popped in ascending order
                    child_path = path + format(nibble, "x")
                    stack.append((self._load(node[nibble][0], child_path), child_path))

    def prove(self, key: bytes, version: int) -> StateProof:
        """Inclusion proof of ``key``'s value at ``version``, or absence proof if it has none."""
        node = self._root_node(version)
        hex_ = key_hash(key).hex()
        siblings: list[bytes] = []
        depth = 0
        while isinstance(node, dict):
            nibble = int(hex_[depth], 16)
            hashes, held = _inner(node)
            for level in (4, 3, 2, 1):  # binary levels inside the node, top down
                index = nibble >> level
                if held[(_FIRST_CHILD_SLOT >> level) + index] != _MANY:  # the path ends here
                    return self._proof_end(node, hex_[:depth], index << level, 1 << level, siblings)
                sibling = (nibble >> (level - 1)) ^ 1
                siblings.append(hashes[(_FIRST_CHILD_SLOT >> (level - 1)) + sibling])
            child = node.get(nibble)
            if child is None:
                return StateProof(None, tuple(siblings))
            depth += 1
            node = self._load(child[0], hex_[:depth])
        if isinstance(node, _Leaf):
            return StateProof((node.key_hash, node.value_hash), tuple(siblings))
        return StateProof(None, tuple(siblings))

    def _proof_end(
        self, children: _Children, path: str, first: int, width: int, siblings: list[bytes]
    ) -> StateProof:
        """The path ends in a range of slots holding nothing or one leaf."""
        present = [n for n in range(first, first + width) if n in children]
        if not present:
            return StateProof(None, tuple(siblings))
        nibble = present[0]
        version = children[nibble][0]
        leaf = self._load(version, path + format(nibble, "x"))
        if not isinstance(leaf, _Leaf):
            raise _damaged(node_key(version, path), "expected a leaf")
        return StateProof((leaf.key_hash, leaf.value_hash), tuple(siblings))

    def apply(self, version: int, changes: Mapping[bytes, bytes | None]) -> bytes:
        """Build ``version`` from ``version - 1`` (or from the empty tree if no version
        exists yet) with ``changes`` (None deletes), write it atomically, return its root."""
        if isinstance(version, bool) or not isinstance(version, int):
            raise StoreError(f"a state version is a block height, not {version!r}")
        latest = self.latest_version()
        if latest is None:
            if not 0 <= version <= VERSION_MAX:
                raise StoreError(f"state version {version} is out of range")
        elif version != latest + 1:
            raise StoreError(
                f"cannot build state version {version}: the latest state is version {latest}, "
                f"and versions are applied one block at a time (next: {latest + 1})"
            )
        items = _check_changes(changes)
        update = _Update(self._reader, version)
        if latest is None:
            result = update.update_leaf("", None, None, items)
        else:
            base = self._root_node(latest)
            if isinstance(base, dict):
                base_ref = (latest, b"", False)  # hash filled in below if unchanged
                result = update.update_internal("", base, node_key(latest, ""), base_ref, items)
            else:
                result = update.update_leaf("", base, latest if base is not None else None, items)
        root_key = node_key(version, "")
        if result is None:
            update.writes[root_key] = _encode_node(None)
            root = EMPTY_STATE_ROOT
        elif isinstance(result, _Placed):
            update.writes[root_key] = _encode_node(result.leaf)
            root = result.leaf.hash
        else:
            result_version, root, _ = result
            if result_version != version:  # unchanged root: copy it to the new version
                assert isinstance(base, dict)  # result is then the base root's reference
                base_key = node_key(result_version, "")
                data = self.store.get_node(base_key)
                assert data is not None
                update.writes[root_key] = data
                inner = self._reader.inner(base_key) or _inner(base)
                update.internal[root_key] = (base, inner)
                root = inner[0][1]
        update.writes[LATEST_VERSION_KEY] = version.to_bytes(8, "big")
        self.store.write_nodes(update.writes, version=version)
        # Only now, the store holding them, may the written nodes serve later reads.
        self._reader.remember(
            update.internal,
            update.superseded,
            stored={key: update.writes[key] for key in update.internal},
        )
        return root


def compute_root(items: Mapping[bytes, bytes]) -> bytes:
    """Root of a fresh tree holding exactly ``items``."""
    if any(value is None for value in items.values()):
        raise StoreError("compute_root takes values, not deletions (None)")
    return StateTree(MemoryNodeStore()).apply(0, items)


# ----------------------------------------------------------------------------- stored nodes
# What a reader outside the tree (an auditor comparing a node's stored state with a
# replay) needs to name what it compares, without knowing the node encoding.


def version_key_prefix(version: int) -> bytes:
    """The prefix shared by the store keys of every node written at ``version``."""
    return version.to_bytes(8, "big")


def stored_leaf_key(data: bytes | None) -> bytes | None:
    """The state key a stored node holds if ``data`` looks like a leaf, else ``None``.

    Tolerant on purpose (it is used to describe damaged nodes): it checks only the layout
    needed to find the key, not the hashes."""
    if not data or data[0] != _LEAF or len(data) < 67:
        return None
    size = int.from_bytes(data[65:67], "big")
    if size > KEY_BYTES_MAX or len(data) < 67 + size:
        return None
    return data[67 : 67 + size]


def describe_node_key(key: bytes) -> str:
    """Where a store key of the tree points, in words an operator can report."""
    return _describe(key)

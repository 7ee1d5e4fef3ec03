"""State views the contracts read and write: a read-only protocol, a write buffer, a dict.

Rules:
- Keys and values are bytes; values are canonical msgpack (:mod:`ledger.encoding`).
- ``Overlay`` buffers writes over a read-only base and never touches the base: the engine
  merges a transaction's overlay into the block's overlay only when the transaction
  succeeds, so a failed transaction leaves no trace but its consumed id.
- ``changes()`` is sorted bytewise by key: whatever consumes it (the state tree, a hash,
  a test) sees one order, whatever order the writes happened in.
- A deletion is recorded as ``None`` and hides the base value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from ledger.crypto import PUBLIC_KEY_BYTES

KEY_BYTES_MAX = 512
"""Longest state key the contracts ever build (prefix, SIRET, ids, hashes)."""
VALUE_BYTES_MAX = 256 * 1024
"""Largest state value: a record plus its bounded lists."""


@dataclass(frozen=True, slots=True)
class BlockEnv:
    """What a contract may know about the block it runs in (and nothing else)."""

    chain_id: str
    """Network id from genesis."""
    height: int
    """Height of the block being executed (genesis state is version 0)."""
    time_ms: int
    """Block time from the header, ms since the Unix epoch: the only clock contracts see."""
    proposer: bytes
    """Public key of the validator that proposed the block."""

    def __post_init__(self) -> None:
        assert len(self.proposer) == PUBLIC_KEY_BYTES, "the proposer is an Ed25519 public key"


class StateView(Protocol):
    """Read access to the state at one version."""

    def get(self, key: bytes) -> bytes | None: ...


class Overlay:
    """Buffered writes over a read-only base view; overlays nest."""

    __slots__ = ("_base", "_writes")

    def __init__(self, base: StateView) -> None:
        self._base = base
        self._writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        return self._base.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        assert len(key) <= KEY_BYTES_MAX, "state keys are bounded"
        assert len(value) <= VALUE_BYTES_MAX, "state values are bounded"
        self._writes[key] = value

    def delete(self, key: bytes) -> None:
        self._writes[key] = None

    def merge(self, changes: Mapping[bytes, bytes | None]) -> None:
        """Take over the writes of a nested overlay (in sorted order: determinism)."""
        for key in sorted(changes):
            self._writes[key] = changes[key]

    def changes(self) -> dict[bytes, bytes | None]:
        """Every buffered write, keys sorted bytewise; ``None`` marks a deletion."""
        return {key: self._writes[key] for key in sorted(self._writes)}


class DictState:
    """The whole state in a dict: for tests, replay and benchmarks."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[bytes, bytes] | None = None) -> None:
        self._items: dict[bytes, bytes] = dict(items or {})

    def get(self, key: bytes) -> bytes | None:
        return self._items.get(key)

    def apply(self, changes: Mapping[bytes, bytes | None]) -> None:
        """Apply a change set (``None`` deletes)."""
        for key in sorted(changes):
            value = changes[key]
            if value is None:
                self._items.pop(key, None)
            else:
                self._items[key] = value

    def items(self) -> dict[bytes, bytes]:
        """A copy of every entry, keys sorted bytewise."""
        return {key: self._items[key] for key in sorted(self._items)}

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[bytes]:
        return iter(sorted(self._items))

"""A bounded memory that forgets the least recently used entry first.

Rules:
- At most ``entries_max`` entries; remembering one more forgets the least recently used.
- A look-up that finds its key (``get``, ``touch``) makes it the most recently used;
  ``in`` only asks, and changes nothing.
- Values may be ``None``: ``touch`` says whether a key is known, ``get`` returns the
  value (``default`` if unknown).
- The one implementation of the node's memos (verified signatures, schema passes,
  recent state values, recent transaction decodings): a memo only spares work, never
  changes an answer, so what it forgets is computed again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


class Lru(Generic[K, V]):
    """A map of at most ``entries_max`` entries (see the module rules)."""

    __slots__ = ("_entries", "entries_max")

    def __init__(self, entries_max: int) -> None:
        if entries_max < 1:
            raise ValueError(f"an LRU memory holds at least 1 entry, not {entries_max}")
        self.entries_max = entries_max
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def touch(self, key: K) -> bool:
        """Whether ``key`` is known; if so it becomes the most recently used."""
        if key not in self._entries:
            return False
        self._entries.move_to_end(key)
        return True

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        """The value of ``key`` (now the most recently used), or ``default``."""
        if not self.touch(key):
            return default
        return self._entries[key]

    def remember(self, key: K, value: V) -> None:
        """Keep ``value`` for ``key`` as the most recently used; forget the least recently
        used entry beyond ``entries_max``."""
        entries = self._entries
        entries[key] = value
        entries.move_to_end(key)
        if len(entries) > self.entries_max:
            entries.popitem(last=False)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

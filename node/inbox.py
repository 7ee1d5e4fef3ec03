"""Byte budget of the node's inbox: what peers' messages may hold while they wait.

Rules:
- The inbox (the queue feeding the replica task) is bounded in events
  (``limits.inbox_max``) *and* in bytes: peer messages waiting in it hold at most
  ``limits.inbox_bytes_max`` bytes together and ``limits.peer_inbox_bytes_max`` per peer.
  Without the byte bound a Byzantine peer could make a node buffer ``inbox_max`` frames
  of ``frame_bytes_max`` each (4,096 x 16 MiB).
- A peer over its share, or arriving when the total is reached, waits: its connection's
  reader stops, so TCP flow control slows that peer down; the other peers go on within
  their own shares.
- A message larger than a share is still admitted when nothing of that peer (and
  nothing at all, for the total) is held: a frame within ``frame_bytes_max`` always gets
  through eventually (the configuration makes both bounds at least one frame).
- Every ``acquire`` is matched by one ``release`` when the replica task takes the
  message out of the queue.
"""

from __future__ import annotations

import asyncio


class InboxBytes:
    """Bytes held in the inbox, in total and per peer, with waiting when over."""

    def __init__(self, total_max: int, per_peer_max: int) -> None:
        self._total_max = total_max
        self._per_peer_max = per_peer_max
        self.total = 0
        self._by_peer: dict[bytes, int] = {}
        self._released = asyncio.Event()
        """Set (and replaced) on every release: waiters then check again."""

    def held(self, peer: bytes) -> int:
        return self._by_peer.get(peer, 0)

    def _fits(self, peer: bytes, size: int) -> bool:
        mine = self._by_peer.get(peer, 0)
        return ((mine == 0 or mine + size <= self._per_peer_max)
                and (self.total == 0 or self.total + size <= self._total_max))

    async def acquire(self, peer: bytes, size: int) -> None:
        """Wait until ``size`` more bytes of ``peer`` fit, then count them."""
        while not self._fits(peer, size):
            await self._released.wait()
        self.total += size
        self._by_peer[peer] = self._by_peer.get(peer, 0) + size

    def release(self, peer: bytes, size: int) -> None:
        """The replica took ``size`` bytes of ``peer`` out of the inbox."""
        left = self._by_peer.get(peer, 0) - size
        if left > 0:
            self._by_peer[peer] = left
        else:
            self._by_peer.pop(peer, None)
        self.total -= size
        released, self._released = self._released, asyncio.Event()
        released.set()

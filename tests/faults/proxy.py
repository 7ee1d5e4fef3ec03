"""TCP proxies between validators: one per directed link, all on one asyncio loop in a
thread, so that a campaign can cut, delay and restore traffic while the nodes run.

Rules:
- Link (i, j) carries the connection node i dials to node j (peer links are one-way:
  the dialer sends, the listener only reads), so cutting (i, j) alone is a one-way fault.
- A cut link closes its open connections and refuses new ones until healed; the nodes'
  own redialling brings the link back.
- Delays apply per chunk read (bytes in flight are held, never reordered: the links are
  sealed streams, and a reordered byte would only be a cut).
- Every proxy binds 127.0.0.1 port 0; ``close`` stops the loop and every socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

_T = TypeVar("_T")

CHUNK_BYTES_MAX = 64 * 1024


@dataclass
class Link:
    target_port: int
    listen_port: int = 0
    cut: bool = False
    delay_ms: int = 0
    writers: set[asyncio.StreamWriter] = field(default_factory=set)


class ProxyNet:
    """Proxies for every ordered pair of ``peer_ports`` (node index -> its peer port)."""

    def __init__(self, peer_ports: list[int]) -> None:
        self.links: dict[tuple[int, int], Link] = {
            (i, j): Link(peer_ports[j]) for i in range(len(peer_ports))
            for j in range(len(peer_ports)) if i != j}
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.Server] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        for link in self.links.values():
            server = self._call(self._listen(link))
            self._servers.append(server)
            link.listen_port = server.sockets[0].getsockname()[1]

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _listen(self, link: Link) -> asyncio.Server:
        async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await self._serve(link, r, w)
        return await asyncio.start_server(serve, "127.0.0.1", 0)

    async def _serve(self, link: Link, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        if link.cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", link.target_port)
        except OSError:
            writer.close()
            return
        link.writers.update((writer, up_writer))
        await asyncio.gather(self._pump(link, reader, up_writer),
                             self._pump(link, up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            link.writers.discard(w)
            w.close()

    @staticmethod
    async def _pump(link: Link, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        try:
            while not link.cut:
                data = await reader.read(CHUNK_BYTES_MAX)
                if not data or link.cut:
                    break
                if link.delay_ms:
                    await asyncio.sleep(link.delay_ms / 1000)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    # ------------------------------------------------------------------ controls
    def port(self, i: int, j: int) -> int:
        """The address node i must dial to reach node j."""
        return self.links[(i, j)].listen_port

    def set_cut(self, pairs: list[tuple[int, int]], cut: bool) -> None:
        def apply() -> None:
            for pair in pairs:
                link = self.links[pair]
                link.cut = cut
                if cut:
                    for w in list(link.writers):
                        w.close()
        self._loop.call_soon_threadsafe(apply)

    def partition(self, groups: list[set[int]]) -> None:
        """Cut every link between different groups (both directions)."""
        where = {i: g for g, members in enumerate(groups) for i in members}
        self.set_cut([p for p in self.links if where[p[0]] != where[p[1]]], True)

    def heal(self) -> None:
        self.set_cut(list(self.links), False)
        self.set_delay(0)

    def set_delay(self, delay_ms: int) -> None:
        def apply() -> None:
            for link in self.links.values():
                link.delay_ms = delay_ms
        self._loop.call_soon_threadsafe(apply)

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            for link in self.links.values():
                for w in list(link.writers):
                    w.close()
        with contextlib.suppress(Exception):
            self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

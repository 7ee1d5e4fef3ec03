"""The bench's latency client: HTTP/1.1 POSTs over asyncio streams, connections kept alive.

Rules:
- It exists to measure, so it must cost the machine little: the bench runs its clients
  on the same cores as the four nodes, and whatever the client spends the nodes lack. The
  latency phase of ``tabellion bench`` first posted its small batches from 64 threads
  through ``httpx``: the submitter used 14-25 % of a core at 850 tx/s (1.4 ms per request,
  most of it threads handing the GIL to each other), and p50 measured 260-355 ms; through
  ``httpx.AsyncClient``, 33 % and 528 ms. With this client, one event loop and plain
  streams: 3 % and 178-189 ms (docs/performance.md, issue 11).
- One ``KeepAlive`` per node: idle connections are reused, newest first; one the server
  closed while idle (uvicorn closes them after a few seconds) is dropped, never written
  to; a connection whose answer failed in any way is closed, never reused.
- Everything read is bounded: the head (status line and headers) to ``HEAD_BYTES_MAX``,
  the body to ``BODY_BYTES_MAX`` and announced by ``Content-Length`` (the node's JSON
  answers always carry one; a chunked or unannounced body is a ``ProtocolError``), the
  whole exchange to the timeout given.
- Failures are exceptions the caller counts by name: ``TimeoutError``, ``OSError``
  (refused, reset), ``asyncio.IncompleteReadError`` (closed mid-answer),
  ``ProtocolError`` (an answer that is not HTTP/1.1 as the node speaks it).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

HEAD_BYTES_MAX = 16 * 1024
BODY_BYTES_MAX = 8 * 1024 * 1024
"""Largest answer body read; an answer to a batch of the bench is a few kilobytes."""
IDLE_CONNECTIONS_MAX = 64
"""Idle connections kept per node; more are closed when they come back."""


class ProtocolError(Exception):
    """The server's answer is not the HTTP/1.1 this client reads."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class KeepAlive:
    """POSTs to one ``http://host:port`` base URL over kept-alive connections."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"expected http://host:port, got {base_url!r}")
        self.host, self.port, self.netloc = parts.hostname, parts.port, parts.netloc
        self._idle: list[_Connection] = []
        self.opened = 0
        """Connections opened so far (a reused one is not counted again)."""

    async def post(self, target: str, body: bytes, content_type: str,
                   timeout_s: float) -> Answer:
        """POST ``body`` to ``target`` (path and query); the answer's status and body."""
        head = (f"POST {target} HTTP/1.1\r\nhost: {self.netloc}\r\n"
                f"content-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n")
        async with asyncio.timeout(timeout_s):
            reader, writer = await self._connection()
            try:
                writer.write(head.encode("ascii") + body)
                answer, keep = await _read_answer(reader)
            except BaseException:
                writer.close()
                raise
        if keep and len(self._idle) < IDLE_CONNECTIONS_MAX:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return answer

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
        for _, writer in idle:
            with contextlib.suppress(OSError):  # reset by the server: closed either way
                await writer.wait_closed()

    async def _connection(self) -> _Connection:
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()  # the server closed it while it was idle
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port, limit=HEAD_BYTES_MAX)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    """One answer; and whether the connection may carry another request."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError(f"an answer head longer than {HEAD_BYTES_MAX} bytes") from exc
    lines = raw[:-4].decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or status_line[0] != "HTTP/1.1" or not status_line[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise ProtocolError(f"a malformed header line: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise ProtocolError("a body without Content-Length (transfer-encoding)")
    length_text = headers.get("content-length", "")
    if not length_text.isdigit():
        raise ProtocolError("an answer without a valid Content-Length")
    length = int(length_text)
    if length > BODY_BYTES_MAX:
        raise ProtocolError(f"an answer body of {length} bytes, over {BODY_BYTES_MAX}")
    body = await reader.readexactly(length)
    keep = headers.get("connection", "").lower() != "close"
    return Answer(int(status_line[1]), body), keep

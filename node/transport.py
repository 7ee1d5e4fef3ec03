"""Authenticated peer transport: persistent TCP connections between validators.

Rules:
- Framing: every frame is a 4-byte big-endian length then that many bytes. A length of
  zero or above ``limits.frame_bytes_max`` (plus ``SEAL_BYTES`` once sealed) is a
  protocol violation: the connection is closed and the event logged. Nothing is
  allocated before the length is checked.
- One connection per direction: a node *sends* only on the connections it dialled and
  *receives* only on the connections its peers dialled. No tie-breaking is needed and a
  restarted peer simply dials again (its new inbound connection replaces the old one).
- Handshake (mutual, before any frame is accepted): the dialer sends
  ``[version, chain_id, dialer_key, dialer_ephemeral]``; the listener refuses a key that
  ``admit`` does not accept (the validators in force) or another chain, then answers
  ``[version, chain_id, listener_key, listener_ephemeral, listener_signature]``; the
  dialer checks that the key is the one it meant to reach and answers
  ``[dialer_signature]``. Each signature covers, under ``Tag.HANDSHAKE_SIGN``,
  ``[chain_id, role, dialer_key, listener_key, dialer_ephemeral, listener_ephemeral]``:
  both fresh ephemeral keys (no replay), both identity keys and the role (no
  reflection, no identity misbinding), the chain id (no cross-network use).
- Encrypted and bound to the handshake: the ephemerals are X25519 keys, fresh per
  connection; the frame key is derived from their Diffie-Hellman secret and the signed
  transcript (``session_key``). Every frame after the handshake is sealed with
  ChaCha20-Poly1305 (IETF, libsodium), its length header as associated data and a
  counter as nonce: an on-path relay can neither read transactions before they are
  public nor splice, reorder, replay or alter frames (any of these fails to open and
  closes the connection). Forward secrecy: the ephemeral secrets live only in memory.
- Admission follows the validator set in force: ``admit(key)`` is asked at every
  handshake and for every frame, so a validator removed by governance is refused and
  disconnected without a restart, and a configured peer added back is accepted again.
- Whom it dials follows the validator set too: ``set_peers`` (the runtime calls it when
  the set in force or a decided set changes, ``node.membership``) starts dialling a new
  validator, stops dialling (and drops the queue of) one that left, and moves a dialler
  to a validator's new address at its next attempt.
- Bounded memory: per-peer send queues are bounded in frames and bytes and drop their
  *oldest* frame when full (PBFT tolerates message loss; the newest votes are the useful
  ones; a disconnect would drop the whole queue and cost a handshake). A frame sent
  while nothing waits in a peer's queue is written at once (``send`` is synchronous and
  the node's owner task may not yield for a while after it). Inbound frames
  are handed to an async callback, which may block: TCP flow control then slows the
  sender down instead of the node buffering for it.
- Unauthenticated connections are capped per source address and in total, and must
  finish the handshake within ``limits.handshake_timeout_ms``; when the total is reached
  an idle connection (no first message yet) of the address holding the most is closed
  to make room, so idle or slow connections cannot keep a validator out
  (see ``_admit_pending``).
- Redial with exponential backoff, capped at ``limits.reconnect_backoff_ms_max``.
- Nothing a peer sends raises out of this module: every connection is a task whose
  errors are logged and end that connection only.
- ``close`` ends: it cancels the connection tasks again until they stop, a bounded
  number of times (a cancellation can be swallowed by ``asyncio.wait_for`` on Python
  3.11), so a node asked to stop never hangs on a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import nacl.exceptions
from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_decrypt,
    crypto_aead_chacha20poly1305_ietf_encrypt,
    crypto_scalarmult,
    crypto_scalarmult_base,
)

from ledger import crypto
from ledger.crypto import SigningKey
from ledger.encoding import Limits as DecodeLimits
from ledger.encoding import decode, encode
from ledger.errors import DecodeError
from ledger.hashing import Tag, tagged_bytes
from node.config import Limits, PeerConfig
from node.errors import TransportError

PROTOCOL_VERSION = 2
"""2: ephemeral X25519 keys instead of nonces, frames sealed after the handshake."""
NONCE_BYTES = 32
"""Length of an ephemeral X25519 public key (the handshake's fresh value)."""
SEAL_BYTES = 16
"""Poly1305 tag added to every sealed frame."""
HANDSHAKE_FRAME_BYTES_MAX = 1024
CONNECT_TIMEOUT_MS = 3_000
CLOSE_ROUND_MS = 200
"""How long ``close`` waits for the cancelled connection tasks before cancelling again."""
CLOSE_ROUNDS_MAX = 25
"""Rounds of cancellation ``close`` makes before it gives up on a task (and says so)."""
WRITE_BUFFER_BYTES_MAX = 1 << 20
"""Bytes written to a connection and not yet taken by the kernel before the writer
waits for them to drain (a slow peer then queues in its bounded outbox)."""
_HEADER = struct.Struct(">I")
_HANDSHAKE_LIMITS = DecodeLimits(input_bytes_max=HANDSHAKE_FRAME_BYTES_MAX, depth_max=2)

FrameHandler = Callable[[bytes, bytes], Awaitable[None]]
"""``await on_frame(sender_key, data)`` for every frame an authenticated peer sends."""
Admit = Callable[[bytes], bool]
"""``admit(key)``: whether the validator ``key`` may hold a connection now."""

log = logging.getLogger("tabellion.transport")


def handshake_bytes(
    chain_id: str, role: str, dialer: bytes, listener: bytes, dialer_nonce: bytes,
    listener_nonce: bytes,
) -> bytes:
    """The bytes each side signs to prove possession of its validator key."""
    body = encode([chain_id, role, dialer, listener, dialer_nonce, listener_nonce])
    return tagged_bytes(Tag.HANDSHAKE_SIGN, body)


def session_key(shared: bytes, transcript: bytes) -> bytes:
    """The frame key of one connection: the ephemeral Diffie-Hellman secret bound to the
    signed handshake transcript (both identities, both ephemerals, the chain)."""
    return hashlib.blake2b(shared + hashlib.sha256(transcript).digest(), digest_size=32,
                           person=b"tabellion-link").digest()


def _shared_secret(my_secret: bytes, their_public: bytes) -> bytes:
    if not isinstance(their_public, bytes) or len(their_public) != NONCE_BYTES:
        raise TransportError("malformed handshake ephemeral key")
    try:
        shared = crypto_scalarmult(my_secret, their_public)
    except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError) as exc:
        raise TransportError("unusable handshake ephemeral key") from exc
    if shared == bytes(len(shared)):  # a small-order point: no secret at all
        raise TransportError("unusable handshake ephemeral key")
    return bytes(shared)


class Seal:
    """One direction of a connection: frames sealed (or opened) with a counter nonce."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._counter = 0

    def _nonce(self) -> bytes:
        nonce = bytes(4) + self._counter.to_bytes(8, "big")
        self._counter += 1
        return nonce

    def seal(self, data: bytes) -> bytes:
        """``data`` framed and sealed: length header (authenticated) then ciphertext."""
        header = _HEADER.pack(len(data) + SEAL_BYTES)
        return header + crypto_aead_chacha20poly1305_ietf_encrypt(data, header,
                                                                  self._nonce(), self._key)

    async def read(self, reader: asyncio.StreamReader, frame_bytes_max: int) -> bytes:
        """Read and open one sealed frame; ``TransportError`` if it does not open."""
        header = await reader.readexactly(_HEADER.size)
        (length,) = _HEADER.unpack(header)
        if length <= SEAL_BYTES or length > frame_bytes_max + SEAL_BYTES:
            raise TransportError(f"frame of {length} bytes (allowed {SEAL_BYTES + 1}.."
                                 f"{frame_bytes_max + SEAL_BYTES} sealed)")
        body = await reader.readexactly(length)
        try:
            return bytes(crypto_aead_chacha20poly1305_ietf_decrypt(body, header,
                                                                   self._nonce(), self._key))
        except nacl.exceptions.CryptoError as exc:
            raise TransportError("a frame failed authentication (altered, replayed or "
                                 "spliced on the way)") from exc


@dataclass(slots=True)
class PeerStats:
    """What an operator sees of one peer (``/v1/status``, metrics)."""

    key: bytes
    address: str
    outbound: str = "connecting"
    """``connecting``, ``connected``, ``backoff``, ``stopped`` (no longer dialled) or
    ``not dialled`` (admitted, but no address is known for it)."""
    inbound: bool = False
    """Whether the peer currently holds an authenticated connection to us."""
    frames_sent: int = 0
    frames_received: int = 0
    frames_dropped: int = 0
    """Frames dropped because the peer's send queue was full."""
    connects: int = 0
    last_error: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "validator_key": self.key.hex(),
            "address": self.address,
            "outbound": self.outbound,
            "inbound": self.inbound,
            "connected": self.outbound == "connected" and self.inbound,
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "frames_dropped": self.frames_dropped,
            "connects": self.connects,
            "last_error": self.last_error,
        }


@dataclass(slots=True)
class _Outbox:
    """Frames waiting to be written to one peer, bounded in count and bytes."""

    frames: deque[bytes] = field(default_factory=deque)
    size_bytes: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    live: tuple[asyncio.StreamWriter, Seal] | None = None
    """The established connection, while its writer task runs: with nothing queued, a
    frame is written at once (the owner task sends its votes, then executes a block for
    hundreds of milliseconds without yielding; queued, the votes would wait for it)."""


@dataclass(slots=True)
class _Pending:
    """An inbound connection that has not proved its key yet."""

    address: str
    writer: asyncio.StreamWriter
    serial: int
    """Arrival order (lower is older)."""
    hello_received: bool = False
    evicted: bool = False


async def read_frame(reader: asyncio.StreamReader, frame_bytes_max: int) -> bytes:
    """Read one frame; raise ``TransportError`` on a bad length, ``IncompleteReadError``
    on end of stream."""
    header = await reader.readexactly(_HEADER.size)
    (length,) = _HEADER.unpack(header)
    if length == 0 or length > frame_bytes_max:
        raise TransportError(f"frame of {length} bytes (allowed 1..{frame_bytes_max})")
    return await reader.readexactly(length)


def frame(data: bytes) -> bytes:
    return _HEADER.pack(len(data)) + data


class Transport:
    """Connections to and from the other validators of one network."""

    def __init__(
        self,
        key: SigningKey,
        chain_id: str,
        peers: Sequence[PeerConfig],
        listen: tuple[str, int],
        limits: Limits,
        on_frame: FrameHandler,
        admit: Admit | None = None,
    ) -> None:
        """``admit`` says which validator keys may connect (asked at every handshake and
        frame); by default, the configured peers."""
        self._key = key
        self._me = key.public_key
        self._chain_id = chain_id
        self._listen = listen
        self._limits = limits
        self._on_frame = on_frame
        self._peers = {p.validator_key: p for p in peers if p.validator_key != self._me}
        self._admit = admit if admit is not None else self._peers.__contains__
        self.stats = {k: PeerStats(k, p.address) for k, p in self._peers.items()}
        self._outboxes = {k: _Outbox() for k in self._peers}
        self._dialers: dict[bytes, asyncio.Task[None]] = {}
        """The dialling task of each peer (one per key in ``_peers`` once started)."""
        self._started = False
        self._inbound: dict[bytes, asyncio.StreamWriter] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[int, _Pending] = {}
        """Unauthenticated inbound connections, by id."""
        self._serial = 0
        self._server: asyncio.Server | None = None
        self._closing = False
        self.refused = 0
        """Connections refused or closed for a protocol violation (metrics)."""

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_inbound, self._listen[0], self._listen[1]
        )
        self._started = True
        for key in self._peers:
            self._start_dialling(key)

    def _start_dialling(self, key: bytes) -> None:
        self._dialers[key] = self._spawn(self._dial_forever(key), f"dial-{key.hex()[:8]}")

    def set_peers(self, peers: Sequence[PeerConfig]) -> None:
        """Dial exactly ``peers`` from now on (our own key is ignored): new ones are
        dialled at once, those no longer listed stop being dialled and lose their queue,
        a new address is used from the next dial attempt."""
        wanted = {p.validator_key: p for p in peers if p.validator_key != self._me}
        for key in [k for k in self._peers if k not in wanted]:
            del self._peers[key]
            self._outboxes.pop(key, None)
            dialer = self._dialers.pop(key, None)
            if dialer is not None:
                dialer.cancel()
            stats = self.stats.get(key)
            if stats is not None and not stats.inbound:
                del self.stats[key]
            elif stats is not None:
                stats.outbound = "stopped"
            log.info("stopped dialling %s…: no longer a validator in force or decided",
                     key.hex()[:16])
        for key, peer in wanted.items():
            known = self._peers.get(key)
            self._peers[key] = peer
            if known is not None:
                if known.address != peer.address:
                    self.stats[key].address = peer.address
                    log.info("peer %s… moves to %s", key.hex()[:16], peer.address)
                continue
            self._outboxes[key] = _Outbox()
            stats = self.stats.get(key)
            if stats is None:
                self.stats[key] = PeerStats(key, peer.address)
            else:  # it dialled us first (inbound only until now)
                stats.address, stats.outbound = peer.address, "connecting"
            log.info("dialling validator %s… at %s", key.hex()[:16], peer.address)
            if self._started and not self._closing:
                self._start_dialling(key)

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for writer in list(self._inbound.values()):
            writer.close()
        stopped: set[asyncio.Task[None]] = set()
        for _ in range(CLOSE_ROUNDS_MAX):
            tasks = {task for task in self._tasks if not task.done()}
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            # Cancelled again each round: asyncio.wait_for (Python 3.11) can swallow a
            # cancellation that arrives as its inner await completes, and the task then
            # carries on (a dialer that had just connected pumped for ever).
            done, _ = await asyncio.wait(tasks, timeout=CLOSE_ROUND_MS / 1000)
            stopped |= done
        else:
            log.warning("%d connection tasks did not stop; closing anyway",
                        sum(1 for task in self._tasks if not task.done()))
        for task in stopped:
            if not task.cancelled():
                task.exception()  # retrieved: a failed connection is not an error to log
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        for stats in self.stats.values():
            stats.outbound = "stopped"

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ sending
    def send(self, peer: bytes, data: bytes) -> bool:
        """Queue ``data`` for ``peer``; return False if the peer is unknown or the frame
        is too large. Never blocks: a full queue drops its oldest frame."""
        outbox = self._outboxes.get(peer)
        if outbox is None or not data or len(data) > self._limits.frame_bytes_max:
            return False
        if outbox.live is not None and not outbox.frames:
            writer, seal = outbox.live
            # Everything queued before was already written: writing now keeps the order.
            if (not writer.is_closing() and self._admit(peer)
                    and writer.transport.get_write_buffer_size() <= WRITE_BUFFER_BYTES_MAX):
                writer.write(seal.seal(data))
                self.stats[peer].frames_sent += 1
                return True
        outbox.frames.append(data)
        outbox.size_bytes += len(data)
        while (len(outbox.frames) > self._limits.send_queue_max
               or outbox.size_bytes > self._limits.send_queue_bytes_max):
            dropped = outbox.frames.popleft()
            outbox.size_bytes -= len(dropped)
            self.stats[peer].frames_dropped += 1
        outbox.wake.set()
        return True

    def broadcast(self, data: bytes) -> None:
        for peer in self._peers:
            self.send(peer, data)

    @property
    def peer_keys(self) -> tuple[bytes, ...]:
        return tuple(self._peers)

    def connected(self) -> int:
        return sum(1 for s in self.stats.values() if s.outbound == "connected" and s.inbound)

    # ------------------------------------------------------------------ dialling
    async def _dial_forever(self, peer: bytes) -> None:
        stats = self.stats[peer]
        backoff_ms = self._limits.reconnect_backoff_ms_min
        while not self._closing:
            config = self._peers[peer]  # set_peers may have moved it to a new address
            stats.outbound = "connecting"
            writer: asyncio.StreamWriter | None = None
            try:
                reader, conn = await asyncio.wait_for(
                    asyncio.open_connection(config.host, config.port),
                    CONNECT_TIMEOUT_MS / 1000,
                )
                writer = conn
                if not self._admit(peer):
                    raise TransportError("not a validator in force (removed by "
                                         "governance?); not dialling it")
                seal = await asyncio.wait_for(
                    self._dialer_handshake(peer, reader, conn),
                    self._limits.handshake_timeout_ms / 1000,
                )
                stats.outbound = "connected"
                stats.connects += 1
                backoff_ms = self._limits.reconnect_backoff_ms_min
                log.info("connected to peer %s at %s", peer.hex()[:16], config.address)
                await self._pump(peer, reader, conn, seal)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, asyncio.IncompleteReadError, TransportError,
                    DecodeError) as exc:
                reason = str(exc) or type(exc).__name__
                if stats.outbound == "connected" or stats.last_error != reason:
                    log.info("peer %s at %s: %s; redialling in %d ms", peer.hex()[:16],
                             config.address, reason, backoff_ms)
                stats.last_error = reason
            finally:
                if writer is not None:
                    writer.close()
            stats.outbound = "backoff"
            await asyncio.sleep(backoff_ms / 1000)
            backoff_ms = min(2 * backoff_ms, self._limits.reconnect_backoff_ms_max)

    async def _dialer_handshake(
        self, peer: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Seal:
        my_secret = os.urandom(NONCE_BYTES)
        my_nonce = crypto_scalarmult_base(my_secret)
        writer.write(frame(encode([PROTOCOL_VERSION, self._chain_id, self._me, my_nonce])))
        await writer.drain()
        reply = decode(await read_frame(reader, HANDSHAKE_FRAME_BYTES_MAX), _HANDSHAKE_LIMITS)
        if not isinstance(reply, list) or len(reply) != 5:
            raise TransportError("malformed handshake reply")
        version, chain_id, their_key, their_nonce, their_sig = reply
        if version != PROTOCOL_VERSION or chain_id != self._chain_id:
            raise TransportError(f"peer speaks version {version!r} on chain {chain_id!r}")
        if their_key != peer:
            raise TransportError("the peer at this address holds another validator key; "
                                 "check the peers list of the configuration")
        shared = _shared_secret(my_secret, their_nonce)
        signed = handshake_bytes(self._chain_id, "listener", self._me, peer, my_nonce,
                                 their_nonce)
        if not isinstance(their_sig, bytes) or not crypto.verify(peer, signed, their_sig):
            raise TransportError("the peer's handshake signature does not verify")
        mine = handshake_bytes(self._chain_id, "dialer", self._me, peer, my_nonce, their_nonce)
        writer.write(frame(encode([self._key.sign(mine)])))
        await writer.drain()
        return Seal(session_key(shared, signed))

    async def _pump(
        self, peer: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        seal: Seal,
    ) -> None:
        """Write queued frames until the connection breaks. The listener never sends
        after the handshake, so anything readable (data or end of stream) ends it."""
        outbox = self._outboxes[peer]
        stats = self.stats[peer]
        watch = asyncio.ensure_future(reader.read(1))
        outbox.live = (writer, seal)
        try:
            while True:
                while outbox.frames:
                    if writer.is_closing():
                        raise TransportError("the connection was lost")
                    data = outbox.frames.popleft()
                    outbox.size_bytes -= len(data)
                    writer.write(seal.seal(data))
                    stats.frames_sent += 1
                    if writer.transport.get_write_buffer_size() > WRITE_BUFFER_BYTES_MAX:
                        await writer.drain()
                await writer.drain()
                if watch.done():
                    raise TransportError("the peer closed the connection")
                if not self._admit(peer):
                    raise TransportError("no longer a validator in force")
                outbox.wake.clear()
                waiter = asyncio.ensure_future(outbox.wake.wait())
                await asyncio.wait({waiter, watch}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            outbox.live = None
            watch.cancel()
            if watch.done() and not watch.cancelled():
                watch.exception()  # retrieved: a reset connection is not an error to log

    # ------------------------------------------------------------------ listening
    async def _on_inbound(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            await self._handle_inbound(reader, writer)
        except asyncio.CancelledError:
            writer.close()  # closing: this task is the top of its connection

    async def _handle_inbound(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        where = writer.get_extra_info("peername")
        pending = self._admit_pending(where, writer)
        if pending is None:
            self.refused += 1
            writer.close()
            return
        try:
            peer, seal = await asyncio.wait_for(
                self._listener_handshake(reader, writer, pending),
                self._limits.handshake_timeout_ms / 1000,
            )
        except (OSError, TimeoutError, asyncio.IncompleteReadError, TransportError,
                DecodeError) as exc:
            self.refused += 1
            reason = "evicted to make room" if pending.evicted else (
                str(exc) or type(exc).__name__)
            log.log(logging.DEBUG if pending.evicted else logging.WARNING,
                    "refused connection from %s: %s", where, reason)
            writer.close()
            return
        finally:
            self._pending.pop(id(pending), None)
        task = asyncio.current_task()
        if task is not None:  # inbound handlers are tasks of the server; track them
            self._tasks.add(task)
        old = self._inbound.get(peer)
        if old is not None:
            old.close()  # a restarted peer dials again: the newest connection wins
        self._inbound[peer] = writer
        stats = self._stats_of(peer)
        stats.inbound = True
        try:
            await self._read_frames(peer, reader, seal)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the peer went away; it will dial again
        except (TransportError, DecodeError) as exc:
            self.refused += 1
            stats.last_error = str(exc)
            log.warning("disconnected peer %s: %s", peer.hex()[:16], exc)
        finally:
            if self._inbound.get(peer) is writer:
                del self._inbound[peer]
                stats.inbound = False
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    def _admit_pending(self, where: object, writer: asyncio.StreamWriter
                       ) -> _Pending | None:
        """Register an unauthenticated connection, or return None to refuse it.

        At most ``handshakes_pending_per_address_max`` per source address: one address
        cannot hold the peer port. When all ``handshakes_pending_max`` slots are taken
        (many addresses), the newcomer still gets in: the connection closed to make room
        is one that has not sent its first message yet (else any), from the address
        holding the most slots, the oldest first. A validator dialling sends its first
        message at once and finishes in a round trip, so idle connections, however many
        addresses they come from, cannot push it out nor keep it out."""
        if self._closing:
            return None
        address = where[0] if isinstance(where, tuple) and where else str(where)
        counts: dict[str, int] = {}
        for other in self._pending.values():
            counts[other.address] = counts.get(other.address, 0) + 1
        if counts.get(address, 0) >= self._limits.handshakes_pending_per_address_max:
            return None
        if len(self._pending) >= self._limits.handshakes_pending_max:
            victim = min(self._pending.values(),
                         key=lambda p: (p.hello_received, -counts[p.address], p.serial))
            del self._pending[id(victim)]
            victim.evicted = True
            victim.writer.transport.abort()
        self._serial += 1
        pending = _Pending(address, writer, self._serial)
        self._pending[id(pending)] = pending
        return pending

    def _stats_of(self, peer: bytes) -> PeerStats:
        """A dialled peer's stats, or new ones for a validator admitted but not dialled
        (no address known for it, on chain or configured: it dials us; we cannot dial it)."""
        stats = self.stats.get(peer)
        if stats is None:
            stats = self.stats[peer] = PeerStats(peer, "(inbound only: no address known)",
                                                 outbound="not dialled")
        return stats

    async def _listener_handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pending: _Pending
    ) -> tuple[bytes, Seal]:
        hello = decode(await read_frame(reader, HANDSHAKE_FRAME_BYTES_MAX), _HANDSHAKE_LIMITS)
        pending.hello_received = True
        if not isinstance(hello, list) or len(hello) != 4:
            raise TransportError("malformed handshake")
        version, chain_id, peer, their_nonce = hello
        if version != PROTOCOL_VERSION or chain_id != self._chain_id:
            raise TransportError(f"version {version!r} on chain {chain_id!r}")
        if (not isinstance(peer, bytes) or len(peer) != crypto.PUBLIC_KEY_BYTES
                or peer == self._me or not self._admit(peer)):
            shown = peer.hex()[:16] if isinstance(peer, bytes) else "?"
            raise TransportError(f"key {shown} is not a validator of this network in force")
        my_secret = os.urandom(NONCE_BYTES)
        my_nonce = crypto_scalarmult_base(my_secret)
        shared = _shared_secret(my_secret, their_nonce)
        mine = handshake_bytes(self._chain_id, "listener", peer, self._me, their_nonce,
                               my_nonce)
        writer.write(frame(encode([PROTOCOL_VERSION, self._chain_id, self._me, my_nonce,
                                   self._key.sign(mine)])))
        await writer.drain()
        finish = decode(await read_frame(reader, HANDSHAKE_FRAME_BYTES_MAX), _HANDSHAKE_LIMITS)
        if not isinstance(finish, list) or len(finish) != 1 or not isinstance(finish[0], bytes):
            raise TransportError("malformed handshake finish")
        theirs = handshake_bytes(self._chain_id, "dialer", peer, self._me, their_nonce,
                                 my_nonce)
        if not crypto.verify(peer, theirs, finish[0]):
            raise TransportError(f"key {peer.hex()[:16]} failed to prove possession")
        return bytes(peer), Seal(session_key(shared, mine))

    async def _read_frames(self, peer: bytes, reader: asyncio.StreamReader, seal: Seal
                           ) -> None:
        stats = self.stats[peer]
        while True:
            data = await seal.read(reader, self._limits.frame_bytes_max)
            if not self._admit(peer):  # removed by governance since it connected
                raise TransportError("no longer a validator in force")
            stats.frames_received += 1
            try:
                await self._on_frame(peer, data)
            except (TransportError, DecodeError):
                raise  # the handler says this peer broke the protocol: disconnect
            except Exception:  # a bug in a handler must not take the node down
                log.exception("handler failed on a frame from %s", peer.hex()[:16])

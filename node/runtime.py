"""The validator node: one asyncio task owns the replica and carries out its effects.

Rules:
- Single owner. Every input (peer messages, admitted transactions, timer expiries,
  executed blocks) becomes an event; the owner task feeds events to ``Replica.step`` one
  at a time and carries out the returned effects synchronously: there is no ``await``
  between two steps of a group nor between two effects, so a shutdown (cancelling the
  task) lands between groups, never half-way through an effect list.
- Persist before send, with group commit: the owner task takes the events ready at
  once (up to ``GROUP_EVENTS_MAX``), steps the replica through them one at a time,
  then writes every ``Persist`` record of the group in ONE synced LevelDB batch (prefix
  ``p/`` of the chain store) and only then carries out the other effects, in order. No
  message leaves before the records it depends on are on disk; a record written
  earlier than it had to be is never wrong (the replica already decided it). Under load
  this is one disk flush per group instead of one per event (a flush costs about 2 ms
  of a blocked event loop here; a checkpoint's clean-up alone deletes dozens of records).
- Votes before execution: a ``Deliver`` only queues the block; the execution task runs
  the queue in height order (``node.chain``: contracts, then the block stored with its
  certificate and receipts and the state applied in one synced batch), answers waiting
  clients and reports ``BlockExecuted`` to the replica through the inbox. It executes
  ``EXECUTION_SLICE_TXS`` transactions at a time and yields to the event loop between
  slices: a block executes in hundreds of milliseconds under load, and a message
  depends only on the replica's decisions and the records on disk, never on an
  execution; when every vote waited for the executions under way on every node, a
  block took three phases of other blocks' executions to commit, and the primary's
  pacing left the cores idle between blocks. Nothing changes the state or the store
  but the execution task, and only in ``Chain.finish`` (no ``await`` inside), so what
  the rest of the node reads between slices is the last executed version. A height
  already stored or queued is ignored (delivery is at-least-once).
- Start-up: ``Chain.open`` reopens the store and the state and re-executes what a crash
  left unexecuted; the replica is rebuilt from its persisted records; it then catches
  up from its peers by state transfer (the replica verifies every certificate) before
  it votes again.
- Transactions reach the replica through ``TransactionsAvailable`` only as fast as its
  bounded queue has room; the mempool keeps the rest (``Mempool.feed``).
- Peer messages wait in the inbox within a byte budget, in total and per peer
  (``node.inbox``): a peer over its share waits, TCP slows it down.
- Peer frames start with a channel byte (consensus message, forwarded transactions). A
  frame on an unknown channel, or a transactions frame that does not decode,
  disconnects the peer; a consensus message that does not decode is dropped by the
  replica.
- SIGTERM and SIGINT: stop accepting (API, peers), let the owner task finish the event it
  is on, close the store, return (exit status 0).
- The cyclic garbage collector runs rarely (``tune_garbage_collector``): memory is freed
  by reference counting, and the collector only finds cycles, of which a node makes
  almost none. With Python's defaults, measured on a loaded node: full collections every
  few seconds, each stopping the event loop 70-310 ms to find 0-34 objects, and 6-11 %
  of the node's time in the collector for about 10 objects a second.
- Memory the process freed goes back to the system every ``MEMORY_RELEASE_INTERVAL_S``
  (``release_freed_memory``: glibc's ``malloc_trim``, a few milliseconds). glibc keeps
  freed memory in its heaps for reuse and returns only the top of a heap: on a node at a
  million transactions, 25 of its 249 MiB of anonymous memory were free pages inside
  the heaps, which one call handed back (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import hashlib
import logging
import os
import signal
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import uvicorn

from consensus.events import (
    BlockExecuted,
    Broadcast,
    CancelTimer,
    Deliver,
    DropTransactions,
    Effect,
    Event,
    MessageReceived,
    Persist,
    PersistRecord,
    RequestStateTransfer,
    Send,
    ServeBlocks,
    SetTimer,
    Start,
    TimerFired,
    TransactionsAvailable,
)
from consensus.messages import (
    MESSAGE_BYTES_MAX,
    BlocksResponse,
    CommittedProof,
    check_message_bounds,
    encode_message,
)
from consensus.persist import PersistedState
from consensus.replica import PENDING_TXS_MAX, TIME_AHEAD_MS_MAX, Replica
from contracts import engine
from ledger.crypto import SigningKey, load_key, weak_reason
from ledger.encoding import Limits as DecodeLimits
from ledger.encoding import decode, encode
from ledger.errors import LedgerError
from ledger.genesis import Genesis, load_genesis
from ledger.layout import CONSENSUS_PREFIX
from ledger.records import Block, Transaction
from node.api import ApiError, SubmitOutcome, create_app
from node.chain import Chain, Executed
from node.config import NodeConfig, load_config, split_host_port
from node.errors import ConfigError, MempoolRejection, TransportError
from node.executor import ChainExecutor
from node.inbox import InboxBytes
from node.membership import PeerDirectory
from node.mempool import Mempool
from node.metrics import Metrics, Snapshot
from node.reads import ChainReads
from node.transport import Transport

log = logging.getLogger("tabellion.node")

CH_CONSENSUS = 1
CH_TRANSACTIONS = 2
PERSIST_PREFIX = CONSENSUS_PREFIX
FORWARD_BATCH_TXS_MAX = 1000
WAITERS_MAX = 100_000
SUBMIT_YIELD_EVERY = 64
STATUS_LOG_INTERVAL_S = 10.0
MEMORY_RELEASE_INTERVAL_S = 10.0
LATENCY_TRACKED_MAX = 100_000
"""Admission times kept for the commit-latency histogram (twice the mempool)."""
REPEAT_BYTES_MIN = 16 * 1024
"""Consensus messages at least this large are checked for repeats (see _seen_recently)."""
REPEAT_WINDOW_MS = 2_000
REPEATS_TRACKED_MAX = 1_024
GROUP_EVENTS_MAX = 64
"""Events stepped before their effects are carried out (one disk flush per group)."""
EXECUTION_SLICE_TXS = 16
"""Transactions the execution task runs before it lets the event loop serve the rest
(about 5 to 15 ms of a busy node's time: a vote waits at most that long)."""
RESPONSE_BYTES_MAX = MESSAGE_BYTES_MAX - 64 * 1024
"""State-transfer answers stay under the consensus message limit (with room for framing)."""


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """How a group's effects are carried out (see the rules above): ``records`` first, in
    one synced batch; then ``actions`` (messages, timers, the rest); ``deliveries`` last.
    Each part keeps the order the replica gave."""

    records: tuple[PersistRecord, ...]
    actions: tuple[Effect, ...]
    deliveries: tuple[Deliver, ...]


def plan_group(effects: Sequence[Effect]) -> GroupPlan:
    """A record durable earlier than needed is never wrong, a message sent before its
    record is; a vote sent before a block's execution is never wrong either (it depends
    on the replica's decisions and records only), and sent after it, it waits for it."""
    return GroupPlan(
        records=tuple(e.record for e in effects if isinstance(e, Persist)),
        actions=tuple(e for e in effects if not isinstance(e, (Persist, Deliver))),
        deliveries=tuple(e for e in effects if isinstance(e, Deliver)))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Feed:
    """Internal event: hand waiting transactions to the replica (coalesced)."""


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the node owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Node:
    """One validator: replica, chain, mempool, transport and API in one event loop."""

    def __init__(self, config: NodeConfig, genesis: Genesis, key: SigningKey) -> None:
        self.config = config
        self.genesis = genesis
        self.key = key
        self._limits = config.limits
        self.chain_id = genesis.chain_id
        self._metrics = Metrics()
        self.chain = Chain.open(config.data_dir, genesis)
        self._persist_kv = self.chain.store.kv.prefixed(PERSIST_PREFIX)
        self.mempool = Mempool(self.chain_id, self._limits, self.chain.store.has_tx,
                               self._admissible)
        self._peers = PeerDirectory(key.public_key, config.peers)
        self.transport = Transport(key, self.chain_id, config.peers,
                                   split_host_port(config.listen_peer), self._limits,
                                   self._on_frame, admit=self._peers.admits)
        self._inbox: asyncio.Queue[Event | _Feed] = asyncio.Queue(self._limits.inbox_max)
        self._inbox_bytes = InboxBytes(self._limits.inbox_bytes_max,
                                       self._limits.peer_inbox_bytes_max)
        self._local: deque[Event | _Feed] = deque()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._waiter_count = 0
        self._admitted_at: OrderedDict[bytes, float] = OrderedDict()
        self._feed_pending = False
        self._stopping = asyncio.Event()
        self._started = False
        self._committed_total = 0
        self._last_view = 0
        self._recent_large: OrderedDict[bytes, int] = OrderedDict()
        self._clock_refusals_told = 0
        self._clock_told_at = -STATUS_LOG_INTERVAL_S
        persisted = PersistedState.from_records(self._persist_kv.items())
        self.executor = ChainExecutor(self.chain, self.mempool)
        self.reads = ChainReads(self.chain, self.mempool)
        self.replica = Replica(key=key, genesis=genesis, executor=self.executor,
                               persisted=persisted)
        self._last_view = self.replica.view
        self._asked_view = self.replica.changing.requests.get(self.replica.me, 0)
        self._delivered_at = time.monotonic()
        self._to_execute: deque[Deliver] = deque()
        """Delivered blocks the execution task has not executed yet, in height order."""
        self._queued_height = self.chain.height
        """Highest height queued for execution; the chain is never above it."""
        self._execution_due = asyncio.Event()

    # ================================================================== lifecycle
    async def run(self) -> None:
        """Serve until ``stop()`` (SIGTERM, SIGINT); then close everything and return."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        try:
            await self._serve()
        finally:
            self.chain.close()
            log.info("stopped cleanly at height %d", self.chain.height)

    async def _serve(self) -> None:
        self._follow_validators()
        await self.transport.start()
        host, port = split_host_port(self.config.listen_api)
        server = _ApiServer(uvicorn.Config(
            create_app(self), host=host, port=port, log_level="warning",
            access_log=False, lifespan="off", timeout_graceful_shutdown=2,
        ))
        api_task = asyncio.ensure_future(server.serve())
        while not server.started:
            if api_task.done():
                await self.transport.close()
                raise ConfigError(f"cannot serve the API on {self.config.listen_api} "
                                  "(listen_api): is the port in use?")
            await asyncio.sleep(0.01)
        log.info("validator %s… of %s at height %d (executed %d); peers on %s, API on "
                 "http://%s", self.key.public_key.hex()[:16], self.chain_id,
                 self.chain.height, self.chain.executed_height, self.config.listen_peer,
                 self.config.listen_api)
        self._local.append(Start(now_ms()))
        self._started = True
        owner = asyncio.ensure_future(self._drive())
        execution = asyncio.ensure_future(self._execute_delivered())
        reporter = asyncio.ensure_future(self._report())
        releaser = asyncio.ensure_future(self._release_memory())
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({owner, execution, stop}, return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping: refusing new requests; a block under execution is executed "
                 "again at the next start")
        server.should_exit = True
        for task in (owner, execution, reporter, releaser, stop):
            task.cancel()
        for task in (owner, execution, reporter, releaser, stop):
            # A store that fails (a full disk) ends the owner with a LedgerError: stop in
            # order all the same (API, peers), then raise it below.
            with contextlib.suppress(asyncio.CancelledError, LedgerError):
                await task
        for handle in self._timers.values():
            handle.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(api_task, 5)
        await self.transport.close()
        failure = next((task.exception() for task in (owner, execution)
                        if not task.cancelled() and task.exception() is not None), None)
        if failure is not None:
            log.error("stopped: %s", failure)
            raise failure

    def stop(self) -> None:
        self._stopping.set()

    async def _drive(self) -> None:
        """The owner task: the events ready now (a group), one at a time through the
        replica, then their effects (group commit: see the module's rules)."""
        while True:
            item: Event | _Feed | None = (
                self._local.popleft() if self._local else await self._inbox.get())
            effects: list[Effect] = []
            for _ in range(GROUP_EVENTS_MAX):
                assert item is not None
                effects.extend(self._step(item))
                item = self._ready_event()
                if item is None:
                    break
            if item is not None:
                self._local.appendleft(item)  # the group is full: first of the next one
            self._carry_out(effects)
            # Between groups, let the other tasks run (the readers, the API, the execution
            # task): ``Queue.get`` does not yield while the inbox holds events.
            await asyncio.sleep(0)

    def _ready_event(self) -> Event | _Feed | None:
        """The next event already waiting, without waiting for one."""
        if self._local:
            return self._local.popleft()
        try:
            return self._inbox.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def _step(self, item: Event | _Feed) -> list[Effect]:
        """One event through the replica; its effects, to carry out with the group's."""
        if isinstance(item, MessageReceived):  # only peers' messages are counted
            self._inbox_bytes.release(item.sender, len(item.data))
        if isinstance(item, _Feed):
            self._feed_pending = False
            fed = self._feed_event()
            if fed is None:
                return []
            item = fed
        effects = self.replica.step(item)
        self._after_step()
        return effects

    def _after_step(self) -> None:
        if self.replica.clock_refusals != self._clock_refusals_told:
            self._tell_clock_skew()
        self._follow_validators()
        asked = self.replica.changing.requests.get(self.replica.me, 0)
        if asked > self._asked_view:
            self._asked_view = asked
            self._tell_view_request(asked)
        if self.replica.view != self._last_view:
            if self.replica.view > self._last_view:
                self._metrics.view_changes.inc(self.replica.view - self._last_view)
            log.info("view %d (primary %s…)", self.replica.view,
                     self.replica.primary(self.replica.view).hex()[:16])
            self._last_view = self.replica.view

    def _tell_view_request(self, view: int) -> None:
        """This node's view timer ran out: say what it was waiting for (an operator's
        first question after a view change; also how overload shows)."""
        idle_s = time.monotonic() - self._delivered_at
        log.warning("asked to move to view %d: no block committed here for %.1f s "
                    "(height %d, executed %d, consensus at %d, %d transactions waiting, "
                    "view timeout %d ms)", view, idle_s, self.chain.height,
                    self.chain.executed_height, self.replica.tip, len(self.mempool),
                    self.replica.view_timeout_ms())

    def _tell_clock_skew(self) -> None:
        """The replica refused proposals dated too far in its future: say so at once,
        then at most every ``STATUS_LOG_INTERVAL_S`` (a slow clock silently costs the
        network this node's votes)."""
        now = time.monotonic()
        if now - self._clock_told_at < STATUS_LOG_INTERVAL_S:
            return
        log.warning(
            "refused %d proposals dated up to %.0f s ahead of this machine's clock (the "
            "limit is %d s): if the other validators commit them, this clock is behind and "
            "this node does not vote; synchronise it (NTP)",
            self.replica.clock_refusals - self._clock_refusals_told,
            self.replica.clock_ahead_ms / 1000, TIME_AHEAD_MS_MAX // 1000)
        self._clock_refusals_told = self.replica.clock_refusals
        self._clock_told_at = now

    async def _release_memory(self) -> None:
        """The module's rules: freed memory back to the system, now and then."""
        while True:
            await asyncio.sleep(MEMORY_RELEASE_INTERVAL_S)
            release_freed_memory()

    async def _report(self) -> None:
        """A line an operator can read, every few seconds."""
        last_height, last_txs = self.chain.height, 0
        while True:
            await asyncio.sleep(STATUS_LOG_INTERVAL_S)
            height, txs = self.chain.height, self._committed_total
            log.info("height %d (+%d blocks, +%d txs in %.0f s), view %d, peers %d/%d, "
                     "mempool %d", height, height - last_height, txs - last_txs,
                     STATUS_LOG_INTERVAL_S, self.replica.view, self.transport.connected(),
                     len(self.transport.peer_keys), len(self.mempool))
            last_height, last_txs = height, txs

    # ================================================================== effects
    def _carry_out(self, effects: Sequence[Effect]) -> None:
        plan = plan_group(effects)
        if plan.records:
            self._persist(plan.records)
        for effect in plan.actions:
            if isinstance(effect, Send):
                self.transport.send(effect.to, bytes([CH_CONSENSUS]) + effect.data)
            elif isinstance(effect, Broadcast):
                self.transport.broadcast(bytes([CH_CONSENSUS]) + effect.data)
            elif isinstance(effect, SetTimer):
                self._set_timer(effect.timer, effect.deadline_ms)
            elif isinstance(effect, CancelTimer):
                handle = self._timers.pop(effect.timer, None)
                if handle is not None:
                    handle.cancel()
            elif isinstance(effect, RequestStateTransfer):
                log.info("catching up: asking for blocks %d..%d", effect.from_height,
                         effect.to_height)
                for peer in effect.peers[:1]:
                    self.transport.send(peer, bytes([CH_CONSENSUS]) + effect.request)
            elif isinstance(effect, ServeBlocks):
                self._serve_blocks(effect)
            elif isinstance(effect, DropTransactions):
                self.mempool.remove(effect.tx_ids)
                if self.mempool.unfed:
                    self._feed()
        for delivery in plan.deliveries:
            self._deliver(delivery)

    def _persist(self, records: Sequence[PersistRecord]) -> None:
        """Write ``records`` in order, in one synced batch (a later record of the same key
        wins, as it would with one write each)."""
        self._metrics.persist_batches.inc()
        with self._persist_kv.batch(sync=True) as batch:
            for record in records:
                if record.value is None:
                    batch.delete(record.key)
                else:
                    batch.put(record.key, record.value)

    def _set_timer(self, timer: str, deadline_ms: int) -> None:
        old = self._timers.pop(timer, None)
        if old is not None:
            old.cancel()
        delay_s = max(0.0, (deadline_ms - now_ms()) / 1000)
        self._timers[timer] = asyncio.get_running_loop().call_later(
            delay_s, self._timer_fired, timer)

    def _timer_fired(self, timer: str) -> None:
        self._timers.pop(timer, None)
        try:
            self._inbox.put_nowait(TimerFired(now_ms(), timer))
        except asyncio.QueueFull:  # the replica re-arms its timers; try again shortly
            self._set_timer(timer, now_ms() + 50)

    # ================================================================== execution
    def _deliver(self, effect: Deliver) -> None:
        """Queue a committed block for the execution task (the module's rules)."""
        if effect.block.height <= self._queued_height:
            return  # delivery is at-least-once: this height is already queued (or stored)
        self._queued_height = effect.block.height
        self._to_execute.append(effect)
        self._execution_due.set()

    async def _execute_delivered(self) -> None:
        """The execution task: queued blocks in height order, a slice at a time."""
        while True:
            if not self._to_execute:
                self._execution_due.clear()
                await self._execution_due.wait()
                continue
            effect = self._to_execute.popleft()
            elapsed = 0.0  # this block's own time, not that of the work between slices
            started = time.perf_counter()
            execution = self.chain.start(effect.block)
            while not execution.run(EXECUTION_SLICE_TXS):
                elapsed += time.perf_counter() - started
                await asyncio.sleep(0)
                started = time.perf_counter()
            executed = self.chain.finish(effect.block, effect.certificate, execution)
            elapsed += time.perf_counter() - started
            await self._inbox.put(self._executed(effect.block, executed, elapsed))

    def _executed(self, block: Block, executed: Executed, elapsed: float) -> BlockExecuted:
        """Book-keeping after ``block`` was executed and stored; the replica's event."""
        self._delivered_at = time.monotonic()
        self._metrics.block_execution.observe(elapsed)
        self.executor.observe_execution(len(block.transactions), elapsed)
        ids = [tx.tx_id for tx in block.transactions]
        self.mempool.record_commit(now_ms(), ids)
        self._committed(ids)
        log.debug("block %d: %d transactions, view %d, proposer %s…, executed in %.0f ms, "
                  "%d ms after its proposal", block.height, len(ids), block.header.view,
                  block.header.proposer.hex()[:16], elapsed * 1000,
                  now_ms() - block.header.time_ms)
        return BlockExecuted(now_ms(), executed.height, executed.receipts_root,
                             executed.state_root)

    def _committed(self, tx_ids: Sequence[bytes]) -> None:
        self._metrics.committed_txs.inc(len(tx_ids))
        self._committed_total += len(tx_ids)
        now = time.monotonic()
        for tx_id in tx_ids:
            admitted = self._admitted_at.pop(tx_id, None)
            if admitted is not None:
                self._metrics.commit_latency.observe(now - admitted)
            for future in self._waiters.pop(tx_id, ()):
                self._waiter_count -= 1
                if not future.done():
                    future.set_result(None)

    # ================================================================== peers
    def _follow_validators(self) -> None:
        """Admit and dial the on-chain validators (``node.membership``)."""
        peers = self._peers.follow(self.replica.active_set, self.chain.history,
                                   self.replica.low, self.chain.state.latest_view)
        if peers is not None:
            self.transport.set_peers(peers)

    async def _on_frame(self, sender: bytes, data: bytes) -> None:
        channel, body = data[0], data[1:]
        if channel == CH_CONSENSUS:
            if len(body) >= REPEAT_BYTES_MIN and self._seen_recently(body):
                return
            await self._inbox_bytes.acquire(sender, len(body))  # a peer over its share waits
            await self._inbox.put(MessageReceived(now_ms(), sender, body))
        elif channel == CH_TRANSACTIONS:
            self._on_forwarded(sender, body)
        else:
            raise TransportError(f"unknown channel {channel}")

    def _seen_recently(self, body: bytes) -> bool:
        """Whether these exact bytes (a large message: a pre-prepare with its block) were
        handed to the replica less than ``REPEAT_WINDOW_MS`` ago. The replica's heartbeat
        re-sends in-flight pre-prepares to cover lost messages; decoding a repeat costs a
        backup as much as the original, and over a live TCP connection nothing was lost.
        A repeat after the window still goes through (it may be needed: the replica
        drops a pre-prepare for a view it has not entered yet)."""
        digest = hashlib.sha256(body).digest()
        now = now_ms()
        seen = self._recent_large.get(digest)
        if seen is not None and now - seen < REPEAT_WINDOW_MS:
            return True
        self._recent_large[digest] = now
        self._recent_large.move_to_end(digest)
        while len(self._recent_large) > REPEATS_TRACKED_MAX:
            self._recent_large.popitem(last=False)
        return False

    def _on_forwarded(self, sender: bytes, body: bytes) -> None:
        raws = decode(body, DecodeLimits(input_bytes_max=self._limits.frame_bytes_max,
                                         array_len_max=FORWARD_BATCH_TXS_MAX, depth_max=2))
        if not isinstance(raws, list) or not all(isinstance(r, bytes) for r in raws):
            raise TransportError("a transactions frame must be an array of byte strings")
        now = now_ms()
        for raw in raws:
            try:
                self.mempool.admit(raw, now, forward=False)
            except MempoolRejection as exc:
                log.debug("peer %s… forwarded a refused transaction: %s",
                          sender.hex()[:16], exc.code)
        self._feed()

    def _forward(self) -> None:
        """Send what clients submitted here to every validator (censorship resistance)."""
        while True:
            batch = self.mempool.to_forward(FORWARD_BATCH_TXS_MAX)
            if not batch:
                return
            self.transport.broadcast(bytes([CH_TRANSACTIONS]) + encode(batch))

    def _feed(self) -> None:
        """Ask the owner task to hand waiting transactions to the replica (coalesced)."""
        if self._feed_pending:
            return
        try:
            self._inbox.put_nowait(_Feed())
            self._feed_pending = True
        except asyncio.QueueFull:
            asyncio.get_running_loop().call_later(0.05, self._feed)

    def _feed_event(self) -> TransactionsAvailable | None:
        now = now_ms()
        # The replica drops expired transactions itself (its heartbeat); only read here.
        room = PENDING_TXS_MAX - len(self.replica.pending)
        txs = self.mempool.feed(room, now) if room > 0 else []
        return TransactionsAvailable(now, tuple(txs)) if txs else None

    # ---------------------------------------------------------------- state transfer
    def _serve_blocks(self, effect: ServeBlocks) -> None:
        last = min(effect.to_height, self.chain.height)
        proofs: list[CommittedProof] = []
        size = 0
        for height in range(effect.from_height, last + 1):
            stored = self.chain.store.get(height)
            size += len(stored.block.encode()) + 256 * 100
            if proofs and size > min(RESPONSE_BYTES_MAX, self._limits.frame_bytes_max):
                break
            proofs.append(CommittedProof(stored.block, stored.certificate))
        if proofs:
            message = encode_message(BlocksResponse(self.chain_id, tuple(proofs)))
            self.transport.send(effect.to, bytes([CH_CONSENSUS]) + message)

    # ================================================================== API facade
    @property
    def limits(self) -> Any:
        return self._limits

    def _admissible(self, tx: Transaction, time_ms: int) -> tuple[str, str] | None:
        receipt = engine.check_admissible(self.chain.state.latest_view(), tx, time_ms)
        return None if receipt is None else (receipt.code, receipt.message)

    async def submit(self, raws: Sequence[bytes]) -> list[SubmitOutcome]:
        outcomes = []
        for index, raw in enumerate(raws):
            if index and index % SUBMIT_YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a big batch must not stall consensus
            try:
                tx_id = self.mempool.admit(raw, now_ms(), forward=True)
            except MempoolRejection as exc:
                self._metrics.rejected_txs.labels(exc.code).inc()
                outcomes.append(SubmitOutcome.refused(exc))
                continue
            if tx_id not in self._admitted_at:
                self._admitted_at[tx_id] = time.monotonic()
                if len(self._admitted_at) > LATENCY_TRACKED_MAX:
                    self._admitted_at.popitem(last=False)
            outcomes.append(SubmitOutcome(tx_id, "accepted"))
        if any(o.accepted for o in outcomes):
            self._forward()
            self._feed()
        return outcomes

    async def wait_committed(self, tx_ids: Sequence[bytes], timeout_ms: int) -> bool:
        futures: list[tuple[bytes, asyncio.Future[None]]] = []
        for tx_id in tx_ids:
            if self.chain.store.has_tx(tx_id):
                continue
            if self._waiter_count >= WAITERS_MAX:
                raise ApiError(503, "too_many_waiters",
                               "too many clients are waiting for commits: poll "
                               "GET /v1/transactions/{tx_id} instead")
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(tx_id, []).append(future)
            self._waiter_count += 1
            futures.append((tx_id, future))
        if not futures:
            return True
        done, _ = await asyncio.wait([f for _, f in futures], timeout=timeout_ms / 1000)
        for tx_id, future in futures:
            waiting = self._waiters.get(tx_id)
            if future.done() or waiting is None or future not in waiting:
                continue
            future.cancel()
            waiting.remove(future)
            self._waiter_count -= 1
            if not waiting:
                del self._waiters[tx_id]
        return len(done) == len(futures)

    def transaction(self, tx_id: bytes) -> dict[str, Any] | None:
        return self.reads.transaction(tx_id)

    def block(self, height: int | None) -> dict[str, Any] | None:
        return self.reads.block(height)

    def records(self, contract: str | None, municipality: str | None, kind: str | None,
                after: str | None, limit: int) -> dict[str, Any]:
        return self.reads.records(contract, municipality, kind, after, limit)

    def state(self, key: bytes, height: int | None) -> dict[str, Any]:
        return self.reads.state(key, height)

    def _syncing(self) -> bool:
        return bool(self.replica.transfer.target > self.replica.tip)

    def status(self) -> dict[str, Any]:
        view = self.replica.view
        validators = self.replica.active_set
        return {
            "chain_id": self.chain_id,
            "genesis_hash": self.genesis.genesis_hash.hex(),
            "validator": self.key.public_key.hex(),
            "height": self.chain.height,
            "head_hash": self.chain.head_hash().hex(),
            "executed_height": self.chain.executed_height,
            "view": view,
            "view_active": self.replica.view_active,
            "primary": validators.primary(view).hex(),
            "validators": [k.hex() for k in validators.keys],
            "syncing": self._syncing(),
            "peers": [s.to_json() for s in self.transport.stats.values()],
            "mempool": {"transactions": len(self.mempool),
                        "bytes": self.mempool.size_bytes},
        }

    def health(self) -> tuple[bool, str]:
        if not self._started:
            return False, "starting"
        if self._syncing():
            return False, (f"catching up: height {self.chain.height} of "
                           f"{self.replica.transfer.target}")
        return True, f"height {self.chain.height}, view {self.replica.view}"

    def _snapshot(self) -> Snapshot:
        return Snapshot(
            height=self.chain.height, view=self.replica.view, mempool_txs=len(self.mempool),
            mempool_bytes=self.mempool.size_bytes, peers_connected=self.transport.connected(),
            peers_total=len(self.transport.peer_keys),
            signature_verifications=self.mempool.verifications,
        )

    def metrics(self) -> bytes:
        return self._metrics.render(self._snapshot)


def _passphrase(config: NodeConfig) -> bytes:
    value = os.environ.get(config.passphrase_env)
    if not value:
        raise ConfigError(
            f"the environment variable {config.passphrase_env} (passphrase_env in "
            f"{config.source}) is not set: export it with the passphrase of "
            f"{config.key_file}"
        )
    return value.encode()


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )


async def _main(config: NodeConfig) -> None:
    genesis = load_genesis(config.genesis_file)
    check_message_bounds(genesis.validator_set.n, genesis.consensus.watermark_window)
    key = load_key(config.key_file, _passphrase(config))
    weak = weak_reason(config.key_file)
    if weak is not None:
        log.warning("the key file %s is weaker than new key files: %s; re-encrypt it with "
                    "`tabellion keys rekey %s`", config.key_file, weak, config.key_file)
    if key.public_key not in genesis.validator_set.keys:
        log.warning("this node's key %s… is not in the genesis validator set: it will "
                    "follow the chain without voting", key.public_key.hex()[:16])
    node = Node(config, genesis, key)
    await node.run()


def end_process(code: int) -> NoReturn:
    """Leave the process once the node has stopped: logs and standard streams flushed,
    then ``os._exit``. Everything durable is already synced and closed (``Node.run``).
    The interpreter's own teardown is skipped on purpose: finalising the web framework's
    module globals with the node still referenced from them printed "Error in
    sys.excepthook" on every clean stop, which an operator would take for a crash."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


GC_THRESHOLDS = (50_000, 20, 100)
"""Allocations before a young collection (Python's default: 700), then young collections
per middle one and middle ones per full one (defaults 10 and 10): a full collection
comes after about a hundred million allocations instead of every few seconds."""


def tune_garbage_collector() -> None:
    """The module's rules: what the process holds at start-up (modules, the web
    framework) is set aside for good (``gc.freeze``, never traversed again), and
    collections run at ``GC_THRESHOLDS``."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> bool:
    """Hand the free pages of the C heaps back to the system; whether anything was (False
    also where the C library cannot)."""
    return _MALLOC_TRIM is not None and bool(_MALLOC_TRIM(0))


def run_node(config_path: Path | str) -> None:
    """Load the configuration and run a node until SIGTERM or SIGINT, then return."""
    config = load_config(config_path)
    setup_logging(config.log_level)
    tune_garbage_collector()
    asyncio.run(_main(config))

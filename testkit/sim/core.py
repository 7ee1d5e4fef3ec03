"""Deterministic simulator: every replica in one process, a seeded network and clock.

Rules:
- Everything random comes from one ``random.Random(seed)``: the same seed replays the
  same run, step for step. Time is simulated milliseconds; nothing sleeps.
- The network delays (uniform), loses, duplicates and so reorders messages, and drops
  those that cross a partition (decided at send time). A crashed node receives nothing;
  a restarted one gets a fresh ``Replica`` built from what it persisted (or from nothing,
  to model a broken store), and its executor state (the node's stored chain) survives.
- Faulty nodes (equivocating primary, twins sharing a key, forger, silent) are listed in
  ``faulty``; the checker holds only the others to the invariants.
- The checker runs after every step (``Checker``); a violation raises
  ``SimulationFailure`` whose message names the seed and the command that replays it.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

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
    RequestStateTransfer,
    Send,
    ServeBlocks,
    SetTimer,
    Start,
    TimerFired,
    TimerId,
    TransactionsAvailable,
)
from consensus.messages import (
    BlockBody,
    BlocksResponse,
    CommittedProof,
    Message,
    NewView,
    PrePrepare,
    Proposal,
    Status,
    decode_message,
    encode_blocks_response,
    encode_message,
    message_bytes_max,
    message_kind,
)
from consensus.persist import PersistedState, vote_key
from consensus.replica import Replica
from ledger.crypto import SigningKey
from ledger.errors import DecodeError, InvalidCertificate
from ledger.genesis import ConsensusParams, Genesis, Member, Municipality
from ledger.records import Block, CommitCertificate, Transaction, Vote
from ledger.validation import txs_root, verify_certificate
from testkit.sim.executor import SimExecutor

GENESIS_TIME_MS = 1_700_000_000_000
TX_LIFETIME_MS = 6 * 24 * 3600 * 1000
"""Within the 7-day horizon every block checks (runs last minutes of simulated time)."""
SIM_PARAMS = ConsensusParams(checkpoint_interval=4, watermark_window=16, block_txs_max=8,
                             block_bytes_max=64 * 1024, view_timeout_ms=400, execution_lag=2)
STEPS_MAX_DEFAULT = 400_000

ReplicaFactory = Callable[..., Replica]


class SimulationFailure(AssertionError):
    """An invariant broke; the message says which, with the seed that replays it."""


def sim_key(index: int) -> SigningKey:
    return SigningKey(hashlib.sha256(b"tabellion-sim-validator-%d" % index).digest())


CLIENT_KEY = SigningKey(hashlib.sha256(b"tabellion-sim-client").digest())


def make_genesis(keys: list[SigningKey], params: ConsensusParams = SIM_PARAMS) -> Genesis:
    municipalities = tuple(
        Municipality(f"Commune {i}", f"{21000000000000 + i:014d}", k.public_key,
                     (Member(hashlib.sha256(b"admin%d" % i).digest(), "admin"),))
        for i, k in enumerate(keys))
    return Genesis("tabellion-sim", GENESIS_TIME_MS, municipalities, params)


def make_transaction(nonce: int, payload: dict[str, object] | None = None,
                     contract: str = "sim") -> Transaction:
    tx = Transaction("tabellion-sim", contract, "put", payload or {"n": nonce},
                     CLIENT_KEY.public_key, nonce, GENESIS_TIME_MS + TX_LIFETIME_MS)
    return tx.signed(CLIENT_KEY)


@dataclass
class SimNode:
    """One validator process: a replica, its executor (stored chain) and its disk."""

    index: int
    key: SigningKey
    executor: SimExecutor
    replica: Replica
    persisted: dict[bytes, bytes] = field(default_factory=dict)
    delivered: dict[int, CommittedProof] = field(default_factory=dict)
    alive: bool = True
    paused: bool = False
    held: list[Event] = field(default_factory=list)
    timer_gen: dict[str, int] = field(default_factory=dict)
    clock_rate: float = 1.0
    forget_persisted: bool = False
    equivocate: bool = False
    silent: bool = False
    forger: bool = False
    tamperer: bool = False
    """Byzantine: swaps the transactions of every body it sends (pre-prepares, bodies
    asked by hash, state-transfer blocks), keeping the signed headers."""
    liar: bool = False
    """Byzantine: claims a huge committed height in a signed STATUS at every send."""
    committed_tx_ids: set[bytes] = field(default_factory=set)


class Checker:
    """The invariants, checked after every step on what correct nodes did."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.chain: dict[int, bytes] = {}
        self.chain_blocks: dict[int, Block] = {}
        self.reference = SimExecutor(sim.genesis)
        self.votes: dict[tuple[bytes, int, int, int], bytes] = {}
        self.violations: list[str] = []

    def fail(self, what: str) -> None:
        self.violations.append(what)
        raise SimulationFailure(self.sim.failure_message(what))

    def on_deliver(self, node: SimNode, block: Block, cert: CommitCertificate) -> None:
        """Agreement per height, a valid certificate for every commit, delivered contents
        that match the header, only transactions a client submitted, and the same
        validator history as the reference execution."""
        if node.index in self.sim.faulty:
            return
        height = block.header.height
        block_hash = block.header.block_hash
        if txs_root(block.transactions) != block.header.txs_root:
            self.fail(f"contents: node {node.index} delivered height {height} with "
                      "transactions that do not match its header's txs_root")
        strangers = [tx for tx in block.transactions if tx.tx_id not in self.sim.submitted]
        if strangers:
            self.fail(f"contents: node {node.index} delivered a transaction no client "
                      f"submitted at height {height}")
        known = self.chain.get(height)
        if known is not None and known != block_hash:
            self.fail(f"agreement: node {node.index} committed {block_hash.hex()[:12]} at "
                      f"height {height}, another correct node committed {known.hex()[:12]}")
        if known is None:
            self.chain[height] = block_hash
            self.chain_blocks[height] = block
        while self.reference.height + 1 in self.chain_blocks and \
                self.reference.height + 1 < height:
            self.reference.execute(self.chain_blocks[self.reference.height + 1])
        try:
            verify_certificate(cert, block.header, self.reference.set_at(height),
                               chain_id=self.sim.genesis.chain_id)
        except InvalidCertificate as exc:
            self.fail(f"certificate: node {node.index} committed height {height} on an "
                      f"invalid certificate: {exc}")
        before = height - 1
        if self.reference.height >= before and (node.executor.history.decided_up_to(before)
                                                != self.reference.history.decided_up_to(before)):
            self.fail(f"history: node {node.index} disagrees with the reference on the "
                      f"validator sets decided before height {height}")

    def on_size(self, node: SimNode, data: bytes) -> None:
        """No message of a correct replica exceeds its documented bound (a function of n,
        the watermark window and the block limit): VIEW-CHANGE and NEW-VIEW never grow
        with block sizes."""
        if node.index in self.sim.faulty:
            return
        params = self.sim.genesis.consensus
        n = max(len(s.keys) for s in (self.reference.set_at(h) for h in
                                       (1, self.reference.height + params.watermark_window)))
        kind = message_kind(data)
        bound = message_bytes_max(kind, n, params.watermark_window, params.block_bytes_max)
        if len(data) > bound:
            self.fail(f"size: node {node.index} sent a kind-{kind} message of {len(data)} "
                      f"bytes, above its bound of {bound}")

    def on_sent(self, node: SimNode, message: Message) -> None:
        """No correct replica signs two different blocks at one (view, height, phase), and
        each vote is on its disk before it leaves."""
        if node.index in self.sim.faulty:
            return
        if isinstance(message, NewView):
            if message.sender != node.key.public_key:
                return  # relayed for a peer that missed it: not this node's votes
            for pp in message.pre_prepares:
                self.on_sent(node, pp)
            return
        if isinstance(message, PrePrepare | Proposal):
            place = (message.sender, 0, message.view, message.height)
            block_hash = message.block_hash
        elif isinstance(message, Vote):
            place = (message.voter, message.phase, message.view, message.height)
            block_hash = message.block_hash
        else:
            return
        known = self.votes.get(place)
        if known is None:
            # The first time a vote leaves, it must be on disk (it may be garbage-collected
            # later, below a stable checkpoint, and still be re-sent inside a NEW-VIEW).
            if not node.forget_persisted and vote_key(place[3], place[2], place[1]) not in \
                    node.persisted:
                self.fail(f"persistence: node {node.index} sent a vote for (phase "
                          f"{place[1]}, view {place[2]}, height {place[3]}) before "
                          "persisting it")
            self.votes[place] = block_hash
        elif known != block_hash:
            self.fail(f"conflicting votes: node {node.index} signed two blocks for "
                      f"(phase {place[1]}, view {place[2]}, height {place[3]})")


class Simulation:
    """A seeded run of n replicas; see the module docstring."""

    def __init__(self, seed: int, n: int = 4, *, scenario: str = "custom",
                 params: ConsensusParams = SIM_PARAMS, loss: float = 0.0, dup: float = 0.0,
                 delay_ms: tuple[int, int] = (2, 30), extra_nodes: int = 0,
                 replica_factory: dict[int, ReplicaFactory] | None = None,
                 twins: tuple[int, ...] = ()) -> None:
        self.seed = seed
        self.scenario = scenario
        self.rng = random.Random(seed)
        self.loss, self.dup, self.delay_ms = loss, dup, delay_ms
        keys = sorted((sim_key(i) for i in range(n + extra_nodes)),
                      key=lambda k: k.public_key)
        # Genesis validators are the first n keys in key order (node i = validator i).
        self.keys = keys
        self.genesis = make_genesis(keys[:n], params)
        self.params = params
        self.factories = replica_factory or {}
        self.nodes: list[SimNode] = []
        for index, key in enumerate(keys):
            self.nodes.append(self._new_node(index, key))
        for twin in twins:  # a second instance with the same key (Twins)
            self.nodes.append(self._new_node(twin, keys[twin]))
        self.faulty: set[int] = set(twins)
        self.time = GENESIS_TIME_MS + 1_000
        self.queue: list[tuple[int, int, int, Event | Callable[[], object]]] = []
        self.seq = 0
        self.steps = 0
        self.partition: list[set[int]] | None = None
        self.drop_filter: Callable[[int, int, bytes], bool] | None = None
        self.observer: Callable[[int, Message | None], None] | None = None
        self.submitted: dict[bytes, Transaction] = {}
        self.nonce = 0
        self.sent_log: list[tuple[int, bytes]] = []
        self.checker = Checker(self)
        self.checks_enabled = True
        for node_id in range(len(self.nodes)):
            self._push(self.time, node_id, Start(self.time))

    # ------------------------------------------------------------------ setup

    def _new_node(self, index: int, key: SigningKey) -> SimNode:
        executor = SimExecutor(self.genesis)
        factory = self.factories.get(index, Replica)
        replica = factory(key=key, genesis=self.genesis, executor=executor, persisted=None)
        return SimNode(index, key, executor, replica)

    def failure_message(self, what: str) -> str:
        return (f"{what}\n  scenario={self.scenario} seed={self.seed} step={self.steps} "
                f"time={self.time - GENESIS_TIME_MS} ms\n  replay: .venv/bin/python -m "
                f"testkit.sim --scenario {self.scenario} --seed {self.seed}")

    def nodes_of(self, index: int) -> list[int]:
        """Node ids (positions in ``self.nodes``) running validator ``index``."""
        return [i for i, node in enumerate(self.nodes) if node.index == index]

    # ------------------------------------------------------------------ scheduling

    def _push(self, at: int, node_id: int, item: Event | Callable[[], object]) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, node_id, item))

    def at(self, offset_ms: int, action: Callable[[], object]) -> None:
        """Run ``action`` at simulated time start + ``offset_ms``."""
        self._push(GENESIS_TIME_MS + 1_000 + offset_ms, -1, action)

    def after(self, delay_ms: int, action: Callable[[], object]) -> None:
        """Run ``action`` ``delay_ms`` after the current simulated time."""
        self._push(self.time + delay_ms, -1, action)

    def local_now(self, node: SimNode) -> int:
        start = GENESIS_TIME_MS + 1_000
        return start + int((self.time - start) * node.clock_rate)

    def _global_deadline(self, node: SimNode, local_deadline: int) -> int:
        start = GENESIS_TIME_MS + 1_000
        return max(self.time, start + math.ceil((local_deadline - start) / node.clock_rate))

    # ------------------------------------------------------------------ control

    def submit(self, count: int, contract: str = "sim",
               payload: dict[str, object] | None = None) -> list[Transaction]:
        """Clients hand ``count`` transactions to every running node (mempool forward)."""
        txs = []
        for _ in range(count):
            self.nonce += 1
            tx = make_transaction(self.nonce, payload, contract)
            self.submitted[tx.tx_id] = tx
            txs.append(tx)
        for node_id, node in enumerate(self.nodes):
            if node.alive:
                self._push(self.time, node_id, TransactionsAvailable(self.local_now(node),
                                                                     tuple(txs)))
        return txs

    def crash(self, index: int) -> None:
        for node_id in self.nodes_of(index):
            node = self.nodes[node_id]
            node.alive = False
            node.timer_gen = {k: v + 1 for k, v in node.timer_gen.items()}

    def restart(self, index: int) -> None:
        """Restart from the persisted state (the node's chain survives with it); the
        mempool re-forwards the transactions not yet committed."""
        for node_id in self.nodes_of(index):
            node = self.nodes[node_id]
            state = PersistedState.from_records(node.persisted.items())
            factory = self.factories.get(index, Replica)
            node.replica = factory(key=node.key, genesis=self.genesis, executor=node.executor,
                                   persisted=state)
            node.alive, node.paused, node.held = True, False, []
            self._push(self.time, node_id, Start(self.local_now(node)))
            waiting = tuple(tx for tx_id, tx in self.submitted.items()
                            if tx_id not in node.committed_tx_ids)
            if waiting:
                self._push(self.time, node_id,
                           TransactionsAvailable(self.local_now(node), waiting))

    def pause(self, index: int) -> None:
        for node_id in self.nodes_of(index):
            self.nodes[node_id].paused = True

    def resume(self, index: int) -> None:
        for node_id in self.nodes_of(index):
            node = self.nodes[node_id]
            node.paused = False
            held, node.held = node.held, []
            # It resumes where it stopped: its heartbeat fires first, with its old view.
            gen = node.timer_gen.get(TimerId.TICK, 0) + 1
            node.timer_gen[TimerId.TICK] = gen
            self._push(self.time, node_id, TimerFired(gen, TimerId.TICK))
            for event in held:
                self._push(self.time, node_id, event)

    def set_partition(self, groups: list[set[int]] | None) -> None:
        self.partition = groups

    # ------------------------------------------------------------------ network

    def _connected(self, a: int, b: int) -> bool:
        if self.partition is None:
            return True
        return any(a in g and b in g for g in self.partition)

    def _transmit(self, src_node: SimNode, dst_index: int, data: bytes) -> None:
        src = src_node.index
        if src == dst_index or not self._connected(src, dst_index):
            return
        for node_id in self.nodes_of(dst_index):
            if self.drop_filter is not None and self.drop_filter(src, dst_index, data):
                continue
            copies = 1
            if self.rng.random() < self.loss:
                copies = 0
            elif self.rng.random() < self.dup:
                copies = 2
            for _ in range(copies):
                delay = self.rng.randint(*self.delay_ms)
                self._push(self.time + delay, node_id,
                           MessageReceived(0, src_node.key.public_key, data))

    def _broadcast(self, node: SimNode, data: bytes) -> None:
        for index in range(len(self.keys)):
            self._transmit(node, index, data)

    def _index_of(self, key: bytes) -> int:
        for index, k in enumerate(self.keys):
            if k.public_key == key:
                return index
        return -1

    # ------------------------------------------------------------------ effects

    def _apply(self, node_id: int, effects: list[Effect]) -> None:
        node = self.nodes[node_id]
        for effect in effects:
            if isinstance(effect, (Send, Broadcast)):
                self._outgoing(node, effect)
            elif isinstance(effect, Persist):
                if node.forget_persisted:
                    continue
                if effect.record.value is None:
                    node.persisted.pop(effect.record.key, None)
                else:
                    node.persisted[effect.record.key] = effect.record.value
            elif isinstance(effect, SetTimer):
                gen = node.timer_gen.get(effect.timer, 0) + 1
                node.timer_gen[effect.timer] = gen
                self._push(self._global_deadline(node, effect.deadline_ms), node_id,
                           TimerFired(gen, effect.timer))
            elif isinstance(effect, CancelTimer):
                node.timer_gen[effect.timer] = node.timer_gen.get(effect.timer, 0) + 1
            elif isinstance(effect, Deliver):
                self._deliver(node_id, effect.block, effect.certificate)
            elif isinstance(effect, RequestStateTransfer):
                for peer in effect.peers:
                    self._transmit(node, self._index_of(peer), effect.request)
            elif isinstance(effect, ServeBlocks):
                blocks = tuple(node.delivered[h] for h in
                               range(effect.from_height, effect.to_height + 1)
                               if h in node.delivered)
                if blocks:
                    data = encode_blocks_response(self.genesis.chain_id, blocks)
                    if node.tamperer:
                        data = self._tamper(data)
                    self._transmit(node, self._index_of(effect.to), data)
            elif isinstance(effect, DropTransactions):
                node.committed_tx_ids.update(effect.tx_ids)

    def _outgoing(self, node: SimNode, effect: Send | Broadcast) -> None:
        data = effect.data
        try:
            message = decode_message(data)
        except DecodeError:
            message = None
        if message is not None and self.checks_enabled:
            self.checker.on_sent(node, message)
            self.checker.on_size(node, data)
        if self.observer is not None:
            self.observer(node.index, message)
        if node.silent:
            return
        if node.equivocate and isinstance(message, PrePrepare) and isinstance(effect, Broadcast):
            self._equivocate(node, message)
            return
        if node.tamperer and isinstance(message, PrePrepare | BlockBody):
            data = self._tamper(data)
        if node.liar:
            self._lie(node)
        self.sent_log.append((node.index, data))
        if len(self.sent_log) > 2000:
            del self.sent_log[:1000]
        if isinstance(effect, Send):
            self._transmit(node, self._index_of(effect.to), data)
        else:
            self._broadcast(node, data)
        if node.forger:
            self._forge(node)

    def _tamper(self, data: bytes) -> bytes:
        """The same signed header with other (still validly signed) transactions."""
        message = decode_message(data)
        forged = (make_transaction(10**9 + self.rng.randrange(10**6)),)
        if isinstance(message, PrePrepare):
            return encode_message(replace(message, block=Block(message.block.header, forged)))
        if isinstance(message, BlockBody):
            return encode_message(replace(message, block=Block(message.block.header, forged)))
        if isinstance(message, BlocksResponse):
            return encode_message(replace(message, blocks=tuple(
                CommittedProof(Block(p.block.header, forged), p.certificate)
                for p in message.blocks)))
        return data

    def _lie(self, node: SimNode) -> None:
        status = Status.make(node.key, self.genesis.chain_id, 0, True, 10**9)
        self._broadcast(node, encode_message(status))

    def _equivocate(self, node: SimNode, pp: PrePrepare) -> None:
        """Send the real block to half of the peers and a conflicting one to the rest."""
        header = pp.block.header
        other = node.executor.build_block(
            height=header.height, view=header.view, prev_hash=header.prev_hash,
            time_ms=header.time_ms + 1, proposer=header.proposer,
            transactions=tuple(reversed(pp.block.transactions[1:])))
        twin = PrePrepare.make(node.key, pp.chain_id, pp.view, other)
        for index in range(len(self.keys)):
            data = encode_message(pp if index % 2 == 0 else twin)
            self._transmit(node, index, data)

    def _forge(self, node: SimNode) -> None:
        """A Byzantine node adds garbage: random bytes, flipped bytes, replays, votes
        forged in another validator's name, messages signed by an outsider."""
        if self.rng.random() > 0.3 or not self.sent_log:
            return
        target = self.rng.randrange(len(self.keys))
        choice = self.rng.randrange(5)
        _, sample = self.sent_log[self.rng.randrange(len(self.sent_log))]
        if choice == 0:
            data = self.rng.randbytes(self.rng.randint(1, 200))
        elif choice == 1:
            flipped = bytearray(sample)
            flipped[self.rng.randrange(len(flipped))] ^= 1 << self.rng.randrange(8)
            data = bytes(flipped)
        elif choice == 2:
            data = sample  # replay (possibly stale, possibly another validator's)
        elif choice == 3:
            victim = self.keys[self.rng.randrange(len(self.keys))].public_key
            vote = Vote(self.genesis.chain_id, 2, 0, 1, bytes(32), victim, bytes(64))
            data = encode_message(vote)
        else:
            outsider = SigningKey(self.rng.randbytes(32))
            vote = Vote.make(outsider, self.genesis.chain_id, 1, 0, 1, bytes(32))
            data = encode_message(vote)
        self._transmit(node, target, data)

    def _deliver(self, node_id: int, block: Block, cert: CommitCertificate) -> None:
        node = self.nodes[node_id]
        height = block.header.height
        if height in node.delivered:
            return  # at-least-once delivery: the node ignores a height it holds
        if self.checks_enabled:
            self.checker.on_deliver(node, block, cert)
        result = node.executor.execute(block)
        if result is None:
            if node.index not in self.faulty:
                raise SimulationFailure(self.failure_message(
                    f"order: node {node.index} was handed height {height} after "
                    f"{node.executor.height}"))
            return
        node.delivered[height] = CommittedProof(block, cert)
        receipts_root, state_root, _ = result
        self._push(self.time, node_id,
                   BlockExecuted(self.local_now(node), height, receipts_root, state_root))

    # ------------------------------------------------------------------ running

    def step(self) -> bool:
        """Process one queued item; return False when the queue is empty."""
        if not self.queue:
            return False
        at, _, node_id, item = heapq.heappop(self.queue)
        self.time = max(self.time, at)
        self.steps += 1
        if node_id < 0:
            assert callable(item)
            item()
            return True
        node = self.nodes[node_id]
        assert not callable(item)
        if not node.alive:
            return True
        if isinstance(item, TimerFired):
            if node.timer_gen.get(item.timer) != item.now_ms:
                return True  # cancelled or replaced (now_ms carries the generation here)
            item = TimerFired(self.local_now(node), item.timer)
        elif isinstance(item, MessageReceived):
            item = MessageReceived(self.local_now(node), item.sender, item.data)
        if node.paused:
            node.held.append(item)
            return True
        effects = node.replica.step(item)
        self._apply(node_id, effects)
        return True

    def run(self, until_ms: int, steps_max: int = STEPS_MAX_DEFAULT) -> None:
        """Run until simulated time start + ``until_ms`` (or the step budget)."""
        deadline = GENESIS_TIME_MS + 1_000 + until_ms
        while self.queue and self.queue[0][0] <= deadline and steps_max > 0:
            self.step()
            steps_max -= 1
        self.time = max(self.time, deadline)

    def correct_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes if n.index not in self.faulty and n.alive]

    def all_committed(self, nodes: list[SimNode] | None = None) -> bool:
        nodes = self.correct_nodes() if nodes is None else nodes
        return all(set(self.submitted) <= n.committed_tx_ids for n in nodes)

    def run_until_committed(self, within_ms: int, nodes: list[SimNode] | None = None,
                            steps_max: int = STEPS_MAX_DEFAULT) -> None:
        """Liveness: every submitted transaction commits at every given correct node
        within ``within_ms`` of simulated time; otherwise fail with the seed."""
        deadline = self.time + within_ms
        while not self.all_committed(nodes):
            if not self.queue or self.queue[0][0] > deadline or steps_max <= 0:
                missing = {n.index: len(set(self.submitted) - n.committed_tx_ids)
                           for n in (nodes or self.correct_nodes())}
                views = {n.index: (n.replica.view, n.replica.view_active, n.replica.tip)
                         for n in self.nodes}
                raise SimulationFailure(self.failure_message(
                    f"liveness: transactions still pending {missing} after {within_ms} ms "
                    f"(view, active, height) per node: {views}"))
            self.step()
            steps_max -= 1

    def view_changes(self) -> int:
        """Highest view reached by a correct node (each view past 0 is one view change)."""
        return max((n.replica.view for n in self.correct_nodes()), default=0)

    def heights(self) -> int:
        return max((n.replica.tip for n in self.correct_nodes()), default=0)

"""The PBFT replica (Castro & Liskov), adapted to hash-chained blocks, as a pure state
machine: ``Replica.step(event) -> list[Effect]``.

Rules:
- One owner, one event at a time; no clock, I/O or randomness (time is ``event.now_ms``).
- Every handler first rejects what it must not act on: malformed bytes, wrong chain id,
  unknown or non-member sender, bad signature, stale or future view, height outside the
  watermark window ``(low, low + window]``. Rejection is silent and never raises.
- Memory is bounded whatever peers send: one slot per height in the window, one vote per
  (sender, phase) per slot, one VIEW-CHANGE per sender, a few checkpoints per sender, a
  bounded pending-transaction queue and state-transfer buffer.
- Every vote this replica signs (pre-prepare, prepare, commit, view-change) is persisted
  by a ``Persist`` effect placed before the effect that sends it; after a restart the
  replica never signs a different block for the same (view, height, phase).
- Chaining (ADR 0008): a replica PREPAREs height h in view v only if it prepared h - 1 in
  view v with the hash h names as ``prev_hash``, or knows h - 1 final with that hash; it
  COMMITs h only once h is prepared under that same rule. Blocks are delivered strictly in
  height order, each with a commit certificate of q COMMITs from distinct validators.
- Validator sets change only at checkpoint boundaries (``ledger.validator_history``); the
  heights in flight never straddle a change: a height whose set differs from the set in
  force at low + 1 waits until the boundary checkpoint is stable. The executor owns the
  history (``Executor.validator_history``), so consensus and execution never disagree.
- Never trust a block body: signatures cover headers only. Every body passes
  ``ledger.validation.validate_block`` (link, proposer, set hash, limits, ``txs_root``,
  every transaction) at every door before it is stored, voted on or delivered: own
  proposal, pre-prepare, NEW-VIEW re-proposal, blocks inside a VIEW-CHANGE (bound to
  their header by ``txs_root``), state transfer, and the persisted blocks a restart
  delivers. Every certificate check binds the chain id and the set in force at its
  height. Block responses nobody asked for are dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from consensus import persist as keys
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
    StateTransferData,
    TimerFired,
    TimerId,
    TransactionsAvailable,
)
from consensus.executor import Executor
from consensus.messages import (
    BLOCKS_PER_RESPONSE_MAX,
    HEIGHTS_PER_REQUEST_MAX,
    BlockBody,
    BlocksRequest,
    BlocksResponse,
    BodyRequest,
    Checkpoint,
    CommittedProof,
    Message,
    NewView,
    PreparedCertificate,
    PrePrepare,
    Proposal,
    Status,
    ViewChange,
    ViewChangeRequest,
    decode_message,
    encode_message,
    header_hash,
    signature_valid,
)
from consensus.persist import PHASE_PRE_PREPARE, PersistedState
from consensus.viewchange import compute_o
from ledger import crypto
from ledger.encoding import decode, encode, encode_array
from ledger.errors import DecodeError, InvalidCertificate, LedgerError
from ledger.genesis import ConsensusParams, Genesis
from ledger.records import (
    Block,
    BlockHeader,
    CommitCertificate,
    Phase,
    Transaction,
    ValidatorSet,
    Vote,
)
from ledger.validation import txs_root, validate_block, verify_certificate

PENDING_TXS_MAX = 20_000
"""Most transactions waiting for a block (the node's mempool keeps the rest)."""
RECENT_COMMITTED_IDS_MAX = 100_000
"""Committed transaction ids remembered to ignore late copies of them."""
CHECKPOINTS_PER_SENDER_MAX = 8
"""Checkpoint messages kept per sender (the highest ones)."""
TIME_AHEAD_MS_MAX = 60_000
"""A proposed block time may be at most this far ahead of this replica's clock."""
TICK_MS_MIN = 50
"""Shortest heartbeat period."""
IDLE_EMPTY_BLOCK_MS = 1_000
"""An idle primary waits this long after its last block before it proposes an empty one
to certify the results of the last busy blocks (at most ``execution_lag`` of them)."""
BODIES_PER_WINDOW = 4
"""Block bodies kept in memory to serve BODY-REQUESTs and re-proposals, and bodies
remembered as validated (by object identity, so that a body checked at its pre-prepare is
not checked again when it is delivered): at most this many per height of the watermark
window each (a few candidates per height at most), and none at or below the stable
checkpoint. Kept longer, they grow with the chain: 1,024 validated blocks of 200
transactions held about 200,000 transactions in every node."""


@dataclass(slots=True)
class ViewChanging:
    """The view-change machinery: what this replica and the others asked and sent."""

    attempts: int = 0
    """View changes tried since the last commit (each doubles the view timeout)."""
    mine: ViewChange | None = None
    """This replica's VIEW-CHANGE for the view it is moving to."""
    received: dict[bytes, ViewChange] = field(default_factory=dict)
    """The latest VIEW-CHANGE of each validator."""
    requests: dict[bytes, int] = field(default_factory=dict)
    """Highest view each validator asked to move to (VIEW-CHANGE-REQUEST, the pre-vote)."""
    new_view: NewView | None = None
    """The NEW-VIEW that started the current view (re-sent to validators left behind)."""
    new_view_sent: dict[bytes, int] = field(default_factory=dict)
    """When this replica last sent its NEW-VIEW to each peer (at most once per view
    timeout per peer)."""


@dataclass(frozen=True, slots=True)
class ChainPoint:
    """A block the replica builds on: its height, hash and time."""

    height: int
    hash: bytes
    time_ms: int


@dataclass(slots=True)
class Transfer:
    """State transfer in progress: catching up on committed blocks from peers."""

    target: int = 0
    """Highest height known to be committed by a quorum (or claimed by a peer) to reach."""
    deadline: int | None = None
    """When the request in flight is given up and the next peer asked."""
    peer_index: int = 0
    """Rotates the peer asked."""
    buffer: dict[int, CommittedProof] = field(default_factory=dict)
    """Blocks received ahead of the tip, by height (applied in order)."""
    asked: tuple[bytes, int, int] | None = None
    """(peer, first, last) of the block request in flight: the only answer accepted."""
    source: bytes | None = None
    """The peer whose blocks fill the buffer."""
    shunned: bytes | None = None
    """The last peer that served a block failing its certificate or the block check:
    asked again only when no other peer is left."""


@dataclass
class Slot:
    """What this replica knows about one height in the current view."""

    candidate: PrePrepare | Proposal | None = None
    """A pre-prepare received but not yet accepted (waiting for its parent, execution, or
    its body when only the header is known)."""
    trusted: bool = False
    """The candidate comes from a verified NEW-VIEW: it holds the height."""
    pre_prepare: PrePrepare | Proposal | None = None
    """The accepted pre-prepare of this view (at most one); a body-less ``Proposal`` only
    for a height already final at this replica (re-proposed in a NEW-VIEW)."""
    prepares: dict[bytes, Vote] = field(default_factory=dict)
    """PREPARE votes of this view, the first one per voter."""
    commits: dict[bytes, Vote] = field(default_factory=dict)
    """COMMIT votes of this view, the first one per voter."""
    prepared: bool = False
    """Prepared under the chaining rule in this view; COMMIT sent."""


class Replica:
    """One validator's PBFT state machine. See the module docstring for its rules."""

    def __init__(self, *, key: crypto.SigningKey, genesis: Genesis, executor: Executor,
                 persisted: PersistedState | None = None) -> None:
        self.key = key
        self.me = key.public_key
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.params = genesis.consensus
        """The genesis parameters: K, L and D never change; the governed ones (block
        limits, view timeout) come from ``governed(height)``."""
        self.executor = executor
        self.view = 0
        self.view_active = True
        self.view_deadline: int | None = None
        """When the view timer fires (None: not running)."""
        self.changing = ViewChanging()
        self.low_point = ChainPoint(0, genesis.genesis_hash, genesis.genesis_time_ms)
        """The last stable checkpoint (the low watermark): genesis at first."""
        self.stable_proof: tuple[Checkpoint, ...] = ()
        self.tip_point = ChainPoint(0, genesis.genesis_hash, genesis.genesis_time_ms)
        """The last block committed in order (delivered or known final)."""
        self.tip_reached_ms = 0
        """When (this replica's clock) the tip last moved by a commit in order."""
        self.slots: dict[int, Slot] = {}
        self.prepared: dict[int, PreparedCertificate] = {}
        self.committed: dict[int, CommittedProof] = {}
        self.my_votes: dict[tuple[int, int, int], bytes] = {}
        self.my_pre_prepares: dict[tuple[int, int], PrePrepare | Proposal] = {}
        self.checkpoints: dict[bytes, dict[int, Checkpoint]] = {}
        self.my_checkpoint: Checkpoint | None = None
        self.pending: OrderedDict[bytes, Transaction] = OrderedDict()
        self.recent_committed: OrderedDict[bytes, None] = OrderedDict()
        self.transfer = Transfer()
        self.validated: OrderedDict[bytes, Block] = OrderedDict()
        self.bodies: OrderedDict[bytes, Block] = OrderedDict()
        """Bodies by header hash: what BODY-REQUESTs are answered from (bounded)."""
        self.bodies_wanted: dict[bytes, tuple[int, tuple[bytes, ...]]] = {}
        """Header hash -> (height, validators that vouched for it): bodies to fetch."""
        self.body_attempts = 0
        """Rotates the validator asked for each wanted body."""
        self.busy_height = 0
        """Highest height known to hold transactions: its results are certified by header
        ``busy_height + D``, so an idle primary proposes empty blocks up to there."""
        self.peer_heights: dict[bytes, int] = {}
        self.behind_seen: dict[bytes, int] = {}
        self.peer_tips: dict[bytes, int] = {}
        self.tx_id_cache: dict[bytes, tuple[bytes, ...]] = {}
        self.clock_refusals = 0
        """Proposals refused for a time more than ``TIME_AHEAD_MS_MAX`` ahead of this
        replica's clock; ``clock_ahead_ms`` is by how much the last one was."""
        self.clock_ahead_ms = 0
        self.now = 0
        self._out: list[Effect] = []
        if persisted is not None:
            self._restore(persisted)

    # ------------------------------------------------------------------ entry point

    def step(self, event: Event) -> list[Effect]:
        """Handle one event; return the effects to carry out, in order."""
        self._out = []
        self.now = max(self.now, event.now_ms)
        if isinstance(event, MessageReceived):
            self.on_message(event.sender, event.data)
        elif isinstance(event, TransactionsAvailable):
            self.on_transactions(event.txs)
        elif isinstance(event, TimerFired):
            self.on_timer(event.timer)
        elif isinstance(event, BlockExecuted):
            self.on_block_executed(event)
        elif isinstance(event, StateTransferData):
            self.on_blocks(tuple(CommittedProof(b.block, b.certificate) for b in event.blocks))
        elif isinstance(event, Start):
            self.on_start()
        self._propose()
        self._arm_view_timer()
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------------ helpers

    @property
    def low(self) -> int:
        """Height of the low watermark (the last stable checkpoint)."""
        return self.low_point.height

    @property
    def tip(self) -> int:
        """Height of the last block committed in order."""
        return self.tip_point.height

    @property
    def window(self) -> int:
        return self.params.watermark_window

    def governed(self, height: int) -> ConsensusParams:
        """The consensus parameters governing ``height`` (governance may raise the block
        limits or the view timeout; every replica applies a change at the same height)."""
        return self.executor.validator_history().params_at(height)

    @property
    def timeout_ms(self) -> int:
        """The base view timeout for the heights being decided now."""
        return self.governed(self.tip + 1).view_timeout_ms

    def set_at(self, height: int) -> ValidatorSet:
        """The validator set in force at ``height`` as far as execution knows: the
        executor owns the one ``ValidatorHistory`` (rebuilt from its store at start-up),
        so a crash between execution and ``BlockExecuted`` loses no change."""
        return self.executor.validator_history().at(height)

    @property
    def active_set(self) -> ValidatorSet:
        """The set that runs views and checkpoints now: the one in force at low + 1."""
        return self.set_at(self.low + 1)

    def primary(self, view: int) -> bytes:
        return self.active_set.primary(view)

    def _executed(self) -> int:
        return int(self.executor.executed_height())

    def _height_open(self, height: int) -> bool:
        """Inside the watermarks and governed by the active set (changes wait for the
        boundary checkpoint to become stable)."""
        if not self.low < height <= self.low + self.window:
            return False
        return self.set_at(height) == self.active_set

    def _persist(self, key: bytes, value: bytes | None) -> None:
        self._out.append(Persist(PersistRecord(key, value)))

    def _broadcast(self, message: Message) -> None:
        self._out.append(Broadcast(encode_message(message)))

    def _send(self, to: bytes, message: Message) -> None:
        self._out.append(Send(to, encode_message(message)))

    def _slot(self, height: int) -> Slot:
        slot = self.slots.get(height)
        if slot is None:
            slot = self.slots[height] = Slot()
        return slot

    def _final_hash(self, height: int) -> tuple[bytes, int] | None:
        """(hash, time) of the final block at ``height``, if this replica knows it."""
        if height == self.low:
            return self.low_point.hash, self.low_point.time_ms
        if height == 0:
            return self.genesis.genesis_hash, self.genesis.genesis_time_ms
        if height == self.tip:
            return self.tip_point.hash, self.tip_point.time_ms
        proof = self.committed.get(height)
        if proof is not None:
            return header_hash(proof.block.header), proof.block.header.time_ms
        return None

    def _parent(self, height: int) -> tuple[bytes, int] | None:
        """(hash, time) of the block height - 1 chains to: final, or accepted in this view."""
        final = self._final_hash(height - 1)
        if final is not None:
            return final
        slot = self.slots.get(height - 1)
        if slot is not None and slot.pre_prepare is not None:
            header = slot.pre_prepare.header
            return header_hash(header), header.time_ms
        return None

    def _parent_locked(self, height: int, prev_hash: bytes) -> bool:
        """The chaining rule: h - 1 is final with ``prev_hash``, or prepared in this view."""
        final = self._final_hash(height - 1)
        if final is not None:
            return final[0] == prev_hash
        slot = self.slots.get(height - 1)
        return (slot is not None and slot.prepared and slot.pre_prepare is not None
                and slot.pre_prepare.block_hash == prev_hash)

    def _record_vote(self, bucket: dict[bytes, Vote], vote: Vote) -> bool:
        """Keep the first vote of each voter; a second one from the same voter never
        counts (whether a duplicate or a conflicting vote)."""
        if vote.voter in bucket:
            return False
        bucket[vote.voter] = vote
        return True

    def _matching(self, bucket: dict[bytes, Vote], block_hash: bytes,
                  members: ValidatorSet, exclude: bytes | None = None) -> list[Vote]:
        keys_ = set(members.keys)
        return [v for v in bucket.values()
                if v.block_hash == block_hash and v.voter in keys_ and v.voter != exclude]

    def _sign_vote(self, phase: int, height: int, block_hash: bytes) -> Vote | None:
        """Sign a vote unless this replica already signed another hash at this place."""
        place = (height, self.view, phase)
        previous = self.my_votes.get(place)
        if previous is not None and previous != block_hash:
            return None
        vote = Vote.make(self.key, self.chain_id, phase, self.view, height, block_hash)
        if previous is None:
            self.my_votes[place] = block_hash
            self._persist(keys.vote_key(height, self.view, phase), block_hash)
        return vote

    # ------------------------------------------------------------------ start and restore

    def _restore(self, state: PersistedState) -> None:
        """Rebuild from persisted records; a record that does not decode is a damaged
        store: refuse to start rather than risk signing a conflicting vote."""
        try:
            self._restore_records(state.records)
        except (LedgerError, IndexError, ValueError, TypeError) as exc:
            raise DecodeError(
                "the persisted consensus state is damaged; restore the node's data "
                f"directory from a backup ({exc})") from exc

    def _restore_records(self, records: dict[bytes, bytes]) -> None:
        if keys.KEY_STABLE in records:
            self._set_stable(tuple(Checkpoint.from_value(c)
                                   for c in decode(records[keys.KEY_STABLE])))
        if keys.KEY_VIEW in records:
            view, active = decode(records[keys.KEY_VIEW])
            self.view, self.view_active = int(view), bool(active)
        if keys.KEY_NEW_VIEW in records:
            nv = decode_message(records[keys.KEY_NEW_VIEW])
            if isinstance(nv, NewView) and nv.view == self.view:
                self.changing.new_view = nv
        if keys.KEY_VIEW_CHANGE in records:
            vc = decode_message(records[keys.KEY_VIEW_CHANGE])
            if isinstance(vc, ViewChange):
                self.changing.mine = vc
                self.changing.received[self.me] = vc
        for key, value in sorted(records.items()):
            if key.startswith(keys.PREFIX_VOTE):
                height, view, phase = keys.parse_vote_key(key)
                if phase == PHASE_PRE_PREPARE:
                    pp = decode_message(value)
                    if isinstance(pp, PrePrepare | Proposal):
                        if not signature_valid(pp):
                            raise DecodeError(f"the persisted pre-prepare at height {height} "
                                              "has a signature that does not verify")
                        self.my_votes[(height, view, phase)] = pp.block_hash
                        self.my_pre_prepares[(height, view)] = pp
                        if isinstance(pp, PrePrepare):
                            self._keep_body(pp.block)
                else:
                    self.my_votes[(height, view, phase)] = value
            elif key.startswith(keys.PREFIX_PREPARED):
                cert_value, body_value = decode(value)
                cert = PreparedCertificate.from_value(cert_value)
                self.prepared[cert.height] = cert
                self._keep_body(Block.from_value(body_value))
            elif key.startswith(keys.PREFIX_COMMITTED):
                done = CommittedProof.from_value(decode(value))
                self.committed[done.height] = done
                self._keep_body(done.block)
        # The node executed at least up to the stable checkpoint unless it adopted one
        # from its peers before catching up; then it fetches the blocks again.
        if self.low and self._executed() >= self.low:
            self.tip_point = self.low_point
        # Slots of the current view come back from this replica's own persisted votes.
        for (height, view), pp in self.my_pre_prepares.items():
            if view == self.view and height > self.low:
                if isinstance(pp, PrePrepare):
                    self._slot(height).pre_prepare = pp
                else:  # a re-proposal of its NEW-VIEW: its body comes back by hash
                    slot = self._slot(height)
                    slot.candidate, slot.trusted = pp, True
        # Re-proposals of the NEW-VIEW this replica entered but had not accepted yet (it
        # crashed while their bodies were on the way) hold their heights again.
        entered = self.changing.new_view
        if entered is not None and self.view_active and entered.view == self.view:
            for proposal in entered.pre_prepares:
                if proposal.height <= self.low:
                    continue
                held = self._slot(proposal.height)
                if held.pre_prepare is None and held.candidate is None:
                    body = self.bodies.get(proposal.block_hash)
                    held.candidate = proposal if body is None else proposal.with_body(body)
                    held.trusted = True
                    if body is None:
                        vouchers = self._vouchers(entered, proposal.block_hash)
                        self.bodies_wanted[proposal.block_hash] = (
                            proposal.height, tuple(p for p in vouchers if p != self.me))

    def on_start(self) -> None:
        """(Re)start: re-deliver persisted committed blocks the node has not executed,
        ask again for the re-proposal bodies it was waiting for, announce where this
        replica is, and arm the heartbeat."""
        self._deliver_ready()
        self._request_bodies()
        self._try_accept(self._lowest_waiting())
        for height in sorted(self.slots):
            self._maybe_prepare(height)
        nv = self.changing.new_view
        if not self.view_active and nv is not None and nv.sender == self.me:
            self._enter_new_view(nv)  # it crashed between its NEW-VIEW and the view record
            self._broadcast(nv)
        if not self.view_active and self.changing.mine is not None:
            self._broadcast(self.changing.mine)
        self._out.append(SetTimer(TimerId.TICK, self.now + self._tick_ms()))
        self._broadcast_status()

    def _tick_ms(self) -> int:
        return max(TICK_MS_MIN, self.timeout_ms // 4)

    # ------------------------------------------------------------------ messages

    def on_message(self, sender: bytes, data: bytes) -> None:
        """Decode and dispatch one peer message; anything malformed is dropped."""
        try:
            message = decode_message(data)
        except DecodeError:
            return
        if isinstance(message, BlockBody):
            if message.chain_id == self.chain_id:
                self.on_body(sender, message.block)
            return
        if isinstance(message, BlocksResponse):
            # Only the answer to the request in flight, from the peer asked, within the
            # heights asked: anything else is unsolicited and dropped unread.
            asked = self.transfer.asked
            if message.chain_id == self.chain_id and asked is not None and asked[0] == sender:
                self.transfer.asked = None
                self.transfer.source = sender
                self.on_blocks(tuple(p for p in message.blocks
                                     if asked[1] <= p.height <= asked[2]))
            return
        if message.chain_id != self.chain_id:
            return
        if isinstance(message, Vote):
            if message.voter != sender:
                return  # a vote relayed by someone else is not needed and not accepted
            if message.phase == Phase.PREPARE:
                self.on_prepare(message)
            else:
                self.on_commit(message)
            return
        if not self._known_validator(sender):
            return
        if isinstance(message, NewView):
            # Any validator may relay a NEW-VIEW to a peer that missed it: the primary's
            # signature and the view-change quorum inside prove it, not the relay.
            self.on_new_view(message)
            return
        if message.sender != sender:
            return
        if isinstance(message, PrePrepare):
            self.on_pre_prepare(message)
        elif isinstance(message, Proposal):
            self.on_proposal(message)
        elif isinstance(message, BodyRequest):
            self.on_body_request(message)
        elif isinstance(message, Checkpoint):
            self.on_checkpoint(message)
        elif isinstance(message, ViewChange):
            self.on_view_change(message)
        elif isinstance(message, ViewChangeRequest):
            self.on_view_change_request(message)
        elif isinstance(message, Status):
            self.on_status(message)
        elif isinstance(message, BlocksRequest):
            self.on_blocks_request(message)

    def _known_validator(self, key: bytes) -> bool:
        return self.executor.validator_history().ever_member(key)

    # ------------------------------------------------------------------ normal case

    def _proposal_acceptable(self, pp: PrePrepare | Proposal) -> bool:
        """A fresh proposal of the current view's primary for an open height."""
        height = pp.height
        if not self.view_active or pp.view != self.view or pp.sender != self.primary(pp.view):
            return False
        if height <= self.tip or not self._height_open(height) or height in self.committed:
            return False
        header = pp.header
        return header.view == pp.view and header.proposer == pp.sender

    def on_pre_prepare(self, pp: PrePrepare) -> None:
        """Keep the first valid pre-prepare of the current view's primary per height."""
        if not self._proposal_acceptable(pp):
            return
        slot = self._slot(pp.height)
        held = slot.candidate
        if slot.pre_prepare is not None or (held is not None and not (
                isinstance(held, Proposal) and held.block_hash == pp.block_hash)):
            return  # one pre-prepare per (view, height): an equivocating primary loses
        if not signature_valid(pp):
            return
        slot.candidate = pp
        self._try_accept(pp.height)

    def on_proposal(self, proposal: Proposal) -> None:
        """The primary's retransmission of a pre-prepare by digest: take it with a body
        this replica holds, or hold the height and fetch the body from the primary."""
        if not self._proposal_acceptable(proposal):
            return
        slot = self._slot(proposal.height)
        if slot.pre_prepare is not None or slot.candidate is not None:
            return
        if not signature_valid(proposal):
            return
        body = self.bodies.get(proposal.block_hash)
        if body is not None:
            slot.candidate = proposal.with_body(body)
        else:
            slot.candidate = proposal
            self._want_body(proposal.height, proposal.block_hash, (proposal.sender,))
        self._try_accept(proposal.height)

    def _try_accept(self, height: int) -> None:
        """Accept the candidate at ``height`` once its parent and execution allow it."""
        while True:
            slot = self.slots.get(height)
            if slot is None or slot.candidate is None or slot.pre_prepare is not None:
                return
            if not self._accept_candidate(height, slot):
                return
            self._maybe_prepare(height)
            height += 1

    def _accept_candidate(self, height: int, slot: Slot) -> bool:
        candidate = slot.candidate
        assert candidate is not None  # the caller checked: a candidate exists
        if isinstance(candidate, Proposal):
            body = self.bodies.get(candidate.block_hash)
            if body is None:
                return False  # fetched by hash (BODY-REQUEST): retried when it arrives
            candidate = slot.candidate = candidate.with_body(body)
        pp = candidate
        header = pp.block.header
        parent = self._parent(height)
        if parent is None:
            return False
        # The set in force at h is known once every block that could change it (decided
        # at or before h - 1 - D) has executed; the roots of h - D once h - D has.
        lag = self.params.execution_lag
        if self._executed() < height - (lag if not slot.trusted else lag + 1):
            return False  # retried after execution
        if not slot.trusted and header.time_ms > self.now + TIME_AHEAD_MS_MAX:
            slot.candidate = None
            # Either the primary's clock runs fast or this one's runs slow; if the others
            # accept the block, it is this one: the node tells its operator (node.runtime).
            self.clock_refusals += 1
            self.clock_ahead_ms = header.time_ms - self.now
            return False
        valid = header.height == height and self._body_valid(pp.block, *parent)
        if valid and not slot.trusted:
            try:
                self.executor.check_proposal(pp.block)
            except LedgerError:  # InvalidBlock by contract; any ledger error means invalid
                valid = False
        if not valid:
            # A re-proposal from a verified NEW-VIEW is kept even then: it holds the height
            # against a fresh pre-prepare (this replica just cannot vote for it; the next
            # view change carries the certified body again).
            if not slot.trusted:
                slot.candidate = None
            return False
        previous = self.my_votes.get((height, self.view, PHASE_PRE_PREPARE))
        if previous is not None and previous != pp.block_hash:
            slot.candidate = None
            return False
        slot.pre_prepare, slot.candidate = pp, None
        self._keep_body(pp.block)
        self._record_pre_prepare(pp)
        return True

    def _body_valid(self, block: Block, parent_hash: bytes, parent_time_ms: int) -> bool:
        """The one block check (``validate_block``) for a body arriving at any door,
        against the set in force at its height; a body object that passed is remembered,
        so the same object is not checked twice (a different body under the same header
        is checked anew: that is the attack this guards against)."""
        header = block.header
        key = header_hash(header)
        if self.validated.get(key) is block:
            return True
        try:
            validate_block(block, prev_hash=parent_hash, prev_height=header.height - 1,
                           prev_time_ms=parent_time_ms, chain_id=self.chain_id,
                           validators=self.set_at(header.height),
                           params=self.governed(header.height),
                           signature_valid=self.executor.verify_signature)
        except LedgerError:
            return False
        self.validated[key] = block
        while len(self.validated) > BODIES_PER_WINDOW * self.window:
            self.validated.popitem(last=False)
        return True

    def _record_pre_prepare(self, pp: PrePrepare | Proposal) -> None:
        """Remember (and persist, before anything is sent about it) the pre-prepare this
        replica proposed or accepted at (view, height): the whole message, so that after
        a restart it re-sends or re-votes for the same block and never another."""
        place = (pp.height, pp.view, PHASE_PRE_PREPARE)
        self.my_pre_prepares[(pp.height, pp.view)] = pp
        if place not in self.my_votes:
            self.my_votes[place] = pp.block_hash
            self._persist(keys.vote_key(*place), encode_message(pp))

    def _maybe_prepare(self, height: int) -> None:
        """Send PREPARE (backups) once the parent is locked; then check progress."""
        slot = self.slots.get(height)
        if slot is None or slot.pre_prepare is None:
            return
        pp = slot.pre_prepare
        primary = self.primary(self.view)
        members = self.set_at(height)
        if (self.me != primary and self.me in members.keys and self.me not in slot.prepares
                and self._parent_locked(height, pp.header.prev_hash)):
            vote = self._sign_vote(Phase.PREPARE, height, pp.block_hash)
            if vote is not None:
                slot.prepares[self.me] = vote
                self._broadcast(vote)
        self._check_prepared(height)
        self._check_committed(height)  # a quorum of COMMITs may have come before the block

    def on_prepare(self, vote: Vote) -> None:
        if not self._vote_acceptable(vote):
            return
        slot = self._slot(vote.height)
        if not self._record_vote(slot.prepares, vote):
            return
        if not vote.signature_valid():
            del slot.prepares[vote.voter]
            return
        self._check_prepared(vote.height)

    def on_commit(self, vote: Vote) -> None:
        if not self._vote_acceptable(vote):
            return
        slot = self._slot(vote.height)
        if not self._record_vote(slot.commits, vote):
            return
        if not vote.signature_valid():
            del slot.commits[vote.voter]
            return
        self._check_committed(vote.height)

    def _vote_acceptable(self, vote: Vote) -> bool:
        # Heights this replica already committed still count: after a view change it
        # helps the others commit the same block again in the new view.
        return (self.view_active and vote.view == self.view
                and self._height_open(vote.height)
                and vote.voter in self.set_at(vote.height).keys)

    def _check_prepared(self, height: int) -> None:
        """Prepared = the pre-prepare + q - 1 matching PREPAREs from distinct backups,
        with the parent locked; record the certificate, persist it, then COMMIT."""
        slot = self.slots.get(height)
        if slot is None or slot.pre_prepare is None or slot.prepared:
            return
        pp = slot.pre_prepare
        members = self.set_at(height)
        matching = self._matching(slot.prepares, pp.block_hash, members, exclude=pp.sender)
        if len(matching) < members.quorum - 1:
            return
        if not self._parent_locked(height, pp.header.prev_hash):
            return
        slot.prepared = True
        previous = self.prepared.get(height)
        if isinstance(pp, PrePrepare) and (previous is None or previous.view < self.view):
            # The certificate travels without the body; the body is kept (and persisted
            # with it) to serve the BODY-REQUESTs its re-proposal will bring.
            cert = PreparedCertificate(pp.proposal(),
                                       tuple(sorted(matching, key=lambda v: v.voter)))
            self.prepared[height] = cert
            self._persist(keys.height_key(keys.PREFIX_PREPARED, height),
                          encode_array([encode(cert.to_value()), pp.block.encode()]))
        if self.me in members.keys:
            vote = self._sign_vote(Phase.COMMIT, height, pp.block_hash)
            if vote is not None:
                slot.commits.setdefault(self.me, vote)
                self._broadcast(vote)
        self._check_committed(height)
        self._maybe_prepare(height + 1)

    def _check_committed(self, height: int) -> None:
        """Committed = q matching COMMITs from distinct validators for the accepted block."""
        slot = self.slots.get(height)
        if slot is None or slot.pre_prepare is None or height in self.committed:
            return
        if height <= self.tip:
            return
        pp = slot.pre_prepare
        members = self.set_at(height)
        matching = self._matching(slot.commits, pp.block_hash, members)
        if len(matching) < members.quorum:
            return
        if not isinstance(pp, PrePrepare):
            return  # body-less: only for heights final here (returned above)
        cert = self._certificate(matching)
        self._add_committed(CommittedProof(pp.block, cert))

    def _certificate(self, votes: list[Vote]) -> CommitCertificate:
        return CommitCertificate.from_votes(votes)

    def _add_committed(self, proof: CommittedProof) -> None:
        height = proof.height
        self.committed[height] = proof
        self._keep_body(proof.block)
        self._persist(keys.height_key(keys.PREFIX_COMMITTED, height), proof.encode())
        self._deliver_ready()

    def _deliver_ready(self) -> None:
        """Deliver committed blocks in strict height order."""
        executed = self._executed()
        delivered: list[bytes] = []
        while self.tip + 1 in self.committed:
            proof = self.committed[self.tip + 1]
            header = proof.block.header
            if header.prev_hash != self.tip_point.hash:
                # Cannot happen with at most f faulty validators (ADR 0008); refuse to
                # deliver a block that does not chain rather than corrupt the node's chain.
                return
            if header.height > executed:
                if executed < header.height - 1 - self.params.execution_lag:
                    return  # its validator set is not known yet: after execution
                if not self._body_valid(proof.block, self.tip_point.hash, self.tip_point.time_ms):
                    # A persisted body that fails the block check (a damaged record):
                    # never deliver it; forget it and fetch the certified block again.
                    del self.committed[header.height]
                    self._persist(keys.height_key(keys.PREFIX_COMMITTED, header.height),
                                  None)
                    self._request_transfer(header.height, self._transfer_peers())
                    return
            self.tip_point = ChainPoint(header.height, header_hash(header), header.time_ms)
            self.tip_reached_ms = self.now
            if self.tip > executed:
                self._out.append(Deliver(proof.block, proof.certificate))
            if proof.block.transactions:
                self.busy_height = max(self.busy_height, header.height)
            for tx_id in self._tx_ids(proof.block):
                delivered.append(tx_id)
                self.pending.pop(tx_id, None)
                self.recent_committed[tx_id] = None
            self.changing.attempts = 0
            self.view_deadline = None  # progress: the view timer restarts below
        while len(self.recent_committed) > RECENT_COMMITTED_IDS_MAX:
            self.recent_committed.popitem(last=False)
        if delivered:
            self._out.append(DropTransactions(tuple(delivered)))
            self._check_committed(self.tip + 1)
            self._maybe_prepare(self.tip + 1)
            self._try_accept(self.tip + 1)

    # ------------------------------------------------------------------ proposals

    def on_transactions(self, txs: tuple[Transaction, ...]) -> None:
        for tx in txs:
            if len(self.pending) >= PENDING_TXS_MAX:
                return
            if tx.tx_id not in self.recent_committed and tx.chain_id == self.chain_id:
                self.pending.setdefault(tx.tx_id, tx)

    def _drop_expired(self) -> None:
        """A pending transaction that expired can never be proposed (the block check
        refuses it); kept, it would arm the view timer for nothing. Committed ones leave
        at delivery."""
        for tx_id in [i for i, tx in self.pending.items() if tx.expiry_ms < self.now]:
            del self.pending[tx_id]

    def _in_flight(self) -> tuple[set[bytes], int]:
        """The transaction ids of the blocks proposed or committed above the delivered tip,
        and how many such blocks there are."""
        ids: set[bytes] = set()
        heights: set[int] = set()
        for height, slot in self.slots.items():
            for pp in (slot.pre_prepare, slot.candidate):
                if isinstance(pp, PrePrepare) and height > self.tip:
                    ids.update(self._tx_ids(pp.block))
                    heights.add(height)
        for height, proof in self.committed.items():
            if height > self.tip:
                ids.update(self._tx_ids(proof.block))
                heights.add(height)
        return ids, len(heights)

    def _tx_ids(self, block: Block) -> tuple[bytes, ...]:
        """Transaction ids of a block, memoised per header (ids cost a canonical encoding)."""
        key = header_hash(block.header)
        ids = self.tx_id_cache.get(key)
        if ids is None:
            if len(self.tx_id_cache) >= 4 * self.window:
                self.tx_id_cache.clear()
            ids = self.tx_id_cache[key] = tuple(tx.tx_id for tx in block.transactions)
        return ids

    def _next_proposal_height(self) -> int:
        height = self.tip + 1
        while height in self.committed or (
                height in self.slots and (self.slots[height].pre_prepare is not None
                                          or self.slots[height].candidate is not None)):
            height += 1
        return height

    def _propose(self) -> None:
        """As primary, propose blocks of pending transactions while the window, the
        execution lag and the chain allow."""
        if not self.view_active or self.primary(self.view) != self.me:
            return
        while True:
            height = self._next_proposal_height()
            if not self._height_open(height):
                return
            if self._executed() < height - self.params.execution_lag:
                return
            parent = self._parent(height)
            if parent is None:
                return
            remembered = self.my_pre_prepares.get((height, self.view))
            if remembered is None and (height, self.view, PHASE_PRE_PREPARE) in self.my_votes:
                return  # signed another block here before a restart: never a second one
            if isinstance(remembered, Proposal):
                return  # a re-proposal of this view: it waits for its body as a candidate
            if remembered is not None:
                pp = remembered
            else:
                in_flight, blocks_in_flight = self._in_flight()
                room = self.executor.proposal_room(len(in_flight), blocks_in_flight)
                # Picking costs a pass over the pending transactions: take no more than
                # the room, and one to learn whether anything waits when there is none.
                txs, full = self._pick_transactions(height, in_flight, max(room, 1))
                if txs and room <= 0:
                    return  # paced: proposed when a block before it commits
                if txs and not full and self._gathering(height):
                    return  # not full: proposed at the end of the wait (its timer)
                if not txs and not self._empty_block_due(height, parent[1]):
                    return
                block = self.executor.build_block(
                    height=height, view=self.view, prev_hash=parent[0],
                    time_ms=max(self.now, parent[1] + 1), proposer=self.me, transactions=txs)
                if not self._body_valid(block, *parent):
                    return  # never propose what a correct backup would refuse
                if block.transactions:
                    self.busy_height = max(self.busy_height, height)
                pp = PrePrepare.make(self.key, self.chain_id, self.view, block)
            slot = self._slot(height)
            slot.candidate, slot.trusted = None, False
            slot.pre_prepare = pp
            self._keep_body(pp.block)
            self._record_pre_prepare(pp)
            self._broadcast(pp)
            self._check_prepared(height)

    def _gathering(self, height: int) -> bool:
        """Whether the next block, not full, waits for more transactions: after the
        block before it committed here, as long again as that block took from its
        proposal to its commit, at most ``Executor.gather_ms_max`` (which says why). If
        it waits, the GATHER timer is set to the end of the wait."""
        if height != self.tip + 1:
            return False
        took_ms = max(0, self.tip_reached_ms - self.tip_point.time_ms)
        due_ms = self.tip_reached_ms + min(took_ms, self.executor.gather_ms_max())
        if self.now >= due_ms:
            return False
        self._out.append(SetTimer(TimerId.GATHER, due_ms))
        return True

    def _empty_block_due(self, height: int, parent_time_ms: int) -> bool:
        """Idle, but the results of a recent busy block are not certified yet: without
        headers above it, its receipt could never be proved (ADR 0005). At most D empty
        blocks follow the last busy one, and only after ``IDLE_EMPTY_BLOCK_MS``."""
        return (0 < self.busy_height < height <= self.busy_height + self.params.execution_lag
                and self.now >= parent_time_ms + IDLE_EMPTY_BLOCK_MS)

    def _pick_transactions(self, height: int, busy: set[bytes],
                           at_most: int) -> tuple[list[Transaction], bool]:
        """At most ``at_most`` pending transactions not in ``busy`` (already in a block
        above the tip), within the governed block limits; and whether the block is full
        (a transaction waiting did not fit, by count or by bytes)."""
        limits = self.governed(height)
        count_max = min(at_most, limits.block_txs_max)
        picked: list[Transaction] = []
        size = 0
        for tx_id, tx in self.pending.items():
            if tx_id in busy:
                continue
            tx_bytes = len(tx.encode())
            if len(picked) >= count_max or size + tx_bytes > limits.block_bytes_max:
                return picked, True
            picked.append(tx)
            size += tx_bytes
        return picked, len(picked) >= count_max

    # ------------------------------------------------------------------ timers

    def _work_pending(self) -> bool:
        if self.pending:
            return True
        return any(h > self.tip and s.pre_prepare is not None for h, s in self.slots.items())

    def view_timeout_ms(self) -> int:
        """The view timer's length now (doubled by each failed view change)."""
        return self.timeout_ms << min(self.changing.attempts, 10)

    def _arm_view_timer(self) -> None:
        """Run the view timer while work waits (or a view change is under way); a node
        that is not a validator (joining, or removed) only follows and never asks."""
        if (self.view_active and not self._work_pending()) or self.me not in self.active_set.keys:
            if self.view_deadline is not None:
                self.view_deadline = None
                self._out.append(CancelTimer(TimerId.VIEW))
            return
        if self.view_deadline is None:
            self.view_deadline = self.now + self.view_timeout_ms()
            self._out.append(SetTimer(TimerId.VIEW, self.view_deadline))

    def on_timer(self, timer: str) -> None:
        if timer == TimerId.TICK:
            self.on_tick()
        elif timer == TimerId.VIEW:
            self.on_view_timeout()
        elif timer == TimerId.GATHER:
            pass  # ``step`` proposes after every event: the block that waited goes now
        elif timer == TimerId.TRANSFER:
            self.transfer.deadline = None
            if self.transfer.target > self.tip:
                self.transfer.peer_index += 1
                self._request_transfer(self.transfer.target, self._transfer_peers())

    def on_view_timeout(self) -> None:
        """No progress in time: ask for the next view (a view change that itself stalls
        with a quorum of requests moves on, with a doubled timeout)."""
        if self.view_deadline is None:
            return
        if self.now < self.view_deadline:  # fired early (clock granularity): wait again
            self._out.append(SetTimer(TimerId.VIEW, self.view_deadline))
            return
        self.view_deadline = None
        if self.view_active:
            # Pre-vote: ask first; leave the view only once f + 1 validators asked.
            target = self.view + 1
            self.changing.requests[self.me] = target
            self._broadcast(ViewChangeRequest.make(self.key, self.chain_id, target))
            self._maybe_leave_view()
            return
        # A validator asking for a higher view also gave up on this one: counting only
        # exact matches let the replicas split between views v and v + 1 for ever.
        given_up = [vc for vc in self.changing.received.values() if vc.new_view >= self.view]
        if len(given_up) >= self.active_set.quorum:
            self._start_view_change(self.view + 1)
        elif self.changing.mine is not None:
            self._broadcast(self.changing.mine)

    def on_tick(self) -> None:
        """Heartbeat: status, and retransmission of this replica's current messages so
        that lost messages never need a view change."""
        self._out.append(SetTimer(TimerId.TICK, self.now + self._tick_ms()))
        self._drop_expired()
        self._broadcast_status()
        # A peer was already ahead at the previous tick and we have not caught up by the
        # normal path: fetch the blocks (one peer's claim costs at most one request).
        # A STATUS is one peer's claim, not proof: it may trigger one bounded request to
        # that peer, but never raises the certified catch-up target (a lying or removed
        # validator could otherwise keep this node "catching up" forever).
        ahead = {k: h for k, h in self.peer_heights.items() if h > self.tip}
        # The peer that last served a bad block waits while any other peer is ahead.
        others_ahead = any(k != self.transfer.shunned for k in ahead)
        for peer, height in sorted(self.behind_seen.items()):
            if peer == self.transfer.shunned and others_ahead:
                continue
            if ahead.get(peer, 0) >= height > self.tip:
                self._request_transfer(height, (peer,), certified=False)
                break
        # Retransmit for heights some live peer has not committed yet (peers silent since
        # the last tick are ignored: a crashed peer does not make us resend the window).
        slowest = min(self.peer_tips.values(), default=self.tip)
        self.behind_seen, self.peer_heights, self.peer_tips = ahead, {}, {}
        if not self.view_active:
            if self.changing.mine is not None:
                self._broadcast(self.changing.mine)
            return
        self.body_attempts += 1
        for height in sorted(self.slots):
            slot = self.slots[height]
            if height <= self.low or (height <= slowest and height <= self.tip):
                continue
            pp = slot.pre_prepare
            if isinstance(pp, PrePrepare) and pp.sender == self.me:
                # By digest, and only to the backups whose PREPARE has not arrived: a
                # backup that lacks the body asks for it (BODY-REQUEST).
                for peer in self.set_at(height).keys:
                    if peer != self.me and peer not in slot.prepares:
                        self._send(peer, pp.proposal())
            for bucket in (slot.prepares, slot.commits):
                mine = bucket.get(self.me)
                if mine is not None:
                    self._broadcast(mine)
        if self.my_checkpoint is not None:
            # Even once stable: a peer that was down or catching up when it was taken
            # needs q of them to move its own low watermark (255 bytes a heartbeat).
            self._broadcast(self.my_checkpoint)
        self._request_bodies()

    def _broadcast_status(self) -> None:
        self._broadcast(Status.make(self.key, self.chain_id, self.view, self.view_active,
                                    self.tip))

    def on_status(self, status: Status) -> None:
        """Help a peer that is behind: the NEW-VIEW it missed, or blocks it lacks."""
        if not signature_valid(status):
            return
        if self.view_active and status.view < self.view:
            self._send_new_view(status.sender)
        if status.sender in self.active_set.keys:
            self.peer_tips[status.sender] = status.committed_height
        if status.committed_height > self.tip and status.sender in self.active_set.keys:
            self.peer_heights[status.sender] = status.committed_height

    # ------------------------------------------------------------------ checkpoints

    def on_block_executed(self, event: BlockExecuted) -> None:
        """Take a checkpoint every K heights and retry what waited for execution (a
        decided validator set is already in the executor's history)."""
        params = self.params
        height = event.height
        if height % params.checkpoint_interval == 0 and height > self.low:
            final = self._final_hash(height)
            if final is not None and self.me in self.set_at(height).keys:
                cp = Checkpoint.make(self.key, self.chain_id, height, final[0], final[1],
                                     event.state_root)
                self.my_checkpoint = cp
                self._broadcast(cp)
                self._store_checkpoint(cp)
        self._deliver_ready()
        self._drain_transfer()
        self._try_accept(self._lowest_waiting())

    def _lowest_waiting(self) -> int:
        waiting = [h for h, s in self.slots.items() if s.candidate is not None]
        return min(waiting) if waiting else self.tip + 1

    def on_checkpoint(self, cp: Checkpoint) -> None:
        if cp.height <= self.low or cp.height % self.params.checkpoint_interval:
            return
        if cp.sender not in self.set_at(cp.height).keys or not signature_valid(cp):
            return
        self._store_checkpoint(cp)

    def _store_checkpoint(self, cp: Checkpoint) -> None:
        mine = self.checkpoints.setdefault(cp.sender, {})
        mine[cp.height] = cp
        while len(mine) > CHECKPOINTS_PER_SENDER_MAX:
            del mine[min(mine)]
        same = [c for per in self.checkpoints.values() for c in per.values()
                if c.height == cp.height and c.digest == cp.digest]
        if len(same) >= self.set_at(cp.height).quorum:
            self._set_stable(tuple(sorted(same, key=lambda c: c.sender)))
            self._persist(keys.KEY_STABLE, encode([c.to_value() for c in self.stable_proof]))
            self._garbage_collect()
            if self.tip < self.low:
                self._request_transfer(self.low, tuple(c.sender for c in same))

    def _adopt_checkpoint(self, proof: tuple[Checkpoint, ...]) -> None:
        """A valid stable-checkpoint proof above ``low`` that this replica has reached: take
        it (a replica that missed the checkpoint messages while it was down or catching up
        would otherwise keep an old ``low``, and its window, for ever)."""
        if proof and self.low < proof[0].height <= self.tip:
            final = self._final_hash(proof[0].height)
            if final is not None and final[0] == proof[0].block_hash:
                self._set_stable(proof)
                self._persist(keys.KEY_STABLE,
                              encode([c.to_value() for c in self.stable_proof]))
                self._garbage_collect()

    def _set_stable(self, proof: tuple[Checkpoint, ...]) -> None:
        first = proof[0]
        if first.height <= self.low:
            return
        self.low_point = ChainPoint(first.height, first.block_hash, first.time_ms)
        self.stable_proof = proof

    def _garbage_collect(self) -> None:
        """Forget everything at or below the stable checkpoint (delivered blocks only)."""
        low = self.low
        for height in [h for h in self.slots if h <= low]:
            del self.slots[height]
        for height in [h for h in self.prepared if h <= low]:
            del self.prepared[height]
            self._persist(keys.height_key(keys.PREFIX_PREPARED, height), None)
        for height in [h for h in self.committed if h <= min(low, self.tip)]:
            del self.committed[height]
            self._persist(keys.height_key(keys.PREFIX_COMMITTED, height), None)
        for place in [p for p in self.my_votes if p[0] <= low]:
            del self.my_votes[place]
            self.my_pre_prepares.pop((place[0], place[1]), None)
            self._persist(keys.vote_key(*place), None)
        for per in self.checkpoints.values():
            for height in [h for h in per if h <= low]:
                del per[height]
        for kept in (self.bodies, self.validated):
            for block_hash in [k for k, b in kept.items() if b.header.height <= low]:
                del kept[block_hash]
        for block_hash in [k for k, (h, _) in self.bodies_wanted.items() if h <= low]:
            del self.bodies_wanted[block_hash]

    # ------------------------------------------------------------------ view change

    def _start_view_change(self, new_view: int) -> None:
        """Stop accepting messages of lower views and ask for ``new_view``."""
        self.view, self.view_active = new_view, False
        self.changing.attempts += 1
        self.view_deadline = None
        self.slots = {}
        self._persist(keys.KEY_VIEW, encode([self.view, False]))
        # Only the window above the stable checkpoint: that bounds the message, and
        # blocks above it reached this replica by state transfer (certified by a quorum
        # whose correct members report them or hold them under their checkpoints).
        top = self.low + self.window
        prepared = tuple(self.prepared[h] for h in sorted(self.prepared)
                         if self.low < h <= top and h not in self.committed)
        committed = tuple(self.committed[h].certified_header()
                          for h in sorted(self.committed) if self.low < h <= top)
        vc = ViewChange.make(self.key, self.chain_id, new_view, self.stable_proof, prepared,
                             committed)
        self.changing.mine = vc
        self.changing.received[self.me] = vc
        self._persist(keys.KEY_VIEW_CHANGE, encode_message(vc))
        self._broadcast(vc)
        self._maybe_new_view()

    def on_view_change(self, vc: ViewChange) -> None:
        if vc.sender not in self.active_set.keys:
            return
        if vc.new_view <= self.view and self.view_active:
            self._send_new_view(vc.sender)  # it missed the NEW-VIEW
            return
        if vc.new_view < self.view:
            return
        known = self.changing.received.get(vc.sender)
        if known is not None and known.new_view >= vc.new_view:
            return
        if not self._view_change_valid(vc):
            return
        self.changing.received[vc.sender] = vc
        self._adopt_checkpoint(vc.checkpoint)
        higher = sorted(v.new_view for v in self.changing.received.values()
                        if v.new_view > self.view)
        if len(higher) >= self.active_set.f + 1 and (self.view_active or higher[0] > self.view):
            # f + 1 validators want a higher view: at least one is correct; join the
            # smallest such view so that a quorum forms.
            self._start_view_change(higher[-(self.active_set.f + 1)])
        self._maybe_new_view()

    def on_view_change_request(self, request: ViewChangeRequest) -> None:
        if (request.sender not in self.active_set.keys or request.new_view <= self.view
                or request.new_view <= self.changing.requests.get(request.sender, 0)
                or not signature_valid(request)):
            return
        self.changing.requests[request.sender] = request.new_view
        self._maybe_leave_view()

    def _maybe_leave_view(self) -> None:
        """f + 1 validators asked for the next view: at least one correct replica saw no
        progress, so this one sends its VIEW-CHANGE too (as PBFT's f + 1 join rule)."""
        if not self.view_active:
            return
        target = self.view + 1
        asking = [k for k, v in self.changing.requests.items()
                  if v == target and k in self.active_set.keys]
        if len(asking) >= self.active_set.f + 1:
            self._start_view_change(target)

    def _send_new_view(self, peer: bytes) -> None:
        """Help a peer that missed the NEW-VIEW of this view: at most once per view
        timeout per peer (a NEW-VIEW holds q VIEW-CHANGEs; never on every message)."""
        nv = self.changing.new_view
        if nv is None or nv.view != self.view:
            return
        last = self.changing.new_view_sent.get(peer)
        if last is not None and self.now - last < self.timeout_ms:
            return
        self.changing.new_view_sent[peer] = self.now
        self._send(peer, nv)

    def _view_change_valid(self, vc: ViewChange) -> bool:
        if not signature_valid(vc):
            return False
        if vc.checkpoint and not self._checkpoint_proof_valid(vc.checkpoint):
            return False
        base = vc.checkpoint[0].height if vc.checkpoint else 0
        # At most one certificate per height of the window above its checkpoint: this is
        # what bounds a VIEW-CHANGE (messages.view_change_bytes_max).
        for heights in ([c.height for c in vc.prepared], [c.height for c in vc.committed]):
            if heights != sorted(set(heights)) or (heights and heights[-1] > base + self.window):
                return False
        for cert in vc.prepared:
            if cert.height <= base or cert.view >= vc.new_view:
                return False
            if not self._prepared_valid(cert):
                return False
        for done in vc.committed:
            if done.height <= base:
                return False
            try:
                verify_certificate(done.certificate, done.header, self.set_at(done.height),
                                   chain_id=self.chain_id)
            except InvalidCertificate:
                return False
        return True

    def _checkpoint_proof_valid(self, proof: tuple[Checkpoint, ...]) -> bool:
        first = proof[0]
        if first.height % self.params.checkpoint_interval or first.chain_id != self.chain_id:
            return False
        members = self.set_at(first.height)
        senders = [c.sender for c in proof]
        if len(set(senders)) != len(senders) or len(senders) < members.quorum:
            return False
        return all(c.digest == first.digest and c.sender in members.keys
                   and c.chain_id == self.chain_id and signature_valid(c) for c in proof)

    def _prepared_valid(self, cert: PreparedCertificate) -> bool:
        pp = cert.proposal
        members = self.set_at(pp.height)
        if pp.chain_id != self.chain_id or pp.sender != members.primary(pp.view):
            return False
        header = pp.header
        # A fresh proposal carries its primary's own header of that view; a NEW-VIEW
        # re-proposal keeps the header of the earlier view it was proposed in (its hash
        # binds view and proposer). Both are prepared the same way: by 2f prepares of
        # distinct validators, at least one correct, which voted under the rules.
        if header.view > pp.view or header.proposer not in members.keys:
            return False
        if header.view == pp.view and header.proposer != pp.sender:
            return False
        voters = [v.voter for v in cert.prepares]
        if len(set(voters)) != len(voters) or len(voters) < members.quorum - 1:
            return False
        for vote in cert.prepares:
            if (vote.voter not in members.keys or vote.voter == pp.sender
                    or vote.view != pp.view or vote.height != pp.height
                    or vote.block_hash != pp.block_hash or vote.chain_id != self.chain_id):
                return False
        return signature_valid(pp) and all(v.signature_valid() for v in cert.prepares)

    def _maybe_new_view(self) -> None:
        """As primary of a pending view with a quorum of VIEW-CHANGEs, start it."""
        if self.view_active or self.primary(self.view) != self.me:
            return
        same = sorted((vc for vc in self.changing.received.values() if vc.new_view == self.view),
                      key=lambda vc: vc.sender)
        quorum = self.active_set.quorum
        if len(same) < quorum or self.changing.received.get(self.me) not in same:
            return
        chosen = [self.changing.received[self.me]] + [vc for vc in same if vc.sender != self.me]
        chosen = sorted(chosen[:quorum], key=lambda vc: vc.sender)
        o = self._compute_o(tuple(chosen))
        pre_prepares = tuple(Proposal.make(self.key, self.chain_id, self.view, header)
                             for header in o)
        nv = NewView.make(self.key, self.chain_id, self.view, tuple(chosen), pre_prepares)
        for pp in pre_prepares:  # O's pre-prepares are votes too, even below our checkpoint
            self._record_pre_prepare(pp)
        self._enter_new_view(nv)  # persists the NEW-VIEW and the view before it leaves
        self._broadcast(nv)

    def _compute_o(self, view_changes: tuple[ViewChange, ...]) -> tuple[BlockHeader, ...]:
        return compute_o(view_changes, self.genesis.genesis_hash, self.window).headers

    def _o_matches(self, nv: NewView) -> bool:
        """Backups recompute O from the view-change set and reject a NEW-VIEW that differs."""
        expected = self._compute_o(nv.view_changes)
        # Headers only: the bodies are fetched by hash and must pass the block check
        # against these headers, so a primary cannot swap a re-proposal's contents.
        got = [(pp.height, pp.header) for pp in nv.pre_prepares]
        return got == [(h.height, h) for h in expected]

    def on_new_view(self, nv: NewView) -> None:
        if nv.view < self.view or (nv.view == self.view and self.view_active):
            return
        if nv.sender != self.primary(nv.view) or not signature_valid(nv):
            return
        senders = [vc.sender for vc in nv.view_changes]
        members = self.active_set
        if (len(set(senders)) != len(senders) or len(senders) < members.quorum
                or any(s not in members.keys for s in senders)):
            return
        for vc in nv.view_changes:
            if vc.new_view != nv.view or vc.chain_id != self.chain_id:
                return
            if self.changing.received.get(vc.sender) != vc and not self._view_change_valid(vc):
                return
        for pp in nv.pre_prepares:
            if pp.view != nv.view or pp.sender != nv.sender or pp.chain_id != self.chain_id:
                return
            if not signature_valid(pp):
                return
        if not self._o_matches(nv):
            return
        self._enter_new_view(nv)

    def _enter_new_view(self, nv: NewView) -> None:
        """Adopt the view, its checkpoint and its re-proposals."""
        # The NEW-VIEW first: a primary that crashes before the view record restarts in
        # its view change and re-enters this same NEW-VIEW (never one with another O).
        self._persist(keys.KEY_NEW_VIEW, encode_message(nv))
        self.view, self.view_active = nv.view, True
        self.changing.new_view = nv
        self.changing.requests = {k: v for k, v in self.changing.requests.items() if v > nv.view}
        self.slots = {}
        self.view_deadline = None
        self._persist(keys.KEY_VIEW, encode([self.view, True]))
        base = compute_o(nv.view_changes, self.genesis.genesis_hash, self.window)
        if base.base_height > self.low:
            self._set_stable(base.base_proof)
            self._persist(keys.KEY_STABLE, encode([c.to_value() for c in self.stable_proof]))
            self._garbage_collect()
            if self.tip < self.low:
                self._request_transfer(self.low, tuple(c.sender for c in base.base_proof))
        for pp in nv.pre_prepares:
            height = pp.height
            if height <= self.low:
                continue
            slot = self._slot(height)
            final = self._final_hash(height)
            body = self.bodies.get(pp.block_hash)
            if final is not None:
                # Already committed here: take part again so that the others can commit
                # it in this view too (O must hold the same block; anything else would
                # be a safety failure, and this replica then stays out).
                if final[0] == pp.block_hash:
                    slot.pre_prepare = pp
                    self._record_pre_prepare(pp)
                continue
            # Re-proposals (the primary's own too) pass the block check like any body;
            # until then they hold their height against a fresh pre-prepare. A body this
            # replica lacks is fetched from the validators that vouched for the header.
            slot.candidate, slot.trusted = (pp if body is None else pp.with_body(body)), True
            if body is None:
                self._want_body(height, pp.block_hash, self._vouchers(nv, pp.block_hash))
        self._try_accept(self._lowest_waiting())
        for height in sorted(self.slots):
            self._maybe_prepare(height)

    # ------------------------------------------------------------------ bodies by hash

    def _keep_body(self, block: Block) -> None:
        """Remember a body this replica accepted, proposed, prepared or committed."""
        key = header_hash(block.header)
        self.bodies[key] = block
        self.bodies.move_to_end(key)
        while len(self.bodies) > BODIES_PER_WINDOW * self.window:
            self.bodies.popitem(last=False)
        self.bodies_wanted.pop(key, None)

    @staticmethod
    def _vouchers(nv: NewView, block_hash: bytes) -> tuple[bytes, ...]:
        """Validators whose VIEW-CHANGE names ``block_hash`` (they hold its body), then the
        NEW-VIEW's primary."""
        senders = [vc.sender for vc in nv.view_changes
                   if any(c.proposal.block_hash == block_hash for c in vc.prepared)
                   or any(header_hash(c.header) == block_hash for c in vc.committed)]
        return (*senders, nv.sender)

    def _want_body(self, height: int, block_hash: bytes, sources: tuple[bytes, ...]) -> None:
        if block_hash in self.bodies_wanted or block_hash in self.bodies:
            return
        self.bodies_wanted[block_hash] = (height, tuple(p for p in sources if p != self.me))
        self._request_body(block_hash)

    def _request_body(self, block_hash: bytes) -> None:
        height, sources = self.bodies_wanted[block_hash]
        if not sources:
            return
        peer = sources[self.body_attempts % len(sources)]
        self._send(peer, BodyRequest.make(self.key, self.chain_id, height, block_hash))

    def _request_bodies(self) -> None:
        """Heartbeat: ask again for the bodies still missing (the next voucher each
        time, so one silent or lying validator cannot stall a re-proposal)."""
        for block_hash in list(self.bodies_wanted):
            self._request_body(block_hash)

    def on_body_request(self, request: BodyRequest) -> None:
        body = self.bodies.get(request.block_hash)
        if body is None:
            done = self.committed.get(request.height)
            if done is not None and header_hash(done.block.header) == request.block_hash:
                body = done.block
        if body is not None and signature_valid(request):
            self._send(request.sender, BlockBody(self.chain_id, body))

    def on_body(self, sender: bytes, block: Block) -> None:
        """A body asked for: kept only if its header is the one asked for and its
        transactions are the ones that header names (``txs_root``); the full block check
        runs when the candidate is accepted."""
        key = header_hash(block.header)
        wanted = self.bodies_wanted.get(key)
        if wanted is None or sender not in wanted[1]:
            return  # nobody asked this peer for it
        if txs_root(block.transactions) != block.header.txs_root:
            return  # a lying voucher: the next heartbeat asks the next one
        self._keep_body(block)
        self._try_accept(block.header.height)

    # ------------------------------------------------------------------ state transfer

    def _transfer_peers(self) -> tuple[bytes, ...]:
        return tuple(k for k in self.active_set.keys if k != self.me)

    def _request_transfer(self, target: int, peers: tuple[bytes, ...], *,
                          certified: bool = True) -> None:
        """Ask one peer for the next blocks up to ``target`` (one request in flight).
        Only a certified ``target`` (a stable checkpoint, a committed block) becomes the
        catch-up target; an uncertified one (a peer's STATUS) asks once."""
        if certified:
            self.transfer.target = max(self.transfer.target, target)
        if self.transfer.deadline is not None and self.now < self.transfer.deadline:
            return
        peers = tuple(p for p in peers if p != self.me) or self._transfer_peers()
        peers = tuple(p for p in peers if p != self.transfer.shunned) or peers
        if not peers:
            return
        peer = peers[self.transfer.peer_index % len(peers)]
        first = self.tip + 1
        last = min(max(self.transfer.target, target), first + HEIGHTS_PER_REQUEST_MAX - 1)
        if last < first:
            return
        request = BlocksRequest.make(self.key, self.chain_id, first, last)
        self.transfer.asked = (peer, first, last)
        self.transfer.deadline = self.now + self.timeout_ms
        self._out.append(SetTimer(TimerId.TRANSFER, self.transfer.deadline))
        self._out.append(RequestStateTransfer(first, last, (peer,), encode_message(request)))

    def on_blocks_request(self, request: BlocksRequest) -> None:
        if not signature_valid(request) or request.from_height > self.tip:
            return
        self._out.append(ServeBlocks(request.sender, request.from_height,
                                     min(request.to_height, self.tip)))

    def on_blocks(self, blocks: tuple[CommittedProof, ...]) -> None:
        """Buffer fetched blocks; deliver each once its certificate and link verify."""
        for proof in blocks[:BLOCKS_PER_RESPONSE_MAX]:
            height = proof.height
            if self.tip < height <= self.tip + BLOCKS_PER_RESPONSE_MAX:
                self.transfer.buffer.setdefault(height, proof)
        self._drain_transfer()
        if self.transfer.deadline is not None:
            self.transfer.deadline = None
            self._out.append(CancelTimer(TimerId.TRANSFER))
        if self.transfer.target > self.tip and not self.transfer.buffer:
            self._request_transfer(self.transfer.target, self._transfer_peers())
        elif (self.transfer.source not in (None, self.transfer.shunned)
              and not self.transfer.buffer):
            # The blocks a STATUS claim led to were certified and taken: keep asking that
            # peer while it claims more (each answer is checked as the first one was).
            assert self.transfer.source is not None
            claimed = self.behind_seen.get(self.transfer.source, 0)
            if claimed > self.tip and blocks:
                self._request_transfer(claimed, (self.transfer.source,), certified=False)

    def _refuse_transfer(self) -> None:
        """The buffered blocks failed a check: drop them all, and prefer other peers."""
        self.transfer.buffer.clear()
        self.transfer.shunned = self.transfer.source

    def _drain_transfer(self) -> None:
        for height in [h for h in self.transfer.buffer if h <= self.tip]:
            del self.transfer.buffer[height]
        while self.tip + 1 in self.transfer.buffer:
            height = self.tip + 1
            # The set in force at h is known once every block that could change it
            # (decided at or before h - 1 - D) has executed.
            if self._executed() < height - 1 - self.params.execution_lag:
                return
            proof = self.transfer.buffer.pop(height)
            header = proof.block.header
            if (header.prev_hash != self.tip_point.hash or header.chain_id != self.chain_id
                    or header.time_ms <= self.tip_point.time_ms
                    or (height == self.low and header_hash(header) != self.low_point.hash)):
                self._refuse_transfer()
                return
            try:
                verify_certificate(proof.certificate, header, self.set_at(height),
                                   chain_id=self.chain_id)
            except InvalidCertificate:
                self._refuse_transfer()
                return
            if not self._body_valid(proof.block, self.tip_point.hash, self.tip_point.time_ms):
                self._refuse_transfer()  # a Byzantine server's body: ask another peer
                return
            self._add_committed(proof)

"""One replica driven by hand: what it sends, persists and refuses.

The replica under test is validator 1 (a backup in view 0) of a 4-validator network;
the other validators' messages are built and signed here with their real keys.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus.events import (
    Broadcast,
    Deliver,
    Effect,
    MessageReceived,
    Persist,
    RequestStateTransfer,
    Send,
    SetTimer,
    Start,
    TimerFired,
    TimerId,
    TransactionsAvailable,
)
from consensus.messages import (
    BlockBody,
    BlocksResponse,
    BodyRequest,
    Checkpoint,
    CommittedProof,
    NewView,
    PreparedCertificate,
    PrePrepare,
    Proposal,
    Status,
    ViewChange,
    ViewChangeRequest,
    decode_message,
    encode_message,
)
from consensus.persist import PersistedState
from consensus.replica import Replica
from ledger.crypto import SigningKey
from ledger.errors import DecodeError
from ledger.records import Block, CommitCertificate, Phase, Vote
from testkit.sim.core import (
    CLIENT_KEY,
    SIM_PARAMS,
    Simulation,
    make_genesis,
    make_transaction,
    sim_key,
)
from testkit.sim.executor import SimExecutor

KEYS = sorted((sim_key(i) for i in range(4)), key=lambda k: k.public_key)
GENESIS = make_genesis(KEYS)
CHAIN = GENESIS.chain_id
T0 = GENESIS.genesis_time_ms + 1_000


def _replica(persisted: PersistedState | None = None,
             executor: SimExecutor | None = None) -> tuple[Replica, SimExecutor]:
    executor = executor or SimExecutor(GENESIS)
    replica = Replica(key=KEYS[1], genesis=GENESIS, executor=executor, persisted=persisted)
    replica.step(Start(T0))
    return replica, executor


def _block(height: int = 1, nonce: int = 1, time_ms: int = T0,
           prev_hash: bytes = GENESIS.genesis_hash, view: int = 0,
           proposer: SigningKey = KEYS[0]) -> Block:
    return SimExecutor(GENESIS).build_block(
        height=height, view=view, prev_hash=prev_hash, time_ms=time_ms,
        proposer=proposer.public_key, transactions=[make_transaction(nonce)])


def _receive(replica: Replica, sender: SigningKey, data: bytes,
             now: int = T0 + 10) -> list[Effect]:
    return replica.step(MessageReceived(now, sender.public_key, data))


def _sent(effects: list[Effect]) -> list[object]:
    return [decode_message(e.data) for e in effects if isinstance(e, Broadcast)]


def _votes(effects: list[Effect], phase: int) -> list[Vote]:
    return [m for m in _sent(effects) if isinstance(m, Vote) and m.phase == phase]


def _timeout_and_agree(replica: Replica, deadline: int) -> list[Effect]:
    """The view timer fires (the replica asks for the next view, pre-vote) and one more
    validator asks too: f + 1 = 2 requests, so the replica sends its VIEW-CHANGE."""
    effects = replica.step(TimerFired(deadline, TimerId.VIEW))
    assert replica.view_active, "a timer alone never leaves the view"
    other = next(k for k in (KEYS[2], KEYS[3], KEYS[0]) if k != replica.key)
    request = ViewChangeRequest.make(other, CHAIN, replica.view + 1)
    return effects + _receive(replica, other, encode_message(request), now=deadline)


def _apply(state: PersistedState, effects: list[Effect]) -> PersistedState:
    for effect in effects:
        if isinstance(effect, Persist):
            state = state.apply(effect.record)
    return state


def test_backup_persists_its_prepare_before_broadcasting_it() -> None:
    replica, _ = _replica()
    pp = PrePrepare.make(KEYS[0], CHAIN, 0, _block())
    effects = _receive(replica, KEYS[0], encode_message(pp))
    prepares = _votes(effects, Phase.PREPARE)
    assert [v.block_hash for v in prepares] == [pp.block_hash]
    first_broadcast = next(i for i, e in enumerate(effects) if isinstance(e, Broadcast)
                           and isinstance(decode_message(e.data), Vote))
    persisted = [e for e in effects[:first_broadcast] if isinstance(e, Persist)]
    assert any(e.record.value == pp.block_hash for e in persisted)


def test_full_normal_case_delivers_the_block_with_a_quorum_certificate() -> None:
    replica, _ = _replica()
    pp = PrePrepare.make(KEYS[0], CHAIN, 0, _block())
    effects = _receive(replica, KEYS[0], encode_message(pp))
    for key in (KEYS[2], KEYS[3]):
        prepare = Vote.make(key, CHAIN, Phase.PREPARE, 0, 1, pp.block_hash)
        effects += _receive(replica, key, encode_message(prepare))
    assert len(_votes(effects, Phase.COMMIT)) == 1
    for key in (KEYS[0], KEYS[2]):
        commit = Vote.make(key, CHAIN, Phase.COMMIT, 0, 1, pp.block_hash)
        effects += _receive(replica, key, encode_message(commit))
    delivered = [e for e in effects if isinstance(e, Deliver)]
    assert [d.block for d in delivered] == [pp.block]
    assert len(delivered[0].certificate.signatures) == GENESIS.validator_set.quorum


def test_a_duplicate_commit_never_counts_twice() -> None:
    replica, _ = _replica()
    pp = PrePrepare.make(KEYS[0], CHAIN, 0, _block())
    _receive(replica, KEYS[0], encode_message(pp))
    for key in (KEYS[2], KEYS[3]):
        _receive(replica, key, encode_message(
            Vote.make(key, CHAIN, Phase.PREPARE, 0, 1, pp.block_hash)))
    commit = encode_message(Vote.make(KEYS[2], CHAIN, Phase.COMMIT, 0, 1, pp.block_hash))
    effects = _receive(replica, KEYS[2], commit) + _receive(replica, KEYS[2], commit)
    assert not any(isinstance(e, Deliver) for e in effects)  # own + one other = 2 < 3


def test_votes_of_a_key_outside_the_set_in_force_never_count() -> None:
    """A retired key (rotated out or removed by governance) is not in the set in force:
    its prepares and commits, however well signed, never make a quorum."""
    replica, _ = _replica()
    outsider = SigningKey(b"\x07" * 32)
    assert outsider.public_key not in GENESIS.validator_set.keys
    pp = PrePrepare.make(KEYS[0], CHAIN, 0, _block())
    effects = _receive(replica, KEYS[0], encode_message(pp))
    effects += _receive(replica, outsider, encode_message(
        Vote.make(outsider, CHAIN, Phase.PREPARE, 0, 1, pp.block_hash)))
    assert _votes(effects, Phase.COMMIT) == []  # pre-prepare + own prepare: 1 of 2f = 2
    effects += _receive(replica, KEYS[2], encode_message(
        Vote.make(KEYS[2], CHAIN, Phase.PREPARE, 0, 1, pp.block_hash)))
    assert len(_votes(effects, Phase.COMMIT)) == 1
    for key in (KEYS[0], outsider):
        effects += _receive(replica, key, encode_message(
            Vote.make(key, CHAIN, Phase.COMMIT, 0, 1, pp.block_hash)))
    assert not any(isinstance(e, Deliver) for e in effects)  # own + KEYS[0] + outsider
    effects = _receive(replica, KEYS[2], encode_message(
        Vote.make(KEYS[2], CHAIN, Phase.COMMIT, 0, 1, pp.block_hash)))
    delivered = [e for e in effects if isinstance(e, Deliver)]
    assert len(delivered) == 1
    assert outsider.public_key not in {s.voter for s in delivered[0].certificate.signatures}


def test_rejects_bad_input_without_effects_or_state() -> None:
    replica, _ = _replica()
    outsider = SigningKey(b"\x07" * 32)
    good = PrePrepare.make(KEYS[0], CHAIN, 0, _block())
    forged = PrePrepare(CHAIN, 0, good.block, KEYS[0].public_key, bytes(64))
    high = Block(replace(good.block.header, height=SIM_PARAMS.watermark_window + 1),
                 good.block.transactions)
    cases = [
        (KEYS[0], b"\x00garbage"),  # malformed
        (KEYS[0], encode_message(forged)),  # bad signature
        (outsider, encode_message(PrePrepare.make(outsider, CHAIN, 0, good.block))),
        (KEYS[2], encode_message(PrePrepare.make(KEYS[2], CHAIN, 0, good.block))),  # not primary
        (KEYS[0], encode_message(PrePrepare.make(KEYS[0], CHAIN, 3, good.block))),  # future view
        (KEYS[0], encode_message(PrePrepare.make(KEYS[0], "other-net", 0, good.block))),
        (KEYS[0], encode_message(PrePrepare.make(KEYS[0], CHAIN, 0, high))),  # above window
        (KEYS[2], encode_message(Vote.make(KEYS[3], CHAIN, Phase.PREPARE, 0, 1, bytes(32)))),
    ]
    for sender, data in cases:
        assert _receive(replica, sender, data) == []
    assert all(s.pre_prepare is None and s.candidate is None for s in replica.slots.values())


def test_memory_stays_bounded_under_a_flood_from_one_peer() -> None:
    replica, _ = _replica()
    for height in range(1, 400):
        for view in (0, 1, 7):
            for block_hash in (bytes(32), b"\x01" * 32):
                vote = Vote.make(KEYS[2], CHAIN, Phase.COMMIT, view, height, block_hash)
                _receive(replica, KEYS[2], encode_message(vote))
    assert len(replica.slots) <= SIM_PARAMS.watermark_window
    assert all(len(s.commits) <= 1 for s in replica.slots.values())
    for height in range(4, 400, 4):
        cp = Checkpoint.make(KEYS[2], CHAIN, height, bytes(32), 1, bytes(32))
        _receive(replica, KEYS[2], encode_message(cp))
    assert sum(len(per) for per in replica.checkpoints.values()) <= 8


def test_restart_never_prepares_a_conflicting_block() -> None:
    replica, executor = _replica()
    pp = PrePrepare.make(KEYS[0], CHAIN, 0, _block(nonce=1))
    state = _apply(PersistedState(), _receive(replica, KEYS[0], encode_message(pp)))
    restarted, _ = _replica(PersistedState.decode(state.encode()), executor)
    other = PrePrepare.make(KEYS[0], CHAIN, 0, _block(nonce=2))  # equivocation after restart
    effects = _receive(restarted, KEYS[0], encode_message(other))
    assert _votes(effects, Phase.PREPARE) == []
    tick = restarted.step(TimerFired(T0 + 500, TimerId.TICK))
    assert {v.block_hash for v in _votes(tick, Phase.PREPARE)} == {pp.block_hash}


def test_a_forgetful_restart_would_prepare_the_conflicting_block() -> None:
    """The counterpart of the test above: without the persisted state it does sign."""
    replica, executor = _replica()
    _receive(replica, KEYS[0], encode_message(PrePrepare.make(KEYS[0], CHAIN, 0, _block())))
    amnesiac, _ = _replica(None, executor)
    other = PrePrepare.make(KEYS[0], CHAIN, 0, _block(nonce=2))
    assert _votes(_receive(amnesiac, KEYS[0], encode_message(other)), Phase.PREPARE)


def test_view_timer_starts_a_view_change_that_carries_the_prepared_certificate() -> None:
    replica, _ = _replica()
    pp = PrePrepare.make(KEYS[0], CHAIN, 0, _block())
    effects = _receive(replica, KEYS[0], encode_message(pp))
    for key in (KEYS[2], KEYS[3]):
        effects += _receive(replica, key, encode_message(
            Vote.make(key, CHAIN, Phase.PREPARE, 0, 1, pp.block_hash)))
    deadline = replica.view_deadline
    assert deadline is not None
    effects = _timeout_and_agree(replica, deadline)
    changes = [m for m in _sent(effects) if isinstance(m, ViewChange)]
    assert len(changes) == 1 and changes[0].new_view == 1
    assert [c.proposal.block_hash for c in changes[0].prepared] == [pp.block_hash]
    assert not replica.view_active
    # Messages of the old view are now refused.
    late = Vote.make(KEYS[2], CHAIN, Phase.COMMIT, 0, 1, pp.block_hash)
    assert _receive(replica, KEYS[2], encode_message(late), now=deadline + 1) == []


def test_f_plus_one_view_changes_make_a_replica_join() -> None:
    replica, _ = _replica()
    for key in (KEYS[2], KEYS[3]):
        vc = ViewChange.make(key, CHAIN, 2, (), (), ())
        effects = _receive(replica, key, encode_message(vc))
    assert replica.view == 2 and not replica.view_active  # the primary of view 2 is KEYS[2]
    assert any(isinstance(m, ViewChange) and m.sender == KEYS[1].public_key
               for m in _sent(effects))


def test_the_new_primary_starts_its_view_with_a_quorum_of_view_changes() -> None:
    replica, _ = _replica()  # KEYS[1] is the primary of view 1
    for key in (KEYS[2], KEYS[3]):
        effects = _receive(replica, key, encode_message(ViewChange.make(key, CHAIN, 1, (), (),
                                                                        ())))
    new_views = [m for m in _sent(effects) if isinstance(m, NewView)]
    assert replica.view == 1 and replica.view_active
    assert len(new_views) == 1 and len(new_views[0].view_changes) == GENESIS.validator_set.quorum


def test_primary_builds_bounded_blocks_from_pending_transactions() -> None:
    executor = SimExecutor(GENESIS)
    primary = Replica(key=KEYS[0], genesis=GENESIS, executor=executor)
    primary.step(Start(T0))
    txs = tuple(make_transaction(n) for n in range(1, 30))
    effects = primary.step(TransactionsAvailable(T0 + 1, txs))
    proposals = [m for m in _sent(effects) if isinstance(m, PrePrepare)]
    # The execution lag (2) bounds the heights in flight before anything executes.
    assert [p.height for p in proposals] == [1, 2]
    assert all(len(p.block.transactions) <= SIM_PARAMS.block_txs_max for p in proposals)
    ids = [tx.tx_id for p in proposals for tx in p.block.transactions]
    assert len(ids) == len(set(ids))


class _PacedExecutor(SimExecutor):
    """Room for one block of ``room`` transactions while nothing is in flight."""

    def __init__(self, room: int) -> None:
        super().__init__(GENESIS)
        self.room = room
        self.asked: list[tuple[int, int]] = []

    def proposal_room(self, in_flight: int, blocks_in_flight: int) -> int:
        self.asked.append((in_flight, blocks_in_flight))
        return self.room if in_flight == 0 else 0


def test_a_paced_primary_proposes_within_the_room_and_again_only_after_a_commit() -> None:
    executor = _PacedExecutor(room=4)
    primary = Replica(key=KEYS[0], genesis=GENESIS, executor=executor)
    primary.step(Start(T0))
    txs = tuple(make_transaction(n) for n in range(1, 12))
    effects = primary.step(TransactionsAvailable(T0 + 1, txs))
    (first,) = [m for m in _sent(effects) if isinstance(m, PrePrepare)]
    assert first.height == 1 and len(first.block.transactions) == 4
    assert executor.asked[-1] == (4, 1)  # asked again with block 1 in flight: no room
    # More transactions while block 1 is in flight: still nothing proposed.
    effects = primary.step(TransactionsAvailable(T0 + 2, (make_transaction(50),)))
    assert not [m for m in _sent(effects) if isinstance(m, PrePrepare)]
    for key in (KEYS[1], KEYS[2]):
        prepare = Vote.make(key, CHAIN, Phase.PREPARE, 0, 1, first.block_hash)
        effects += _receive(primary, key, encode_message(prepare))
    for key in (KEYS[1], KEYS[2]):
        commit = Vote.make(key, CHAIN, Phase.COMMIT, 0, 1, first.block_hash)
        effects += _receive(primary, key, encode_message(commit))
    assert [e.block for e in effects if isinstance(e, Deliver)] == [first.block]
    (second,) = [m for m in _sent(effects) if isinstance(m, PrePrepare)]
    assert second.height == 2 and len(second.block.transactions) == 4
    assert not {tx.tx_id for tx in second.block.transactions} & {
        tx.tx_id for tx in first.block.transactions}


class _GatheringExecutor(_PacedExecutor):
    """The node's pacing: one block in flight, and a block that is not full gathers."""

    def gather_ms_max(self) -> int:
        return 100


def _commit_first_block(primary: Replica, first: PrePrepare, now: int) -> list[Effect]:
    effects: list[Effect] = []
    for phase in (Phase.PREPARE, Phase.COMMIT):
        for key in (KEYS[1], KEYS[2]):
            vote = Vote.make(key, CHAIN, phase, 0, 1, first.block_hash)
            effects += _receive(primary, key, encode_message(vote), now=now)
    assert [e.block for e in effects if isinstance(e, Deliver)] == [first.block]
    return effects


def _proposed(effects: list[Effect]) -> list[PrePrepare]:
    return [m for m in _sent(effects) if isinstance(m, PrePrepare)]


@pytest.mark.parametrize(("took_ms", "waits_ms"), [(5, 5), (40, 40), (400, 100)])
def test_a_block_that_is_not_full_waits_as_long_as_the_last_commit_took_at_most_the_bound(
        took_ms: int, waits_ms: int) -> None:
    primary = Replica(key=KEYS[0], genesis=GENESIS, executor=_GatheringExecutor(room=4))
    primary.step(Start(T0))
    (first,) = _proposed(primary.step(TransactionsAvailable(T0, (make_transaction(1),))))
    committed_at = first.header.time_ms + took_ms
    effects = _commit_first_block(primary, first, committed_at)
    effects += primary.step(TransactionsAvailable(committed_at, (make_transaction(2),)))
    assert not _proposed(effects), "proposed at once instead of gathering"
    due = [e.deadline_ms for e in effects
           if isinstance(e, SetTimer) and e.timer == TimerId.GATHER]
    assert due and due[-1] == committed_at + waits_ms
    # A transaction arriving during the wait joins the block, which leaves at the timer.
    early = primary.step(TransactionsAvailable(due[-1] - 1, (make_transaction(3),)))
    assert not _proposed(early)
    (second,) = _proposed(primary.step(TimerFired(due[-1], TimerId.GATHER)))
    assert second.height == 2
    assert {tx.tx_id for tx in second.block.transactions} == {
        make_transaction(2).tx_id, make_transaction(3).tx_id}


@pytest.mark.parametrize("waiting", [4, 5])
def test_a_full_block_never_waits_to_gather(waiting: int) -> None:
    primary = Replica(key=KEYS[0], genesis=GENESIS, executor=_GatheringExecutor(room=4))
    primary.step(Start(T0))
    (first,) = _proposed(primary.step(TransactionsAvailable(T0, (make_transaction(1),))))
    committed_at = first.header.time_ms + 80
    effects = _commit_first_block(primary, first, committed_at)
    more = tuple(make_transaction(n) for n in range(2, 2 + waiting))
    effects += primary.step(TransactionsAvailable(committed_at, more))
    (second,) = _proposed(effects)
    assert len(second.block.transactions) == 4


def test_a_damaged_persisted_state_is_refused_with_an_operator_message() -> None:
    damaged = PersistedState({b"view": b"\x92\x01"})  # truncated msgpack
    with pytest.raises(DecodeError, match="restore the node's data directory"):
        Replica(key=KEYS[1], genesis=GENESIS, executor=SimExecutor(GENESIS), persisted=damaged)


def test_view_change_timeouts_double_after_each_failed_view_change() -> None:
    executor = SimExecutor(GENESIS)
    replica = Replica(key=KEYS[3], genesis=GENESIS, executor=executor)
    replica.step(Start(T0))
    effects = replica.step(TransactionsAvailable(T0, (make_transaction(1),)))
    waits: list[int] = []
    now = T0
    for view in (1, 2, 3):
        timers = [e for e in effects if isinstance(e, SetTimer) and e.timer == TimerId.VIEW]
        assert timers, f"no view timer before view {view}"
        waits.append(timers[-1].deadline_ms - now)
        now = timers[-1].deadline_ms
        effects = (_timeout_and_agree(replica, now) if replica.view_active
                   else replica.step(TimerFired(now, TimerId.VIEW)))
        assert replica.view == view and not replica.view_active
        for key in (KEYS[0], KEYS[2]):  # a quorum asks for the view, its primary is silent
            vc = ViewChange.make(key, CHAIN, view, (), (), ())
            effects += _receive(replica, key, encode_message(vc), now=now)
    base = SIM_PARAMS.view_timeout_ms
    assert waits == [base, 2 * base, 4 * base]


def _certified(block: Block, signers: tuple[SigningKey, ...]) -> CommittedProof:
    block_hash = block.header.block_hash
    votes = [Vote.make(k, CHAIN, Phase.COMMIT, 0, block.header.height, block_hash)
             for k in signers]
    return CommittedProof(block, CommitCertificate.from_votes(votes))


def _asked_peer(replica: Replica, effects: list[Effect]) -> SigningKey | None:
    """The peer a ``RequestStateTransfer`` among ``effects`` asks, if any."""
    for effect in effects:
        if isinstance(effect, RequestStateTransfer):
            return next(k for k in KEYS if k.public_key == effect.peers[0])
    return None


def _make_it_ask(replica: Replica, height: int, *, first_tick: int = 1,
                 claimants: tuple[SigningKey, ...] = (KEYS[2],)) -> SigningKey:
    """Two heartbeats during which ``claimants`` claim ``height``: the replica asks one."""
    effects: list[Effect] = []
    for tick in (first_tick, first_tick + 1):
        for claimant in claimants:
            status = Status.make(claimant, CHAIN, 0, True, height)
            _receive(replica, claimant, encode_message(status), now=T0 + 100 * tick)
        effects += replica.step(TimerFired(T0 + 100 * tick + 50, TimerId.TICK))
    peer = _asked_peer(replica, effects)
    assert peer is not None, "a peer ahead for two heartbeats is asked for its blocks"
    return peer


def _answer(replica: Replica, peer: SigningKey, proof: CommittedProof, *, now: int = T0 + 400
            ) -> tuple[list[Effect], SigningKey | None]:
    effects = _receive(replica, peer, encode_message(BlocksResponse(CHAIN, (proof,))), now=now)
    return effects, _asked_peer(replica, effects)


def test_state_transfer_delivers_only_blocks_whose_certificates_verify() -> None:
    replica, _ = _replica()
    block = _block()
    short = _certified(block, (KEYS[0], KEYS[2]))  # 2 signatures: below the quorum of 3
    outsider = _certified(block, (KEYS[0], KEYS[2], SigningKey(b"\x09" * 32)))
    other = _certified(_block(nonce=9), tuple(KEYS[:3]))
    wrong_cert = CommittedProof(block, other.certificate)  # a real quorum, for another block
    for round_, proof in enumerate((short, outsider, wrong_cert)):
        peer = _make_it_ask(replica, 1, first_tick=1 + 2 * round_, claimants=(KEYS[2], KEYS[3]))
        effects, _ = _answer(replica, peer, proof, now=T0 + 200 * (round_ + 1) + 75)
        assert not any(isinstance(e, Deliver) for e in effects)
    peer = _make_it_ask(replica, 1, first_tick=7, claimants=(KEYS[2], KEYS[3]))
    effects, _ = _answer(replica, peer, _certified(block, tuple(KEYS[:3])), now=T0 + 875)
    assert [e.block for e in effects if isinstance(e, Deliver)] == [block]


def test_block_responses_nobody_asked_for_are_dropped() -> None:
    """A connected peer pushing certified blocks unasked is ignored (it could otherwise
    make the replica decode and check whatever it likes); the asked peer is heard."""
    replica, _ = _replica()
    good = _certified(_block(), tuple(KEYS[:3]))
    effects = _receive(replica, KEYS[3], encode_message(BlocksResponse(CHAIN, (good,))))
    assert not any(isinstance(e, Deliver) for e in effects)
    peer = _make_it_ask(replica, 1)
    stranger = next(k for k in KEYS if k not in (peer, KEYS[1]))
    effects = _receive(replica, stranger, encode_message(BlocksResponse(CHAIN, (good,))))
    assert not any(isinstance(e, Deliver) for e in effects)
    effects, _ = _answer(replica, peer, good)
    assert [e.block for e in effects if isinstance(e, Deliver)] == [good.block]


def test_state_transfer_refuses_a_certified_header_with_other_contents() -> None:
    """A Byzantine server keeps the certified header and swaps the transactions: the
    certificate verifies (it covers the header only), the body does not."""
    replica, _ = _replica()
    block = _block()
    honest = _certified(block, tuple(KEYS[:3]))
    swapped = CommittedProof(Block(block.header, (make_transaction(99),)), honest.certificate)
    peer = _make_it_ask(replica, 1)
    effects, _ = _answer(replica, peer, swapped)
    assert not any(isinstance(e, Deliver) for e in effects)
    # Two validators claim height 1 now: the one that lied is not the one asked.
    again = _make_it_ask(replica, 1, first_tick=5, claimants=(KEYS[2], KEYS[3]))
    assert again != peer, "the lying server is not asked again first"
    effects, _ = _answer(replica, again, honest)
    assert [e.block for e in effects if isinstance(e, Deliver)] == [block]


def test_state_transfer_refuses_a_transaction_with_an_all_zero_signature() -> None:
    """Even a header whose ``txs_root`` matches (a quorum signed it, which takes more than
    f faulty validators) never delivers a transaction whose signature fails."""
    replica, _ = _replica()
    forged = replace(make_transaction(5), signature=bytes(64))
    bad_block = SimExecutor(GENESIS).build_block(
        height=1, view=0, prev_hash=GENESIS.genesis_hash, time_ms=T0,
        proposer=KEYS[0].public_key, transactions=[forged])
    peer = _make_it_ask(replica, 1)
    effects, _ = _answer(replica, peer, _certified(bad_block, tuple(KEYS[:3])))
    assert not any(isinstance(e, Deliver) for e in effects)


def test_commits_that_arrive_before_the_block_still_commit_it() -> None:
    replica, _ = _replica()
    pp = PrePrepare.make(KEYS[0], CHAIN, 0, _block())
    for key in (KEYS[0], KEYS[2], KEYS[3]):
        _receive(replica, key, encode_message(
            Vote.make(key, CHAIN, Phase.COMMIT, 0, 1, pp.block_hash)))
    effects = _receive(replica, KEYS[0], encode_message(pp))
    assert [e.block for e in effects if isinstance(e, Deliver)] == [pp.block]


def test_a_primary_restarting_mid_new_view_resends_the_same_new_view() -> None:
    replica, executor = _replica()  # KEYS[1] is the primary of view 1
    effects: list[Effect] = []
    for key in (KEYS[2], KEYS[3]):
        effects += _receive(replica, key, encode_message(ViewChange.make(key, CHAIN, 1, (), (),
                                                                          ())))
    sent = [e.data for e in effects if isinstance(e, Broadcast)
            and isinstance(decode_message(e.data), NewView)]
    assert len(sent) == 1
    # Crash right after the NEW-VIEW record reached the disk, before the view record.
    state = PersistedState()
    for effect in effects:
        if isinstance(effect, Persist):
            state = state.apply(effect.record)
            if effect.record.key == b"nv":
                break
    restarted = Replica(key=KEYS[1], genesis=GENESIS, executor=executor, persisted=state)
    assert restarted.view == 1 and not restarted.view_active
    start = restarted.step(Start(T0 + 100))
    again = [e.data for e in start if isinstance(e, Broadcast)
             and isinstance(decode_message(e.data), NewView)]
    assert again == sent  # the same NEW-VIEW, so the same O: no conflicting pre-prepare
    assert restarted.view_active


def _prepared_at_height_1(block: Block) -> PreparedCertificate:
    """Height 1 prepared in view 0: the pre-prepare of primary 0 and two backups' PREPAREs."""
    pp = PrePrepare.make(KEYS[0], CHAIN, 0, block)
    votes = tuple(sorted((Vote.make(k, CHAIN, Phase.PREPARE, 0, 1, pp.block_hash)
                          for k in (KEYS[2], KEYS[3])), key=lambda v: v.voter))
    return PreparedCertificate(pp.proposal(), votes)


def _view_2_new_view(prepared: PreparedCertificate) -> NewView:
    """Validators 0, 2, 3 ask for view 2 carrying ``prepared``; its primary (validator 2)
    re-proposes its header."""
    vcs = tuple(sorted((ViewChange.make(k, CHAIN, 2, (), (prepared,), ())
                        for k in (KEYS[0], KEYS[2], KEYS[3])), key=lambda vc: vc.sender))
    header = prepared.proposal.header
    return NewView.make(KEYS[2], CHAIN, 2, vcs, (Proposal.make(KEYS[2], CHAIN, 2, header),))


def _body_requests(effects: list[Effect]) -> list[tuple[bytes, BodyRequest]]:
    out = []
    for effect in effects:
        if isinstance(effect, Send):
            message = decode_message(effect.data)
            if isinstance(message, BodyRequest):
                out.append((effect.to, message))
    return out


def test_a_re_proposal_is_voted_on_only_with_the_certified_body() -> None:
    """Reproduced finding: the primary of a new view kept the prepared header of view 0 and
    swapped its transactions, and backups delivered the swapped body. Now the NEW-VIEW
    carries headers only; the body is fetched by hash from a validator that vouched for
    it, and a body whose transactions are not the header's is refused."""
    block = _block()
    prepared = _prepared_at_height_1(block)
    replica, _ = _replica()  # validator 1 never saw the view-0 pre-prepare: it lacks the body
    effects = _receive(replica, KEYS[2], encode_message(_view_2_new_view(prepared)))
    assert replica.view == 2 and replica.view_active
    asked = _body_requests(effects)
    assert asked and all(r.block_hash == block.header.block_hash for _, r in asked)
    assert not _votes(effects, Phase.PREPARE), "no vote before the body"
    voucher = next(k for k in KEYS if k.public_key == asked[0][0])
    swapped = Block(block.header, (make_transaction(77),))
    effects = _receive(replica, voucher, encode_message(BlockBody(CHAIN, swapped)))
    assert not _votes(effects, Phase.PREPARE), "a swapped body is refused"
    outsider = SigningKey(b"\x0b" * 32)
    effects = _receive(replica, outsider, encode_message(BlockBody(CHAIN, block)))
    assert not _votes(effects, Phase.PREPARE), "a body from a peer nobody asked is dropped"
    effects = _receive(replica, voucher, encode_message(BlockBody(CHAIN, block)))
    assert [v.block_hash for v in _votes(effects, Phase.PREPARE)] == [block.header.block_hash]


def test_view_change_and_new_view_carry_no_block_bodies() -> None:
    """Bounded messages: whatever the blocks weigh, a VIEW-CHANGE carries headers and
    signatures only (a few 300 KB blocks once pushed it past the frame limit)."""
    replica, _ = _replica()
    heavy = SimExecutor(GENESIS).build_block(
        height=1, view=0, prev_hash=GENESIS.genesis_hash, time_ms=T0,
        proposer=KEYS[0].public_key,
        transactions=[make_transaction(n, {"blob": "x" * 7_000}) for n in range(8)])
    pp = PrePrepare.make(KEYS[0], CHAIN, 0, heavy)
    _receive(replica, KEYS[0], encode_message(pp))
    for key in (KEYS[2], KEYS[3]):
        _receive(replica, key, encode_message(
            Vote.make(key, CHAIN, Phase.PREPARE, 0, 1, pp.block_hash)))
    deadline = replica.view_deadline
    assert deadline is not None
    effects = _timeout_and_agree(replica, deadline)
    sent = [e.data for e in effects if isinstance(e, Broadcast)
            and isinstance(decode_message(e.data), ViewChange)]
    assert len(sent) == 1 and len(encode_message(pp)) > 56_000
    assert len(sent[0]) < 2_000


def test_a_commit_certificate_of_another_network_in_a_view_change_is_refused() -> None:
    """Same validator keys on staging and production: a block committed on staging must never
    outrank what production prepared when O is built."""
    staging_block = replace(_block(), header=replace(_block().header, chain_id="staging"))
    votes = [Vote.make(k, "staging", Phase.COMMIT, 0, 1, staging_block.header.block_hash)
             for k in KEYS[:3]]
    foreign = CommittedProof(staging_block, CommitCertificate.from_votes(votes))
    replica, _ = _replica()
    for key in (KEYS[0], KEYS[3]):
        _receive(replica, key, encode_message(ViewChange.make(key, CHAIN, 2, (), (),
                                                              (foreign.certified_header(),))))
    assert replica.view_active and replica.view == 0


def test_a_validator_cut_off_alone_never_leaves_the_view_of_the_others() -> None:
    """Reproduced finding (partition 3|1 through a TCP proxy): the isolated node sat in a
    later, never-active view after healing. Its timer now only asks (VIEW-CHANGE-REQUEST);
    alone it stays in the view the others are in, ready to vote when the link returns."""
    replica, _ = _replica()
    effects = replica.step(TransactionsAvailable(T0, (make_transaction(1),)))
    for _ in range(4):
        deadline = replica.view_deadline
        assert deadline is not None
        effects = replica.step(TimerFired(deadline, TimerId.VIEW))
        assert any(isinstance(m, ViewChangeRequest) and m.new_view == 1 for m in _sent(effects))
        assert replica.view == 0 and replica.view_active
    # A request from a non-validator changes nothing; f + 1 validators do.
    outsider = SigningKey(b"\x0c" * 32)
    _receive(replica, outsider, encode_message(ViewChangeRequest.make(outsider, CHAIN, 1)))
    assert replica.view_active
    _receive(replica, KEYS[3], encode_message(ViewChangeRequest.make(KEYS[3], CHAIN, 1)))
    assert replica.view == 1 and not replica.view_active


def test_a_backup_restarted_while_fetching_a_re_proposal_holds_its_height_and_asks_again() -> None:
    """Suspected by the review: after a restart in the middle of a NEW-VIEW, re-proposals
    not yet accepted were not restored. They hold their heights again and their bodies
    are asked for again at start-up."""
    block = _block()
    replica, executor = _replica()
    effects = _receive(replica, KEYS[2], encode_message(_view_2_new_view(
        _prepared_at_height_1(block))))
    assert replica.view == 2 and replica.view_active and _body_requests(effects)
    state = _apply(PersistedState(), effects)
    restarted = Replica(key=KEYS[1], genesis=GENESIS, executor=executor, persisted=state)
    start = restarted.step(Start(T0 + 50))
    assert [r.block_hash for _, r in _body_requests(start)] == [block.header.block_hash]
    # A fresh pre-prepare of view 2 for that height is refused: the height is held.
    fresh = PrePrepare.make(KEYS[2], CHAIN, 2, _block(nonce=5, view=2, proposer=KEYS[2]))
    assert not _votes(_receive(restarted, KEYS[2], encode_message(fresh)), Phase.PREPARE)
    voucher = next(k for k in KEYS if k.public_key == _body_requests(start)[0][0])
    effects = _receive(restarted, voucher, encode_message(BlockBody(CHAIN, block)))
    assert [v.block_hash for v in _votes(effects, Phase.PREPARE)] == [block.header.block_hash]


def test_expired_pending_transactions_leave_the_queue_and_stop_the_view_timer() -> None:
    """The replica's own rule (the node used to delete from its queue): an expired
    transaction can never be proposed, and must not keep asking for view changes."""
    replica, _ = _replica()
    short = replace(make_transaction(1), expiry_ms=T0 + 100).signed(CLIENT_KEY)
    replica.step(TransactionsAvailable(T0, (short,)))
    assert short.tx_id in replica.pending and replica.view_deadline is not None
    replica.step(TimerFired(T0 + 200, TimerId.TICK))
    assert short.tx_id not in replica.pending and replica.view_deadline is None


def test_blocks_kept_in_memory_do_not_grow_with_the_chain() -> None:
    """A replica keeps the bodies it validated (so that a delivered body is not checked a
    second time) only while their heights are above the stable checkpoint, like every
    other per-height record: a node once kept the last 1,024 validated blocks, a block of
    200 transactions each, about 200,000 transactions held for nothing (issue 11's memory
    target: RSS flat, not growing with the chain)."""
    sim = Simulation(5, scenario="memory")
    batches = 72
    for i in range(batches):
        sim.at(i * 40, lambda: sim.submit(SIM_PARAMS.block_txs_max))
    sim.run(batches * 40)
    sim.run_until_committed(60_000)
    assert sim.heights() >= 4 * SIM_PARAMS.watermark_window  # the chain outgrew the bound
    for node in sim.nodes:
        replica = node.replica
        low = replica.low
        assert low >= sim.heights() - 2 * SIM_PARAMS.watermark_window
        assert all(block.header.height > low for block in replica.validated.values())
        assert all(block.header.height > low for block in replica.bodies.values())
        assert len(replica.validated) <= SIM_PARAMS.watermark_window

"""Consensus messages: canonical round trips, signatures bound to the chain, and decoding
that rejects anything else with DecodeError only."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.events import PersistRecord
from consensus.messages import (
    BlockBody,
    BlocksRequest,
    BlocksResponse,
    BodyRequest,
    CertifiedHeader,
    Checkpoint,
    CommittedProof,
    Kind,
    Message,
    NewView,
    PreparedCertificate,
    PrePrepare,
    Proposal,
    Status,
    ViewChange,
    check_message_bounds,
    decode_message,
    encode_message,
    message_bytes_max,
    new_view_bytes_max,
    signature_valid,
    view_change_bytes_max,
)
from consensus.persist import PersistedState
from ledger.crypto import SigningKey
from ledger.encoding import decode, encode
from ledger.errors import DecodeError, GenesisError
from ledger.records import Block, CommitCertificate, Phase, Transaction, Vote
from testkit.sim.core import make_genesis, make_transaction, sim_key
from testkit.sim.executor import SimExecutor

KEYS = sorted((sim_key(i) for i in range(4)), key=lambda k: k.public_key)
GENESIS = make_genesis(KEYS)
CHAIN = GENESIS.chain_id


def _block() -> Block:
    executor = SimExecutor(GENESIS)
    return executor.build_block(height=1, view=0, prev_hash=GENESIS.genesis_hash,
                                time_ms=GENESIS.genesis_time_ms + 5, proposer=KEYS[0].public_key,
                                transactions=[make_transaction(1), make_transaction(2)])


def _all_messages() -> list[Message]:
    block = _block()
    pp = PrePrepare.make(KEYS[0], CHAIN, 0, block)
    prepares = tuple(Vote.make(k, CHAIN, Phase.PREPARE, 0, 1, pp.block_hash) for k in KEYS[1:])
    commits = [Vote.make(k, CHAIN, Phase.COMMIT, 0, 1, pp.block_hash) for k in KEYS[:3]]
    cert = CommitCertificate.from_votes(commits)
    cps = tuple(Checkpoint.make(k, CHAIN, 4, pp.block_hash, 7, bytes(32)) for k in KEYS[:3])
    vc = ViewChange.make(KEYS[1], CHAIN, 1, cps, (PreparedCertificate(pp.proposal(), prepares),),
                         (CommittedProof(block, cert).certified_header(),))
    return [
        pp, pp.proposal(), prepares[0], commits[0], cps[0], vc,
        NewView.make(KEYS[1], CHAIN, 1, (vc,), (Proposal.make(KEYS[1], CHAIN, 1, block.header),)),
        Status.make(KEYS[2], CHAIN, 3, True, 9),
        BlocksRequest.make(KEYS[3], CHAIN, 1, 64),
        BlocksResponse(CHAIN, (CommittedProof(block, cert),)),
        BodyRequest.make(KEYS[2], CHAIN, 1, pp.block_hash),
        BlockBody(CHAIN, block),
    ]


@pytest.mark.parametrize("message", _all_messages(), ids=lambda m: type(m).__name__)
def test_every_message_round_trips_canonically(message: Message) -> None:
    data = encode_message(message)
    again = decode_message(data)
    assert again == message
    assert encode_message(again) == data


def test_a_committed_proof_assembled_from_its_parts_is_its_canonical_encoding() -> None:
    block = _block()
    pp = PrePrepare.make(KEYS[0], CHAIN, 0, block)
    cert = CommitCertificate.from_votes(
        [Vote.make(k, CHAIN, Phase.COMMIT, 0, 1, pp.block_hash) for k in KEYS[:3]])
    proof = CommittedProof(Block.decode(block.encode()), cert)  # transactions keep bytes
    assert proof.encode() == encode(proof.to_value())
    assert CommittedProof.from_value(decode(proof.encode())) == proof


@given(count=st.integers(0, 20), view=st.sampled_from([0, 1, 127, 128, 2**16, 2**32, 2**63]),
       decoded=st.booleans())
@settings(max_examples=40, deadline=None)
def test_messages_that_carry_blocks_are_assembled_into_their_canonical_encoding(
        count: int, view: int, decoded: bool) -> None:
    """A pre-prepare, a block body and a blocks response are encoded from the block's own
    bytes; the result must be byte for byte the canonical encoding of their values (what a
    peer's decoder accepts, what the persisted record replays), whether the transactions
    were built here or decoded from a peer's bytes, at every width of the view number."""
    block = SimExecutor(GENESIS).build_block(
        height=1, view=0, prev_hash=GENESIS.genesis_hash, time_ms=GENESIS.genesis_time_ms + 5,
        proposer=KEYS[0].public_key, transactions=[make_transaction(i) for i in range(count)])
    if decoded:
        block = Block.decode(block.encode())
    pp = PrePrepare.make(KEYS[0], CHAIN, view, block)
    cert = CommitCertificate.from_votes(
        [Vote.make(k, CHAIN, Phase.COMMIT, view, 1, pp.block_hash) for k in KEYS[:3]])
    proofs = tuple(CommittedProof(block, cert) for _ in range(min(count, 3)))
    for message in (pp, BlockBody(CHAIN, block), BlocksResponse(CHAIN, proofs)):
        assert message.encode() == encode(message.to_value())
        assert encode_message(message) == encode([message.KIND, message.to_value()])
        assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize("message", [m for m in _all_messages()
                                     if not isinstance(m, (Vote, BlocksResponse, BlockBody))],
                         ids=lambda m: type(m).__name__)
def test_signatures_verify_and_bind_the_chain_id(message: Message) -> None:
    assert not isinstance(message, (Vote, BlocksResponse, BlockBody))
    assert signature_valid(message)
    assert not signature_valid(replace(message, chain_id="other-net"))
    stranger = KEYS[3].public_key if message.sender != KEYS[3].public_key else KEYS[0].public_key
    assert not signature_valid(replace(message, sender=stranger))


def test_a_proposal_carries_its_pre_prepare_signature_and_takes_back_only_its_body() -> None:
    """The body-less form that VIEW-CHANGE, NEW-VIEW and retransmissions carry verifies
    with the pre-prepare's own signature, and accepts only a body of the same header."""
    block = _block()
    pp = PrePrepare.make(KEYS[0], CHAIN, 0, block)
    proposal = pp.proposal()
    assert signature_valid(proposal) and proposal.with_body(block) == pp
    other = SimExecutor(GENESIS).build_block(
        height=1, view=0, prev_hash=GENESIS.genesis_hash, time_ms=GENESIS.genesis_time_ms + 5,
        proposer=KEYS[0].public_key, transactions=[make_transaction(3)])
    with pytest.raises(DecodeError):
        proposal.with_body(other)


def test_vote_signature_covers_the_block_hash() -> None:
    vote = Vote.make(KEYS[0], CHAIN, Phase.PREPARE, 0, 1, bytes(32))
    forged = Vote(CHAIN, Phase.PREPARE, 0, 1, b"\x01" * 32, vote.voter, vote.signature)
    assert vote.signature_valid() and not forged.signature_valid()


@pytest.mark.parametrize("data", [
    b"", b"\xc1", encode([99, []]), encode([True, []]), encode([1]), encode([2, [1, 2]]),
    encode([8, [CHAIN, 5, 4, bytes(32), bytes(64)]]),  # from > to
    encode([8, [CHAIN, 1, 1000, bytes(32), bytes(64)]]),  # too many heights
    encode([7, [CHAIN, 1, 1, 1, bytes(32), bytes(64)]]),  # view_active not a bool
])
def test_malformed_messages_are_decode_errors(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_message(data)


def test_a_prepare_cannot_pass_for_a_commit() -> None:
    vote = Vote.make(KEYS[0], CHAIN, Phase.PREPARE, 0, 1, bytes(32))
    data = encode([3, vote.to_value()])  # kind COMMIT with a PREPARE body
    with pytest.raises(DecodeError):
        decode_message(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):  # any other exception fails the test
        decode_message(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(range(9)), st.integers(min_value=0), st.integers(0, 255))
def test_flipped_bytes_never_crash_the_decoder(which: int, position: int, value: int) -> None:
    data = bytearray(encode_message(_MESSAGES[which]))
    data[position % len(data)] = value
    try:
        decoded = decode_message(bytes(data))
    except DecodeError:
        return
    assert encode_message(decoded) == bytes(data)  # only canonical bytes decode


_MESSAGES = _all_messages()


def _whole(data: bytes) -> Message | type[DecodeError]:
    """The plain decoding a block-carrying message had before ``from_parts``."""
    decoders: dict[int, Callable[[Any], Message]] = {
        PrePrepare.KIND: PrePrepare.from_value, BlockBody.KIND: BlockBody.from_value}
    try:
        kind, body = decode(data)
        return decoders[kind](body)
    except (DecodeError, ValueError, TypeError, KeyError):
        return DecodeError


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([m for m in _MESSAGES if isinstance(m, (PrePrepare, BlockBody))]),
       st.integers(min_value=0), st.integers(0, 255))
def test_messages_carrying_a_block_decode_by_parts_as_they_did_whole(
        message: PrePrepare | BlockBody, position: int, value: int) -> None:
    data = bytearray(encode_message(message))
    data[position % len(data)] = value
    try:
        by_parts: Message | type[DecodeError] = decode_message(bytes(data))
    except DecodeError:
        by_parts = DecodeError
    assert by_parts == _whole(bytes(data))


def test_a_block_in_a_pre_prepare_reuses_the_transactions_already_decoded() -> None:
    block = _block()
    forwarded = [Transaction.decode(tx.encode()) for tx in block.transactions]
    pp = decode_message(encode_message(PrePrepare.make(KEYS[0], CHAIN, 0, block)))
    assert isinstance(pp, PrePrepare)
    assert all(a is b for a, b in zip(pp.block.transactions, forwarded, strict=True))


def test_persisted_state_round_trips_and_applies_records() -> None:
    state = PersistedState()
    state = state.apply(PersistRecord(b"view", encode([3, True])))
    state = state.apply(PersistRecord(b"vote/x", b"\x01" * 32))
    state = state.apply(PersistRecord(b"vote/x", None))
    assert state.records == {b"view": encode([3, True])}
    assert PersistedState.decode(state.encode()) == state
    with pytest.raises(DecodeError):
        PersistedState.decode(encode([[b"k"]]))


@pytest.mark.parametrize(("n", "window"), [(4, 16), (7, 8)])
def test_the_largest_view_change_and_new_view_stay_within_their_documented_bounds(
        n: int, window: int) -> None:
    """Worst case: a 64-byte chain id, every counter at its maximum, one prepared and one
    committed entry per window height, a full checkpoint proof, n VIEW-CHANGEs."""
    keys = [SigningKey(bytes([0x60 + i]) * 32) for i in range(n)]
    chain = "c" * 64
    big = 2**64 - 1
    header = dataclasses.replace(_block().header, chain_id=chain, height=big, view=big,
                                 time_ms=big)
    proposal = Proposal.make(keys[0], chain, big, header)
    prepares = tuple(Vote.make(k, chain, Phase.PREPARE, big, big, proposal.block_hash)
                     for k in keys[1:])
    cert = CommitCertificate.from_votes(
        [Vote.make(k, chain, Phase.COMMIT, big, big, proposal.block_hash) for k in keys])
    cps = tuple(Checkpoint.make(k, chain, big, bytes(32), big, bytes(32)) for k in keys)
    vc = ViewChange.make(keys[0], chain, big, cps,
                         tuple(PreparedCertificate(proposal, prepares) for _ in range(window)),
                         tuple(CertifiedHeader(header, cert) for _ in range(window)))
    assert len(encode_message(vc)) <= view_change_bytes_max(n, window)
    nv = NewView.make(keys[0], chain, big, (vc,) * n, (proposal,) * window)
    assert len(encode_message(nv)) <= new_view_bytes_max(n, window)
    # The bounds are tight enough to mean something: within 5 % of the worst case.
    assert view_change_bytes_max(n, window) < 1.05 * len(encode_message(vc))


def test_block_bodies_never_travel_in_view_changes() -> None:
    """Whatever the blocks weigh, the VIEW-CHANGE bound does not depend on them."""
    assert message_bytes_max(Kind.VIEW_CHANGE, 4, 64, 1) == \
        message_bytes_max(Kind.VIEW_CHANGE, 4, 64, 64 * 1024 * 1024)
    assert message_bytes_max(Kind.PRE_PREPARE, 4, 64, 2_000_000) > 2_000_000


def test_a_window_too_large_for_the_validator_count_is_refused_with_a_fitting_one() -> None:
    """A NEW-VIEW must always fit the message limit, or a view change could never finish:
    the node refuses to start (and `network init` to generate) such a genesis."""
    check_message_bounds(16, 64)  # the largest documented example still fits
    with pytest.raises(GenesisError, match=r"choose a watermark_window of at most (\d+)") as info:
        check_message_bounds(31, 64)
    match = re.search(r"at most (\d+)", str(info.value))
    assert match is not None
    fitting = int(match.group(1))
    assert 0 < fitting < 64
    check_message_bounds(31, fitting)

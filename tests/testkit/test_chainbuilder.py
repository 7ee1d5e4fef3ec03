"""The one chain builder serves both kinds of callers: executed chains (the auditor's) and
ledger-only chains (the store's), on one network with one key derivation."""

from __future__ import annotations

import pytest

from ledger.merkle import EMPTY_ROOT
from ledger.validation import verify_certificate
from testkit.chainbuilder import ChainBuilder, make_network


def test_a_ledger_only_chain_continued_after_its_head_is_the_same_chain() -> None:
    """The crash test's child resumes after the stored head: what it appends must be the
    blocks one uninterrupted builder would have made."""
    whole = ChainBuilder(execute=False)
    for _ in range(5):
        whole.add_anchors(3)
    first = ChainBuilder(execute=False)
    for _ in range(2):
        first.add_anchors(3)
    resumed = ChainBuilder(execute=False, after=first.blocks[-1])
    for _ in range(3):
        resumed.add_anchors(3)
    assert first.blocks + resumed.blocks == whole.blocks
    assert all(r.ok for b in whole.blocks for r in b.receipts)
    assert {b.block.header.state_root for b in whole.blocks} == {EMPTY_ROOT}


def test_anchors_are_valid_records_when_the_contracts_run() -> None:
    executed = ChainBuilder()
    for _ in range(4):
        executed.add_anchors(3)
    genesis = make_network().genesis
    for block in executed.blocks:
        verify_certificate(block.certificate, block.block.header, genesis.validator_set,
                           chain_id=genesis.chain_id)
        assert [r.code for r in block.receipts] == ["ok"] * 3
    lag = genesis.consensus.execution_lag
    assert executed.blocks[lag].block.header.state_root != executed.genesis_root


def test_only_a_ledger_only_chain_continues_after_a_stored_block() -> None:
    head = ChainBuilder(execute=False).add_anchors(1)
    with pytest.raises(ValueError, match="only a ledger-only chain"):
        ChainBuilder(after=head)

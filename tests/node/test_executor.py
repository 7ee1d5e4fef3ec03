"""node.executor: the primary's pacing follows the measured execution cost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.errors import InvalidBlock
from ledger.records import Block, Transaction
from node.chain import Chain
from node.config import Limits
from node.devnet import DevNet, generate
from node.executor import BLOCK_TIME_SHARE, BLOCK_TXS_MIN, PROPOSED_BLOCKS_MAX, ChainExecutor
from node.mempool import Mempool


@pytest.fixture
def net(tmp_path: Path) -> DevNet:
    return generate(tmp_path / "net", ("Montreuil", "Bagnolet", "Vincennes", "Romainville"))


@pytest.fixture
def executor(tmp_path: Path, net: DevNet) -> Iterator[ChainExecutor]:
    chain = Chain.open(tmp_path / "data", net.genesis)
    try:
        yield ChainExecutor(chain, Mempool(net.genesis.chain_id, Limits(),
                                           chain.store.has_tx))
    finally:
        chain.close()


def _executed(executor: ChainExecutor, seconds_per_tx: float) -> None:
    """Blocks of 100 transactions took this long per transaction, for long enough that the
    moving average has settled."""
    for _ in range(100):
        executor.observe_execution(100, 100 * seconds_per_tx)


def test_blocks_shrink_when_execution_is_slow_and_the_next_waits_for_the_commit(
        executor: ChainExecutor) -> None:
    params = executor.chain.genesis.consensus
    budget_s = params.view_timeout_ms / 1000 * BLOCK_TIME_SHARE
    _executed(executor, 0.002)  # 2 ms per transaction
    cap = executor.proposal_room(0, 0)
    assert cap == int(budget_s / 0.002)
    assert PROPOSED_BLOCKS_MAX == 1
    # One block in flight, however small: the next one waits for its commit.
    assert executor.proposal_room(10, 1) == 0
    assert executor.proposal_room(cap, 1) == 0

    _executed(executor, 0.5)  # a machine overwhelmed: never below the floor
    assert executor.proposal_room(0, 0) == BLOCK_TXS_MIN
    _executed(executor, 1e-7)  # idle and fast: the governed maximum
    assert executor.proposal_room(0, 0) == params.block_txs_max


def test_a_proposal_smuggling_a_field_no_schema_has_gets_no_vote(
        executor: ChainExecutor, net: DevNet) -> None:
    """An honest mempool refuses a payload with an unknown field, but a faulty primary can
    put one in its own proposal: voting for it would write its bytes (a name, a case
    number) into the chain for ever, even though its receipt would say invalid_payload."""
    genesis = net.genesis
    clerk = net.nodes[0].members["clerk"]
    time_ms = genesis.genesis_time_ms + 1000

    def anchor(**extra: object) -> Transaction:
        payload = {"siret": net.nodes[0].siret, "sha256": "ab" * 32,
                   "document_type": "arrete", "reference": "A-1", **extra}
        return Transaction(genesis.chain_id, "notary", "anchor", payload, clerk.public_key,
                           1, time_ms + 60_000).signed(clerk)

    def proposal(tx: Transaction) -> Block:
        return executor.build_block(height=1, view=0, prev_hash=genesis.genesis_hash,
                                    time_ms=time_ms,
                                    proposer=net.nodes[0].validator_key.public_key,
                                    transactions=[tx])

    executor.check_proposal(proposal(anchor()))  # the same transaction without the field
    smuggled = anchor(beneficiary="Jeanne Dupont, 12 rue des Lilas")
    with pytest.raises(InvalidBlock, match=r"transaction 0.*beneficiary"):
        executor.check_proposal(proposal(smuggled))

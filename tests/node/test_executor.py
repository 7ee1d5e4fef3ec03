"""node.executor: the primary's pacing follows the measured execution cost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.chain import Chain
from node.config import Limits
from node.devnet import generate
from node.executor import BLOCK_TIME_SHARE, BLOCK_TXS_MIN, PROPOSED_BLOCKS_MAX, ChainExecutor
from node.mempool import Mempool


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[ChainExecutor]:
    net = generate(tmp_path / "net", ("Montreuil", "Bagnolet", "Vincennes", "Romainville"))
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


def test_blocks_shrink_when_execution_is_slow_and_one_waits_behind_the_other(
        executor: ChainExecutor) -> None:
    params = executor.chain.genesis.consensus
    budget_s = params.view_timeout_ms / 1000 * BLOCK_TIME_SHARE
    _executed(executor, 0.002)  # 2 ms per transaction
    cap = executor.proposal_room(0)
    assert cap == int(budget_s / 0.002)
    assert executor.proposal_room(cap * (PROPOSED_BLOCKS_MAX - 1)) == cap  # one may wait
    assert executor.proposal_room(cap * (PROPOSED_BLOCKS_MAX - 1) + 1) == 0  # no more

    _executed(executor, 0.5)  # a machine overwhelmed: never below the floor
    assert executor.proposal_room(0) == BLOCK_TXS_MIN
    _executed(executor, 1e-7)  # idle and fast: the governed maximum
    assert executor.proposal_room(0) == params.block_txs_max

"""Executing blocks in memory and timing them: the one loop of the in-memory contract
benchmarks (contracts_bench, metering_bench); their keys are ``testkit.chainbuilder.key_for``.

Rules: the ledger starts from the genesis state (a ``DictState`` and a ``StateTree`` over a
``MemoryNodeStore``, version 0), as a node's does. Each block is executed through
``contracts.engine.execute_block``, applied to the dict state, then to the tree (one
version per block); the two steps are timed apart. A workload must be valid: a refused
transaction stops the benchmark with its code and message (a figure measured over refusals
would be meaningless).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from contracts.engine import (
    BlockEnv,
    BlockResult,
    DictState,
    RecentCommits,
    execute_block,
    genesis_changes,
)
from ledger.genesis import Genesis
from ledger.records import Transaction
from ledger.state import MemoryNodeStore, StateTree


@dataclass(frozen=True, slots=True)
class TimedBlock:
    """One executed block and how long each step took."""

    result: BlockResult
    exec_s: float
    """Engine plus applying the changes to the ``DictState``."""
    root_s: float
    """``StateTree.apply`` of the block's changes (the state root)."""


class MemoryLedger:
    """The state of a chain in memory, from its genesis on."""

    def __init__(self, genesis: Genesis) -> None:
        self.state = DictState()
        self.recent = RecentCommits()
        self.tree = StateTree(MemoryNodeStore())
        changes = genesis_changes(genesis)
        self.state.apply(changes)
        self.tree.apply(0, changes)

    def execute(self, env: BlockEnv, txs: Sequence[Transaction]) -> TimedBlock:
        """Execute the block ``env`` holding ``txs``; every receipt must be ``ok``."""
        began = time.perf_counter()
        result = execute_block(self.state, env, txs, self.recent)
        self.recent.record(env.time_ms, txs)
        self.state.apply(result.changes)
        executed = time.perf_counter()
        self.tree.apply(env.height, result.changes)
        rooted = time.perf_counter()
        bad = [r for r in result.receipts if not r.ok]
        assert not bad, f"the workload must be valid: {bad[0].code}: {bad[0].message}"
        return TimedBlock(result, executed - began, rooted - executed)

"""A deterministic stand-in for the node's executor, for the simulator.

Rules:
- Roots are fake but deterministic: the state root after block h is
  ``H(state root after h - 1 || block hash)``, the receipts root ``H("r" || block hash)``;
  so two replicas that executed the same chain report the same roots, and a block with
  wrong lagged roots is rejected by ``check_block`` exactly as the real executor would.
- A transaction of contract ``"validators"`` with payload ``{"keys": [hex, ...]}`` decides
  a new validator set (the simulator's governance); it takes effect at the boundary given
  by ``consensus.replica.effective_height``.
- Blocks execute strictly in order; executing a height twice is ignored (``Deliver`` is
  at-least-once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from consensus.replica import effective_height
from ledger.errors import InvalidBlock
from ledger.genesis import Genesis
from ledger.merkle import EMPTY_ROOT
from ledger.records import Block, BlockHeader, Transaction, ValidatorSet
from ledger.validation import txs_root


def genesis_state_root(genesis: Genesis) -> bytes:
    return hashlib.sha256(b"sim-state" + genesis.genesis_hash).digest()


class SimExecutor:
    """Executes blocks by hashing them; knows the validator-set history it executed."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.params = genesis.consensus
        self.height = 0
        self.results: dict[int, tuple[bytes, bytes]] = {}
        self.state_root = genesis_state_root(genesis)
        self.history: list[tuple[int, ValidatorSet]] = [(1, genesis.validator_set)]

    def set_at(self, height: int) -> ValidatorSet:
        current = self.history[0][1]
        for start, vset in self.history:
            if start <= height:
                current = vset
        return current

    def _lagged(self, height: int) -> tuple[bytes, bytes]:
        lagged = height - self.params.execution_lag
        if lagged <= 0:
            return EMPTY_ROOT, genesis_state_root(self.genesis)
        return self.results[lagged]

    def build_block(self, *, height: int, view: int, prev_hash: bytes, time_ms: int,
                    proposer: bytes, transactions: Sequence[Transaction]) -> Block:
        results_root, state_root = self._lagged(height)
        header = BlockHeader(
            chain_id=self.genesis.chain_id, height=height, prev_hash=prev_hash,
            proposer=proposer, view=view, time_ms=time_ms, txs_root=txs_root(transactions),
            results_root=results_root, state_root=state_root,
            validator_set_hash=self.set_at(height).set_hash)
        return Block(header, tuple(transactions))

    def check_block(self, block: Block) -> None:
        header = block.header
        height = header.height
        if len(block.transactions) > self.params.block_txs_max:
            raise InvalidBlock(height, "too many transactions")
        if header.txs_root != txs_root(block.transactions):
            raise InvalidBlock(height, "txs_root does not match the transactions")
        if (header.results_root, header.state_root) != self._lagged(height):
            raise InvalidBlock(height, "lagged roots differ from this executor's results")
        if header.validator_set_hash != self.set_at(height).set_hash:
            raise InvalidBlock(height, "validator_set_hash is not the set in force")

    def executed_height(self) -> int:
        return self.height

    def execute(self, block: Block) -> tuple[bytes, bytes, ValidatorSet | None] | None:
        """Execute the next block; ``None`` if it is not the next height."""
        height = block.header.height
        if height != self.height + 1:
            return None
        block_hash = block.header.block_hash
        self.state_root = hashlib.sha256(self.state_root + block_hash).digest()
        receipts_root = hashlib.sha256(b"r" + block_hash).digest()
        self.results[height] = (receipts_root, self.state_root)
        self.height = height
        decided: ValidatorSet | None = None
        for tx in block.transactions:
            if tx.contract == "validators" and isinstance(tx.payload.get("keys"), list):
                decided = ValidatorSet.of([bytes.fromhex(k) for k in tx.payload["keys"]])
        if decided is not None:
            start = effective_height(height, self.params.checkpoint_interval,
                                     self.params.execution_lag)
            if start > self.history[-1][0]:  # the first set decided for a boundary wins
                self.history.append((start, decided))
        return receipts_root, self.state_root, decided

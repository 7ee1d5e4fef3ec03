"""The replica's executor on a real node: block building and result checks over the chain.

Rules:
- It is what ``consensus.replica.Executor`` asks of the node, and nothing else: the
  executed height, a block built from the replica's picks, the check of a proposal
  before a vote, signature verification (through the mempool's verified cache) and the
  validator history (owned by the chain).
- Before this replica votes for a fresh proposal, its lagged results and state roots
  must be this node's, and every transaction's payload must fit its action's schema
  (``contracts.engine.check_schema``: no unknown field). An honest mempool never
  admits such a payload, so only a faulty primary proposes one; voting for it would put
  its bytes (a field no schema has is where a name or a case number would be smuggled)
  in the chain for ever, even though execution would refuse it.
- A proposal carries the replica's picks that can still commit at its time (not expired,
  not beyond the expiry horizon, not already stored).
- Pacing (``proposal_room``): a block carries at most what this machine executes in
  ``BLOCK_TIME_SHARE`` of the view timeout (the cap follows the measured execution cost
  per transaction, ``observe_execution``, a moving average: blocks shrink when the
  machine is busy and grow back to ``block_txs_max`` when it is not), and the primary
  keeps at most ``PROPOSED_BLOCKS_MAX`` blocks proposed and not yet committed: one (the
  transactions in flight are then at most one block's, so they need no bound of their
  own). What arrives meanwhile waits for the next block, which the commit
  opens (batching in the manner of Nagle's algorithm). Every block costs each node the
  same fixed work whatever it carries (three synced consensus records, a state version
  with its upper tree levels, a dozen signatures, the messages): without a block bound,
  each batch a client sent became a block of its own (measured: blocks of 5-15
  transactions executed 400-600 ms after their proposal at 137 tx/s). With two blocks in
  flight, small-batch traffic at half the capacity saturated the two cores on blocks of
  about 45 transactions, and p50 was 193-265 ms; with one, 166-170 ms at the same load,
  the same capacity, and no worse under a light load (docs/adr/0022). And a block that
  is not full waits, after the commit of the one before it, as long again as that one
  took to commit, at most ``GATHER_MS_MAX`` (``consensus.executor.Executor.gather_ms_max``):
  at half the capacity the blocks of busy machines gather (p50 115.6 ms at 850 tx/s
  against 161-274 before, docs/performance.md), while under a light load the wait is a
  few milliseconds (p50 9.7-11.6 ms at 100-400 tx/s, as before; a fixed 100 ms made it
  61.7-73.4). A
  block must commit well within the view timeout on every node, or backups start a view
  change while it waits (and a loaded machine never commits again); transactions
  proposed early only wait behind the blocks before them, on every node, while small
  blocks cut to fit the room left would cost consensus rounds for little.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from contracts.engine import check_schema
from ledger.errors import InvalidBlock
from ledger.records import Block, BlockHeader, Transaction
from ledger.validation import TX_EXPIRY_HORIZON_MS_MAX, check_execution_roots, txs_root
from ledger.validator_history import ValidatorHistory
from node.chain import Chain
from node.mempool import Mempool

log = logging.getLogger("tabellion.node")

BLOCK_TIME_SHARE = 0.1
"""Share of the view timeout one block's execution may take."""
BLOCK_TXS_MIN = 64
PROPOSED_BLOCKS_MAX = 1
"""Blocks a primary keeps proposed and not yet committed (the module's rules say why one)."""
GATHER_MS_MAX = 100
"""Longest a block that is not full waits for more transactions (``gather_ms_max``)."""
EXEC_COST_WEIGHT = 0.2
"""Weight of the newest block in the moving average of execution cost per transaction."""
EXEC_S_PER_TX_INITIAL = 0.0005


class ChainExecutor:
    """The ``Executor`` of the node's replica."""

    def __init__(self, chain: Chain, mempool: Mempool) -> None:
        self.chain = chain
        self.mempool = mempool
        self.exec_s_per_tx = EXEC_S_PER_TX_INITIAL

    def executed_height(self) -> int:
        return self.chain.executed_height

    def observe_execution(self, transactions: int, elapsed_s: float) -> None:
        """A block of ``transactions`` executed in ``elapsed_s``: update the cost per
        transaction."""
        if transactions:
            per_tx = elapsed_s / transactions
            self.exec_s_per_tx += EXEC_COST_WEIGHT * (per_tx - self.exec_s_per_tx)

    def build_block(self, *, height: int, view: int, prev_hash: bytes, time_ms: int,
                    proposer: bytes, transactions: Sequence[Transaction]) -> Block:
        """A block of the replica's picks (already cut to ``proposal_room``) that can
        still commit at ``time_ms``."""
        txs = tuple(tx for tx in transactions
                    if time_ms <= tx.expiry_ms <= time_ms + TX_EXPIRY_HORIZON_MS_MAX
                    and not self.chain.store.has_tx(tx.tx_id))
        results_root, state_root = self.chain.lagged_roots(height)
        header = BlockHeader(
            chain_id=self.chain.genesis.chain_id, height=height, prev_hash=prev_hash,
            proposer=proposer, view=view, time_ms=time_ms, txs_root=txs_root(txs),
            results_root=results_root, state_root=state_root,
            validator_set_hash=self.chain.history.at(height).set_hash,
        )
        return Block(header, txs)

    def block_cap(self) -> int:
        """Most transactions to propose in one block (the module's rules)."""
        params = self.chain.history.params_at(self.chain.height + 1)
        budget_s = params.view_timeout_ms / 1000 * BLOCK_TIME_SHARE
        cap = int(budget_s / max(self.exec_s_per_tx, 1e-6))
        return max(BLOCK_TXS_MIN, min(params.block_txs_max, cap))

    def proposal_room(self, in_flight: int, blocks_in_flight: int) -> int:
        """A full block's worth while fewer than ``PROPOSED_BLOCKS_MAX`` blocks wait
        uncommitted, else 0 (the module's rules: ``in_flight``, the transactions of those
        blocks, needs no bound of its own)."""
        return self.block_cap() if blocks_in_flight < PROPOSED_BLOCKS_MAX else 0

    def gather_ms_max(self) -> int:
        return GATHER_MS_MAX

    def check_proposal(self, block: Block) -> None:
        """The lagged results and state roots, and every payload against its action's
        schema (the replica ran ``validate_block``)."""
        results_root, state_root = self.chain.lagged_roots(block.height)
        try:
            check_execution_roots(block.header, results_root, state_root)
            for position, tx in enumerate(block.transactions):
                refusal = check_schema(tx)
                if refusal is not None:
                    raise InvalidBlock(block.height, f"transaction {position}: "
                                       f"{refusal.message} (a faulty primary's proposal)")
        except InvalidBlock as exc:
            log.warning("refused the block proposed by %s… in view %d: %s",
                        block.header.proposer.hex()[:16], block.header.view, exc)
            raise

    def verify_signature(self, tx: Transaction) -> bool:
        return self.mempool.verify_signature(tx)

    def validator_history(self) -> ValidatorHistory:
        return self.chain.history

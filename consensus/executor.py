"""The executor interface: what the replica asks of the node (or of the simulator).

Rules:
- The replica never executes transactions and never imports ``contracts``: the node
  builds and checks block contents behind this protocol.
- ``build_block`` and ``check_proposal`` are only called for a height ``h`` when
  ``executed_height() >= h - execution_lag``, so the lagged roots are known.
- The replica runs the one block check, ``ledger.validation.validate_block`` (link,
  proposer, set hash, limits, ``txs_root``, every transaction through
  ``verify_signature``), on every body at every door; ``check_proposal`` checks, before
  this replica votes for a fresh proposal, what only the node knows: the lagged results
  and state roots, and that every payload fits its contract's schema (``InvalidBlock``
  otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ledger.records import Block, Transaction
from ledger.validator_history import ValidatorHistory


class Executor(Protocol):
    """Supplied by the node (and by the simulator)."""

    def build_block(self, *, height: int, view: int, prev_hash: bytes, time_ms: int,
                    proposer: bytes, transactions: Sequence[Transaction]) -> Block:
        """A block at ``height`` with the roots filled in (``txs_root``, the results and
        state roots of block ``height - execution_lag``, ``validator_set_hash``)."""
        ...

    def proposal_room(self, in_flight: int, blocks_in_flight: int) -> int:
        """Most transactions the next proposal may carry while ``in_flight`` transactions,
        in ``blocks_in_flight`` blocks, are proposed and not yet committed; 0: wait for a
        commit (the primary's pacing, so a block commits within a share of the view
        timeout even when the machines are saturated: what is proposed early only waits
        behind the blocks before it; and so a trickle of transactions gathers into a few
        blocks instead of one block each, whose fixed costs would queue them all)."""
        ...

    def gather_ms_max(self) -> int:
        """Longest a primary lets a block that is not full wait for more transactions
        after the block before it committed; 0: never. It waits as long again as that
        block took to commit, at most this: under a light load a commit takes a few
        milliseconds and so does the wait, while on busy machines each block gathers for
        as long as one takes to commit, and their fixed costs are paid up to half as often.
        The bound keeps a slow commit from lengthening the next wait, its block and
        its commit in turn."""
        ...

    def check_proposal(self, block: Block) -> None:
        """Raise ``ledger.errors.InvalidBlock`` unless the header carries the results and
        state roots of block ``height - execution_lag`` and every transaction's payload
        fits its action's schema (checked before a vote for a fresh proposal only: a
        certified block is final, and a NEW-VIEW re-proposal was prepared by a quorum)."""
        ...

    def verify_signature(self, tx: Transaction) -> bool:
        """Whether ``tx``'s signature verifies (the node answers from its cache of verified
        signatures; a miss verifies)."""
        ...

    def executed_height(self) -> int:
        """Highest height executed so far (0 before block 1)."""
        ...

    def validator_history(self) -> ValidatorHistory:
        """Every validator-set decision of the blocks executed so far (rebuilt from the
        executor's own store after a restart, never from consensus records)."""
        ...

"""The executor interface: what the replica asks of the node (or of the simulator).

Rules:
- The replica never executes transactions and never imports ``contracts``: the node
  builds and checks block contents behind this protocol.
- ``build_block`` and ``check_block`` are only called for a height ``h`` when
  ``executed_height() >= h - execution_lag``, so the lagged roots are known.
- The replica checks the link itself (height, ``prev_hash``, increasing time, proposer,
  chain id, validator-set hash); ``check_block`` checks the rest (transactions, limits,
  ``txs_root``, lagged results and state roots) and raises ``InvalidBlock`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ledger.records import Block, Transaction


class Executor(Protocol):
    """Supplied by the node (and by the simulator)."""

    def build_block(self, *, height: int, view: int, prev_hash: bytes, time_ms: int,
                    proposer: bytes, transactions: Sequence[Transaction]) -> Block:
        """A block at ``height`` with the roots filled in (``txs_root``, the results and
        state roots of block ``height - execution_lag``, ``validator_set_hash``)."""
        ...

    def check_block(self, block: Block) -> None:
        """Raise ``ledger.errors.InvalidBlock`` unless the contents and roots are right."""
        ...

    def executed_height(self) -> int:
        """Highest height executed so far (0 before block 1)."""
        ...

"""A deterministic stand-in for the node's executor, for the simulator.

Rules:
- Roots are fake but deterministic: the state root after block h is
  ``H(state root after h - 1 || block hash)``, the receipts root ``H("r" || block hash)``;
  so two replicas that executed the same chain report the same roots, and a block with
  wrong lagged roots is rejected by ``check_proposal`` exactly as the real executor would.
- A transaction of contract ``"validators"`` with payload ``{"keys": [hex, ...]}`` decides
  a new validator set (the simulator's governance); it takes effect at the boundary given
  by ``ledger.validator_history`` (the last decision before a boundary wins). A
  transaction of contract ``"params"`` (payload: some of ``GOVERNED_PARAMETERS``) decides
  new governed consensus parameters by the same rule. An executor with
  ``follows_governance`` off ignores validator-set decisions (a stale or Byzantine
  holder of a key that governance retired, which still believes itself a validator).
- Signatures are verified for real, through a bounded cache shared by the simulated nodes
  (as the node's verified-signature cache, keyed by the whole encoding).
- Blocks execute strictly in order; executing a height twice is ignored (``Deliver`` is
  at-least-once).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

from ledger.errors import InvalidBlock
from ledger.genesis import Genesis
from ledger.merkle import EMPTY_ROOT
from ledger.records import Block, BlockHeader, Transaction, ValidatorSet
from ledger.validation import txs_root
from ledger.validator_history import GOVERNED_PARAMETERS, ValidatorHistory

SIGNATURE_CACHE_MAX = 50_000
_verified: OrderedDict[bytes, bool] = OrderedDict()


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
        self.history = ValidatorHistory.from_genesis(genesis)
        self.follows_governance = True

    def set_at(self, height: int) -> ValidatorSet:
        return self.history.at(height)

    def validator_history(self) -> ValidatorHistory:
        return self.history

    def verify_signature(self, tx: Transaction) -> bool:
        key = tx.encode()
        known = _verified.get(key)
        if known is None:
            known = _verified[key] = tx.signature_valid()
            if len(_verified) > SIGNATURE_CACHE_MAX:
                _verified.popitem(last=False)
        return known

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

    def proposal_room(self, in_flight: int, blocks_in_flight: int) -> int:
        # No pacing in the simulator: its blocks cost nothing to execute.
        return self.params.block_txs_max

    def gather_ms_max(self) -> int:
        return 0  # its blocks cost nothing: no reason to gather them

    def check_proposal(self, block: Block) -> None:
        header = block.header
        if (header.results_root, header.state_root) != self._lagged(header.height):
            raise InvalidBlock(header.height, "lagged roots differ from this executor's results")

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
        if decided is not None and self.follows_governance:
            self.history = self.history.record(height, decided)
        for tx in block.transactions:
            # The simulator's parameter governance: {"view_timeout_ms": n} and the others of
            # GOVERNED_PARAMETERS (missing ones keep their value).
            if tx.contract == "params":
                current = self.history.params_at(height + 10**9)
                values = tuple(int(tx.payload.get(name, getattr(current, name)))
                               for name in GOVERNED_PARAMETERS)
                self.history = self.history.record_params(height, (values[0], values[1],
                                                                   values[2]))
        return receipts_root, self.state_root, decided

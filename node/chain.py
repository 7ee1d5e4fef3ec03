"""The node's executed chain: the chain store, the authenticated state and the contracts.

Rules:
- One data directory holds one store (``ledger.store.ChainStore``; its key spaces and
  the LevelDBs holding them are ``ledger.layout``'s): blocks with their certificates and
  receipts, the state under ``s/`` (``ledger.state_store``), the replica's persisted
  records under ``p/`` (see ``node.runtime``), and ``m/genesis``, the genesis hash the
  directory was created for: a directory of another network is refused instead of
  being mixed with this one.
- Blocks execute strictly in height order. Executing block ``h`` runs the contracts over
  the state at version ``h - 1``, then writes the committed block (receipts included) and
  the changes as state version ``h`` in ONE synced batch (the tree's new nodes reach
  their own LevelDB just before it): a crash keeps both or neither. A directory written
  before that rule may hold a block whose state version was not written: ``open``
  re-executes such blocks and checks that they reproduce the stored receipts.
- Header ``h`` carries the results of block ``h - D`` (``D = execution_lag``):
  ``lagged_roots(h)`` gives them, from the stored receipts and the state tree.
- The validator history (``ledger.validator_history``) is derived from the state: a
  block decided a set when ``sys/validators`` differs between its version and the one
  before. ``m/vhist`` caches the decisions found up to a height; ``open`` scans only the
  versions after it (at most ``HISTORY_MARK_EVERY`` in steady state), so a crash between
  execution and the cache write loses nothing: the state is the authority, the cache is
  rebuilt from it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts import engine
from contracts.view import BlockEnv
from ledger.encoding import decode, encode
from ledger.errors import CorruptionError, DecodeError, StoreError
from ledger.genesis import Genesis
from ledger.layout import GENESIS_MARK, HISTORY_MARK, STATE_PREFIX
from ledger.merkle import EMPTY_ROOT
from ledger.records import Block, CommitCertificate, CommittedBlock, Receipt, ValidatorSet
from ledger.state_store import PersistentState
from ledger.store import ChainStore
from ledger.validation import receipts_root
from ledger.validator_history import Governed, ValidatorHistory
from verify.receipt import ChainReceiptSource, gather_receipt, validator_changes_json

RECENT_ROOTS_MAX = 1024
"""Executed blocks whose roots stay in memory (more than any execution lag and window)."""
HISTORY_MARK_EVERY = 256
"""Executed blocks between two writes of the validator-history cache (bounds the scan a
restart does)."""


@dataclass(frozen=True, slots=True)
class Executed:
    """What executing one block produced."""

    height: int
    receipts: tuple[Receipt, ...]
    receipts_root: bytes
    state_root: bytes
    validator_set: ValidatorSet | None
    """The new validator set if the block changed it, else None."""
    consensus_params: Governed | None = None
    """The governed consensus parameters if the block changed one, else None."""


class VersionView:
    """The state at one version, as a contracts ``StateView``."""

    __slots__ = ("_state", "_version")

    def __init__(self, state: PersistentState, version: int) -> None:
        self._state = state
        self._version = version

    def get(self, key: bytes) -> bytes | None:
        return self._state.get(key, self._version)


class Chain:
    """Chain store + state of one node, executing committed blocks."""

    def __init__(self, store: ChainStore, state: PersistentState, genesis: Genesis) -> None:
        self.store = store
        self.state = state
        self.genesis = genesis
        self.lag = genesis.consensus.execution_lag
        self.history = ValidatorHistory.from_genesis(genesis)
        """Every validator-set decision of the executed blocks (see the module rules)."""
        self._history_mark = 0
        self._recent_roots: OrderedDict[int, tuple[bytes, bytes]] = OrderedDict()
        """(results_root, state_root) of the last executed blocks: every proposal and
        every pre-prepare checked needs those of block h - D (no block read, no hashing)."""

    @staticmethod
    def open(data_dir: Path, genesis: Genesis) -> Chain:
        """Open (or create) the data directory for ``genesis``; replay what a crash left
        unexecuted."""
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        store = ChainStore.open(Path(data_dir))
        try:
            mark = store.kv.get(GENESIS_MARK)
            if mark is None:
                if store.head_height() != 0:
                    raise StoreError(f"{data_dir} holds blocks but no genesis mark: "
                                     "it was not created by a Tabellion node")
                store.kv.put(GENESIS_MARK, genesis.genesis_hash)
            elif mark != genesis.genesis_hash:
                raise StoreError(
                    f"{data_dir} belongs to another network (genesis "
                    f"{mark.hex()[:16]}…, this one is {genesis.genesis_hash.hex()[:16]}…): "
                    "point data_dir at an empty directory or at this network's data"
                )
            state = PersistentState(store.kv.prefixed(STATE_PREFIX))
            if state.latest_version() is None:
                state.apply(0, engine.genesis_changes(genesis))
            chain = Chain(store, state, genesis)
            chain.replay()
            chain._rebuild_history()
        except BaseException:
            store.close()
            raise
        return chain

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ heights
    @property
    def height(self) -> int:
        """Height of the last stored (committed) block; 0 at genesis."""
        return self.store.head_height()

    @property
    def executed_height(self) -> int:
        version = self.state.latest_version()
        assert version is not None, "the genesis state is written on open"
        return version

    def head_hash(self) -> bytes:
        h = self.height
        return self.genesis.genesis_hash if h == 0 else self.store.header(h).block_hash

    def last_time_ms(self) -> int:
        h = self.height
        return self.genesis.genesis_time_ms if h == 0 else self.store.header(h).time_ms

    # ------------------------------------------------------------------ execution
    def replay(self) -> int:
        """Re-execute stored blocks the state has not applied yet; return how many."""
        done = 0
        while self.executed_height < self.height:
            h = self.executed_height + 1
            stored = self.store.get(h)
            result = self._run(stored.block).result()
            if result.receipts != stored.receipts:
                raise CorruptionError(
                    f"block {h}: re-execution gives other receipts than the stored ones; "
                    "the data directory is damaged: restore it or start from an empty one"
                )
            self.state.apply(h, result.changes)
            done += 1
        return done

    def _rebuild_history(self) -> None:
        """Load the cached decisions, then find those of the versions after the cache by
        comparing ``sys/validators`` version by version (see the module rules)."""
        raw = self.store.kv.get(HISTORY_MARK)
        up_to = 0
        if raw is not None:
            try:
                value = decode(raw)
                if not (isinstance(value, list) and len(value) == 2
                        and isinstance(value[0], int) and value[0] >= 0):
                    raise DecodeError("expected [height, decisions]")
                self.history = self.history.with_decisions_value(value[1])
                up_to = min(value[0], self.executed_height)
            except DecodeError as exc:
                raise CorruptionError(
                    f"{HISTORY_MARK.decode()}: the validator-history cache is damaged ({exc}); "
                    "restore the data directory from a backup or start from an empty one"
                ) from exc
            self.history = self.history.decided_up_to(up_to)
        previous = self.validator_set(up_to)
        previous_params = self.consensus_params(up_to)
        for version in range(up_to + 1, self.executed_height + 1):
            current = self.validator_set(version)
            if current != previous:
                self.history = self.history.record(version, current)
                previous = current
            params = self.consensus_params(version)
            if params != previous_params:
                self.history = self.history.record_params(version, params)
                previous_params = params
        self._save_history()

    def _save_history(self) -> None:
        self._history_mark = self.executed_height
        self.store.kv.put(HISTORY_MARK, encode([self._history_mark,
                                                self.history.decisions_value()]))

    def _run(self, block: Block) -> engine.BlockExecution:
        """``block`` executed in one go (nothing written)."""
        execution = self.start(block)
        execution.run(len(block.transactions))
        return execution

    def start(self, block: Block) -> engine.BlockExecution:
        """The execution of the next block, to ``run`` (in slices if the caller wishes)
        and hand to ``finish``; nothing is written until then. Another block's execution
        must not be started or finished in between."""
        header = block.header
        if header.height != self.executed_height + 1:
            raise StoreError(f"cannot execute block {header.height}: the state is at "
                             f"{self.executed_height}")
        env = BlockEnv(header.chain_id, header.height, header.time_ms, header.proposer)
        return engine.BlockExecution(
            self.state.latest_view(), env, block.transactions,
            lambda tx_id: self.store.committed_below(tx_id, header.height))

    def execute(self, block: Block, certificate: CommitCertificate) -> Executed:
        """Execute the next block, store it with its certificate and receipts, apply its
        state changes."""
        return self.finish(block, certificate, self._run(block))

    def finish(self, block: Block, certificate: CommitCertificate,
               execution: engine.BlockExecution) -> Executed:
        """Store ``block`` (executed by ``execution``, from ``start``) with its certificate
        and receipts, and apply its state changes, in one synced batch."""
        if block.height != self.executed_height + 1 or execution.height != block.height:
            raise StoreError(f"cannot store block {block.height} (executed: block "
                             f"{execution.height}): the state is at {self.executed_height}")
        result = execution.result()
        committed = CommittedBlock(block, certificate, result.receipts)
        root = self.state.apply(block.height, result.changes,
                                also=lambda batch: self.store.stage(committed, batch))
        self.store.appended(committed)
        if result.validator_set is not None:
            self.history = self.history.record(block.height, result.validator_set)
        if result.consensus_params is not None:
            self.history = self.history.record_params(block.height, result.consensus_params)
        if (result.validator_set is not None or result.consensus_params is not None
                or block.height >= self._history_mark + HISTORY_MARK_EVERY):
            self._save_history()
        results = receipts_root(result.receipts)
        self._recent_roots[block.height] = (results, root)
        while len(self._recent_roots) > RECENT_ROOTS_MAX:
            self._recent_roots.popitem(last=False)
        return Executed(block.height, result.receipts, results, root,
                        result.validator_set, result.consensus_params)

    # ------------------------------------------------------------------ roots
    def lagged_roots(self, height: int) -> tuple[bytes, bytes]:
        """(results_root, state_root) that header ``height`` must carry."""
        source = height - self.lag
        if source <= 0:
            return EMPTY_ROOT, self.state.root(0)
        if source > self.executed_height:
            raise StoreError(f"block {source} is not executed yet (header {height} needs it)")
        known = self._recent_roots.get(source)
        if known is not None:
            return known
        return receipts_root(self.store.get(source).receipts), self.state.root(source)

    def consensus_params(self, version: int) -> Governed:
        """The governed consensus parameters after state ``version``."""
        return engine.consensus_params(VersionView(self.state, version))

    # ------------------------------------------------------------------ receipts
    def receipt(self, tx_id: bytes) -> dict[str, Any]:
        """The portable receipt of a committed transaction (docs/receipt.md), built from
        this node's chain and state; the validator-set changes come from the history, so
        no header is scanned. Raises ``ReceiptNotFound`` / ``ReceiptNotReady``."""
        decided = [d for d, _ in self.history.decisions]
        return gather_receipt(self.genesis, self._receipts(), tx_id, decided)

    def validator_changes(self) -> dict[str, Any]:
        """Every validator-set change in force at or before the head, with its proofs (the
        ``validator_changes`` section of a receipt)."""
        up_to = min(self.height, self.executed_height + self.lag)
        decided = [d for d, _ in self.history.decisions]
        return {"up_to": up_to, "validator_changes": validator_changes_json(
            self.genesis, self._receipts(), decided, up_to)}

    def _receipts(self) -> ChainReceiptSource:
        return ChainReceiptSource(self.store, self.state)

    def validator_set(self, version: int | None = None) -> ValidatorSet:
        """The validator set in force after state ``version`` (default: the latest)."""
        v = self.executed_height if version is None else version
        return engine.validator_set(VersionView(self.state, v))

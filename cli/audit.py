"""``tabellion audit``: verify a whole chain while trusting nothing but the genesis file.

Rules:
- The verification core (``ChainAudit``) is pure: it is fed the blocks a source read, in
  height order, and returns findings. It does no I/O, so ``audit --data`` (a copy of a
  node's LevelDB) and ``audit --node`` (the HTTP API) run exactly the same checks.
- Nothing stored is believed: every header link, transaction root, certificate, receipt
  root and state root is recomputed from the transactions and the genesis file; the
  contracts are replayed from genesis.
- The audit never stops at the first finding: an unreadable, missing or moved block is
  reported and the next one is checked. Only replay cannot cross a hole (the state after
  it is unknown); that is reported once, with the height where replay stopped.
- Transaction signatures leave the core as ``SignatureJob`` batches that the caller
  verifies on every core (``SignaturePool``); with ``--data``, blocks are decoded in
  another process ahead of the checks, and the main process checks and replays.
- The stored state (``--data``) is judged against the replay node by node, and the
  transaction index against where each transaction really is.
- Every finding names the height, the transaction (when there is one) and what is wrong,
  in words an auditor can act on.
- Exit codes: 0 the chain is intact, 1 integrity findings, 2 the audit could not run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from contracts.engine import BlockEnv, DictState, execute_block, genesis_changes
from contracts.identity import active_municipalities
from ledger import crypto
from ledger.crypto import SigningKey, load_key
from ledger.encoding import decode, encode
from ledger.errors import DecodeError, InvalidCertificate, LedgerError, StoreError
from ledger.genesis import Genesis, load_genesis
from ledger.hashing import HASH_BYTES, Tag, tagged_bytes, tagged_hash
from ledger.jsonview import committed_block_from_json
from ledger.merkle import EMPTY_ROOT, merkle_root
from ledger.records import (
    Block,
    BlockHeader,
    CommitCertificate,
    CommittedBlock,
    Receipt,
    Transaction,
    ValidatorSet,
)
from ledger.state import LATEST_VERSION_KEY, MemoryNodeStore, NodeStore, StateTree
from ledger.state_store import INDEX_PREFIX, NODES_PREFIX
from ledger.store import CHAIN_PREFIX, PARTS, ChainStore, TxLocation, block_key
from ledger.validation import TX_EXPIRY_HORIZON_MS_MAX, verify_certificate
from ledger.validator_history import ValidatorHistory
from node.read_access import read_headers

EXIT_INTACT = 0
EXIT_FINDINGS = 1
EXIT_CANNOT_RUN = 2

FINDINGS_MAX = 10_000
"""Most findings kept in a report: a wrecked copy must not exhaust memory. Counting goes on."""
SEEN_TX_IDS_MAX = 50_000_000
"""Bound on the set of committed ids kept to detect a transaction committed twice."""
SIGNATURE_BATCH_TXS = 4096
"""Transaction signatures sent to a worker at once: large enough to amortise the pickling."""
SIGNATURE_BATCHES_IN_FLIGHT_MAX = 8
"""Batches queued in the pool before the reader waits: bounds memory on huge chains."""
GENESIS_MARK = b"m/genesis"
"""The genesis hash a node's data directory was created for (node/chain.py)."""
STATE_PREFIX = b"s/"
"""Where a node keeps its state in its LevelDB (node/chain.py): nodes under ``s/n/``,
the latest values under ``s/i/``."""


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True, slots=True)
class Finding:
    """One integrity problem, located as precisely as the data allows."""

    height: int
    """Height of the block concerned (0 for the genesis state)."""
    part: str
    """What is wrong: ``block``, ``header``, ``transaction``, ``certificate``, ``receipt``,
    ``state`` or ``validators``."""
    message: str
    """What is wrong, in words; the position inside the block when it is known."""
    tx_id: str | None = None
    """Hex id of the transaction concerned, if any."""
    position: int | None = None
    """Index of the transaction (or certificate signature) in its block, if any."""

    def line(self) -> str:
        where = f"height {self.height:,}"
        if self.position is not None and self.tx_id is not None:
            where += f", transaction {self.position} ({self.tx_id[:16]})"
        return f"{where} [{self.part}]: {self.message}"


@dataclass(frozen=True, slots=True)
class StoredBlock:
    """What a source read at one height: the decoded block, or why it could not be read."""

    height: int
    """The height the source was asked for."""
    block: CommittedBlock | None
    """The decoded block, or ``None`` when it is missing or unreadable."""
    problem: str | None = None
    """Why ``block`` is ``None`` (missing key, damaged bytes and where)."""
    part: str = "block"
    """Which stored record the problem is in, when the source could tell."""
    notes: tuple[Finding, ...] = ()
    """Damage the source saw although the block could still be decoded (a checksum that
    does not match): the regular checks then locate what changed."""


@dataclass(frozen=True, slots=True)
class Execution:
    """What replaying one block produced."""

    receipts: tuple[Receipt, ...]
    """One receipt per transaction, in block order."""
    state_root: bytes
    """Authenticated state root after the block."""
    validator_set: ValidatorSet | None
    """A validator set decided by governance in this block, or ``None``."""


class Replayer(Protocol):
    """Executes blocks from genesis on a fresh state (the contracts engine behind it)."""

    def genesis_root(self) -> bytes: ...

    def execute(self, header: BlockHeader, txs: Sequence[Transaction]) -> Execution: ...

    def municipalities(self) -> int:
        """Municipalities in the network according to the replayed state."""
        ...


@dataclass(frozen=True, slots=True)
class SignatureJob:
    """One transaction signature to verify, with where to report a failure."""

    height: int
    position: int
    tx_id: bytes
    signer: bytes
    message: bytes
    signature: bytes


@dataclass
class Summary:
    """Counts shown at the end of an audit."""

    blocks: int = 0
    transactions: int = 0
    municipalities: int = 0
    validator_set_changes: int = 0
    head_height: int = 0
    findings: int = 0


@dataclass
class ChainAudit:
    """The audit as a pure accumulator: ``on_block`` for heights 1..head in order, then
    ``on_end``. Returns findings and signature jobs; never reads or writes anything."""

    genesis: Genesis
    replayer: Replayer | None
    summary: Summary = field(default_factory=Summary)
    findings: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        params = self.genesis.consensus
        self._lag = params.execution_lag
        self._history = ValidatorHistory.from_genesis(self.genesis)
        self._validators = self.genesis.validator_set
        self._prev: BlockHeader | None = None
        self._prev_known = True
        self._expected_height = 1
        self._seen: set[bytes] = set()
        # Per height h: (stored receipts root, replayed receipts root, replayed state root),
        # kept until header h + D has been checked against them.
        self._results: dict[int, tuple[bytes | None, bytes | None, bytes | None]] = {}
        self._replay_stopped: int | None = None
        self._replay_diverged = False
        self._diverged_at: int | None = None
        self.summary.municipalities = len(self.genesis.municipalities)
        self._genesis_root: bytes | None = None
        if self.replayer is not None:
            self._genesis_root = self.replayer.genesis_root()

    # ----------------------------------------------------------------- reporting

    def _report(self, finding: Finding) -> None:
        self.summary.findings += 1
        if len(self.findings) < FINDINGS_MAX:
            self.findings.append(finding)

    def on_signature_failures(self, failed: Iterable[SignatureJob]) -> None:
        """Record the transaction signatures that a ``SignaturePool`` found invalid."""
        for job in failed:
            self._report(Finding(
                job.height, "transaction",
                "the signature does not verify for its signer: the transaction was altered "
                "after signing, or never signed by that key",
                job.tx_id.hex(), job.position,
            ))

    # ----------------------------------------------------------------- blocks

    def on_block(self, stored: StoredBlock) -> list[SignatureJob]:
        """Check one block read at ``stored.height``; return its signatures to verify."""
        h = stored.height
        if h != self._expected_height:
            raise ValueError(f"blocks must be fed in order: expected {self._expected_height}")
        self._expected_height += 1
        self.summary.head_height = h
        self._apply_validator_changes(h)
        for note in stored.notes:
            self._report(note)
        block = stored.block
        if block is None:
            self._report(Finding(h, stored.part, stored.problem or "the block is missing"))
            self._lose(h)
            return []
        if block.height != h:
            self._report(Finding(
                h, "block",
                f"the block stored at height {h:,} is block {block.height:,}: "
                "blocks were moved, swapped or overwritten",
            ))
            self._lose(h)
            return []
        self.summary.blocks += 1
        self.summary.transactions += len(block.block.transactions)
        header = block.block.header
        self._check_header(header)
        if self._check_certificate(block, header):
            self._check_execution_roots(header)
        else:
            # An uncertified header proves nothing about block h - D: judging that
            # block's results against it would blame the wrong height.
            self._results.pop(header.height - self._lag, None)
        jobs = self._check_transactions(block)
        self._check_receipts(block, [job.tx_id for job in jobs])
        self._replay(block)
        self._prev, self._prev_known = header, True
        return jobs

    def _lose(self, h: int) -> None:
        """Block ``h`` is unusable: the next link cannot be checked, replay must stop."""
        self._prev_known = False
        self._results[h] = (None, None, None)
        if self._replay_stopped is None and self.replayer is not None:
            self._replay_stopped = h
            self._report(Finding(
                h, "state",
                f"contract replay stopped at height {h:,} because this block is missing, "
                "unreadable or misplaced; state roots and receipts after it were not replayed",
            ))

    def _apply_validator_changes(self, h: int) -> None:
        new_set = self._history.at(h)
        if new_set != self._validators:
            self._validators = new_set
            self.summary.validator_set_changes += 1

    def _check_header(self, header: BlockHeader) -> None:
        h = header.height
        g = self.genesis
        if header.chain_id != g.chain_id:
            self._report(Finding(h, "header", f"the header is for network {header.chain_id!r}"))
        if h == 1:
            if header.prev_hash != g.genesis_hash:
                self._report(Finding(
                    h, "header", "prev_hash is not the genesis hash: this chain does not "
                    "start from this genesis file"))
            if header.time_ms <= g.genesis_time_ms:
                self._report(Finding(h, "header", "block time is not after genesis time"))
        elif self._prev is not None and self._prev_known:
            if header.prev_hash != self._prev.block_hash:
                self._report(Finding(
                    h, "header", f"prev_hash does not match the hash of header {h - 1:,}: "
                    f"header {h - 1:,} was altered, or this block does not follow it"))
            if header.time_ms <= self._prev.time_ms:
                self._report(Finding(h, "header", "block time does not increase"))
        if header.validator_set_hash != self._validators.set_hash:
            self._report(Finding(
                h, "validators", "validator_set_hash is not the validator set in force at "
                "this height (following governance changes from genesis)"))
        if header.proposer not in self._validators.keys:
            self._report(Finding(h, "header", "the proposer is not a validator at this height"))

    def _check_certificate(self, block: CommittedBlock, header: BlockHeader) -> bool:
        try:
            verify_certificate(block.certificate, header, self._validators,
                               chain_id=self.genesis.chain_id)
        except InvalidCertificate as exc:
            self._report(Finding(header.height, "certificate", exc.reason))
            return False
        return True

    def _check_transactions(self, block: CommittedBlock) -> list[SignatureJob]:
        header = block.block.header
        h = header.height
        txs = block.block.transactions
        bodies = [encode(tx.body_value()) for tx in txs]
        # The full encoding is the body's array of 7 with the signature appended: one
        # encode per transaction serves the id, the signed bytes and the Merkle leaf.
        leaves = [_with_signature(body, tx.signature) for body, tx in zip(bodies, txs,
                                                                          strict=True)]
        if merkle_root(leaves) != header.txs_root:
            self._report(Finding(
                h, "block", "txs_root does not match the stored transactions: a transaction "
                "was altered, added, removed or reordered"))
        jobs: list[SignatureJob] = []
        for position, (tx, body) in enumerate(zip(txs, bodies, strict=True)):
            tx_id = tagged_hash(Tag.TX_ID, body)
            hexid = tx_id.hex()
            if tx_id in self._seen:
                self._report(Finding(
                    h, "transaction", "this transaction was already committed earlier "
                    "(replayed)", hexid, position))
            elif len(self._seen) < SEEN_TX_IDS_MAX:
                self._seen.add(tx_id)
            if tx.chain_id != self.genesis.chain_id:
                self._report(Finding(
                    h, "transaction", f"signed for network {tx.chain_id!r}", hexid, position))
            if tx.expiry_ms < header.time_ms:
                self._report(Finding(
                    h, "transaction", "committed after its expiry", hexid, position))
            elif tx.expiry_ms > header.time_ms + TX_EXPIRY_HORIZON_MS_MAX:
                self._report(Finding(
                    h, "transaction", "expiry more than 7 days after the block", hexid,
                    position))
            jobs.append(SignatureJob(
                h, position, tx_id, tx.signer, tagged_bytes(Tag.TX_SIGN, body), tx.signature))
        return jobs

    def _check_receipts(self, block: CommittedBlock, tx_ids: list[bytes]) -> None:
        h = block.height
        txs = block.block.transactions
        receipts = block.receipts
        if len(receipts) != len(txs):
            self._report(Finding(
                h, "receipt", f"{len(receipts)} receipts are stored for {len(txs)} "
                "transactions"))
        for position, (tx_id, receipt) in enumerate(zip(tx_ids, receipts, strict=False)):
            if receipt.tx_id != tx_id:
                self._report(Finding(
                    h, "receipt", "the stored receipt names another transaction",
                    tx_id.hex(), position))
        self._results[h] = (merkle_root([r.encode() for r in receipts]), None, None)

    def _replay(self, block: CommittedBlock) -> None:
        h = block.height
        stored_root = self._results[h][0]
        if self.replayer is None or self._replay_stopped is not None:
            return
        txs = block.block.transactions
        try:
            result = self.replayer.execute(block.block.header, txs)
        except Exception as exc:  # an auditor reports a crashing replay, never crashes
            self._replay_stopped = h
            self._report(Finding(
                h, "state", f"contract replay failed here ({type(exc).__name__}: {exc}); "
                "later blocks were not replayed"))
            return
        if not self._replay_diverged:
            for position, (tx, mine, theirs) in enumerate(
                zip(txs, result.receipts, block.receipts, strict=False)
            ):
                if mine != theirs:
                    self._report(Finding(
                        h, "receipt", f"the stored receipt differs from the one replay "
                        f"produces ({_receipt_difference(theirs, mine)})", tx.tx_id.hex(),
                        position))
        replayed_root = stored_root if result.receipts == block.receipts else merkle_root(
            [r.encode() for r in result.receipts])
        self._results[h] = (stored_root, replayed_root, result.state_root)
        if result.validator_set is not None:
            # The one rule of ledger.validator_history (the last decision before a
            # boundary wins), as in consensus and execution.
            self._history = self._history.record(h, result.validator_set)

    def _check_execution_roots(self, header: BlockHeader) -> None:
        h = header.height
        source = h - self._lag
        if source < 1:
            if header.results_root != EMPTY_ROOT:
                self._report(Finding(
                    h, "header", f"results_root must be the empty root up to height "
                    f"{self._lag}"))
            if self._genesis_root is not None and header.state_root != self._genesis_root:
                self._report(Finding(
                    h, "state", "state_root is not the genesis state root (the genesis "
                    "file and the chain disagree)"))
            return
        stored, replayed, state = self._results.pop(source, (None, None, None))
        if stored is not None and stored != header.results_root:
            self._report(Finding(
                source, "receipt", f"the stored receipts of block {source:,} do not match "
                f"results_root in header {h:,}: a receipt was altered"))
        if replayed is not None and not self._replay_diverged:
            if replayed != header.results_root:
                self._report(Finding(
                    source, "receipt", f"replaying block {source:,} gives receipts whose "
                    f"root differs from results_root in header {h:,}"))
            if state is not None and state != header.state_root:
                self._replay_diverged = True
                self._diverged_at = source
                self._report(Finding(
                    source, "state", f"replaying block {source:,} gives a state root that "
                    f"differs from state_root in header {h:,}; later state roots are not "
                    "compared (the replayed state has diverged)"))

    # ----------------------------------------------------------------- end

    def on_end(self) -> None:
        """Close the audit: the chain must not be empty."""
        if self.summary.head_height == 0:
            self._report(Finding(0, "block", "the chain holds no block"))
        if self.replayer is not None and self._replay_stopped is None:
            self.summary.municipalities = self.replayer.municipalities()

    def replay_sound_below(self) -> int:
        """Heights below this one were replayed on a state that agrees with the headers:
        stored state there can be judged against the replay."""
        limits = [h for h in (self._replay_stopped, self._diverged_at) if h is not None]
        return min(limits, default=self.summary.head_height + 1)

    def report(self, finding: Finding) -> None:
        """Add a finding found outside ``on_block`` (e.g. by a source's own checks)."""
        self._report(finding)

    @property
    def validators(self) -> ValidatorSet:
        """The validator set in force after the last block fed."""
        return self._validators


def _receipt_difference(stored: Receipt, replayed: Receipt) -> str:
    """Which fields of a stored receipt differ from the replayed one, in words."""
    parts = []
    if stored.tx_id != replayed.tx_id:
        parts.append("it names another transaction")
    if stored.code != replayed.code or stored.message != replayed.message:
        parts.append(f"stored outcome {stored.code!r} ({stored.message[:80]!r}), replay gives "
                     f"{replayed.code!r} ({replayed.message[:80]!r})")
    if stored.data != replayed.data:
        changed = sorted(k for k in stored.data.keys() | replayed.data.keys()
                         if stored.data.get(k) != replayed.data.get(k))
        parts.append(f"result data differs in {', '.join(changed)[:200]}")
    return "; ".join(parts)


def _with_signature(body: bytes, signature: bytes) -> bytes:
    """Canonical bytes of a transaction from those of its body (a msgpack fixarray of 7
    fields): the same fields and the signature in a fixarray of 8."""
    assert body[0] == 0x97, "a transaction body is a msgpack array of 7 fields"
    return b"\x98" + body[1:] + encode(signature)


# --------------------------------------------------------------------------- signatures


def _verify_batch(batch: list[tuple[bytes, bytes, bytes]]) -> list[int]:
    """Worker: the indexes of the signatures in ``batch`` that do not verify."""
    return [i for i, (key, msg, sig) in enumerate(batch) if not crypto.verify(key, msg, sig)]


class SignaturePool:
    """Verifies signature jobs in batches on every core; failures come back in order."""

    def __init__(self, workers: int | None = None) -> None:
        self._workers = workers if workers is not None else (os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = (
            ProcessPoolExecutor(self._workers) if self._workers > 1 else None)
        self._buffer: list[SignatureJob] = []
        self._in_flight: list[tuple[list[SignatureJob], Future[list[int]]]] = []
        self.verified = 0

    def add(self, jobs: Sequence[SignatureJob]) -> list[SignatureJob]:
        """Queue ``jobs``; return the failures of any batch that has finished."""
        self._buffer.extend(jobs)
        failed: list[SignatureJob] = []
        while len(self._buffer) >= SIGNATURE_BATCH_TXS:
            batch, self._buffer = (self._buffer[:SIGNATURE_BATCH_TXS],
                                   self._buffer[SIGNATURE_BATCH_TXS:])
            failed.extend(self._submit(batch))
        return failed

    def _submit(self, batch: list[SignatureJob]) -> list[SignatureJob]:
        payload = [(j.signer, j.message, j.signature) for j in batch]
        if self._pool is None:
            self.verified += len(batch)
            return [batch[i] for i in _verify_batch(payload)]
        self._in_flight.append((batch, self._pool.submit(_verify_batch, payload)))
        failed: list[SignatureJob] = []
        while len(self._in_flight) > SIGNATURE_BATCHES_IN_FLIGHT_MAX or (
            self._in_flight and self._in_flight[0][1].done()
        ):
            failed.extend(self._collect())
        return failed

    def _collect(self) -> list[SignatureJob]:
        batch, future = self._in_flight.pop(0)
        self.verified += len(batch)
        return [batch[i] for i in future.result()]

    def finish(self) -> list[SignatureJob]:
        """Verify what is left and wait for every batch; return the remaining failures."""
        failed: list[SignatureJob] = []
        if self._buffer:
            batch, self._buffer = self._buffer, []
            failed.extend(self._submit(batch))
        while self._in_flight:
            failed.extend(self._collect())
        return failed

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> SignaturePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def verify_jobs(jobs: Sequence[SignatureJob]) -> list[SignatureJob]:
    """Verify jobs in this process (for small inputs and tests); return the failures."""
    payload = [(j.signer, j.message, j.signature) for j in jobs]
    return [jobs[i] for i in _verify_batch(payload)]


# --------------------------------------------------------------------------- driving


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The result of one audit, as written by ``--json``."""

    source: str
    chain_id: str
    genesis_hash: str
    summary: dict[str, int]
    intact: bool
    findings: list[dict[str, Any]]
    findings_truncated: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"


def run_audit(
    genesis: Genesis,
    blocks: Iterator[StoredBlock],
    replayer: Replayer | None,
    *,
    pool: SignaturePool | None = None,
    extra_checks: Callable[[ChainAudit], Iterable[Finding]] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    source: str = "",
) -> tuple[ChainAudit, AuditReport]:
    """Feed every block to a ``ChainAudit``, verify signatures, run the source's own
    checks at the end (e.g. the stored state against the replayed one), build the report."""
    audit = ChainAudit(genesis, replayer)
    own_pool = pool is None
    pool = pool or SignaturePool(1)
    try:
        for stored in blocks:
            jobs = audit.on_block(stored)
            audit.on_signature_failures(pool.add(jobs))
            if on_progress is not None:
                on_progress(stored.height, len(jobs))
        audit.on_signature_failures(pool.finish())
    finally:
        if own_pool:
            pool.close()
    audit.on_end()
    if extra_checks is not None:
        for finding in extra_checks(audit):
            audit.report(finding)
    return audit, make_report(audit, source)


def make_report(audit: ChainAudit, source: str) -> AuditReport:
    ordered = sorted(audit.findings, key=lambda f: (f.height, f.position or -1, f.part))
    s = audit.summary
    return AuditReport(
        source=source,
        chain_id=audit.genesis.chain_id,
        genesis_hash=audit.genesis.genesis_hash.hex(),
        summary={
            "blocks": s.blocks, "transactions": s.transactions,
            "municipalities": s.municipalities,
            "validator_set_changes": s.validator_set_changes,
            "head_height": s.head_height, "findings": s.findings,
        },
        intact=s.findings == 0,
        findings=[asdict(f) for f in ordered],
        findings_truncated=s.findings > len(audit.findings),
    )


def write_report(report: AuditReport, path: Path) -> None:
    Path(path).write_text(report.to_json(), encoding="utf-8")


# --------------------------------------------------------------------------- replay


class EngineReplayer:
    """Replays the contracts (``contracts.engine``) from genesis into a state tree.

    ``nodes`` receives the tree's nodes: a ``MemoryNodeStore`` by default, or a store
    that compares every node with a node's stored state (``--data``)."""

    def __init__(self, genesis: Genesis, nodes: NodeStore | None = None) -> None:
        self._chain_id = genesis.chain_id
        self._state = DictState()
        changes = genesis_changes(genesis)
        self._state.apply(changes)
        self._tree = StateTree(nodes if nodes is not None else MemoryNodeStore())
        self._genesis_root = self._tree.apply(0, changes)
        self.last_written: dict[bytes, int] = dict.fromkeys(changes, 0)
        """Height of the block that last wrote each state key (0: genesis)."""

    def genesis_root(self) -> bytes:
        return self._genesis_root

    def execute(self, header: BlockHeader, txs: Sequence[Transaction]) -> Execution:
        env = BlockEnv(self._chain_id, header.height, header.time_ms, header.proposer)
        result = execute_block(self._state, env, txs)
        self._state.apply(result.changes)
        root = self._tree.apply(header.height, result.changes)
        self.last_written.update(dict.fromkeys(result.changes, header.height))
        return Execution(result.receipts, root, result.validator_set)

    def municipalities(self) -> int:
        return len(active_municipalities(self._state))

    def state_items(self) -> dict[bytes, bytes]:
        """The replayed state after the last block executed, key by key."""
        return self._state.items()


class StoredNodes(Protocol):
    """Read access to a node's stored state-tree nodes (``ledger.kv.KV`` fits)."""

    def get(self, key: bytes) -> bytes | None: ...

    def items(self, *, prefix: bytes | None = None) -> Iterator[tuple[bytes, bytes]]: ...


DECODE_AHEAD_BLOCKS = 4
"""Blocks decoded ahead of the audit by the decoder process (bounds memory)."""
INDEX_FINDINGS_MAX = 100
"""Index entries reported as wrong, at most (a wiped index would otherwise flood)."""
NODE_FINDINGS_PER_VERSION_MAX = 16
"""Differing state nodes reported for one height; the rest are counted in one line."""


def _leaf_key(data: bytes | None) -> str | None:
    """The state key held by a stored leaf node (layout of ``ledger.state``), if any."""
    if not data or data[0] != 1 or len(data) < 67:
        return None
    size = int.from_bytes(data[65:67], "big")
    return data[67:67 + size].decode("ascii", errors="replace")


class ComparingNodeStore:
    """The replay's node store over a node's stored state.

    Every node the replay writes at version ``v`` is compared with the node stored under
    the same key, and the stored nodes of version ``v`` must be exactly those: the tree
    layout is deterministic, so any difference is a finding at height ``v``. Reads come
    from the stored nodes (verified when their version was replayed) except where they
    differ, so memory stays small whatever the length of the chain."""

    def __init__(self, stored: StoredNodes) -> None:
        self._stored = stored
        self._own: dict[bytes, bytes] = {}
        self.findings: list[Finding] = []

    def get_node(self, node_key: bytes) -> bytes | None:
        own = self._own.get(node_key)
        if own is not None or node_key == LATEST_VERSION_KEY:
            return own  # the replay's progress, never the node's
        return self._stored.get(node_key)

    def write_nodes(self, nodes: Mapping[bytes, bytes], *, version: int) -> None:
        problems: list[str] = []
        for node_key in sorted(nodes):
            data = nodes[node_key]
            if node_key == LATEST_VERSION_KEY:
                self._own[node_key] = data
                continue
            stored = self._stored.get(node_key)
            if stored == data:
                continue
            self._own[node_key] = data
            what = _leaf_key(data) or _leaf_key(stored)
            subject = f"the value of state key {what!r}" if what else (
                f"state node {node_key.hex()}")
            problems.append(f"{subject} is missing from the stored state" if stored is None
                            else f"{subject} is stored with bytes that differ from replay")
        for node_key, stored in self._stored.items(prefix=version.to_bytes(8, "big")):
            if node_key not in nodes:
                what = _leaf_key(stored)
                problems.append(
                    f"the stored state holds an extra node {node_key.hex()}"
                    + (f" (state key {what!r})" if what else "") + " that replay never wrote")
        for problem in problems[:NODE_FINDINGS_PER_VERSION_MAX]:
            self.findings.append(Finding(version, "state", problem))
        if len(problems) > NODE_FINDINGS_PER_VERSION_MAX:
            self.findings.append(Finding(
                version, "state", f"... and {len(problems) - NODE_FINDINGS_PER_VERSION_MAX} "
                "more differing state nodes at this height"))


# --------------------------------------------------------------------------- sources


class BlockSource(Protocol):
    """Where the blocks come from: a copy of a data directory, or a node's API."""

    description: str

    def head_height(self) -> int: ...

    def blocks(self, start: int, stop: int) -> Iterator[StoredBlock]: ...

    def replayer(self, genesis: Genesis) -> Replayer: ...

    def other_network(self, genesis: Genesis) -> str | None:
        """Why the data is plainly of another network than ``genesis`` (then the auditor
        gave the wrong genesis file: the audit does not run), or ``None``."""
        ...

    def extra_checks(self, audit: ChainAudit) -> Iterable[Finding]: ...

    def close(self) -> None: ...


LEVELDB_MARKER = "CURRENT"
"""File every LevelDB directory holds: how a data directory's database is recognised."""


def find_leveldb(data: Path) -> Path:
    """The LevelDB directory of a node's data directory (itself, or one subdirectory)."""
    data = Path(data)
    if not data.is_dir():
        raise StoreError(f"{data} is not a directory: give the node's data directory")
    if (data / LEVELDB_MARKER).is_file():
        return data
    found = sorted(p.parent for p in data.glob(f"*/{LEVELDB_MARKER}"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise StoreError(f"{data} holds no LevelDB database: is it a node's data directory?")
    chain = [p for p in found if p.name in ("chain", "ledger", "db")]
    if len(chain) == 1:
        return chain[0]
    raise StoreError(f"{data} holds several databases ({', '.join(p.name for p in found)}): "
                     "give the chain database's directory")


_PART_OF = {"h": "header", "t": "transaction", "c": "certificate", "r": "receipt"}


def _decoded(build: Callable[[Any], Any], body: bytes, what: str) -> Any:
    try:
        return build(decode(body))
    except DecodeError as exc:
        raise DecodeError(f"the {what} does not decode ({exc})") from exc


def _decoded_list(build: Callable[[Any], Any], body: bytes, what: str) -> list[Any]:
    try:
        items = decode(body)
    except DecodeError as exc:
        raise DecodeError(f"the list of {what}s does not decode ({exc})") from exc
    if not isinstance(items, list):
        raise DecodeError(f"the {what}s are not a list")
    out = []
    for position, item in enumerate(items):
        try:
            out.append(build(item))
        except DecodeError as exc:
            raise DecodeError(f"{what} {position} does not decode ({exc})") from exc
    return out


def decode_stored_block(height: int, raw: dict[str, bytes | None]) -> StoredBlock:
    """Decode the four stored parts of a block one by one, so that damage is located: a
    checksum mismatch is noted and the part is still decoded when it can be, and an
    undecodable part names the transaction or receipt that breaks it. Pure (it runs in
    a worker process)."""
    if all(value is None for value in raw.values()):
        return StoredBlock(height, None, f"no block is stored at height {height:,} "
                           "(deleted?)")
    notes: list[Finding] = []
    bodies: dict[str, bytes] = {}
    for part, value in raw.items():
        if value is None:
            return StoredBlock(height, None, f"the stored {PARTS[part]} of this block "
                               "are missing", _PART_OF[part])
        body = value[HASH_BYTES:]
        if len(value) < HASH_BYTES or tagged_hash(Tag.STORED, body) != value[:HASH_BYTES]:
            notes.append(Finding(height, _PART_OF[part], f"the checksum of the stored "
                                 f"{PARTS[part]} does not match: the bytes were altered "
                                 "on disk"))
        bodies[part] = body
    try:
        block = CommittedBlock(
            Block(_decoded(BlockHeader.from_value, bodies["h"], "header"),
                  tuple(_decoded_list(Transaction.from_value, bodies["t"], "transaction"))),
            _decoded(CommitCertificate.from_value, bodies["c"], "certificate"),
            tuple(_decoded_list(Receipt.from_value, bodies["r"], "receipt")),
        )
    except DecodeError as exc:
        return StoredBlock(height, None, f"the stored block cannot be decoded: {exc}",
                           "block", tuple(notes))
    return StoredBlock(height, block, notes=tuple(notes))


class PrivateCopy:
    """A node's LevelDB copied to a temporary folder: opening a LevelDB writes to its
    directory (lock, log recovery, compaction), and an auditor never alters evidence."""

    def __init__(self, data: Path) -> None:
        db = find_leveldb(data)
        self._tmp = tempfile.TemporaryDirectory(prefix="tabellion-audit-")
        self.path = Path(self._tmp.name) / "db"
        try:
            shutil.copytree(db, self.path, ignore=shutil.ignore_patterns("LOCK"))
        except OSError as exc:
            self._tmp.cleanup()
            raise StoreError(f"cannot copy {db} to audit it: {exc}") from exc

    def open(self) -> ChainStore:
        try:
            return ChainStore.open(self.path)
        except BaseException:
            self._tmp.cleanup()
            raise

    def cleanup(self) -> None:
        self._tmp.cleanup()


class DataDirSource:
    """Blocks and state read from a private copy of a node's LevelDB."""

    def __init__(self, data: Path, *, decoder: bool = False) -> None:
        """``decoder``: decode blocks in a separate process, ahead of the audit (the
        main process then only checks and replays)."""
        self._copy = PrivateCopy(data)
        self._store = self._copy.open()
        self._decoder = ProcessPoolExecutor(1) if decoder else None
        self._chain = self._store.kv.prefixed(CHAIN_PREFIX)
        self._locations: dict[bytes, tuple[int, int]] = {}
        self.description = f"data directory {data}"
        self._nodes: ComparingNodeStore | None = None
        self._replayer: EngineReplayer | None = None

    def head_height(self) -> int:
        return self._store.head_height()

    def blocks(self, start: int, stop: int) -> Iterator[StoredBlock]:
        """Blocks in height order; with a decoder process, decoded ahead of the audit."""
        if self._decoder is None:
            for height in range(start, stop):
                yield self._track(decode_stored_block(height, self._raw(height)))
            return
        ahead: deque[Future[StoredBlock]] = deque()
        for height in range(start, stop):
            ahead.append(self._decoder.submit(decode_stored_block, height, self._raw(height)))
            if len(ahead) > DECODE_AHEAD_BLOCKS:
                yield self._track(ahead.popleft().result())
        while ahead:
            yield self._track(ahead.popleft().result())

    def _raw(self, height: int) -> dict[str, bytes | None]:
        return {part: self._chain.get(block_key(height, part)) for part in PARTS}

    def _track(self, stored: StoredBlock) -> StoredBlock:
        if stored.block is not None:
            for position, tx in enumerate(stored.block.block.transactions):
                self._locations.setdefault(tx.tx_id, (stored.height, position))
        return stored

    def other_network(self, genesis: Genesis) -> str | None:
        mark = self._store.kv.get(GENESIS_MARK)
        if mark is None or mark == genesis.genesis_hash:
            return None  # without a mark, the chain itself is judged against the genesis
        return (f"this data directory was created for another network (genesis "
                f"{mark.hex()[:16]}…, the file given is {genesis.genesis_hash.hex()[:16]}…): "
                "give that network's genesis file")

    def replayer(self, genesis: Genesis) -> Replayer:
        self._nodes = ComparingNodeStore(self._store.kv.prefixed(STATE_PREFIX + NODES_PREFIX))
        self._replayer = EngineReplayer(genesis, self._nodes)
        return self._replayer

    def extra_checks(self, audit: ChainAudit) -> Iterable[Finding]:
        if self._nodes is None or self._replayer is None:
            return
        sound_below = audit.replay_sound_below()
        for finding in self._nodes.findings:
            if finding.height < sound_below:
                yield finding
        yield from self._index_findings()
        if sound_below <= audit.summary.head_height:
            return
        # The flat index of latest values must be the replayed state, key for key.
        index = self._store.kv.prefixed(STATE_PREFIX + INDEX_PREFIX)
        replayed = self._replayer.state_items()
        written = self._replayer.last_written
        stored_keys = set()
        for key, value in index.items():
            stored_keys.add(key)
            if replayed.get(key) != value:
                yield Finding(written.get(key, audit.summary.head_height), "state",
                              f"the latest value of state key {key!r} in the stored index "
                              "differs from the replayed state")
        for key in sorted(set(replayed) - stored_keys):
            yield Finding(written.get(key, 0), "state",
                          f"state key {key!r} is missing from the stored index")

    def _index_findings(self) -> Iterator[Finding]:
        """Every transaction-id index entry points where the transaction is, and every
        transaction read has one."""
        reported = 0
        for key, value in self._chain.items(prefix=b"t/"):
            tx_id = key[2:]
            where = self._locations.pop(tx_id, None)
            at = TxLocation.from_key(value) if len(value) == 12 else None
            if at is not None and where == (at.height, at.index):
                continue
            reported += 1
            if reported <= INDEX_FINDINGS_MAX:
                height = where[0] if where else (at.height if at else 0)
                pointed = ("nothing readable" if at is None
                           else f"height {at.height:,}, position {at.index}")
                actual = (f", but the transaction is at height {where[0]:,}, position "
                          f"{where[1]}" if where is not None
                          else ", where no such transaction is stored")
                yield Finding(height, "block", f"the index entry of transaction "
                              f"{tx_id.hex()[:16]} points to {pointed}{actual}")
        for tx_id, (height, position) in sorted(self._locations.items(), key=lambda i: i[1]):
            reported += 1
            if reported <= INDEX_FINDINGS_MAX:
                yield Finding(height, "block", "the transaction has no index entry",
                              tx_id.hex(), position)

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.shutdown(cancel_futures=True)
        self._store.close()
        self._copy.cleanup()


HTTP_TIMEOUT_S = 30.0
"""Longest wait for one answer of a node: a block of 10,000 transactions takes a while."""


class NodeUnreachable(StoreError):
    """The node's API does not answer (or not as a Tabellion node): the audit cannot run."""


class NodeSource:
    """Blocks fetched from a node's HTTP API (``GET /v1/blocks/{h}``), in JSON."""

    def __init__(self, url: str, reader: SigningKey | None = None) -> None:
        """``reader``: an auditor's (or the town's) key signing every read, so blocks
        come with their social-aid payments in full (public reads hide them)."""
        self._url = url.rstrip("/")
        self._client = httpx.Client(base_url=self._url, timeout=HTTP_TIMEOUT_S)
        self.description = f"node {self._url}"
        status = self.get_json("/v1/status")
        if not isinstance(status, dict) or not isinstance(status.get("height"), int):
            self.close()
            raise NodeUnreachable(f"{self._url} does not answer like a Tabellion node")
        self._head = int(status["height"])
        self._status = status
        if reader is not None:
            chain_id = str(status.get("chain_id"))

            def sign(request: httpx.Request) -> None:
                query = request.url.query.decode("ascii")
                path = request.url.path + (f"?{query}" if query else "")
                request.headers.update(read_headers(reader, request.method, path, chain_id))

            self._client.event_hooks["request"] = [sign]

    def get_json(self, path: str) -> Any:
        """The JSON answer of ``GET path``, ``None`` on 404; ``NodeUnreachable`` otherwise."""
        try:
            answer = self._client.get(path)
        except httpx.HTTPError as exc:
            raise NodeUnreachable(f"cannot reach {self._url}{path}: {exc}; is the node "
                                  "running and the URL right?") from exc
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise NodeUnreachable(f"{self._url}{path} answered {answer.status_code}: "
                                  f"{answer.text[:200]}")
        try:
            return answer.json()
        except ValueError as exc:
            raise NodeUnreachable(f"{self._url}{path} did not answer JSON") from exc

    def head_height(self) -> int:
        return self._head

    def blocks(self, start: int, stop: int) -> Iterator[StoredBlock]:
        for height in range(start, stop):
            obj = self.get_json(f"/v1/blocks/{height}")
            if obj is None:
                yield StoredBlock(height, None, f"the node has no block at height {height:,}")
                continue
            if any(isinstance(tx, dict) and tx.get("redacted")
                   for tx in obj.get("transactions", [])):
                yield StoredBlock(height, None, "the node hides social-aid payments from "
                                  "public readers: sign the reads with an auditor's key "
                                  "(--key), or audit a data directory (--data)")
                continue
            try:
                yield StoredBlock(height, committed_block_from_json(obj))
            except DecodeError as exc:
                yield StoredBlock(height, None, f"the node served a malformed block: {exc}")

    def other_network(self, genesis: Genesis) -> str | None:
        theirs = self._status.get("genesis_hash")
        if not isinstance(theirs, str) or theirs == genesis.genesis_hash.hex():
            return None
        return (f"the node serves another network (genesis {theirs[:16]}…, the file given "
                f"is {genesis.genesis_hash.hex()[:16]}…): give that network's genesis file")

    def replayer(self, genesis: Genesis) -> Replayer:
        # The node's stored state is not readable over the API: the replay keeps its own
        # tree in memory, and every state root is still checked against the headers.
        return EngineReplayer(genesis)

    def extra_checks(self, audit: ChainAudit) -> Iterable[Finding]:
        return ()

    def close(self) -> None:
        self._client.close()


# --------------------------------------------------------------------------- command


def _rate_text(txs: int, started: float) -> str:
    elapsed = max(time.monotonic() - started, 1e-9)
    return f"{txs / elapsed:,.0f} tx/s"


def open_source(data: Path | None, node: str | None, reader: SigningKey | None = None
                ) -> BlockSource:
    """The block source the options name; raise ``LedgerError`` if it cannot be opened."""
    if data is not None:
        return DataDirSource(data, decoder=(os.cpu_count() or 1) > 1)
    assert node is not None, "the caller checked that one source is given"
    return NodeSource(node, reader)


def reader_key(key: Path | None, passphrase_file: Path | None) -> SigningKey | None:
    """The key that signs node reads (``--key``, passphrase from ``--passphrase-file``);
    raises ``LedgerError`` if it cannot be read."""
    if key is None:
        return None
    if passphrase_file is None:
        raise LedgerError("--key needs --passphrase-file (the audit runs unattended)")
    passphrase = passphrase_file.read_bytes().strip()
    return load_key(key, passphrase)


def audit_command(
    genesis: Annotated[Path, typer.Option(
        "--genesis", help="Genesis file of the network: the only thing trusted.")],
    data: Annotated[Path | None, typer.Option(
        "--data", help="A node's data directory (no node running on it; it is copied "
        "and never modified).")] = None,
    node: Annotated[str | None, typer.Option(
        "--node", help="Base URL of a node's API, e.g. http://127.0.0.1:8080.")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write a machine-readable report to this file.")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", help="Processes verifying signatures (0: one per core).", min=0,
        max=256)] = 0,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Show a progress bar with the rate.")] = True,
    key: Annotated[Path | None, typer.Option(
        "--key", help="With --node: an auditor's key file, to read social-aid payments "
        "(public reads hide them).")] = None,
    passphrase_file: Annotated[Path | None, typer.Option(
        "--passphrase-file", help="The passphrase of --key.")] = None,
) -> None:
    """Verify a whole chain while trusting nothing but the genesis file.

    Checks every header link, every transaction signature (on every core) and Merkle
    root, every commit certificate against the validator set in force at its height
    (following governance changes from genesis), every receipt, and replays every
    contract from genesis to reproduce every state root and the stored state. Give
    exactly one of --data or --node.

    Exit codes: 0 the chain is intact; 1 integrity findings (each names the height, the
    transaction and what is wrong); 2 the audit could not run (bad options, unreadable
    genesis file or data directory, node unreachable).

    Example: tabellion audit --data /var/lib/tabellion/node0/data --genesis genesis.json
    --json report.json
    """
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)
    if (data is None) == (node is None):
        console.print("error: give exactly one of --data DIR or --node URL")
        raise typer.Exit(EXIT_CANNOT_RUN)
    try:
        gen = load_genesis(genesis)
        source = open_source(data, node, reader_key(key, passphrase_file))
    except (LedgerError, OSError) as exc:
        console.print(f"error: cannot run the audit: {exc}", markup=False)
        raise typer.Exit(EXIT_CANNOT_RUN) from exc
    mismatch = source.other_network(gen)
    if mismatch is not None:
        source.close()
        console.print(f"error: cannot run the audit: {mismatch}", markup=False)
        raise typer.Exit(EXIT_CANNOT_RUN)
    try:
        report = _run_with_progress(gen, source, workers, progress, console)
    except LedgerError as exc:
        console.print(f"error: cannot finish the audit: {exc}", markup=False)
        raise typer.Exit(EXIT_CANNOT_RUN) from exc
    finally:
        source.close()
    print_report(report, out)
    if json_out is not None:
        try:
            write_report(report, json_out)
        except OSError as exc:
            console.print(f"error: cannot write the report to {json_out}: {exc.strerror}",
                          markup=False)
            raise typer.Exit(EXIT_CANNOT_RUN) from exc
    raise typer.Exit(EXIT_INTACT if report.intact else EXIT_FINDINGS)


def _run_with_progress(
    gen: Genesis, source: BlockSource, workers: int, show: bool, console: Console
) -> AuditReport:
    head = source.head_height()
    replayer = source.replayer(gen)
    started = time.monotonic()
    txs = 0
    columns = (
        TextColumn("auditing"), BarColumn(), MofNCompleteColumn(), TextColumn("blocks"),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not show) as bar, \
            SignaturePool(workers or None) as pool:
        task = bar.add_task("audit", total=head, rate="")

        def on_progress(height: int, count: int) -> None:
            nonlocal txs
            txs += count
            bar.update(task, completed=height, rate=_rate_text(txs, started))

        _, report = run_audit(
            gen, source.blocks(1, head + 1), replayer, pool=pool,
            extra_checks=source.extra_checks, on_progress=on_progress,
            source=source.description)
    return report


def print_report(report: AuditReport, out: Console) -> None:
    s = report.summary
    out.print(f"chain {report.chain_id} (genesis {report.genesis_hash[:16]}), "
              f"{report.source}", markup=False)
    out.print(
        f"blocks: {s['blocks']:,}   transactions: {s['transactions']:,}   "
        f"municipalities: {s['municipalities']:,}   "
        f"validator-set changes: {s['validator_set_changes']:,}", markup=False)
    if report.intact:
        out.print("intact: every check passed")
        return
    out.print(f"{s['findings']:,} finding(s):")
    for f in report.findings:
        out.print("  " + Finding(**f).line(), markup=False)
    if report.findings_truncated:
        out.print(f"  ... only the first {len(report.findings):,} are listed")

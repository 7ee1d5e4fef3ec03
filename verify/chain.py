"""The chain checker: every block of a chain judged against the genesis file alone.

Rules:
- ``ChainAudit`` is pure: it is fed the blocks a source read, in height order, and returns
  findings and signature jobs. It does no I/O, so a data directory and a node's API are
  judged by exactly the same checks.
- Nothing stored is believed: every header link, transaction root, certificate, receipt
  root and (with a replayer) state root is recomputed from the transactions and the
  genesis file. Certificates are checked against the validator set in force at their
  height, following governance decisions with ``ledger.validator_history`` (never a rule
  of its own). Without a replayer (level ``chain``) the decisions come from a
  ``DecisionSource``: each is proven by a state proof against a certified header.
- The audit never stops at the first finding: an unreadable, missing or moved block is
  reported and the next one is checked. Only replay cannot cross a hole (the state after
  it is unknown); that is reported once, with the height where replay stopped.
- Every finding names the height, the transaction (when there is one) and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ledger.errors import InvalidCertificate, LedgerError
from ledger.genesis import Genesis
from ledger.merkle import EMPTY_ROOT, merkle_root
from ledger.records import (
    BlockHeader,
    CommitCertificate,
    CommittedBlock,
    Receipt,
    Transaction,
    ValidatorSet,
)
from ledger.validation import verify_certificate
from ledger.validator_history import ValidatorHistory
from verify.blocks import BlockFacts, CheckedBlock, block_facts, signature_failure
from verify.findings import FINDINGS_MAX, Finding, SignatureJob, StoredBlock, Summary
from verify.proofs import validators_from_value, verify_validators_proof

SEEN_TX_IDS_MAX = 50_000_000
"""Bound on the set of committed ids kept to detect a transaction committed twice."""


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
class Resume:
    """Where an audit resumes (``--since``): blocks below ``height`` were judged by an
    earlier audit whose point the auditor kept (``verify.audit.AuditPoint``)."""

    height: int
    """First height checked."""
    previous: BlockHeader | None
    """The stored header at ``height - 1`` (``None`` at height 1): the next link."""
    history: ValidatorHistory
    """The validator history established by the earlier audit."""
    roots: dict[int, bytes]
    """State root of each version in the window before ``height`` (certified headers),
    for proving validator-set decisions at level chain."""


class DecisionSource(Protocol):
    """Where the chain level reads the validator sets decided by governance: the value of
    ``sys/validators`` in the state after a block, with its state proof (the canonical
    bytes of a ``ledger.state.StateProof``), checked against a certified state root."""

    def validators_at(self, version: int) -> tuple[bytes | None, bytes]: ...


@dataclass
class ChainAudit:
    """The audit as a pure accumulator: ``on_block`` for heights 1..head in order, then
    ``on_end``. Returns findings and signature jobs; never reads or writes anything."""

    genesis: Genesis
    replayer: Replayer | None
    summary: Summary = field(default_factory=Summary)
    decisions: DecisionSource | None = None
    """Without a replayer: where validator-set decisions are proven (level ``chain``)."""
    findings: list[Finding] = field(default_factory=list)
    resume: Resume | None = None
    """Start at ``resume.height`` instead of 1 (see ``Resume``)."""

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
        self._roots: dict[int, bytes] = {}
        """State root of version v (from certified header v + D), for the last window."""
        self._head_hash = self.genesis.genesis_hash
        if self.replayer is not None:
            self._genesis_root = self.replayer.genesis_root()
        if self.resume is not None:
            r = self.resume
            self._expected_height = r.height
            self._prev = r.previous
            self._history = r.history
            self._validators = r.history.at(r.height - 1)
            self._roots = dict(r.roots)
            if r.previous is not None:
                self._head_hash = r.previous.block_hash
            if self.replayer is not None:
                # The replay starts from the stored state after block height - 1: header
                # height - 1 + D must certify it (checked when that header is read).
                self._results[r.height - 1] = (None, None, self._genesis_root)
                self._genesis_root = None

    @property
    def first_height(self) -> int:
        """The first height this audit checks (1, or where it resumed)."""
        return self.resume.height if self.resume is not None else 1

    # ----------------------------------------------------------------- reporting

    def _report(self, finding: Finding) -> None:
        self.summary.findings += 1
        if len(self.findings) < FINDINGS_MAX:
            self.findings.append(finding)

    def on_signature_failures(self, failed: Iterable[SignatureJob]) -> None:
        """Record the transaction signatures that a ``SignaturePool`` found invalid."""
        for job in failed:
            self._report(signature_failure(job))

    # ----------------------------------------------------------------- blocks

    def on_block(self, stored: StoredBlock | CheckedBlock) -> list[SignatureJob]:
        """Check one block read at ``stored.height``; return its signatures to verify
        (none for a ``CheckedBlock``: its worker verified them)."""
        h = stored.height
        if h != self._expected_height:
            raise ValueError(f"blocks must be fed in order: expected {self._expected_height}")
        self._expected_height += 1
        self.summary.head_height = h
        self._apply_validator_changes(h)
        for note in stored.notes:
            self._report(note)
        block: CommittedBlock | None = None
        jobs: list[SignatureJob] = []
        if isinstance(stored, CheckedBlock):
            header, certificate, facts = stored.header, stored.certificate, stored.facts
            count = stored.transactions
        else:
            block = stored.block
            if block is None:
                self._report(Finding(h, stored.part, stored.problem or "the block is missing"))
                self._lose(h)
                return []
            header, certificate = block.block.header, block.certificate
            count = len(block.block.transactions)
        if header.height != h:
            self._report(Finding(
                h, "block",
                f"the block stored at height {h:,} is block {header.height:,}: "
                "blocks were moved, swapped or overwritten",
            ))
            self._lose(h)
            return []
        if block is not None:
            facts, jobs = block_facts(block, self.genesis.chain_id, verify_signatures=False)
        self.summary.blocks += 1
        self.summary.transactions += count
        self._check_header(header)
        if self._check_certificate(certificate, header):
            self._check_execution_roots(header)
            self._remember_root(header)
        else:
            # An uncertified header proves nothing about block h - D: judging that
            # block's results against it would blame the wrong height.
            self._results.pop(header.height - self._lag, None)
        self._check_facts(h, facts)
        if block is not None:
            self._replay(block)
        self._prev, self._prev_known = header, True
        self._head_hash = header.block_hash
        return jobs

    def _check_facts(self, h: int, facts: BlockFacts) -> None:
        for finding in facts.findings:
            self._report(finding)
        ids = facts.tx_ids
        if (self._seen.isdisjoint(ids) and len(set(ids)) == len(ids)
                and len(self._seen) + len(ids) <= SEEN_TX_IDS_MAX):
            self._seen.update(ids)  # the usual case, in C: no id seen before
        else:
            for position, tx_id in enumerate(ids):
                if tx_id in self._seen:
                    self._report(Finding(
                        h, "transaction", "this transaction was already committed earlier "
                        "(replayed)", tx_id.hex(), position))
                elif len(self._seen) < SEEN_TX_IDS_MAX:
                    self._seen.add(tx_id)
        self._results[h] = (facts.receipts_root, None, None)

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
        if header.validator_set_hash != self._validators.set_hash and self.replayer is None:
            self._prove_decisions(h)
        if header.validator_set_hash != self._validators.set_hash:
            self._report(Finding(
                h, "validators", "validator_set_hash is not the validator set in force at "
                "this height (following governance changes from genesis)"))
        if header.proposer not in self._validators.keys:
            self._report(Finding(h, "header", "the proposer is not a validator at this height"))

    def _check_certificate(self, certificate: CommitCertificate, header: BlockHeader) -> bool:
        try:
            verify_certificate(certificate, header, self._validators,
                               chain_id=self.genesis.chain_id)
        except InvalidCertificate as exc:
            self._report(Finding(header.height, "certificate", exc.reason))
            return False
        return True

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

    # ----------------------------------------------------------------- chain level

    def _remember_root(self, header: BlockHeader) -> None:
        """Keep the certified state root of version ``h - D`` for the decision window."""
        version = max(header.height - self._lag, 0)
        self._roots[version] = header.state_root
        window = self.genesis.consensus.checkpoint_interval + self._lag + 2
        for old in [v for v in self._roots if v < version - window]:
            del self._roots[old]

    def _prove_decisions(self, h: int) -> None:
        """Header ``h`` names a new validator set: find the decisions that put it in force
        (the window the effective-height rule allows) from proven state values, and record
        them in the history. Anything unproven is a finding; the header check then
        reports the set hash that still disagrees."""
        if self.decisions is None:
            return
        params = self.genesis.consensus
        low = max(1, h - params.checkpoint_interval - self._lag)
        high = h - 1 - self._lag
        previous: bytes | None = None
        for version in range(low - 1, high + 1):
            root = self._roots.get(version)
            if root is None:
                self._report(Finding(
                    h, "validators", f"the state root of version {version:,} is not "
                    "certified (a block before was unusable): the validator-set change "
                    "in force here cannot be proven"))
                return
            try:
                value, proof = self.decisions.validators_at(version)
                verify_validators_proof(root, value, proof)
                validators = validators_from_value(value)
            except LedgerError as exc:
                self._report(Finding(
                    version, "validators", f"the stored validator set after block "
                    f"{version:,} is not proven by the certified state root: {exc}"))
                return
            if version >= low and value != previous:
                self._history = self._history.record(version, validators)
            previous = value
        self._validators = self._history.at(h)
        self.summary.validator_set_changes += 1

    def validators_at(self, height: int) -> ValidatorSet:
        """The validator set in force at ``height`` as far as the audit established."""
        return self._history.at(height)

    def history_if_complete(self) -> ValidatorHistory | None:
        """The validator history the audit established, unless replay stopped or
        diverged (then it may miss decisions)."""
        if self.replayer is not None and self.replay_sound_below() <= self.summary.head_height:
            return None
        return self._history

    def head_hash(self) -> bytes:
        """Hash of the last header fed (the genesis hash before any)."""
        return self._head_hash

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

"""An audit, driven: a source's blocks through the chain checker, signatures on every
core, the source's own checks at the end, one report.

Rules:
- Two levels. ``chain``: signatures, certificates against the validator history, Merkle
  roots, hash links, receipts against the certified results roots, index consistency;
  the validator-set decisions are proven by state proofs against certified headers
  (``verify.chain.DecisionSource``). ``full``: the above plus the replay of every
  contract from genesis and the byte-for-byte comparison of the stored state.
- Whatever the level, a data directory's other stored values (the replica's records,
  the ``m/`` marks, keys outside the layout) are checked or counted as unverifiable
  (``verify.stored``): the report is "intact" only when nothing was found AND nothing
  was left unchecked.
- Progress is reported through a callback (height, transactions): the caller draws it.
- An audit with no finding ends at an ``AuditPoint`` (head height and hash, the state root
  that head certifies, the validator history): kept by the auditor, it lets the next
  audit (``--since``) check only the blocks above it. The stored header at the point's
  height must still hash to the point's head hash, so a rewrite of the old part is
  detected; the stored blocks below the resumed height are not read again (a full audit
  now and then covers damage there).
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.encoding import decode, encode
from ledger.errors import DecodeError, LedgerError, StoreError
from ledger.files import read_text_bounded
from ledger.genesis import Genesis
from ledger.records import BlockHeader
from ledger.validator_history import ValidatorHistory
from verify.blocks import CheckedBlock
from verify.chain import ChainAudit, DecisionSource, Replayer, Resume
from verify.findings import AuditReport, Finding, StoredBlock, Summary, make_report
from verify.signatures import SignaturePool
from verify.sources import NODE_FINDINGS_MAX, BlockSource, DataDirSource, NodeSource


class Level(enum.StrEnum):
    """How deep an audit goes (see the module rules)."""

    CHAIN = "chain"
    FULL = "full"


POINT_FORMAT = "tabellion-audit-point/1"
POINT_FILE_BYTES_MAX = 1024 * 1024
"""Largest audit-point file read (it holds a few hashes and the validator history)."""


@dataclass(frozen=True, slots=True)
class AuditPoint:
    """Where an audit with no finding ended (see the module rules)."""

    chain_id: str
    genesis_hash: bytes
    height: int
    head_hash: bytes
    state_root: bytes
    """The state root header ``height`` certifies (the state after ``height - D``)."""
    decisions: list[list[object]]
    """``ValidatorHistory.decisions_value`` of the history the audit established (in the
    file: the hex of its canonical encoding)."""

    def to_json(self) -> str:
        return json.dumps({
            "format": POINT_FORMAT, "chain_id": self.chain_id,
            "genesis_hash": self.genesis_hash.hex(), "height": self.height,
            "head_hash": self.head_hash.hex(), "state_root": self.state_root.hex(),
            "decisions": encode(self.decisions).hex(),
        }, indent=1) + "\n"


def save_point(point: AuditPoint, path: Path) -> None:
    Path(path).write_text(point.to_json(), encoding="utf-8")


def load_point(path: Path, genesis: Genesis) -> AuditPoint:
    """Read an audit point saved for ``genesis``; ``LedgerError`` naming what is wrong."""
    path = Path(path)
    try:
        doc: Any = json.loads(read_text_bounded(path, POINT_FILE_BYTES_MAX, "audit point",
                                                StoreError))
        if not isinstance(doc, dict) or doc.get("format") != POINT_FORMAT:
            raise DecodeError(f"the format is not {POINT_FORMAT!r}")
        point = AuditPoint(
            str(doc["chain_id"]), bytes.fromhex(doc["genesis_hash"]), int(doc["height"]),
            bytes.fromhex(doc["head_hash"]), bytes.fromhex(doc["state_root"]),
            decode(bytes.fromhex(doc["decisions"])))
        ValidatorHistory.from_genesis(genesis).with_decisions_value(point.decisions)
    except (ValueError, KeyError, TypeError, DecodeError) as exc:
        raise StoreError(f"{path} is not an audit point ({exc}): give the file an earlier "
                         "audit wrote with --point") from exc
    if point.genesis_hash != genesis.genesis_hash or point.height < 1:
        raise StoreError(f"{path} is the audit point of another network: give this "
                         "network's point, or audit without --since")
    return point


def _resume(genesis: Genesis, source: BlockSource, point: AuditPoint, since: int) -> Resume:
    """Check the point still holds on the source and build where the audit resumes."""
    if not 1 < since <= point.height + 1:
        raise StoreError(f"--since must be between 2 and {point.height + 1:,} (the audit "
                         f"point is at height {point.height:,})")
    if source.head_height() < point.height:
        raise StoreError(f"the chain ends at height {source.head_height():,}, below the "
                         f"audit point ({point.height:,}): it was cut or rewritten")
    try:
        at_point = source.header(point.height)
    except LedgerError as exc:
        raise _Rewritten(point.height) from exc
    if at_point.block_hash != point.head_hash or at_point.state_root != point.state_root:
        raise _Rewritten(point.height)
    params = genesis.consensus
    lag = params.execution_lag
    history = ValidatorHistory.from_genesis(genesis).with_decisions_value(point.decisions)
    roots: dict[int, bytes] = {}
    for h in range(max(1, since - params.checkpoint_interval - lag - 2), since):
        with contextlib.suppress(LedgerError):  # a decision needing it is then reported
            roots[max(h - lag, 0)] = source.header(h).state_root
    previous: BlockHeader | None = source.header(since - 1)
    return Resume(since, previous, history, roots)


class _Rewritten(LedgerError):
    """The stored header at the audit point is not the one audited."""

    def __init__(self, height: int) -> None:
        super().__init__(f"height {height:,}")
        self.height = height


def run_audit(
    genesis: Genesis,
    blocks: Iterator[StoredBlock | CheckedBlock],
    replayer: Replayer | None,
    *,
    pool: SignaturePool | None = None,
    decisions: DecisionSource | None = None,
    extra_checks: Callable[[ChainAudit], Iterable[Finding]] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    source: str = "",
    resume: Resume | None = None,
    give_up_after: int | None = None,
) -> tuple[ChainAudit, AuditReport]:
    """Feed every block to a ``ChainAudit``, verify signatures, run the source's own
    checks at the end (e.g. the stored state against the replayed one), build the report.
    Without a replayer the level is ``chain``. ``give_up_after``: stop reading blocks once
    that many findings were made (said in one more finding)."""
    audit = ChainAudit(genesis, replayer, decisions=decisions, resume=resume)
    own_pool = pool is None
    pool = pool or SignaturePool(1)
    try:
        for stored in blocks:
            jobs = audit.on_block(stored)
            audit.on_signature_failures(pool.add(jobs))
            if on_progress is not None:
                on_progress(stored.height, stored.transactions
                            if isinstance(stored, CheckedBlock) else len(jobs))
            if give_up_after is not None and audit.summary.findings >= give_up_after:
                audit.report(Finding(
                    stored.height, "block", f"the audit stopped after {give_up_after:,} "
                    f"findings: the source keeps failing the checks, and the blocks after "
                    f"height {stored.height:,} were not read"))
                break
        audit.on_signature_failures(pool.finish())
    finally:
        if own_pool:
            pool.close()
    audit.on_end()
    if extra_checks is not None:
        for finding in extra_checks(audit):
            audit.report(finding)
    level = Level.FULL if replayer is not None else Level.CHAIN
    report = make_report(
        source=source, chain_id=genesis.chain_id, genesis_hash=genesis.genesis_hash,
        level=level.value, since=audit.first_height, summary=audit.summary,
        findings=audit.findings,
        head_hash=audit.head_hash())
    return audit, report


def audit_source(
    genesis: Genesis,
    source: BlockSource,
    level: Level,
    *,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    point: AuditPoint | None = None,
    since: int | None = None,
) -> tuple[AuditReport, AuditPoint | None]:
    """Audit the blocks of ``source`` at ``level`` (from ``since``, resuming from
    ``point``), signatures on ``workers`` processes (``None``: one per core), then the
    source's own checks of what else it stores. Returns the report and, when nothing was
    found, the audit point to keep for the next ``--since``."""
    head = source.head_height()
    resume: Resume | None = None
    if point is not None and since is not None:
        try:
            resume = _resume(genesis, source, point, since)
        except _Rewritten as exc:
            return _rewritten_report(genesis, source, level, point, since, exc.height), None
    start = resume.height if resume is not None else 1
    replayer = source.replayer(genesis, start - 1) if level is Level.FULL else None
    blocks: Iterator[StoredBlock | CheckedBlock]
    if replayer is None and isinstance(source, DataDirSource):
        # Level chain: workers decode and check whole blocks, signatures included.
        blocks = source.checked_blocks(start, head + 1, genesis.chain_id, workers)
    else:
        blocks = source.blocks(start, head + 1)
    with SignaturePool(workers) as pool:
        audit, report = run_audit(
            genesis, blocks, replayer, pool=pool,
            decisions=source if replayer is None else None,
            extra_checks=source.extra_checks, on_progress=on_progress,
            source=source.description, resume=resume,
            give_up_after=NODE_FINDINGS_MAX if isinstance(source, NodeSource) else None)
    if report.summary["findings"] or audit.summary.head_height < 1:
        return report, None
    history = audit.history_if_complete()
    last = source.header(audit.summary.head_height)
    reached = AuditPoint(genesis.chain_id, genesis.genesis_hash, last.height,
                         last.block_hash, last.state_root,
                         history.decisions_value() if history is not None else [])
    return report, reached if history is not None else None


def _rewritten_report(genesis: Genesis, source: BlockSource, level: Level,
                      point: AuditPoint, since: int, height: int) -> AuditReport:
    """The report of a chain whose audited part was rewritten since the point."""
    summary = Summary(head_height=source.head_height(), findings=1)
    finding = Finding(height, "header", "the stored header at the audit point is not the "
                      "one audited then (its hash or state root differs): the chain below "
                      "was rewritten since; audit it again from genesis")
    return make_report(source=source.description, chain_id=genesis.chain_id,
                       genesis_hash=genesis.genesis_hash, level=level.value, since=since,
                       summary=summary, findings=[finding], head_hash=point.head_hash)

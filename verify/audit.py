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
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator

from ledger.genesis import Genesis
from verify.blocks import CheckedBlock
from verify.chain import ChainAudit, DecisionSource, Replayer
from verify.findings import AuditReport, Finding, StoredBlock, make_report
from verify.signatures import SignaturePool
from verify.sources import BlockSource, DataDirSource


class Level(enum.StrEnum):
    """How deep an audit goes (see the module rules)."""

    CHAIN = "chain"
    FULL = "full"


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
) -> tuple[ChainAudit, AuditReport]:
    """Feed every block to a ``ChainAudit``, verify signatures, run the source's own
    checks at the end (e.g. the stored state against the replayed one), build the report.
    Without a replayer the level is ``chain``."""
    audit = ChainAudit(genesis, replayer, decisions=decisions)
    own_pool = pool is None
    pool = pool or SignaturePool(1)
    try:
        for stored in blocks:
            jobs = audit.on_block(stored)
            audit.on_signature_failures(pool.add(jobs))
            if on_progress is not None:
                on_progress(stored.height, stored.transactions
                            if isinstance(stored, CheckedBlock) else len(jobs))
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
        level=level.value, since=1, summary=audit.summary, findings=audit.findings,
        head_hash=audit.head_hash())
    return audit, report


def audit_source(
    genesis: Genesis,
    source: BlockSource,
    level: Level,
    *,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Audit every block of ``source`` at ``level``, signatures on ``workers`` processes
    (``None``: one per core), then the source's own checks of what else it stores."""
    head = source.head_height()
    replayer = source.replayer(genesis) if level is Level.FULL else None
    blocks: Iterator[StoredBlock | CheckedBlock]
    if replayer is None and isinstance(source, DataDirSource):
        # Level chain: workers decode and check whole blocks, signatures included.
        blocks = source.checked_blocks(1, head + 1, genesis.chain_id, workers)
    else:
        blocks = source.blocks(1, head + 1)
    with SignaturePool(workers) as pool:
        _, report = run_audit(
            genesis, blocks, replayer, pool=pool,
            decisions=source if replayer is None else None,
            extra_checks=source.extra_checks, on_progress=on_progress,
            source=source.description)
    return report

"""What a verification reports: findings located by height and part, and the audit report.

Rules:
- A finding names the height (0 for the genesis state or the directory itself), the part
  (``block``, ``header``, ``transaction``, ``certificate``, ``receipt``, ``state``,
  ``validators``, ``consensus``, ``mark``), and what is wrong in words an auditor can
  act on.
- A value that could not be checked is never silently passed: it is counted in
  ``Summary.unverifiable`` with the reason, and the report then says so instead of
  "intact".
- Reports are bounded (``FINDINGS_MAX``): counting goes on past the bound.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ledger.records import CommittedBlock

FINDINGS_MAX = 10_000
"""Most findings kept in a report: a wrecked copy must not exhaust memory. Counting goes on."""

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
    stored_values: int = 0
    """Stored values of a data directory accounted for (checked or counted unverifiable)."""
    unverifiable: dict[str, int] = field(default_factory=dict)
    """Values that could not be checked, counted by reason (the reason is the key)."""

    def cannot_verify(self, reason: str, count: int = 1) -> None:
        """Count ``count`` values that could not be checked, for ``reason``."""
        self.unverifiable[reason] = self.unverifiable.get(reason, 0) + count



@dataclass(frozen=True, slots=True)
class AuditReport:
    """The result of one audit, as written by ``--json``."""

    source: str
    chain_id: str
    genesis_hash: str
    level: str
    """``chain`` or ``full`` (``verify.audit.Level``)."""
    since: int
    """Blocks below this height were covered by a saved audit point (1: from genesis)."""
    summary: dict[str, int]
    unverifiable: dict[str, int]
    """Values that could not be checked, by reason: never reported as intact."""
    intact: bool
    """No finding and nothing unverifiable."""
    findings: list[dict[str, Any]]
    findings_truncated: bool
    head_hash: str
    """Hash of the head header audited (the audit point of the next ``--since``)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"


def make_report(
    *, source: str, chain_id: str, genesis_hash: bytes, level: str, since: int,
    summary: Summary, findings: list[Finding], head_hash: bytes,
) -> AuditReport:
    ordered = sorted(findings, key=lambda f: (f.height, f.position or -1, f.part))
    s = summary
    return AuditReport(
        source=source,
        chain_id=chain_id,
        genesis_hash=genesis_hash.hex(),
        level=level,
        since=since,
        summary={
            "blocks": s.blocks, "transactions": s.transactions,
            "municipalities": s.municipalities,
            "validator_set_changes": s.validator_set_changes,
            "head_height": s.head_height, "findings": s.findings,
            "stored_values": s.stored_values,
        },
        unverifiable=dict(sorted(s.unverifiable.items())),
        intact=s.findings == 0 and not s.unverifiable,
        findings=[asdict(f) for f in ordered],
        findings_truncated=s.findings > len(findings),
        head_hash=head_hash.hex(),
    )


def write_report(report: AuditReport, path: Path) -> None:
    Path(path).write_text(report.to_json(), encoding="utf-8")


__all__ = [
    "FINDINGS_MAX",
    "AuditReport",
    "Finding",
    "SignatureJob",
    "StoredBlock",
    "Summary",
    "make_report",
    "write_report",
]

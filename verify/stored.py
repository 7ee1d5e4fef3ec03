"""Every stored value of a data directory accounted for: checked, or counted unverifiable.

Rules:
- The key spaces are those of ``ledger.layout``. Blocks and indexes (``c/``) are judged by
  the chain checker and ``verify.sources``; the state (``s/``) by the replay comparison
  at level ``full`` (at level ``chain`` its values are counted as not compared); this
  module judges the rest: the ``m/`` marks, the replica's records (``p/``) and any key
  outside the layout.
- ``m/genesis`` must be the genesis hash; ``m/vhist`` (a derived cache) must give the
  validator history the audit established: its decisions are exactly the audit's
  decisions up to its height, and its height is at most the head.
- The replica's records are in the formats of ``consensus``, which ``verify`` does not
  import (tests/test_architecture.py): their checker is handed in
  (``ConsensusRecordChecker``; ``node.stored_records`` implements it). Without one, each
  record is counted as unverifiable. A checker may also answer "unverifiable" (an
  unsigned vote hash above the head): the report then says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from ledger.encoding import decode
from ledger.errors import DecodeError, LedgerError
from ledger.genesis import Genesis
from ledger.layout import (
    CHAIN_PREFIX,
    CONSENSUS_PREFIX,
    GENESIS_MARK,
    HISTORY_MARK,
    META_KEYS,
    META_PREFIX,
    STATE_PREFIX,
)
from ledger.records import ValidatorSet
from ledger.validator_history import ValidatorHistory
from verify.findings import Finding, Summary

CONSENSUS_RECORDS_MAX = 100_000
"""Most replica records read (``consensus.persist.RECORDS_MAX``: a replica keeps about 5
per height of its window)."""
RECORD_FINDINGS_MAX = 100
"""Findings about the replica's records reported, at most (the rest are counted)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a checker concluded about one stored value."""

    findings: tuple[Finding, ...] = ()
    unverifiable: str | None = None
    """Why the value could be neither checked nor trusted (``None``: it was checked)."""


class ChainView(Protocol):
    """What a checker may ask about the audited chain."""

    def head_height(self) -> int: ...

    def block_hash(self, height: int) -> bytes | None:
        """Hash of the stored header at ``height`` (``None`` above the head or unreadable)."""
        ...

    def validators_at(self, height: int) -> ValidatorSet:
        """The validator set in force at ``height`` (the audit's history)."""
        ...


class ConsensusRecordChecker(Protocol):
    """Judges one record of the replica (key inside ``p/``, value); ``records`` holds
    every record of the replica, so that an unsigned record can be judged against a
    signed one of the same place."""

    def check(self, key: bytes, value: bytes, chain: ChainView,
              records: Mapping[bytes, bytes]) -> Verdict: ...


class StoredKV(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def items(self, *, prefix: bytes | None = None, start: bytes | None = None,
              stop: bytes | None = None) -> Iterator[tuple[bytes, bytes]]: ...


def check_marks(kv: StoredKV, genesis: Genesis, history: ValidatorHistory | None,
                head: int, summary: Summary, *, replayed: bool) -> Iterator[Finding]:
    """The ``m/`` records. ``history``: the audit's validator history (``None`` when it is
    not complete, e.g. replay stopped: the cache is then counted unverifiable).
    ``replayed``: the history holds every decision up to the head; otherwise (level
    chain) it holds those in force at or before the head, and a cached decision not in
    force yet is counted unverifiable."""
    for key, value in kv.items(prefix=META_PREFIX):
        summary.stored_values += 1
        if key not in META_KEYS:
            yield Finding(0, "mark", f"unexpected record {key!r} in the directory's marks")
        elif key == GENESIS_MARK and value != genesis.genesis_hash:
            yield Finding(0, "mark", "m/genesis is not the hash of this genesis file, although "
                          "the chain starts from it: the mark was altered")
        elif key == HISTORY_MARK:
            if history is None:
                summary.cannot_verify("m/vhist (validator-history cache): the audit's "
                                      "history is incomplete")
                continue
            problem = _history_cache_problem(value, history, head, replayed, summary)
            if problem is not None:
                yield Finding(0, "mark", f"m/vhist, the validator-history cache, {problem}: a "
                              "restarted node would follow a wrong validator history")


def _history_cache_problem(value: bytes, history: ValidatorHistory, head: int,
                           replayed: bool, summary: Summary) -> str | None:
    try:
        raw = decode(value)
        if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], int)
                and not isinstance(raw[0], bool) and raw[0] >= 0):
            return "is not [height, decisions]"
        up_to = raw[0]
        cached = history.decided_up_to(0).with_decisions_value(raw[1])
    except (DecodeError, LedgerError) as exc:
        return f"does not decode ({exc})"
    if up_to > head:
        return f"claims height {up_to:,}, above the head {head:,}"
    if any(decided > up_to for decided, _ in cached.decisions):
        return f"lists a decision above its own height {up_to:,}"
    expected = history.decided_up_to(up_to).decisions
    if not replayed:
        pending = [d for d, _ in cached.decisions if cached.effective(d) > head]
        if pending:
            summary.cannot_verify("m/vhist decisions not in force yet (level chain proves "
                                  "only those in force)", len(pending))
        in_force = tuple((d, v) for d, v in cached.decisions if cached.effective(d) <= head)
        cached_value: tuple[tuple[int, ValidatorSet], ...] = in_force
    else:
        cached_value = cached.decisions
    if cached_value != expected:
        return (f"lists decisions {[d for d, _ in cached_value]} where the chain has "
                f"{[d for d, _ in expected]} up to height {up_to:,}")
    return None


def check_consensus_records(kv: StoredKV, checker: ConsensusRecordChecker | None,
                            chain: ChainView, summary: Summary) -> Iterator[Finding]:
    """Every record under ``p/``, through ``checker``."""
    reported = 0
    records: dict[bytes, bytes] = {}
    for key, value in kv.items(prefix=CONSENSUS_PREFIX):
        summary.stored_values += 1
        if len(records) >= CONSENSUS_RECORDS_MAX:
            yield Finding(0, "consensus", f"more than {CONSENSUS_RECORDS_MAX:,} consensus "
                          "working records are stored: far more than a replica writes")
            return
        records[key[len(CONSENSUS_PREFIX):]] = value
    for record, value in records.items():
        if checker is None:
            summary.cannot_verify("consensus working records (p/): no checker was given")
            continue
        verdict = checker.check(record, value, chain, records)
        if verdict.unverifiable is not None:
            summary.cannot_verify(verdict.unverifiable)
        for finding in verdict.findings:
            reported += 1
            if reported <= RECORD_FINDINGS_MAX:
                yield finding
    if reported > RECORD_FINDINGS_MAX:
        yield Finding(0, "consensus", f"... and {reported - RECORD_FINDINGS_MAX} more "
                      "findings in the consensus working records")


def check_foreign_keys(kv: StoredKV, summary: Summary) -> Iterator[Finding]:
    """Keys outside every space of ``ledger.layout``: nothing may write them."""
    spaces = sorted((CHAIN_PREFIX, STATE_PREFIX, CONSENSUS_PREFIX, META_PREFIX))
    # The gaps between the spaces (a prefix "x/" ends before "x0"): only they are read.
    bounds = [b""] + [edge for p in spaces for edge in (p, p[:-1] + b"0")] + [None]
    for start, stop in zip(bounds[::2], bounds[1::2], strict=True):
        for key, _ in kv.items(start=start or None, stop=stop):
            summary.stored_values += 1
            yield Finding(0, "mark", f"a record under a key no Tabellion component writes: "
                          f"{key[:64]!r}")

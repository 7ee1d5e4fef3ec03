"""``tabellion audit``: verify a whole chain while trusting nothing but the genesis file.

Rules:
- A thin command: it parses the options, calls ``verify`` (the library that owns every
  check, see verify/__init__.py), draws the progress bar and prints the report.
- The replica's working records (``p/``) are in the formats of ``consensus``; the command
  hands ``verify`` their checker (``node.stored_records``), the one layer allowed to know
  both.
- Exit codes: 0 no finding; 1 integrity findings; 2 the audit could not run (a node that
  cannot be reached included: audit has no code 3). A value that
  could not be checked is printed (and in ``--json``), and the word "intact" is printed
  only when nothing was left unchecked.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.common import CliError, PassphraseFile, guarded_failing_with
from cli.submit import load_signing_key
from ledger.crypto import SigningKey
from ledger.errors import LedgerError
from ledger.genesis import Genesis, load_genesis
from node.read_access import read_headers
from node.stored_records import ConsensusRecords
from verify.audit import AuditPoint, Level, audit_source, load_point, save_point
from verify.findings import AuditReport, Finding, write_report
from verify.sources import BlockSource, RequestSigner, open_source

EXIT_INTACT = 0
EXIT_FINDINGS = 1
EXIT_CANNOT_RUN = 2


def reader_key(key: Path | None, passphrase_file: Path | None) -> SigningKey | None:
    """The key that signs node reads (``--key``, passphrase from ``--passphrase-file``,
    its trailing line breaks not part of it); ``LedgerError`` if it cannot be read."""
    if key is None:
        return None
    if passphrase_file is None:
        raise LedgerError("--key needs --passphrase-file (the audit runs unattended)")
    return load_signing_key(key, None, passphrase_file)


def read_signer(reader: SigningKey | None, chain_id: str) -> RequestSigner | None:
    """Signs every request with ``reader`` (``node.read_access.read_headers``)."""
    if reader is None:
        return None

    def sign(request: httpx.Request) -> None:
        query = request.url.query.decode("ascii")
        path = request.url.path + (f"?{query}" if query else "")
        request.headers.update(read_headers(reader, request.method, path, chain_id))

    return sign


def _rate_text(txs: int, started: float) -> str:
    elapsed = max(time.monotonic() - started, 1e-9)
    return f"{txs / elapsed:,.0f} tx/s"


@guarded_failing_with(EXIT_CANNOT_RUN)
def audit_command(
    genesis: Annotated[Path, typer.Option(
        "--genesis", help="Genesis file of the network: the only thing trusted.")],
    data: Annotated[Path | None, typer.Option(
        "--data", help="A node's data directory (no node running on it; it is copied "
        "and never modified).")] = None,
    node: Annotated[str | None, typer.Option(
        "--node", help="Base URL of a node's API, e.g. http://127.0.0.1:8080.")] = None,
    since: Annotated[int | None, typer.Option(
        "--since", min=2, help="Check only the blocks from this height on, resuming from "
        "the audit point an earlier audit saved (--point): the stored header at that "
        "point must still be the one audited.")] = None,
    point: Annotated[Path | None, typer.Option(
        "--point", help="Audit point file: read with --since; (re)written after an audit "
        "with no finding.")] = None,
    level: Annotated[Level | None, typer.Option(
        "--level", help="chain: signatures, certificates, Merkle roots, links, indexes "
        "(fast); full: also replay every contract and compare the stored state byte for "
        "byte. Default: full with --data, chain with --node.")] = None,
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
    passphrase_file: PassphraseFile = None,
) -> None:
    """Verify a whole chain while trusting nothing but the genesis file.

    Checks every header link, every transaction signature (on every core) and Merkle
    root, every commit certificate against the validator set in force at its height
    (following governance changes from genesis), every receipt; at level full it also
    replays every contract from genesis to reproduce every state root and the stored
    state. With --data, every other stored value (the consensus working records, the
    directory marks) is checked too, or listed as not verifiable. Give exactly one of
    --data or --node.

    Exit codes: 0 no finding; 1 integrity findings (each names the height, the
    transaction and what is wrong); 2 the audit could not run (bad options, unreadable
    genesis file or data directory, node unreachable).

    Example: tabellion audit --data /var/lib/tabellion/node0/data --genesis genesis.json
    --level chain --json report.json
    """
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)
    if (data is None) == (node is None):
        raise CliError("give exactly one of --data DIR or --node URL", EXIT_CANNOT_RUN)
    if since is not None and point is None:
        raise CliError("--since needs --point, the file an earlier audit saved",
                       EXIT_CANNOT_RUN)
    chosen = level or (Level.FULL if data is not None else Level.CHAIN)
    try:
        gen = load_genesis(genesis)
        start = load_point(point, gen) if since is not None and point is not None else None
        source = open_source(data, node, consensus_records=ConsensusRecords(gen),
                             sign=read_signer(reader_key(key, passphrase_file), gen.chain_id))
    except (LedgerError, OSError, httpx.HTTPError) as exc:
        # httpx.HTTPError: the sources turn a node's silence into NodeUnreachable; one
        # that slips through still means "could not run" (2), never the 3 of other commands.
        raise CliError(f"cannot run the audit: {exc}", EXIT_CANNOT_RUN) from exc
    mismatch = source.other_network(gen)
    if mismatch is not None:
        source.close()
        raise CliError(f"cannot run the audit: {mismatch}", EXIT_CANNOT_RUN)
    try:
        report, reached = _run_with_progress(gen, source, chosen, start, since, workers,
                                             progress, console)
    except (LedgerError, httpx.HTTPError) as exc:
        raise CliError(f"cannot finish the audit: {exc}", EXIT_CANNOT_RUN) from exc
    finally:
        source.close()
    print_report(report, out)
    try:
        if json_out is not None:
            write_report(report, json_out)
        if point is not None and reached is not None:
            save_point(reached, point)
            out.print(f"audit point saved to {point} (height {reached.height:,}): next "
                      f"time, --since {reached.height + 1} --point {point}", markup=False)
    except OSError as exc:
        raise CliError(f"cannot write {exc.filename}: {exc.strerror}",
                       EXIT_CANNOT_RUN) from exc
    raise typer.Exit(EXIT_INTACT if report.summary["findings"] == 0 else EXIT_FINDINGS)


def _run_with_progress(
    gen: Genesis, src: BlockSource, level: Level, point: AuditPoint | None,
    since: int | None, workers: int, show: bool, console: Console,
) -> tuple[AuditReport, AuditPoint | None]:
    started = time.monotonic()
    txs = 0
    columns = (
        TextColumn(f"auditing ({level.value})"), BarColumn(), MofNCompleteColumn(),
        TextColumn("blocks"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not show) as bar:
        task = bar.add_task("audit", total=src.head_height(), rate="",
                            completed=(since or 1) - 1)

        def on_progress(height: int, count: int) -> None:
            nonlocal txs
            txs += count
            bar.update(task, completed=height, rate=_rate_text(txs, started))

        return audit_source(gen, src, level, workers=workers or None,
                            on_progress=on_progress, point=point, since=since)


def print_report(report: AuditReport, out: Console) -> None:
    s = report.summary
    since = f", from height {report.since:,}" if report.since > 1 else ""
    out.print(f"chain {report.chain_id} (genesis {report.genesis_hash[:16]}), "
              f"{report.source}, level {report.level}{since}", markup=False)
    out.print(
        f"blocks: {s['blocks']:,}   transactions: {s['transactions']:,}   "
        f"municipalities: {s['municipalities']:,}   "
        f"validator-set changes: {s['validator_set_changes']:,}", markup=False)
    if report.unverifiable:
        out.print("not verifiable (neither checked nor trusted):")
        for reason, count in report.unverifiable.items():
            out.print(f"  {count:,} {reason}", markup=False)
    if report.intact:
        out.print("intact: every check passed, every stored value was checked")
        return
    if s["findings"] == 0:
        out.print("no finding in what was checked (see above what could not be)")
        return
    out.print(f"{s['findings']:,} finding(s):")
    for f in report.findings:
        out.print("  " + Finding(**f).line(), markup=False)
    if report.findings_truncated:
        out.print(f"  ... only the first {len(report.findings):,} are listed")

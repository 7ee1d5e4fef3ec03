"""``tabellion receipt``: fetch a portable proof of one record, or check one offline.

Rules:
- A thin command: building, fetching and checking receipts belong to ``verify.receipt``
  (format: docs/receipt.md); this module parses options, calls it and prints.
- ``receipt get --node`` asks the node for the whole receipt (``GET /v1/receipts/{id}``)
  and verifies it against the genesis file before writing it: a node is never trusted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from cli.audit import read_signer, reader_key
from cli.common import CliError, PassphraseFile, guarded_failing_with
from ledger.errors import LedgerError
from ledger.genesis import load_genesis
from verify.receipt import (
    ReceiptError,
    StoreReceiptSource,
    describe,
    fetch_receipt,
    gather_receipt,
    read_receipt_file,
    verify_receipt,
    write_receipt_file,
)
from verify.sources import NodeUnreachable

# --------------------------------------------------------------------------- commands

EXIT_VERIFIED = 0
EXIT_NOT_VERIFIED = 1
EXIT_CANNOT_RUN = 2

receipt_app = typer.Typer(
    name="receipt",
    help="Portable proofs of one record: fetch one from a node, verify one offline.",
    no_args_is_help=True,
    add_completion=False,
)


@receipt_app.command("verify")
@guarded_failing_with(EXIT_CANNOT_RUN)
def verify_command(
    file: Annotated[Path, typer.Argument(help="Receipt file (JSON) to check.")],
    genesis: Annotated[Path, typer.Option(
        "--genesis", help="Genesis file of the network (the only thing trusted).")],
) -> None:
    """Check a receipt offline and say in words what it proves.

    Exit codes: 0 the receipt proves what it says; 1 it does not (the faulty part is
    named); 2 the files cannot be read.

    Example: tabellion receipt verify receipt.json --genesis genesis.json
    """
    try:
        gen = load_genesis(genesis)
        doc = read_receipt_file(file)
    except LedgerError as exc:
        raise CliError(str(exc), EXIT_CANNOT_RUN) from exc
    try:
        facts = verify_receipt(gen, doc)
    except ReceiptError as exc:
        typer.echo(f"NOT VERIFIED: {exc}", err=True)
        typer.echo("This receipt does not prove the record: the part named above was altered "
                   "or does not belong to this network.", err=True)
        raise typer.Exit(EXIT_NOT_VERIFIED) from exc
    typer.echo(f"VERIFIED: {describe(facts, gen)}")
    typer.echo(f"transaction {facts.transaction.tx_id.hex()}; "
               f"{facts.validator_changes} validator-set change(s) since genesis checked.")


# --------------------------------------------------------------------------- get

EXIT_UNREACHABLE = 3


@receipt_app.command("get")
@guarded_failing_with(EXIT_CANNOT_RUN)
def get_command(
    tx_id: Annotated[str, typer.Argument(help="Transaction id (64 hex digits).")],
    out: Annotated[Path, typer.Option("--out", help="File to write the receipt to.")],
    genesis: Annotated[Path, typer.Option(
        "--genesis", help="Genesis file of the network.")],
    node: Annotated[str | None, typer.Option(
        "--node", help="Base URL of a node's API, e.g. http://127.0.0.1:8080.")] = None,
    data: Annotated[Path | None, typer.Option(
        "--data", help="Or: a node's data directory (copied, never modified).")] = None,
    key: Annotated[Path | None, typer.Option(
        "--key", help="With --node: your key file (member of the paying town, or an "
        "auditor), to read the receipt of a social-aid payment.")] = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Write a self-contained receipt for one committed transaction.

    The receipt holds the record, its outcome, the Merkle proofs, the certified headers
    and the validator-set changes since genesis: `tabellion receipt verify` checks it
    offline with the genesis file alone (format: docs/receipt.md).

    Exit codes: 0 written; 1 the transaction is unknown or its receipt is not certified
    yet; 2 bad input (options, unreadable files); 3 the node could not be reached.

    Example: tabellion receipt get 3f5a...e1 --node http://127.0.0.1:8080 --genesis
    genesis.json --out receipt.json
    """
    if (data is None) == (node is None):
        raise CliError("give exactly one of --node URL or --data DIR", EXIT_CANNOT_RUN)
    if not re.fullmatch(r"[0-9a-f]{64}", tx_id):
        raise CliError("a transaction id is 64 lowercase hex digits", EXIT_CANNOT_RUN)
    try:
        gen = load_genesis(genesis)
        source = StoreReceiptSource(data) if data is not None else None
        sign = read_signer(reader_key(key, passphrase_file), gen.chain_id)
    except NodeUnreachable as exc:
        raise CliError(str(exc), EXIT_UNREACHABLE) from exc
    except (LedgerError, OSError) as exc:
        raise CliError(str(exc), EXIT_CANNOT_RUN) from exc
    try:
        doc = (gather_receipt(gen, source, bytes.fromhex(tx_id)) if source is not None
               else fetch_receipt(str(node), bytes.fromhex(tx_id), sign))
        verify_receipt(gen, doc)  # never hand out a receipt that does not verify
    except NodeUnreachable as exc:
        raise CliError(str(exc), EXIT_UNREACHABLE) from exc
    except ReceiptError as exc:
        raise CliError(str(exc), EXIT_NOT_VERIFIED) from exc
    except LedgerError as exc:
        raise CliError(f"the data does not allow a receipt: {exc}",
                       EXIT_NOT_VERIFIED) from exc
    finally:
        if source is not None:
            source.close()
    try:
        size = write_receipt_file(doc, out)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror}", EXIT_CANNOT_RUN) from exc
    typer.echo(f"receipt for {tx_id[:16]}… at height {doc['record']['height']:,} written to "
               f"{out} ({size:,} bytes, {len(doc['validator_changes'])} validator-set "
               "change(s))")

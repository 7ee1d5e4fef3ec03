"""``tabellion submit``, ``tx show``, ``status`` and ``query``: talk to a node's API.

Rules:
- A transaction is built and signed here, on the clerk's machine: a random 64-bit nonce
  (so two identical requests are two transactions), an expiry one hour ahead, the chain id
  the node reports (or ``--chain-id``). The key never leaves the machine.
- The payload is checked against the contract's schema before anything is sent, so a typo
  is reported at once with the field's name (exit 2), not after a round trip.
- ``--wait`` waits for the commit and prints the receipt and the height; a transaction
  that committed with a refusal (a contract rule said no) exits 1 with the refusal.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli.client import NodeClient
from cli.common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    PassphraseEnv,
    PassphraseFile,
    guarded,
    passphrase_from_file,
    read_input_file,
    read_passphrase,
    usage_error,
)
from contracts.engine import REGISTRY
from contracts.registry import check_payload
from ledger.crypto import SigningKey, load_key
from ledger.encoding import encode
from ledger.errors import DecodeError
from ledger.records import Transaction

EXPIRY_MS_DEFAULT = 3600 * 1000
PAYLOAD_FILE_BYTES_MAX = 64 * 1024
WAIT_MS_DEFAULT = 30_000

NodeUrl = Annotated[str, typer.Option(
    "--node", envvar="TABELLION_NODE", help="Base URL of a node's API (env TABELLION_NODE).")]
KeyFile = Annotated[Path, typer.Option("--key", help="Your encrypted key file.")]
Wait = Annotated[bool, typer.Option("--wait", help="Wait for the commit; print the receipt.")]
ChainId = Annotated[str | None, typer.Option(
    "--chain-id", help="Network id (default: the one the node reports).")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

tx_app = typer.Typer(help="Look up transactions.", epilog=EXIT_CODES_HELP,
                     no_args_is_help=True)


# --------------------------------------------------------------------------- building


def load_signing_key(key: Path, passphrase_env: str | None,
                     passphrase_file: Path | None = None) -> SigningKey:
    if passphrase_file is not None:
        return load_key(key, passphrase_from_file(passphrase_file))
    return load_key(key, read_passphrase(passphrase_env, confirm=False, what=str(key)))


def check_action(contract: str, action: str, payload: dict[str, Any]) -> None:
    """Check ``payload`` against the schema of ``contract.action`` (exit 2 if bad)."""
    found = REGISTRY.lookup(contract, action)
    check_payload(found.fields, payload, f"{contract}.{action}")


def build_transaction(chain_id: str, contract: str, action: str, payload: dict[str, Any],
                      key: SigningKey, *, now_ms: int | None = None,
                      expiry_ms: int = EXPIRY_MS_DEFAULT) -> Transaction:
    """A signed transaction with a random nonce, expiring ``expiry_ms`` from now."""
    check_action(contract, action, payload)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    tx = Transaction(chain_id, contract, action, payload, key.public_key,
                     secrets.randbits(64), now + expiry_ms)
    encode(tx.body_value())  # a float or another unencodable value is refused here
    return tx.signed(key)


def read_payload(source: str) -> dict[str, Any]:
    """Parse a JSON object from a file, or from stdin when ``source`` is ``-``."""
    if source == "-":
        text = sys.stdin.read(PAYLOAD_FILE_BYTES_MAX + 1)
        where = "standard input"
    else:
        path = Path(source)
        text = read_input_file(path, PAYLOAD_FILE_BYTES_MAX, "payload file")
        where = str(path)
    if len(text) > PAYLOAD_FILE_BYTES_MAX:
        usage_error(f"the payload on {where} is larger than {PAYLOAD_FILE_BYTES_MAX} bytes")
    try:
        value = json.loads(text, parse_float=_no_float)
    except json.JSONDecodeError as exc:
        raise CliError(f"the payload on {where} is not valid JSON: {exc}", EXIT_USAGE) from exc
    if not isinstance(value, dict):
        usage_error(f"the payload on {where} must be a JSON object {{...}}")
    return value


def _no_float(text: str) -> Any:
    raise DecodeError(f"the payload holds the decimal number {text}: amounts are integers "
                      "in cents and coordinates integers in micro-degrees")


# --------------------------------------------------------------------------- sending


def send(client: NodeClient, tx: Transaction, *, wait: bool, timeout_ms: int = WAIT_MS_DEFAULT,
         console: Console | None = None) -> dict[str, Any] | None:
    """Submit ``tx``; with ``wait``, print its receipt and height and return the details.

    A transaction committed with a refusal exits 1 (``CliError``) after printing it.
    """
    out = console or Console(highlight=False, soft_wrap=True)
    answer = client.submit([tx], wait=False, timeout_ms=timeout_ms)
    tx_id = tx.tx_id.hex()
    ids = answer.get("tx_ids")
    if not isinstance(ids, list) or tx_id not in ids:
        raise CliError(f"the node accepted the request but did not return {tx_id}",
                       EXIT_FAILED)
    if not wait:
        out.print(f"submitted {tx_id}")
        out.print(f"follow it with: tabellion tx show {tx_id} --node {client.base_url}")
        return None
    details = client.wait_committed(tx_id, timeout_ms)
    print_transaction(details, out)
    receipt = details.get("receipt")
    if isinstance(receipt, dict) and receipt.get("code") not in (None, "ok"):
        raise CliError(f"transaction {tx_id} was recorded as refused "
                       f"({receipt.get('code')}): {receipt.get('message')}", EXIT_FAILED)
    return details


def print_transaction(details: dict[str, Any], out: Console) -> None:
    status = details.get("status", "unknown")
    out.print(f"transaction {details.get('tx_id', '?')}: {status}")
    if details.get("height") is not None:
        out.print(f"height: {details['height']}")
    receipt = details.get("receipt")
    if isinstance(receipt, dict):
        code = receipt.get("code")
        out.print(f"receipt: {code}" + (f" — {receipt['message']}" if receipt.get("message")
                                         else ""))
        data = receipt.get("data")
        if data:
            out.print(f"result: {json.dumps(data, ensure_ascii=False, sort_keys=True)}")


# --------------------------------------------------------------------------- commands


def submit(
    contract: Annotated[str, typer.Argument(help="Contract, e.g. notary.")],
    action: Annotated[str, typer.Argument(help="Action of the contract, e.g. anchor.")],
    payload: Annotated[str, typer.Option(
        "--payload", help="JSON file with the action's fields, or - for stdin.")],
    key: KeyFile,
    node: NodeUrl,
    wait: Wait = False,
    passphrase_env: PassphraseEnv = None,
    passphrase_file: PassphraseFile = None,
    chain_id: ChainId = None,
    timeout_ms: Annotated[int, typer.Option(
        "--timeout-ms", help="How long --wait waits.", min=100, max=600_000)
    ] = WAIT_MS_DEFAULT,
) -> None:
    """Sign a transaction with your key and submit it to a node.

    Example: tabellion submit notary anchor --payload anchor.json --key clerk.key
    --node http://127.0.0.1:7100 --wait
    """
    body = read_payload(payload)
    check_action(contract, action, body)
    signing_key = load_signing_key(key, passphrase_env, passphrase_file)
    with NodeClient(node, reader=signing_key) as client:
        tx = build_transaction(chain_id or client.chain_id(), contract, action, body,
                               signing_key)
        send(client, tx, wait=wait, timeout_ms=timeout_ms)


@tx_app.command("show", epilog=EXIT_CODES_HELP)
@guarded
def tx_show(
    tx_id: Annotated[str, typer.Argument(help="Transaction id (64 hex digits).")],
    node: NodeUrl,
    json_out: JsonOut = False,
    key: Annotated[Path | None, typer.Option(
        "--key", help="Your key file: sign the read to see your town's aid payments.")
    ] = None,
    passphrase_env: PassphraseEnv = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Show a transaction's status, receipt and height. A social-aid payment is shown
    only to members of the paying town and auditors: give --key.

    Example: tabellion tx show 3f2a…e9 --node http://127.0.0.1:7100
    """
    tx_id = tx_id.strip().lower()
    if len(tx_id) != 64 or any(c not in "0123456789abcdef" for c in tx_id):
        usage_error("a transaction id is 64 hex digits, as printed by tabellion submit")
    reader = None if key is None else load_signing_key(key, passphrase_env, passphrase_file)
    with NodeClient(node, reader=reader) as client:
        details = client.transaction(tx_id)
    if json_out:
        typer.echo(json.dumps(details, indent=2, ensure_ascii=False, sort_keys=True))
    else:
        print_transaction(details, Console(highlight=False, soft_wrap=True))


def status(node: NodeUrl, json_out: JsonOut = False) -> None:
    """Show a node's height, head hash, view, primary and peers.

    Example: tabellion status --node http://127.0.0.1:7100 --json
    """
    with NodeClient(node) as client:
        found = client.status()
    if json_out:
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False, sort_keys=True))
        return
    out = Console(highlight=False)
    table = Table(title=f"Node {node}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for name in ("chain_id", "height", "head_hash", "executed_height", "view", "primary",
                 "validator"):
        if name in found:
            table.add_row(name, str(found[name]))
    mempool = found.get("mempool")
    if isinstance(mempool, dict):
        table.add_row("mempool", f"{mempool.get('transactions', '?')} transactions, "
                                 f"{mempool.get('bytes', '?')} bytes")
    out.print(table)
    peers = found.get("peers")
    if isinstance(peers, list) and peers:
        peer_table = Table(title="peers")
        columns = ("validator_key", "address", "connected", "outbound", "inbound",
                   "last_error")
        for column in columns:
            peer_table.add_column(column.replace("_key", ""))
        for p in peers:
            if isinstance(p, dict):
                cells = [str(p.get(c) if p.get(c) is not None else "") for c in columns]
                cells[0] = cells[0][:16]
                peer_table.add_row(*cells)
        out.print(peer_table)


def query(
    node: NodeUrl,
    contract: Annotated[str | None, typer.Option(
        "--contract", help="deliberations, social_aid, reports, notary, identity, governance."
    )] = None,
    municipality: Annotated[str | None, typer.Option(
        "--municipality", help="SIRET (14 digits) of the municipality.")] = None,
    kind: Annotated[str | None, typer.Option(
        "--type", help="Action name, e.g. record or anchor.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
    after: Annotated[str | None, typer.Option(
        "--after", help="Cursor printed at the end of the previous page.")] = None,
    json_out: JsonOut = False,
) -> None:
    """List committed records, filtered by contract, municipality and type.

    Example: tabellion query --node http://127.0.0.1:7100 --contract deliberations
    --municipality 21930048000015
    """
    with NodeClient(node) as client:
        page = client.records(contract=contract, municipality=municipality, kind=kind,
                              after=after, limit=limit)
    if json_out:
        typer.echo(json.dumps(page, indent=2, ensure_ascii=False, sort_keys=True))
        return
    out = Console(highlight=False)
    records = page.get("records", [])
    table = Table(title=f"{len(records)} record(s)")
    for column in ("height", "contract", "action", "tx_id", "summary"):
        table.add_column(column)
    for r in records if isinstance(records, list) else []:
        if isinstance(r, dict):
            tx = r.get("transaction") if isinstance(r.get("transaction"), dict) else r
            assert isinstance(tx, dict), "checked just above"
            table.add_row(str(r.get("height", "")), str(tx.get("contract", "")),
                          str(tx.get("action", "")), str(tx.get("tx_id", ""))[:16],
                          _summary(tx))
    out.print(table)
    if page.get("next"):
        out.print(f"more: --after {page['next']}")


def _summary(record: dict[str, Any]) -> str:
    payload = record.get("payload")
    if not isinstance(payload, dict):
        return ""
    for name in ("DELIB_OBJET", "description", "reference", "name", "scheme_id"):
        if isinstance(payload.get(name), str):
            return str(payload[name])[:60]
    return ""


def register(app: typer.Typer) -> None:
    """Mount these commands on the top-level ``app``."""
    app.command("submit", epilog=EXIT_CODES_HELP)(guarded(submit))
    app.command("status", epilog=EXIT_CODES_HELP)(guarded(status))
    app.command("query", epilog=EXIT_CODES_HELP)(guarded(query))
    app.add_typer(tx_app, name="tx")

"""``tabellion record …``: the common records, without writing JSON by hand.

Rules:
- Each command builds the payload of one contract action (docs/contracts.md) from
  options and files, then signs and submits it exactly like ``tabellion submit``.
- Personal data never leaves the machine: ``record disbursement`` computes the beneficiary
  tag (HMAC-SHA-256 under the municipality's tag key) locally from ``--case-number``; only
  the tag is sent. ``record notarise`` and ``--act`` hash files locally; only the SHA-256
  is sent.
- The municipality is the signer's: when ``--siret`` is omitted it is read from the chain
  (the signer's enrollment), so a clerk cannot write for another town by mistake.
- Coordinates are typed in decimal degrees and converted to integer micro-degrees with
  exact decimal arithmetic (no float is ever formed).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.client import NodeClient
from cli.common import EXIT_CODES_HELP, EXIT_USAGE, CliError, guarded, usage_error
from cli.submit import (
    ChainId,
    KeyFile,
    NodeUrl,
    PassphraseEnv,
    PassphraseFile,
    Wait,
    build_transaction,
    check_action,
    load_signing_key,
    read_payload,
    send,
)
from cli.tag_keys import CaseKeys
from contracts.deliberations import SCDL_FIELDS, VOTES
from contracts.keys import member_key
from contracts.reports import round_location
from ledger.crypto import SigningKey
from ledger.encoding import decode

HASH_CHUNK_BYTES = 1 << 20
CSV_FILE_BYTES_MAX = 16 * 1024 * 1024
CSV_ROWS_MAX = 100_000

app = typer.Typer(help="Record deliberations, aid, citizen reports and documents.",
                  epilog=EXIT_CODES_HELP, no_args_is_help=True)

Siret = Annotated[str | None, typer.Option(
    "--siret", help="Your municipality's SIRET (default: read from your key's enrollment).")]


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file, read in chunks (documents may be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def signer_siret(client: NodeClient, key: SigningKey) -> str:
    """The SIRET the chain enrolled ``key`` in (``CliError`` exit 2 if it is unknown)."""
    state = client.get(f"/v1/state/{member_key(key.public_key.hex()).hex()}")
    raw = state.get("value")
    record = decode(bytes.fromhex(raw)) if isinstance(raw, str) else None
    if not isinstance(record, dict) or not isinstance(record.get("siret"), str):
        raise CliError(f"the key {key.public_key.hex()[:16]}… is not enrolled on this "
                       "network; use your own key file, or pass --siret", EXIT_USAGE)
    return str(record["siret"])


def micro_degrees(text: str, what: str, limit: int) -> int:
    """``"48.8638"`` -> ``48863800`` exactly; usage error beyond ``limit`` degrees."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise CliError(f"--{what} {text!r} must be decimal degrees, e.g. 48.8638",
                       EXIT_USAGE) from exc
    micro = value * 1_000_000
    if not value.is_finite() or abs(value) > limit or micro != micro.to_integral_value():
        usage_error(f"--{what} {text!r} must be within ±{limit} degrees with at most six "
                    "decimals")
    return int(micro)


def _submit(contract: str, action: str, payload: dict[str, Any], key: Path, node: str,
            passphrase_env: str | None, passphrase_file: Path | None, wait: bool,
            chain_id: str | None, siret: str | None, siret_field: str,
            complete: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Fill in the SIRET, check, sign and submit; shared by every record command.
    ``complete`` fills in what needs the SIRET (a beneficiary tag) before signing."""
    if siret is not None:
        payload[siret_field] = siret
        if complete is not None:
            complete(payload)
            complete = None
        check_action(contract, action, payload)  # a typo is reported before the passphrase
    signing_key = load_signing_key(key, passphrase_env, passphrase_file)
    with NodeClient(node, reader=signing_key) as client:
        if payload.get(siret_field) is None:
            payload[siret_field] = signer_siret(client, signing_key)
        if complete is not None:
            complete(payload)
        tx = build_transaction(chain_id or client.chain_id(), contract, action, payload,
                               signing_key)
        send(client, tx, wait=wait)


# --------------------------------------------------------------------------- deliberations


def deliberation_from_csv(path: Path, row: int) -> dict[str, Any]:
    """One row (1-based, after the header) of an SCDL Délibérations CSV, as a payload."""
    if path.stat().st_size > CSV_FILE_BYTES_MAX:
        usage_error(f"{path} is larger than {CSV_FILE_BYTES_MAX} bytes")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        delimiter = ";" if sample.count(";") > sample.count(",") else ","
        reader = csv.DictReader(handle, delimiter=delimiter)
        missing = [f for f in ("COLL_SIRET", "DELIB_ID", "DELIB_DATE")
                   if f not in (reader.fieldnames or [])]
        if missing:
            usage_error(f"{path} is not an SCDL Délibérations CSV: the column(s) "
                        f"{', '.join(missing)} are missing from its header")
        for index, found in enumerate(reader, start=1):
            if index > CSV_ROWS_MAX:
                break
            if index == row:
                return _scdl_payload(found, f"{path} row {row}")
    usage_error(f"{path} has no row {row} (rows are counted from 1 after the header)")


def _scdl_payload(row: dict[str, str | None], where: str) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for name in SCDL_FIELDS:
        value = (row.get(name) or "").strip()
        if not value:
            continue
        if name in VOTES:
            if not value.isdigit():
                usage_error(f"{where}: {name} must be a whole number, got {value!r}")
            payload[name] = int(value)
        else:
            payload[name] = value
    return payload


@app.command("deliberation", epilog=EXIT_CODES_HELP)
@guarded
def record_deliberation(
    key: KeyFile,
    node: NodeUrl,
    sitting_id: Annotated[str, typer.Option("--sitting", help="The sitting's id.")],
    order_number: Annotated[int, typer.Option("--order", help="Order number in the sitting.",
                                              min=1, max=9999)],
    json_file: Annotated[Path | None, typer.Option(
        "--json", help="JSON object with the SCDL fields (COLL_NOM, DELIB_ID, ...).")] = None,
    csv_file: Annotated[Path | None, typer.Option(
        "--csv", help="SCDL Délibérations CSV file (comma or semicolon separated).")] = None,
    row: Annotated[int, typer.Option("--row", help="Row of --csv, from 1.", min=1)] = 1,
    act: Annotated[Path | None, typer.Option(
        "--act", help="The signed act (PDF): its SHA-256 is computed here.")] = None,
    act_sha256: Annotated[str | None, typer.Option(
        "--act-sha256", help="SHA-256 (hex) of the signed act, if already computed.")] = None,
    present: Annotated[int | None, typer.Option(
        "--present", help="Members present for this deliberation (quorum).", min=0)] = None,
    proxies: Annotated[int | None, typer.Option(
        "--proxies", help="Proxies held by present members (one each at most).", min=0)
    ] = None,
    ballot: Annotated[str | None, typer.Option(
        "--ballot", help="open (default) or secret.")] = None,
    casting_vote: Annotated[str | None, typer.Option(
        "--casting-vote", help="Open-ballot tie: the president's vote, pour or contre.")
    ] = None,
    passphrase_env: PassphraseEnv = None,
    passphrase_file: PassphraseFile = None,
    wait: Wait = False,
    chain_id: ChainId = None,
) -> None:
    """Record a council deliberation from a JSON file or a row of an SCDL CSV.

    Example: tabellion record deliberation --csv deliberations.csv --row 3 --sitting
    CM-2026-11 --order 4 --present 38 --proxies 3 --act deliberation.pdf --key clerk.key
    --node http://127.0.0.1:7100 --wait
    """
    if (json_file is None) == (csv_file is None):
        usage_error("give exactly one of --json FILE or --csv FILE")
    if (act is None) == (act_sha256 is None):
        usage_error("give exactly one of --act FILE or --act-sha256 HEX")
    if json_file is not None:
        payload = read_payload(str(json_file))
    else:
        assert csv_file is not None, "checked above: exactly one source"
        payload = deliberation_from_csv(csv_file, row)
    payload.update({"sitting_id": sitting_id, "order_number": order_number,
                    "act_sha256": sha256_file(act) if act else str(act_sha256).lower()})
    options = {"members_present": present, "proxies": proxies, "ballot": ballot,
               "casting_vote": casting_vote}
    payload.update({name: value for name, value in options.items() if value is not None})
    if payload.get("members_present") is None:
        usage_error("give --present: the members present when the deliberation was voted "
                    "(the quorum is checked for each deliberation)")
    if not payload.get("COLL_SIRET"):
        usage_error("the deliberation has no COLL_SIRET (the municipality's 14-digit SIRET)")
    check_action("deliberations", "record", payload)
    _submit("deliberations", "record", payload, key, node, passphrase_env, passphrase_file,
            wait, chain_id, None, "COLL_SIRET")


@app.command("sitting", epilog=EXIT_CODES_HELP)
@guarded
def record_sitting(
    key: KeyFile,
    node: NodeUrl,
    sitting_id: Annotated[str, typer.Option("--sitting", help="Id of the sitting.")],
    date: Annotated[str, typer.Option("--date", help="Date of the sitting, YYYY-MM-DD.")],
    in_office: Annotated[int, typer.Option("--in-office", help="Members in office.")],
    present: Annotated[int, typer.Option("--present", help="Members present.")],
    second_convocation: Annotated[bool, typer.Option(
        "--second-convocation", help="Second convocation on the same agenda (no quorum).")
    ] = False,
    first_sitting: Annotated[str | None, typer.Option(
        "--first-sitting", help="Second convocation: the sitting that failed its quorum.")
    ] = None,
    siret: Siret = None,
    passphrase_env: PassphraseEnv = None,
    passphrase_file: PassphraseFile = None,
    wait: Wait = False,
    chain_id: ChainId = None,
) -> None:
    """Record a council sitting (deliberations are recorded within a sitting).

    Example: tabellion record sitting --sitting CM-2026-11 --date 2026-11-20 --in-office 45
    --present 38 --key clerk.key --node http://127.0.0.1:7100 --wait
    """
    payload: dict[str, Any] = {"sitting_id": sitting_id, "date": date,
                               "members_in_office": in_office, "members_present": present,
                               "second_convocation": second_convocation}
    if first_sitting is not None:
        payload["first_sitting_id"] = first_sitting
    _submit("deliberations", "record_sitting", payload, key, node, passphrase_env,
            passphrase_file, wait, chain_id, siret, "COLL_SIRET")


# --------------------------------------------------------------------------- social aid


@app.command("scheme", epilog=EXIT_CODES_HELP)
@guarded
def record_scheme(
    key: KeyFile,
    node: NodeUrl,
    scheme_id: Annotated[str, typer.Option("--scheme", help="Id of the scheme.")],
    name: Annotated[str, typer.Option("--name", help="Name of the scheme.")],
    budget_cents: Annotated[int, typer.Option("--budget-cents", help="Budget in cents.")],
    period_start: Annotated[str, typer.Option("--from", help="First month, YYYY-MM.")],
    period_end: Annotated[str, typer.Option("--to", help="Last month, YYYY-MM.")],
    ceiling_cents: Annotated[int, typer.Option(
        "--ceiling-cents", help="Most per beneficiary and month, in cents.")],
    decision_ref: Annotated[str, typer.Option(
        "--decision", help="DELIB_ID of the adopted deliberation that sets the budget, "
        "ceiling and four-eyes threshold.")],
    four_eyes_cents: Annotated[int, typer.Option(
        "--four-eyes-cents", help="Payments above this need a second agent.")] = 0,
    siret: Siret = None,
    passphrase_env: PassphraseEnv = None,
    passphrase_file: PassphraseFile = None,
    wait: Wait = False,
    chain_id: ChainId = None,
) -> None:
    """Create a social-aid scheme decided by the council (admin only): the deliberation
    --decision carries the same budget, ceiling and four-eyes threshold (aid_* fields).

    Example: tabellion record scheme --scheme energie-2026 --name "Aide énergie" --budget-cents
    5000000 --from 2026-01 --to 2026-12 --ceiling-cents 30000 --decision D2026-012
    --four-eyes-cents 20000 --key admin.key --node http://127.0.0.1:7100
    """
    payload: dict[str, Any] = {
        "scheme_id": scheme_id, "name": name, "budget_cents": budget_cents,
        "period_start": period_start, "period_end": period_end,
        "ceiling_cents": ceiling_cents, "decision_ref": decision_ref,
        "four_eyes_threshold_cents": four_eyes_cents,
    }
    _submit("social_aid", "create_scheme", payload, key, node, passphrase_env,
            passphrase_file, wait, chain_id, siret, "siret")


@app.command("disbursement", epilog=EXIT_CODES_HELP)
@guarded
def record_disbursement(
    key: KeyFile,
    node: NodeUrl,
    scheme_id: Annotated[str, typer.Option("--scheme", help="Id of the scheme.")],
    period: Annotated[str, typer.Option("--period", help="Month paid for, YYYY-MM.")],
    amount_cents: Annotated[int, typer.Option("--amount-cents", help="Amount in cents.")],
    case_number: Annotated[str, typer.Option(
        "--case-number", help="The beneficiary's case number; it never leaves this machine.")],
    tag_key: Annotated[Path, typer.Option(
        "--tag-key", help="The municipality's beneficiary-tag key file.")],
    cases: Annotated[Path | None, typer.Option(
        "--cases", help="The social service's case file (default: next to --tag-key, "
        "<tag key>.cases.json); created on first use.")] = None,
    siret: Siret = None,
    passphrase_env: PassphraseEnv = None,
    passphrase_file: PassphraseFile = None,
    wait: Wait = False,
    chain_id: ChainId = None,
) -> None:
    """Record an aid payment; the beneficiary is a tag keyed per scheme and month, of a
    random pseudonym of the case kept off chain (tabellion aid forget erases it).

    Example: tabellion record disbursement --scheme energie-2026 --period 2026-11
    --amount-cents 15000 --case-number CCAS-2026-0042 --tag-key beneficiary-tag.key
    --key social_aid_agent.key --node http://127.0.0.1:7100 --wait
    """
    case_keys = CaseKeys.open(tag_key, cases)

    def tag(payload: dict[str, Any]) -> None:
        payload["beneficiary"] = case_keys.tag(case_number, payload["siret"], scheme_id, period)
        check_action("social_aid", "disburse", payload)

    payload: dict[str, Any] = {"scheme_id": scheme_id, "period": period,
                               "amount_cents": amount_cents}
    _submit("social_aid", "disburse", payload, key, node, passphrase_env, passphrase_file,
            wait, chain_id, siret, "siret", tag)


# --------------------------------------------------------------------------- reports, notary


@app.command("report", epilog=EXIT_CODES_HELP)
@guarded
def record_report(
    key: KeyFile,
    node: NodeUrl,
    service_code: Annotated[str, typer.Option(
        "--service", help="Open311 service code, e.g. streetlight.")],
    description: Annotated[str, typer.Option(
        "--description", help="What was reported (no personal data).")],
    lat: Annotated[str | None, typer.Option(
        "--lat", help="Latitude, decimal degrees (kept to 4 decimals, about 10 m).")] = None,
    long: Annotated[str | None, typer.Option(
        "--long", help="Longitude, decimal degrees (kept to 4 decimals).")] = None,
    address: Annotated[str | None, typer.Option("--address", help="Address.")] = None,
    siret: Siret = None,
    passphrase_env: PassphraseEnv = None,
    passphrase_file: PassphraseFile = None,
    wait: Wait = False,
    chain_id: ChainId = None,
) -> None:
    """File a citizen's report (Open311) on their behalf.

    Example: tabellion record report --service streetlight --description "Lamp out, rue de
    Paris" --lat 48.8638 --long 2.4485 --key clerk.key --node http://127.0.0.1:7100 --wait
    """
    payload: dict[str, Any] = {"service_code": service_code, "description": description}
    if lat is not None:
        payload["lat"] = round_location(micro_degrees(lat, "lat", 90))
    if long is not None:
        payload["long"] = round_location(micro_degrees(long, "long", 180))
    if address is not None:
        payload["address_string"] = address
    _submit("reports", "submit", payload, key, node, passphrase_env, passphrase_file, wait,
            chain_id, siret, "siret")


@app.command("notarise", epilog=EXIT_CODES_HELP)
@guarded
def record_notarise(
    file: Annotated[Path, typer.Argument(help="The document; only its SHA-256 is sent.")],
    key: KeyFile,
    node: NodeUrl,
    document_type: Annotated[str, typer.Option(
        "--type", help="arrete, contrat, proces_verbal, ...")],
    reference: Annotated[str, typer.Option("--reference", help="e.g. ARR-2026-042.")],
    title: Annotated[str | None, typer.Option("--title", help="Title (no personal data).")
                     ] = None,
    siret: Siret = None,
    passphrase_env: PassphraseEnv = None,
    passphrase_file: PassphraseFile = None,
    wait: Wait = False,
    chain_id: ChainId = None,
) -> None:
    """Anchor the SHA-256 of a document, computed on this machine.

    Example: tabellion record notarise arrete-042.pdf --type arrete --reference ARR-2026-042
    --key clerk.key --node http://127.0.0.1:7100 --wait
    """
    payload: dict[str, Any] = {"sha256": sha256_file(file), "document_type": document_type,
                               "reference": reference}
    if title is not None:
        payload["title"] = title
    typer.echo(f"sha256 {payload['sha256']}  {file}")
    _submit("notary", "anchor", payload, key, node, passphrase_env, passphrase_file, wait,
            chain_id, siret, "siret")


"""``tabellion record …``: the common records, without writing JSON by hand.

Rules:
- Each command builds the payload of one contract action (docs/contracts.md) from
  options and files, then signs and submits it exactly like ``tabellion submit``.
- The contract's schema (``contracts.registry.Field``) is the one owner of a field's type,
  bounds and meaning: a command lists which option fills which field (``FieldOption``) and
  ``record_command`` derives the option's type, range, whether it is required and its
  help from the field. A new field is added in the contract and named once here. The
  options every command shares (``--key``, ``--node``, ``--siret``, passphrase,
  ``--wait``, ``--chain-id``) are added by ``record_command`` too.
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
import functools
import hashlib
import inspect
import io
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.client import NodeClient
from cli.common import (
    EXIT_CODES_HELP,
    EXIT_USAGE,
    CliError,
    PassphraseEnv,
    PassphraseFile,
    guarded,
    read_input_file,
    usage_error,
)
from cli.submit import (
    ChainId,
    KeyFile,
    NodeUrl,
    Wait,
    build_transaction,
    check_action,
    load_signing_key,
    read_payload,
    send,
)
from cli.tag_keys import CaseKeys
from contracts.deliberations import SCDL_FIELDS, VOTES
from contracts.engine import REGISTRY
from contracts.keys import member_key
from contracts.registry import Action, Field
from contracts.reports import round_location
from ledger.crypto import SigningKey
from ledger.encoding import decode

HASH_CHUNK_BYTES = 1 << 20
CSV_FILE_BYTES_MAX = 16 * 1024 * 1024
CSV_ROWS_MAX = 100_000
LAT_DEGREES_MAX = 90
LONG_DEGREES_MAX = 180

app = typer.Typer(help="Record deliberations, aid, citizen reports and documents.",
                  epilog=EXIT_CODES_HELP, no_args_is_help=True)

Siret = Annotated[str | None, typer.Option(
    "--siret", help="Your municipality's SIRET (default: read from your key's enrollment).")]

Payload = dict[str, Any]
Completion = Callable[[Payload], None]
"""Fills in what needs the SIRET (a beneficiary tag) once it is known, before signing."""
_SHARED_OPTIONS = ("key", "node", "siret", "passphrase_env", "passphrase_file", "wait",
                   "chain_id")


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


# --------------------------------------------------------------------------- options from fields


@dataclass(frozen=True, slots=True)
class FieldOption:
    """A command-line option that fills one payload field of the command's action."""

    field: str
    """The payload field, as the contract's schema names it."""
    option: str
    """The option, e.g. ``--sitting``; the name clerks type, kept stable for scripts."""
    required: bool | None = None
    """``None``: as the field. ``False``: the command may fill the field another way
    (from a file), and says so when it is missing."""
    default: Any = None
    """For an optional int field that the command fills anyway (``--four-eyes-cents``)."""


def field_help(spec: Field) -> str:
    """The field's documentation with its limits, as ``--help`` shows it (click adds the
    range of whole numbers itself)."""
    limits = ""
    if spec.kind == "str" and spec.choices:
        limits = f"One of: {', '.join(spec.choices)}."
    elif spec.kind == "str" and spec.hint:
        limits = f"Must be {spec.hint}."
    elif spec.kind == "str":
        limits = f"At most {spec.bytes_max} bytes."
    elif spec.kind == "date" and "YYYY-MM-DD" not in spec.doc:
        limits = "YYYY-MM-DD."
    elif spec.kind == "month" and "YYYY-MM" not in spec.doc:
        limits = "YYYY-MM."
    return f"{spec.doc} {limits}".strip()


def _option_parameter(action: Action, where: str, spec: FieldOption) -> inspect.Parameter:
    found = [f for f in action.fields if f.name == spec.field]
    assert found, f"{where}: the action has no field {spec.field}"
    field_ = found[0]
    required = field_.required if spec.required is None else spec.required
    help_text = field_help(field_)
    if field_.kind == "bool":
        option = typer.Option(spec.option, help=help_text)
        return inspect.Parameter(spec.field, inspect.Parameter.KEYWORD_ONLY,
                                 annotation=Annotated[bool, option], default=False)
    if field_.kind == "int":
        option = typer.Option(spec.option, help=help_text, min=field_.int_min,
                              max=field_.int_max)
        kind: Any = int
    else:
        assert field_.kind in ("str", "date", "month"), f"{where}: no option for {field_.kind}"
        option = typer.Option(spec.option, help=help_text)
        kind = str
    if required:
        return inspect.Parameter(spec.field, inspect.Parameter.KEYWORD_ONLY,
                                 annotation=Annotated[kind, option])
    return inspect.Parameter(spec.field, inspect.Parameter.KEYWORD_ONLY,
                             annotation=Annotated[kind | None, option], default=spec.default)


def _shared_parameters(with_siret: bool) -> tuple[list[inspect.Parameter], list[inspect.Parameter]]:
    def keyword(name: str, annotation: Any, default: Any = inspect.Parameter.empty
                ) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                 default=default)

    first = [keyword("key", KeyFile), keyword("node", NodeUrl)]
    last = [keyword("siret", Siret, None)] if with_siret else []
    last += [keyword("passphrase_env", PassphraseEnv, None),
             keyword("passphrase_file", PassphraseFile, None),
             keyword("wait", Wait, False), keyword("chain_id", ChainId, None)]
    return first, last


Body = Callable[..., Completion | None]


def record_command(name: str, contract: str, action: str, options: tuple[FieldOption, ...],
                   *, with_siret: bool = True) -> Callable[[Body], Body]:
    """Register ``tabellion record NAME`` for ``contract.action``.

    The decorated body receives the payload the field options filled (absent options are
    left out) and its own options, the parameters after ``payload``; it completes the
    payload (files, conversions) and may return a ``Completion`` to run once the SIRET is
    known. Its docstring is the command's help. Everything else is shared: the options of
    every command, the check before the passphrase is asked, signing and sending."""
    found = REGISTRY.lookup(contract, action)
    siret_field = found.municipality_field
    assert siret_field is not None, "every record names the municipality it writes for"
    where = f"record {name}"

    def register(body: Body) -> Body:
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for p in list(inspect.signature(body, eval_str=True).parameters.values())[1:]]
        fields = [_option_parameter(found, where, spec) for spec in options]
        first, last = _shared_parameters(with_siret)
        parameters = [*first, *fields, *own, *last]
        names = [p.name for p in parameters]
        assert len(set(names)) == len(names), f"{where}: an option name is used twice"
        field_names = {spec.field for spec in options}
        own_names = {p.name for p in own}

        @functools.wraps(body)
        def command(**values: Any) -> None:
            payload: Payload = {name: value for name, value in values.items()
                                if name in field_names and value is not None}
            if values.get("siret") is not None:
                payload[siret_field] = values["siret"]
            complete = body(payload, **{n: v for n, v in values.items() if n in own_names})
            _submit(contract, action, payload, siret_field, complete, key=values["key"],
                    node=values["node"], passphrase_env=values["passphrase_env"],
                    passphrase_file=values["passphrase_file"], wait=values["wait"],
                    chain_id=values["chain_id"])

        wrapped = guarded(command)
        # Typer reads the options from the signature; this one is built from the fields.
        wrapped.__signature__ = inspect.Signature(parameters, return_annotation=None)  # type: ignore[attr-defined]
        wrapped.__annotations__ = {p.name: p.annotation for p in parameters}
        wrapped.__annotations__["return"] = None
        app.command(name, epilog=EXIT_CODES_HELP)(wrapped)
        return body

    return register


def _submit(contract: str, action: str, payload: Payload, siret_field: str,
            complete: Completion | None, *, key: Path, node: str, passphrase_env: str | None,
            passphrase_file: Path | None, wait: bool, chain_id: str | None) -> None:
    """Fill in the SIRET, check, sign and submit; shared by every record command."""
    if payload.get(siret_field) is not None:
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
    text = read_input_file(path, CSV_FILE_BYTES_MAX, "CSV file").removeprefix("\ufeff")
    with io.StringIO(text, newline="") as handle:  # the BOM spreadsheets write is dropped
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


@record_command("deliberation", "deliberations", "record", (
    FieldOption("sitting_id", "--sitting"),
    FieldOption("order_number", "--order"),
    FieldOption("members_present", "--present", required=False),
    FieldOption("proxies", "--proxies"),
    FieldOption("ballot", "--ballot"),
    FieldOption("casting_vote", "--casting-vote"),
    FieldOption("act_sha256", "--act-sha256", required=False),
), with_siret=False)
def record_deliberation(
    payload: Payload,
    json_file: Annotated[Path | None, typer.Option(
        "--json", help="JSON object with the SCDL fields (COLL_NOM, DELIB_ID, ...).")] = None,
    csv_file: Annotated[Path | None, typer.Option(
        "--csv", help="SCDL Délibérations CSV file (comma or semicolon separated).")] = None,
    row: Annotated[int, typer.Option("--row", help="Row of --csv, from 1.", min=1)] = 1,
    act: Annotated[Path | None, typer.Option(
        "--act", help="The signed act (PDF): its SHA-256 is computed here.")] = None,
) -> None:
    """Record a council deliberation from a JSON file or a row of an SCDL CSV.

    Example: tabellion record deliberation --csv deliberations.csv --row 3 --sitting
    CM-2026-11 --order 4 --present 38 --proxies 3 --act deliberation.pdf --key clerk.key
    --node http://127.0.0.1:7100 --wait
    """
    if (json_file is None) == (csv_file is None):
        usage_error("give exactly one of --json FILE or --csv FILE")
    if (act is None) == ("act_sha256" not in payload):
        usage_error("give exactly one of --act FILE or --act-sha256 HEX")
    payload["act_sha256"] = sha256_file(act) if act else str(payload["act_sha256"]).lower()
    if json_file is not None:
        from_file = read_payload(str(json_file))
    else:
        assert csv_file is not None, "checked above: exactly one source"
        from_file = deliberation_from_csv(csv_file, row)
    for name, value in from_file.items():  # the options win over the file
        payload.setdefault(name, value)
    if payload.get("members_present") is None:
        usage_error("give --present: the members present when the deliberation was voted "
                    "(the quorum is checked for each deliberation)")
    if not payload.get("COLL_SIRET"):
        usage_error("the deliberation has no COLL_SIRET (the municipality's 14-digit SIRET)")


@record_command("sitting", "deliberations", "record_sitting", (
    FieldOption("sitting_id", "--sitting"),
    FieldOption("date", "--date"),
    FieldOption("members_in_office", "--in-office"),
    FieldOption("members_present", "--present"),
    FieldOption("second_convocation", "--second-convocation"),
    FieldOption("first_sitting_id", "--first-sitting"),
))
def record_sitting(payload: Payload) -> None:
    """Record a council sitting (deliberations are recorded within a sitting).

    Example: tabellion record sitting --sitting CM-2026-11 --date 2026-11-20 --in-office 45
    --present 38 --key clerk.key --node http://127.0.0.1:7100 --wait
    """


# --------------------------------------------------------------------------- social aid


@record_command("scheme", "social_aid", "create_scheme", (
    FieldOption("scheme_id", "--scheme"),
    FieldOption("name", "--name"),
    FieldOption("budget_cents", "--budget-cents"),
    FieldOption("period_start", "--from"),
    FieldOption("period_end", "--to"),
    FieldOption("ceiling_cents", "--ceiling-cents"),
    FieldOption("decision_ref", "--decision"),
    FieldOption("four_eyes_threshold_cents", "--four-eyes-cents", required=False, default=0),
))
def record_scheme(payload: Payload) -> None:
    """Create a social-aid scheme decided by the council (admin only): the deliberation
    --decision carries the same budget, ceiling and four-eyes threshold (aid_* fields).

    Example: tabellion record scheme --scheme energie-2026 --name "Aide énergie" --budget-cents
    5000000 --from 2026-01 --to 2026-12 --ceiling-cents 30000 --decision D2026-012
    --four-eyes-cents 20000 --key admin.key --node http://127.0.0.1:7100
    """


@record_command("disbursement", "social_aid", "disburse", (
    FieldOption("scheme_id", "--scheme"),
    FieldOption("period", "--period"),
    FieldOption("amount_cents", "--amount-cents"),
))
def record_disbursement(
    payload: Payload,
    case_number: Annotated[str, typer.Option(
        "--case-number", help="The beneficiary's case number; it never leaves this machine.")],
    tag_key: Annotated[Path, typer.Option(
        "--tag-key", help="The municipality's beneficiary-tag key file.")],
    cases: Annotated[Path | None, typer.Option(
        "--cases", help="The social service's case file (default: next to --tag-key, "
        "<tag key>.cases.json); created on first use.")] = None,
) -> Completion:
    """Record an aid payment; the beneficiary is a tag keyed per scheme and month, of a
    random pseudonym of the case kept off chain (tabellion aid forget erases it).

    Example: tabellion record disbursement --scheme energie-2026 --period 2026-11
    --amount-cents 15000 --case-number CCAS-2026-0042 --tag-key beneficiary-tag.key
    --key social_aid_agent.key --node http://127.0.0.1:7100 --wait
    """
    case_keys = CaseKeys.open(tag_key, cases)

    def tag(payload: Payload) -> None:
        payload["beneficiary"] = case_keys.tag(case_number, payload["siret"],
                                               payload["scheme_id"], payload["period"])

    return tag


# --------------------------------------------------------------------------- reports, notary


@record_command("report", "reports", "submit", (
    FieldOption("service_code", "--service"),
    FieldOption("description", "--description"),
    FieldOption("address_string", "--address"),
))
def record_report(
    payload: Payload,
    lat: Annotated[str | None, typer.Option(
        "--lat", help=f"Latitude, decimal degrees within ±{LAT_DEGREES_MAX} (kept to 4 "
        "decimals, about 10 m).")] = None,
    long: Annotated[str | None, typer.Option(
        "--long", help=f"Longitude, decimal degrees within ±{LONG_DEGREES_MAX} (kept to 4 "
        "decimals).")] = None,
) -> None:
    """File a citizen's report (Open311) on their behalf.

    Example: tabellion record report --service streetlight --description "Lamp out, rue de
    Paris" --lat 48.8638 --long 2.4485 --key clerk.key --node http://127.0.0.1:7100 --wait
    """
    if lat is not None:
        payload["lat"] = round_location(micro_degrees(lat, "lat", LAT_DEGREES_MAX))
    if long is not None:
        payload["long"] = round_location(micro_degrees(long, "long", LONG_DEGREES_MAX))


@record_command("notarise", "notary", "anchor", (
    FieldOption("document_type", "--type"),
    FieldOption("reference", "--reference"),
    FieldOption("title", "--title"),
))
def record_notarise(
    payload: Payload,
    file: Annotated[Path, typer.Argument(help="The document; only its SHA-256 is sent.")],
) -> None:
    """Anchor the SHA-256 of a document, computed on this machine.

    Example: tabellion record notarise arrete-042.pdf --type arrete --reference ARR-2026-042
    --key clerk.key --node http://127.0.0.1:7100 --wait
    """
    payload["sha256"] = sha256_file(file)
    typer.echo(f"sha256 {payload['sha256']}  {file}")

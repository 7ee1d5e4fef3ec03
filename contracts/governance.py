"""Governance: proposals that a qualified majority of municipalities approves.

Rules:
- A proposal adds a municipality (name, SIRET, validator key, first admin key, and the
  validator's network address), removes one, replaces a municipality's validator key
  (``replace_validator_key``: the old key leaves the set, is retired and never comes
  back), or changes a parameter of ``PARAMETERS``.
- ``validator_address`` (``host:port``, ``ledger.address``) is optional, so proposals
  made before it existed stay valid and replay identically; it is stored only when
  given. The nodes dial a validator at its on-chain address (a node's configured peer
  address, if any, wins); without one, every node must list it in its configuration.
- A proposal's id is the hex id of the proposing transaction (known to the proposer
  before submitting).
- Only an admin votes, once per municipality, for its own municipality; proposing counts
  as the proposer municipality's approval.
- A proposal passes as soon as ``approvals >= ceil(numerator * n / denominator)`` where n
  is the number of active municipalities and the fraction is the governance parameter
  (genesis ``approval_numerator/approval_denominator``, two thirds by default). Only
  approvals of municipalities still active count. It is then applied in the same
  transaction; if it can no longer apply (the SIRET was added meanwhile), the approving
  transaction is refused with the reason and the proposal stays open.
- A proposal expires ``PROPOSAL_LIFETIME_MS`` after it was made (block time).
- Adding or removing a municipality, or replacing its validator key, changes
  ``sys/validators``; the engine reports the new set in ``BlockResult.validator_set``
  and consensus applies it at a checkpoint boundary (``ledger.validator_history``): from
  that height on, only the new key's votes count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts import identity, keys
from contracts.registry import (
    SIRET,
    Action,
    Context,
    Contract,
    hex64,
    integer,
    reject,
    siret,
    text,
)
from contracts.view import Overlay, StateView
from ledger.address import (
    ADDRESS_HINT,
    PEER_ADDRESS_BYTES_MAX,
    PEER_ADDRESS_RE,
    peer_address_problem,
)
from ledger.encoding import Value
from ledger.genesis import (
    APPROVAL_DENOMINATOR_MAX,
    BLOCK_BYTES_MAX_CEILING,
    BLOCK_BYTES_MAX_FLOOR,
    BLOCK_TXS_MAX_CEILING,
    VIEW_TIMEOUT_MS_MAX,
    VIEW_TIMEOUT_MS_MIN,
    Genesis,
)
from ledger.records import NAME_BYTES_MAX

PROPOSAL_LIFETIME_MS = 30 * 24 * 3600 * 1000
"""A proposal not passed within 30 days (block time) expires."""
KINDS = ("add_municipality", "remove_municipality", "replace_validator_key", "set_parameter")


@dataclass(frozen=True, slots=True)
class Parameter:
    """A parameter governance may change, with its bounds (the genesis file's bounds)."""

    name: str
    low: int
    high: int
    doc: str


PARAMETERS = (
    # The genesis bound, so governance reaches every fraction a genesis may hold (ADR 0018).
    Parameter("approval_numerator", 1, APPROVAL_DENOMINATOR_MAX,
              "Governance fraction numerator."),
    Parameter("approval_denominator", 1, APPROVAL_DENOMINATOR_MAX,
              "Governance fraction denominator."),
    Parameter("block_txs_max", 1, BLOCK_TXS_MAX_CEILING, "Most transactions per block."),
    Parameter("block_bytes_max", BLOCK_BYTES_MAX_FLOOR, BLOCK_BYTES_MAX_CEILING,
              "Most transaction bytes per block."),
    Parameter("view_timeout_ms", VIEW_TIMEOUT_MS_MIN, VIEW_TIMEOUT_MS_MAX,
              "Base view-change timeout."),
)
_BY_NAME = {p.name: p for p in PARAMETERS}


def write_genesis(state: Overlay, genesis: Genesis) -> None:
    values = {
        "approval_numerator": genesis.approval_numerator,
        "approval_denominator": genesis.approval_denominator,
        "block_txs_max": genesis.consensus.block_txs_max,
        "block_bytes_max": genesis.consensus.block_bytes_max,
        "view_timeout_ms": genesis.consensus.view_timeout_ms,
    }
    for name in sorted(values):
        keys.write(state, keys.param_key(name), values[name])


def parameter(state: StateView, name: str) -> int:
    """The value in force of a parameter of ``PARAMETERS``."""
    value = keys.read(state, keys.param_key(name))
    assert isinstance(value, int), f"parameter {name} is set at genesis"
    return value


def parameters(state: StateView) -> dict[str, int]:
    return {p.name: parameter(state, p.name) for p in PARAMETERS}


def needed_approvals(state: StateView) -> tuple[int, int]:
    """(approvals needed, active municipalities) under the fraction in force."""
    n = len(identity.active_municipalities(state))
    num = parameter(state, "approval_numerator")
    den = parameter(state, "approval_denominator")
    return (num * n + den - 1) // den, n


def proposal(state: StateView, proposal_id: str) -> dict[str, Any] | None:
    """The proposal record (kind, its arguments, approvals, status), or ``None``."""
    return keys.read_map(state, keys.proposal_key(proposal_id))


# ---------------------------------------------------------------- applicability
_KIND_FIELDS = {
    "add_municipality": ("municipality_name", "municipality_siret", "validator_key", "admin_key"),
    "remove_municipality": ("municipality_siret",),
    "replace_validator_key": ("municipality_siret", "validator_key"),
    "set_parameter": ("parameter", "value"),
}
_KIND_OPTIONAL = {
    "add_municipality": ("validator_address",),
    "replace_validator_key": ("validator_address",),
}
"""Fields a kind accepts without needing them; a proposal's record holds them only when
given (a proposal without them is stored exactly as before they existed)."""


def _check_applicable(state: StateView, p: dict[str, Any]) -> None:
    """Refuse unless the proposal can be applied to ``state`` now."""
    kind = p["kind"]
    if kind == "add_municipality":
        siret = p["municipality_siret"]
        existing = identity.municipality(state, siret)
        if existing is not None and existing["active"]:
            reject("municipality_exists",
                   f"municipality {siret} ({existing['name']}) is already in the network")
        if len(identity.active_municipalities(state)) >= identity.MUNICIPALITIES_MAX:
            reject("too_many_municipalities",
                   f"the network already has {identity.MUNICIPALITIES_MAX} municipalities")
        if p["validator_key"] == p["admin_key"]:
            reject("invalid_payload",
                   "validator_key and admin_key must differ: a validator signs votes, "
                   "an admin signs records")
        identity.check_new_validator_key(state, p["validator_key"])
        identity.check_new_key(state, p["admin_key"], "admin_key")
    elif kind == "replace_validator_key":
        siret = p["municipality_siret"]
        existing = identity.municipality(state, siret)
        if existing is None or not existing["active"]:
            reject("unknown_municipality", f"municipality {siret} is not in the network")
        identity.check_new_validator_key(state, p["validator_key"])
    elif kind == "remove_municipality":
        siret = p["municipality_siret"]
        existing = identity.municipality(state, siret)
        if existing is None or not existing["active"]:
            reject("unknown_municipality", f"municipality {siret} is not in the network")
        if len(identity.active_municipalities(state)) <= 1:
            reject("last_municipality",
                   "the network cannot remove its last municipality")
    else:
        spec = _BY_NAME[p["parameter"]]
        value = p["value"]
        if not spec.low <= value <= spec.high:
            reject("invalid_parameter",
                   f"{spec.name} must be between {spec.low} and {spec.high} (got {value})")
        fraction = {
            "approval_numerator": parameter(state, "approval_numerator"),
            "approval_denominator": parameter(state, "approval_denominator"),
            spec.name: value,
        }
        if fraction["approval_numerator"] > fraction["approval_denominator"]:
            reject("invalid_parameter",
                   f"the approval fraction would become {fraction['approval_numerator']}/"
                   f"{fraction['approval_denominator']}, more than all municipalities")


def _enact(state: Overlay, p: dict[str, Any], height: int) -> None:
    kind = p["kind"]
    if kind == "add_municipality":
        identity.add_municipality(state, p["municipality_name"], p["municipality_siret"],
                                  p["validator_key"], [p["admin_key"]], height,
                                  p.get("validator_address"))
    elif kind == "replace_validator_key":
        identity.replace_validator_key(state, p["municipality_siret"], p["validator_key"],
                                       p.get("validator_address"), height)
    elif kind == "remove_municipality":
        identity.remove_municipality(state, p["municipality_siret"], height)
    else:
        keys.write(state, keys.param_key(p["parameter"]), p["value"])


def _count(state: StateView, approvals: list[str]) -> int:
    active = set(identity.active_municipalities(state))
    return sum(1 for s in approvals if s in active)


# ---------------------------------------------------------------- actions
def _validate_propose(ctx: Context) -> None:
    kind = ctx.payload["kind"]
    wanted = _KIND_FIELDS[kind]
    accepted = (*wanted, *_KIND_OPTIONAL.get(kind, ()))
    every = {n for names in (*_KIND_FIELDS.values(), *_KIND_OPTIONAL.values()) for n in names}
    for name in sorted(every):
        present = ctx.payload.get(name) is not None
        if name in wanted and not present:
            reject("invalid_payload", f"the field {name} is missing; a {kind} proposal needs it")
        if present and name not in accepted:
            reject("invalid_payload", f"the field {name} has no meaning in a {kind} proposal; "
                   "remove it")
    if kind == "set_parameter" and ctx.payload["parameter"] not in _BY_NAME:
        reject("invalid_parameter",
               f"parameter {ctx.payload['parameter']!r} cannot be changed by governance "
               f"(changeable: {', '.join(_BY_NAME)})")
    _check_applicable(ctx.state, _proposal_args(ctx))
    # The proposal id is the tx id, and the replay guard commits an id once: no clash.
    assert proposal(ctx.state, ctx.tx.tx_id.hex()) is None


def _proposal_args(ctx: Context) -> dict[str, Any]:
    kind = ctx.payload["kind"]
    optional = {n: ctx.payload[n] for n in _KIND_OPTIONAL.get(kind, ())
                if ctx.payload.get(n) is not None}
    return {"kind": kind, **{n: ctx.payload[n] for n in _KIND_FIELDS[kind]}, **optional}


def _decide(ctx: Context, pid: str, record: dict[str, Any]) -> dict[str, Value]:
    needed, n = needed_approvals(ctx.state)
    have = _count(ctx.state, record["approvals"])
    if have >= needed:
        _enact(ctx.state, record, ctx.env.height)
        record = {**record, "status": "passed", "passed_height": ctx.env.height}
    keys.write(ctx.state, keys.proposal_key(pid), record)
    return {"proposal_id": pid, "status": record["status"], "approvals": have,
            "needed": needed, "municipalities": n}


def _apply_propose(ctx: Context) -> dict[str, Value]:
    pid = ctx.tx.tx_id.hex()
    record = {
        **_proposal_args(ctx),
        "reason": ctx.get("reason", ""),
        "proposer_siret": ctx.signer.siret,
        "proposed_height": ctx.env.height,
        "expires_ms": ctx.env.time_ms + PROPOSAL_LIFETIME_MS,
        "approvals": [ctx.signer.siret],
        "status": "open",
        "passed_height": None,
    }
    return _decide(ctx, pid, record)


def _open_proposal(ctx: Context) -> dict[str, Any]:
    pid = ctx.payload["proposal_id"]
    record = proposal(ctx.state, pid)
    if record is None:
        reject("unknown_proposal", f"there is no proposal {pid[:16]}…; check the id "
               "(it is the id of the transaction that made the proposal)")
    if record["status"] != "open":
        reject("proposal_closed",
               f"proposal {pid[:16]}… already passed at height {record['passed_height']}")
    if ctx.env.time_ms > record["expires_ms"]:
        reject("proposal_expired",
               f"proposal {pid[:16]}… expired at {record['expires_ms']} ms; make a new one")
    return record


def _validate_approve(ctx: Context) -> None:
    record = _open_proposal(ctx)
    if ctx.signer.siret in record["approvals"]:
        reject("already_approved",
               f"municipality {ctx.signer.siret} already approved this proposal; "
               "each municipality votes once")
    needed, _ = needed_approvals(ctx.state)
    if _count(ctx.state, [*record["approvals"], ctx.signer.siret]) >= needed:
        _check_applicable(ctx.state, record)


def _apply_approve(ctx: Context) -> dict[str, Value]:
    record = _open_proposal(ctx)
    record = {**record, "approvals": sorted([*record["approvals"], ctx.signer.siret])}
    return _decide(ctx, ctx.payload["proposal_id"], record)


CONTRACT = Contract("governance", (
    Action("propose", (
        SIRET,
        text("kind", 32, choices=KINDS, doc="add_municipality, remove_municipality, "
             "replace_validator_key or set_parameter."),
        text("municipality_name", NAME_BYTES_MAX, required=False,
             doc="add_municipality: official name."),
        siret("municipality_siret", "add/remove_municipality, replace_validator_key: its "
              "SIRET.", required=False),
        hex64("validator_key", required=False, doc="add_municipality: its validator key; "
              "replace_validator_key: the new validator key."),
        text("validator_address", PEER_ADDRESS_BYTES_MAX, required=False,
             pattern=PEER_ADDRESS_RE, hint=ADDRESS_HINT, value_check=peer_address_problem,
             doc="add_municipality, replace_validator_key (optional): host:port where the "
                 "other validators dial its validator."),
        hex64("admin_key", required=False, doc="add_municipality: its first admin key."),
        text("parameter", 64, required=False, doc="set_parameter: name (see PARAMETERS)."),
        integer("value", 0, 2**32, required=False, doc="set_parameter: new value."),
        text("reason", 1024, required=False, doc="Why (kept on chain)."),
    ), ("admin",), "siret", _validate_propose, _apply_propose,
        "Make a proposal; it counts as your municipality's approval."),
    Action("approve", (SIRET, hex64("proposal_id", doc="Id of the proposing transaction.")),
           ("admin",), "siret", _validate_approve, _apply_approve,
           "Approve a proposal for your municipality (once)."),
), "Network membership and parameters, by qualified majority of municipalities.")

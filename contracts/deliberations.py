"""Council sittings and deliberations, with the SCDL *Délibérations* field names.

Rules:
- A sitting (``record_sitting``) records the members in office, the members present, the
  date and whether it meets on a second convocation (CGCT L2121-17: on a second
  convocation on the same agenda no quorum is required).
- Quorum: a deliberation is recorded only in a sitting where more than half of the
  members in office were present (``present * 2 > in_office``), unless on second
  convocation (``quorum_not_met``).
- Vote arithmetic (``vote_arithmetic``): VOTE_POUR + VOTE_CONTRE + VOTE_ABSTENTION <=
  VOTE_REEL <= VOTE_EFFECTIF, and VOTE_EFFECTIF is the sitting's members in office. The
  five counts come together or not at all (an act taken without a vote, "prend acte").
- Outcome, stored with the record: ``adopted`` iff VOTE_POUR > VOTE_CONTRE, else
  ``rejected``; ``no_vote`` when no counts are given.
- DELIB_ID is unique within the municipality; the order number is unique within its
  sitting, except that a correction takes over the number of the record it corrects.
- DELIB_DATE is the sitting's date and is not after the block date; PREF_DATE (filing
  with the prefecture) is not before DELIB_DATE.
- Records are never rewritten. A correction (``correct``) or a withdrawal (``withdraw``)
  is a new record whose ``replaces`` names the current version; an index
  ``delib/head/<siret>/<original id>`` points to the current version of each chain.
- The SHA-256 (hex) of the signed act is stored with each record.
"""

from __future__ import annotations

import re
from typing import Any

from contracts import identity, keys
from contracts.registry import (
    Action,
    Context,
    Contract,
    Field,
    block_date,
    hex64,
    integer,
    iso_date,
    reject,
    text,
)
from contracts.view import StateView
from ledger.encoding import Value

MEMBERS_IN_OFFICE_MAX = 1_000
ORDER_NUMBER_MAX = 9_999
MATIERE_CODE_RE = re.compile(r"^[0-9]\.[0-9]{1,2}$")
URL_RE = re.compile(r"^https?://[^\s]+$")
YEAR_RE = re.compile(r"^[0-9]{4}$")
VOTES = ("VOTE_EFFECTIF", "VOTE_REEL", "VOTE_POUR", "VOTE_CONTRE", "VOTE_ABSTENTION")
SCDL_FIELDS = (
    "COLL_NOM", "COLL_SIRET", "DELIB_ID", "DELIB_DATE", "DELIB_MATIERE_CODE",
    "DELIB_MATIERE_NOM", "DELIB_OBJET", "BUDGET_ANNEE", "BUDGET_NOM", "PREF_ID", "PREF_DATE",
    "VOTE_EFFECTIF", "VOTE_REEL", "VOTE_POUR", "VOTE_CONTRE", "VOTE_ABSTENTION", "DELIB_URL",
)
"""The SCDL Délibérations columns, in the schema's order (schema.data.gouv.fr)."""


def _id(name: str, doc: str, required: bool = True) -> Field:
    return text(name, 64, pattern=keys.ID_RE, required=required,
                hint="1 to 64 letters, digits, '.', '_' or '-' (no '/')", doc=doc)


COLL_SIRET = text("COLL_SIRET", 14, pattern=keys.SIRET_RE, hint="the 14-digit SIRET",
                  doc="SIRET of the municipality (must be the signer's).")


# ---------------------------------------------------------------- queries
def sitting(state: StateView, siret: str, sitting_id: str) -> dict[str, Any] | None:
    return keys.read_map(state, keys.sitting_key(siret, sitting_id))


def deliberation(state: StateView, siret: str, delib_id: str) -> dict[str, Any] | None:
    """One record, exactly as recorded (it may have been corrected or withdrawn since)."""
    return keys.read_map(state, keys.deliberation_key(siret, delib_id))


def current_deliberation(state: StateView, siret: str, delib_id: str) -> dict[str, Any] | None:
    """The current version of the deliberation that ``delib_id`` (any version) belongs to:
    the latest correction, or the withdrawal record (``kind == "withdrawal"``)."""
    record = deliberation(state, siret, delib_id)
    if record is None:
        return None
    head = keys.read(state, keys.head_key(siret, record["root"]))
    assert isinstance(head, str), "every chain has a head"
    return deliberation(state, siret, head)


def quorum_needed(members_in_office: int) -> int:
    """Smallest number present that is more than half of the members in office."""
    return members_in_office // 2 + 1


# ---------------------------------------------------------------- record_sitting
def _validate_sitting(ctx: Context) -> None:
    p = ctx.payload
    if p["members_present"] > p["members_in_office"]:
        reject("invalid_sitting",
               f"members_present ({p['members_present']}) cannot exceed members_in_office "
               f"({p['members_in_office']})")
    if p["date"] > block_date(ctx.env.time_ms):
        reject("date_in_future",
               f"the sitting date {p['date']} is after today ({block_date(ctx.env.time_ms)})")
    if sitting(ctx.state, p["COLL_SIRET"], p["sitting_id"]) is not None:
        reject("duplicate_sitting",
               f"sitting {p['sitting_id']} is already recorded; choose another sitting_id")


def _apply_sitting(ctx: Context) -> dict[str, Value]:
    p = ctx.payload
    needed = quorum_needed(p["members_in_office"])
    quorum_met = p["second_convocation"] or p["members_present"] >= needed
    keys.write(ctx.state, keys.sitting_key(p["COLL_SIRET"], p["sitting_id"]), {
        "sitting_id": p["sitting_id"], "date": p["date"],
        "members_in_office": p["members_in_office"], "members_present": p["members_present"],
        "second_convocation": p["second_convocation"], "quorum_met": quorum_met,
        "height": ctx.env.height,
    })
    return {"sitting_id": p["sitting_id"], "quorum_met": quorum_met, "quorum_needed": needed}


# ---------------------------------------------------------------- record / correct
def _check_votes(p: Any, in_office: int) -> str:
    """Check the vote counts; return the outcome."""
    given = [name for name in VOTES if p.get(name) is not None]
    if not given:
        return "no_vote"
    if len(given) != len(VOTES):
        missing = ", ".join(n for n in VOTES if n not in given)
        reject("invalid_payload",
               f"{', '.join(given)} given but {missing} missing: give all five vote counts "
               "or none")
    eff, reel = p["VOTE_EFFECTIF"], p["VOTE_REEL"]
    pour, contre, abst = p["VOTE_POUR"], p["VOTE_CONTRE"], p["VOTE_ABSTENTION"]
    if eff != in_office:
        reject("vote_arithmetic",
               f"VOTE_EFFECTIF is {eff} but the sitting has {in_office} members in office")
    if reel > eff:
        reject("vote_arithmetic",
               f"VOTE_REEL ({reel}) cannot exceed VOTE_EFFECTIF ({eff})")
    if pour + contre + abst > reel:
        reject("vote_arithmetic",
               f"VOTE_POUR + VOTE_CONTRE + VOTE_ABSTENTION = {pour} + {contre} + {abst} = "
               f"{pour + contre + abst}, more than the {reel} members voting (VOTE_REEL)")
    return "adopted" if pour > contre else "rejected"


def _check_act(ctx: Context, *, replaces: dict[str, Any] | None) -> str:
    """Every rule of a deliberation record; returns its outcome."""
    p, state = ctx.payload, ctx.state
    siret = p["COLL_SIRET"]
    muni = identity.municipality(state, siret)
    assert muni is not None, "the signer's municipality exists"
    if p["COLL_NOM"] != muni["name"]:
        reject("coll_nom_mismatch",
               f"COLL_NOM is {p['COLL_NOM']!r} but municipality {siret} is registered as "
               f"{muni['name']!r}; use the registered name")
    if deliberation(state, siret, p["DELIB_ID"]) is not None:
        reject("duplicate_delib_id",
               f"DELIB_ID {p['DELIB_ID']} is already recorded; a correction needs a new "
               "DELIB_ID and replaces the old one")
    s = sitting(state, siret, p["sitting_id"])
    if s is None:
        reject("unknown_sitting",
               f"sitting {p['sitting_id']} is not recorded; record the sitting first")
    if p["DELIB_DATE"] != s["date"]:
        reject("date_mismatch",
               f"DELIB_DATE {p['DELIB_DATE']} differs from the date of sitting "
               f"{p['sitting_id']} ({s['date']})")
    if not s["quorum_met"]:
        reject("quorum_not_met",
               f"the sitting has {s['members_present']} members present out of "
               f"{s['members_in_office']} in office; a quorum of "
               f"{quorum_needed(s['members_in_office'])} is needed (or a second convocation)")
    if p.get("PREF_DATE") is not None and p["PREF_DATE"] < p["DELIB_DATE"]:
        reject("pref_date_before_delib",
               f"PREF_DATE {p['PREF_DATE']} is before DELIB_DATE {p['DELIB_DATE']}: an act "
               "is filed with the prefecture after it is taken")
    if p.get("PREF_DATE") is not None and p["PREF_DATE"] > block_date(ctx.env.time_ms):
        reject("date_in_future", f"PREF_DATE {p['PREF_DATE']} is after today "
               f"({block_date(ctx.env.time_ms)})")
    holder = keys.read(state, keys.order_key(siret, p["sitting_id"], p["order_number"]))
    if holder is not None:
        held = deliberation(state, siret, holder)
        assert held is not None
        if replaces is None or held["root"] != replaces["root"]:
            reject("duplicate_order_number",
                   f"order number {p['order_number']} of sitting {p['sitting_id']} is "
                   f"already used by {holder}; order numbers are unique within a sitting")
    return _check_votes(p, s["members_in_office"])


def _current_target(ctx: Context) -> dict[str, Any]:
    """The record named by ``replaces``; it must be the current version, not withdrawn."""
    siret, old_id = ctx.payload["COLL_SIRET"], ctx.payload["replaces"]
    old = deliberation(ctx.state, siret, old_id)
    if old is None:
        reject("unknown_deliberation", f"deliberation {old_id} is not recorded")
    head = current_deliberation(ctx.state, siret, old_id)
    assert head is not None
    if head["kind"] == "withdrawal":
        reject("already_withdrawn",
               f"deliberation {old_id} was withdrawn by {head['DELIB_ID']}; it cannot change")
    if head["DELIB_ID"] != old_id:
        reject("not_current_version",
               f"{old_id} was already replaced; the current version is {head['DELIB_ID']}: "
               "reference that one")
    return old


def _act_record(ctx: Context, outcome: str, kind: str, root: str, replaces: str | None
                ) -> dict[str, Any]:
    p = ctx.payload
    record: dict[str, Any] = {name: p.get(name) for name in SCDL_FIELDS}
    record.update({
        "sitting_id": p.get("sitting_id"), "order_number": p.get("order_number"),
        "act_sha256": p["act_sha256"], "outcome": outcome, "kind": kind,
        "replaces": replaces, "root": root, "reason": p.get("reason"),
        "height": ctx.env.height, "time_ms": ctx.env.time_ms, "signer": ctx.signer.key_hex,
    })
    return record


def _store(ctx: Context, record: dict[str, Any]) -> dict[str, Value]:
    siret, delib_id = ctx.payload["COLL_SIRET"], ctx.payload["DELIB_ID"]
    keys.write(ctx.state, keys.deliberation_key(siret, delib_id), record)
    keys.write(ctx.state, keys.head_key(siret, record["root"]), delib_id)
    if record["order_number"] is not None:
        keys.write(ctx.state,
                   keys.order_key(siret, record["sitting_id"], record["order_number"]), delib_id)
    return {"DELIB_ID": delib_id, "outcome": record["outcome"], "kind": record["kind"],
            "replaces": record["replaces"], "root": record["root"]}


def _validate_record(ctx: Context) -> None:
    _check_act(ctx, replaces=None)


def _apply_record(ctx: Context) -> dict[str, Value]:
    outcome = _check_act(ctx, replaces=None)
    return _store(ctx, _act_record(ctx, outcome, "original", ctx.payload["DELIB_ID"], None))


def _validate_correct(ctx: Context) -> None:
    _check_act(ctx, replaces=_current_target(ctx))


def _apply_correct(ctx: Context) -> dict[str, Value]:
    old = _current_target(ctx)
    outcome = _check_act(ctx, replaces=old)
    return _store(ctx, _act_record(ctx, outcome, "correction", old["root"],
                                   ctx.payload["replaces"]))


def _validate_withdraw(ctx: Context) -> None:
    p = ctx.payload
    old = _current_target(ctx)
    if deliberation(ctx.state, p["COLL_SIRET"], p["DELIB_ID"]) is not None:
        reject("duplicate_delib_id", f"DELIB_ID {p['DELIB_ID']} is already recorded")
    if p["DELIB_DATE"] < old["DELIB_DATE"]:
        reject("date_mismatch", f"a withdrawal ({p['DELIB_DATE']}) cannot predate the act it "
               f"withdraws ({old['DELIB_DATE']})")
    if p["DELIB_DATE"] > block_date(ctx.env.time_ms):
        reject("date_in_future", f"DELIB_DATE {p['DELIB_DATE']} is after today "
               f"({block_date(ctx.env.time_ms)})")


def _apply_withdraw(ctx: Context) -> dict[str, Value]:
    old = _current_target(ctx)
    record = _act_record(ctx, "withdrawn", "withdrawal", old["root"], ctx.payload["replaces"])
    # A withdrawal names what it withdraws; it has no vote, filing or URL of its own.
    for name in ("COLL_NOM", "DELIB_MATIERE_CODE", "DELIB_MATIERE_NOM", "DELIB_OBJET"):
        record[name] = old[name]
    return _store(ctx, record)


# ---------------------------------------------------------------- schema
_ACT_FIELDS: tuple[Field, ...] = (
    text("COLL_NOM", 256, doc="Official name of the municipality (as registered)."),
    COLL_SIRET,
    _id("DELIB_ID", "Identifier of the deliberation, unique in the municipality."),
    iso_date("DELIB_DATE", doc="Date of the vote (the sitting's date), YYYY-MM-DD."),
    text("DELIB_MATIERE_CODE", 5, pattern=MATIERE_CODE_RE,
         hint="an @ctes subject code such as 7.1 or 9.12",
         doc="Subject code of the @ctes nomenclature, digit.digit(s)."),
    text("DELIB_MATIERE_NOM", 256, doc="Subject name of the @ctes nomenclature."),
    text("DELIB_OBJET", 4000, doc="What the deliberation is about."),
    text("BUDGET_ANNEE", 4, pattern=YEAR_RE, hint="a year of 4 digits", required=False,
         doc="Budget year concerned."),
    text("BUDGET_NOM", 256, required=False, doc="Budget concerned."),
    text("PREF_ID", 64, required=False, doc="Id of the prefecture's legality control."),
    iso_date("PREF_DATE", required=False, doc="Date filed with the prefecture."),
    integer("VOTE_EFFECTIF", 1, MEMBERS_IN_OFFICE_MAX, required=False,
            doc="Members in office."),
    integer("VOTE_REEL", 0, MEMBERS_IN_OFFICE_MAX, required=False,
            doc="Members voting (present or represented)."),
    integer("VOTE_POUR", 0, MEMBERS_IN_OFFICE_MAX, required=False, doc="Votes for."),
    integer("VOTE_CONTRE", 0, MEMBERS_IN_OFFICE_MAX, required=False, doc="Votes against."),
    integer("VOTE_ABSTENTION", 0, MEMBERS_IN_OFFICE_MAX, required=False, doc="Abstentions."),
    text("DELIB_URL", 512, pattern=URL_RE, hint="an http(s) URL", required=False,
         doc="Where the act is published."),
    hex64("act_sha256", doc="SHA-256 (hex) of the signed act (PDF)."),
    _id("sitting_id", "The sitting it was taken in."),
    integer("order_number", 1, ORDER_NUMBER_MAX, doc="Order number within the sitting."),
)

CONTRACT = Contract("deliberations", (
    Action("record_sitting", (
        COLL_SIRET,
        _id("sitting_id", "Identifier of the sitting, unique in the municipality."),
        iso_date("date", doc="Date of the sitting."),
        integer("members_in_office", 1, MEMBERS_IN_OFFICE_MAX, doc="Members in office."),
        integer("members_present", 0, MEMBERS_IN_OFFICE_MAX, doc="Members present."),
        Field("second_convocation", "bool",
              doc="True if the council meets on a second convocation (no quorum needed)."),
    ), ("clerk", "admin"), "COLL_SIRET", _validate_sitting, _apply_sitting,
        "Record a council sitting."),
    Action("record", _ACT_FIELDS, ("clerk", "admin"), "COLL_SIRET", _validate_record,
           _apply_record, "Record a deliberation taken in a sitting."),
    Action("correct", (*_ACT_FIELDS, _id("replaces", "DELIB_ID of the current version."),
                       text("reason", 1024, required=False, doc="What is corrected.")),
           ("clerk", "admin"), "COLL_SIRET", _validate_correct, _apply_correct,
           "Record a corrected version of a deliberation (a new record)."),
    Action("withdraw", (
        COLL_SIRET,
        _id("DELIB_ID", "Identifier of the withdrawal record."),
        iso_date("DELIB_DATE", doc="Date of the withdrawal decision."),
        _id("replaces", "DELIB_ID of the current version withdrawn."),
        text("reason", 1024, doc="Why it is withdrawn."),
        hex64("act_sha256", doc="SHA-256 (hex) of the signed withdrawal act."),
    ), ("clerk", "admin"), "COLL_SIRET", _validate_withdraw, _apply_withdraw,
        "Withdraw a deliberation (a new record referencing it)."),
), "Council sittings and deliberations (SCDL Délibérations).")

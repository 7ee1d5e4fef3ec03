"""Social aid: schemes and disbursements keyed by a beneficiary tag, never a name.

Rules:
- A scheme has a budget, a period (first and last month), a per-beneficiary ceiling, the
  reference of the decision that created it and a four-eyes threshold, all in cents. Its
  terms are never rewritten; running totals live under their own key.
- Only the municipality's admin creates a scheme, and only on an adopted council
  deliberation of the same municipality recorded on chain (``decision_ref`` = its
  current DELIB_ID), on finances or social action (ACTES subject 7.x or 8.x), whose
  ``aid_*`` terms are the scheme's budget, ceiling and four-eyes threshold. A
  deliberation funds one scheme. So no agent sets their own budget or threshold.
- A disbursement names a scheme, a month (YYYY-MM) within the scheme's period, an amount
  and a beneficiary tag: HMAC-SHA-256 under a key of that scheme and month, of a random
  pseudonym of the case (``cli.tag_keys`` keeps both off chain; ADR 0014), 64 lowercase
  hex characters. A tag must look like an HMAC output: one that decodes to readable
  text, or with fewer than ``TAG_DISTINCT_BYTES_MIN`` distinct bytes, is refused
  (``invalid_payload``): it would be a name or a case number spelled in hex. No name,
  case number or other personal data goes on chain: the schema has no field that could
  hold one, and free text passes ``contracts.personal_data``.
- Budget never exceeded: paid + pending + amount <= budget (``budget_exceeded``).
- At most one payment per beneficiary, scheme and month (``duplicate_payment``).
- Amount <= the scheme's ceiling (``above_ceiling``).
- Four eyes: a payment above the threshold is recorded ``pending`` (its amount reserved
  in the budget) and becomes ``paid`` only when a second, different social-aid agent
  ``approve``-s it (``same_agent``): different *person* (``identity``: a rotated key stays
  the same person), not merely a different key; a pending payment may be ``cancel``-led,
  which frees
  its budget and its beneficiary-month slot. (ADR 0007: an approve action rather than a
  co-signature field, because the two agents rarely sit at the same screen.)
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from contracts import deliberations, keys
from contracts.registry import (
    SIRET,
    Action,
    Context,
    Contract,
    euros,
    integer,
    month,
    reject,
    text,
)
from contracts.view import StateView
from ledger.encoding import Value

CENTS_MAX = 10**13
"""Largest amount in cents (100 billion euros): no sum of them overflows a u64."""
TAG_KEY_BYTES_MIN = 16
CASE_NUMBER_BYTES_MAX = 256
TAG_DISTINCT_BYTES_MIN = 8
"""32 random bytes show about 30 distinct values; fewer than 8 happens with probability
below 1e-20, while padding or a repeated pattern shows few."""
SCHEME_SUBJECT_FAMILIES = ("7", "8")
"""ACTES families a scheme's deciding deliberation belongs to: finances, competences
(8.2 is social aid)."""


def tag_problem(tag: str) -> str | None:
    """``None`` if a 64-hex tag looks like an HMAC-SHA-256 output, else why not.

    An HMAC output is uniform: the chance that its 32 bytes form readable UTF-8 text is
    below 1e-12, so a tag that does is text (a name, a case number) spelled in hex."""
    raw = bytes.fromhex(tag)
    if len(set(raw)) < TAG_DISTINCT_BYTES_MIN:
        return "is not an HMAC-SHA-256 tag (too regular: padding or a repeated pattern)"
    stripped = raw.rstrip(b"\x00 ")
    try:
        decoded = stripped.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if decoded.isprintable():
        return ("is text spelled in hexadecimal, not an HMAC-SHA-256 tag: compute it from "
                "the case with the social service's keys (tabellion record disbursement "
                "does), never encode a name")
    return None
_SCHEME_ID_HINT = "1 to 64 letters, digits, '.', '_' or '-' (no '/')"


def beneficiary_tag(tag_key: bytes, case_number: str) -> str:
    """HMAC-SHA-256 of the case number (surrounding spaces removed) under the social
    service's key, as 64 lowercase hex characters. Pure: the CLI and tests call it."""
    if len(tag_key) < TAG_KEY_BYTES_MIN:
        raise ValueError(f"the tag key must be at least {TAG_KEY_BYTES_MIN} bytes")
    normalised = case_number.strip()
    if not normalised or len(normalised.encode()) > CASE_NUMBER_BYTES_MAX:
        raise ValueError(f"the case number must be 1 to {CASE_NUMBER_BYTES_MAX} bytes")
    return hmac.new(tag_key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()


PERIOD_KEY_TAG = b"tabellion/tag-key"
"""Domain separation of the per-scheme-and-month tag keys."""


def period_tag_key(master_key: bytes, siret: str, scheme_id: str, period: str) -> bytes:
    """The tag key of one scheme and month: HMAC-SHA-256 of ``siret``, ``scheme_id`` and
    ``period`` (NUL-separated: none of them contains NUL) under the social service's
    master key. Tags of different schemes or months are unlinkable without the master
    key, and one leaked period key exposes one scheme-month only."""
    if len(master_key) < TAG_KEY_BYTES_MIN:
        raise ValueError(f"the tag key must be at least {TAG_KEY_BYTES_MIN} bytes")
    message = b"\x00".join([PERIOD_KEY_TAG, *(s.encode("utf-8") for s in (siret, scheme_id,
                                                                          period))])
    return hmac.new(master_key, message, hashlib.sha256).digest()


# ---------------------------------------------------------------- queries
def scheme(state: StateView, siret: str, scheme_id: str) -> dict[str, Any] | None:
    return keys.read_map(state, keys.scheme_key(siret, scheme_id))


def _totals(state: StateView, siret: str, scheme_id: str) -> dict[str, Any]:
    found = keys.read_map(state, keys.scheme_totals_key(siret, scheme_id))
    return found or {"paid_cents": 0, "pending_cents": 0, "paid_count": 0, "pending_count": 0}


def scheme_balance(state: StateView, siret: str, scheme_id: str) -> dict[str, int] | None:
    """Budget, paid, pending (reserved) and remaining cents, with payment counts."""
    terms = scheme(state, siret, scheme_id)
    if terms is None:
        return None
    t = _totals(state, siret, scheme_id)
    return {
        "budget_cents": terms["budget_cents"], "paid_cents": t["paid_cents"],
        "pending_cents": t["pending_cents"],
        "remaining_cents": terms["budget_cents"] - t["paid_cents"] - t["pending_cents"],
        "paid_count": t["paid_count"], "pending_count": t["pending_count"],
    }


def payment(state: StateView, siret: str, scheme_id: str, period: str, tag: str
            ) -> dict[str, Any] | None:
    return keys.read_map(state, keys.payment_key(siret, scheme_id, period, tag))


# ---------------------------------------------------------------- create_scheme
def _deciding_deliberation(ctx: Context) -> dict[str, Any]:
    """The adopted deliberation that sets this scheme's terms, or a rejection."""
    p = ctx.payload
    ref = p["decision_ref"]
    current = deliberations.current_deliberation(ctx.state, p["siret"], ref)
    if current is None:
        reject("no_deciding_deliberation",
               f"decision_ref {ref!r} is not a deliberation recorded by your municipality; "
               "record the council's deliberation first and give its DELIB_ID")
    if current["DELIB_ID"] != ref or current["kind"] == "withdrawal":
        reject("no_deciding_deliberation",
               f"deliberation {ref} is no longer in force ({current['DELIB_ID']} "
               f"{'withdrew' if current['kind'] == 'withdrawal' else 'replaced'} it); "
               "reference the current version")
    if current["outcome"] != "adopted":
        reject("deliberation_not_adopted",
               f"deliberation {ref} was not adopted ({current['outcome']}): only an adopted "
               "deliberation creates an aid scheme")
    if current["DELIB_MATIERE_CODE"].split(".")[0] not in SCHEME_SUBJECT_FAMILIES:
        reject("deliberation_subject",
               f"deliberation {ref} is on ACTES subject {current['DELIB_MATIERE_CODE']}; an "
               "aid scheme is decided under subject 7.x (finances) or 8.x (e.g. 8.2 aide "
               "sociale)")
    terms = {"budget_cents": "aid_budget_cents", "ceiling_cents": "aid_ceiling_cents",
             "four_eyes_threshold_cents": "aid_four_eyes_threshold_cents"}
    for field_name, decided in terms.items():
        if current.get(decided) is None:
            reject("scheme_terms_mismatch",
                   f"deliberation {ref} sets no aid terms ({', '.join(terms.values())}); "
                   "the council decides the budget, ceiling and threshold")
        if p[field_name] != current[decided]:
            reject("scheme_terms_mismatch",
                   f"{field_name} is {euros(p[field_name])} but deliberation {ref} decided "
                   f"{euros(current[decided])}: the scheme's terms are the council's")
    if keys.read(ctx.state, keys.scheme_decision_key(p["siret"], current["root"])) is not None:
        reject("deliberation_already_used",
               f"deliberation {ref} already created a scheme; one deliberation, one scheme")
    return current


def _validate_scheme(ctx: Context) -> None:
    p = ctx.payload
    if scheme(ctx.state, p["siret"], p["scheme_id"]) is not None:
        reject("duplicate_scheme", f"scheme {p['scheme_id']} already exists; choose another id")
    _deciding_deliberation(ctx)
    if p["period_end"] < p["period_start"]:
        reject("invalid_period",
               f"period_end {p['period_end']} is before period_start {p['period_start']}")
    if p["ceiling_cents"] > p["budget_cents"]:
        reject("ceiling_above_budget",
               f"the ceiling per beneficiary ({euros(p['ceiling_cents'])}) exceeds the "
               f"budget ({euros(p['budget_cents'])})")


def _apply_scheme(ctx: Context) -> dict[str, Value]:
    p = ctx.payload
    names = ("scheme_id", "name", "budget_cents", "period_start", "period_end",
             "ceiling_cents", "decision_ref", "four_eyes_threshold_cents")
    decision = _deciding_deliberation(ctx)
    keys.write(ctx.state, keys.scheme_key(p["siret"], p["scheme_id"]), {
        **{n: p[n] for n in names}, "height": ctx.env.height,
    })
    keys.write(ctx.state, keys.scheme_decision_key(p["siret"], decision["root"]),
               p["scheme_id"])
    return {"scheme_id": p["scheme_id"], "budget_cents": p["budget_cents"]}


# ---------------------------------------------------------------- disburse
def _terms(ctx: Context) -> dict[str, Any]:
    p = ctx.payload
    terms = scheme(ctx.state, p["siret"], p["scheme_id"])
    if terms is None:
        reject("unknown_scheme", f"there is no scheme {p['scheme_id']} in municipality "
               f"{p['siret']}; check the scheme id")
    return terms


def _validate_disburse(ctx: Context) -> None:
    p, terms = ctx.payload, _terms(ctx)
    if not terms["period_start"] <= p["period"] <= terms["period_end"]:
        reject("outside_scheme_period",
               f"month {p['period']} is outside scheme {p['scheme_id']}'s period "
               f"{terms['period_start']} to {terms['period_end']}")
    if p["amount_cents"] > terms["ceiling_cents"]:
        reject("above_ceiling",
               f"{euros(p['amount_cents'])} exceeds the ceiling of "
               f"{euros(terms['ceiling_cents'])} per beneficiary of scheme {p['scheme_id']}")
    existing = payment(ctx.state, p["siret"], p["scheme_id"], p["period"], p["beneficiary"])
    if existing is not None:
        reject("duplicate_payment",
               f"this beneficiary already has a {existing['status']} payment of "
               f"{euros(existing['amount_cents'])} from scheme {p['scheme_id']} for "
               f"{p['period']}; one payment per beneficiary, scheme and month")
    t = _totals(ctx.state, p["siret"], p["scheme_id"])
    committed = t["paid_cents"] + t["pending_cents"]
    if committed + p["amount_cents"] > terms["budget_cents"]:
        reject("budget_exceeded",
               f"{euros(p['amount_cents'])} would bring scheme {p['scheme_id']} to "
               f"{euros(committed + p['amount_cents'])} committed out of a budget of "
               f"{euros(terms['budget_cents'])}; "
               f"{euros(terms['budget_cents'] - committed)} remain")


def _apply_disburse(ctx: Context) -> dict[str, Value]:
    p, terms = ctx.payload, _terms(ctx)
    pending = p["amount_cents"] > terms["four_eyes_threshold_cents"]
    status = "pending" if pending else "paid"
    keys.write(ctx.state, keys.payment_key(p["siret"], p["scheme_id"], p["period"],
                                           p["beneficiary"]), {
        "amount_cents": p["amount_cents"], "status": status, "agent": ctx.signer.key_hex,
        "agent_person": ctx.signer.person, "approver": None, "height": ctx.env.height,
    })
    t = _totals(ctx.state, p["siret"], p["scheme_id"])
    field = "pending" if pending else "paid"
    t = {**t, f"{field}_cents": t[f"{field}_cents"] + p["amount_cents"],
         f"{field}_count": t[f"{field}_count"] + 1}
    keys.write(ctx.state, keys.scheme_totals_key(p["siret"], p["scheme_id"]), t)
    return {"siret": p["siret"], "scheme_id": p["scheme_id"], "period": p["period"],
            "amount_cents": p["amount_cents"], "status": status}


# ---------------------------------------------------------------- approve / cancel
def _pending(ctx: Context) -> dict[str, Any]:
    p = ctx.payload
    _terms(ctx)
    found = payment(ctx.state, p["siret"], p["scheme_id"], p["period"], p["beneficiary"])
    if found is None:
        reject("unknown_payment", f"there is no payment to this beneficiary from scheme "
               f"{p['scheme_id']} for {p['period']}")
    if found["status"] != "pending":
        reject("not_pending", f"this payment is already {found['status']}; only a pending "
               "payment can be approved or cancelled")
    return found


def _validate_approve(ctx: Context) -> None:
    found = _pending(ctx)
    if found["agent_person"] == ctx.signer.person:
        reject("same_agent",
               "you recorded this payment (with this key or one it replaced): the "
               "four-eyes rule needs the approval of a second, different social-aid agent")


def _move(ctx: Context, amount: int, to_paid: bool) -> None:
    p = ctx.payload
    t = _totals(ctx.state, p["siret"], p["scheme_id"])
    t = {**t, "pending_cents": t["pending_cents"] - amount,
         "pending_count": t["pending_count"] - 1}
    if to_paid:
        t["paid_cents"] += amount
        t["paid_count"] += 1
    assert t["pending_cents"] >= 0 and t["pending_count"] >= 0, "totals track the records"
    keys.write(ctx.state, keys.scheme_totals_key(p["siret"], p["scheme_id"]), t)


def _apply_approve(ctx: Context) -> dict[str, Value]:
    p, found = ctx.payload, _pending(ctx)
    key = keys.payment_key(p["siret"], p["scheme_id"], p["period"], p["beneficiary"])
    keys.write(ctx.state, key, {**found, "status": "paid", "approver": ctx.signer.key_hex})
    _move(ctx, found["amount_cents"], to_paid=True)
    return {"siret": p["siret"], "scheme_id": p["scheme_id"], "period": p["period"],
            "amount_cents": found["amount_cents"], "status": "paid"}


def _validate_cancel(ctx: Context) -> None:
    _pending(ctx)


def _apply_cancel(ctx: Context) -> dict[str, Value]:
    p, found = ctx.payload, _pending(ctx)
    ctx.state.delete(keys.payment_key(p["siret"], p["scheme_id"], p["period"], p["beneficiary"]))
    _move(ctx, found["amount_cents"], to_paid=False)
    return {"siret": p["siret"], "scheme_id": p["scheme_id"], "period": p["period"],
            "amount_cents": found["amount_cents"], "status": "cancelled"}


_SCHEME_ID = text("scheme_id", 64, pattern=keys.ID_RE, hint=_SCHEME_ID_HINT,
                  doc="Identifier of the scheme, unique in the municipality.")
_PAYMENT_REF = (
    SIRET, _SCHEME_ID, month("period", doc="Month paid for, YYYY-MM."),
    text("beneficiary", 64, pattern=keys.HEX64_RE, hint="64 lowercase hexadecimal characters",
         value_check=tag_problem,
         doc="Beneficiary tag: HMAC-SHA-256 (hex) under the scheme-and-month key."),
)
_AMOUNT = integer("amount_cents", 1, CENTS_MAX, doc="Amount in cents.")
_REASON = text("reason", 1024, required=False, doc="Why (no personal data).")

CONTRACT = Contract("social_aid", (
    Action("create_scheme", (
        SIRET, _SCHEME_ID,
        text("name", 200, doc="Name of the scheme, e.g. 'Aide énergie 2026'."),
        integer("budget_cents", 1, CENTS_MAX, doc="Budget in cents."),
        month("period_start", doc="First month, YYYY-MM."),
        month("period_end", doc="Last month, YYYY-MM."),
        integer("ceiling_cents", 1, CENTS_MAX, doc="Most per beneficiary and month, cents."),
        text("decision_ref", 64, pattern=keys.ID_RE, hint="the DELIB_ID of the deliberation",
             doc="DELIB_ID of the adopted deliberation setting budget, ceiling, threshold."),
        integer("four_eyes_threshold_cents", 0, CENTS_MAX,
                doc="Payments above this need a second agent's approval."),
    ), ("admin",), "siret", _validate_scheme, _apply_scheme,
        "Create an aid scheme decided by an adopted deliberation."),
    Action("disburse", (*_PAYMENT_REF, _AMOUNT), ("social_aid_agent",), "siret",
           _validate_disburse, _apply_disburse,
           "Record a payment (pending if above the four-eyes threshold)."),
    Action("approve", _PAYMENT_REF, ("social_aid_agent",), "siret", _validate_approve,
           _apply_approve, "Approve a pending payment (a second, different agent)."),
    Action("cancel", (*_PAYMENT_REF, _REASON), ("social_aid_agent", "admin"), "siret",
           _validate_cancel, _apply_cancel, "Cancel a pending payment."),
), "Aid schemes and disbursements (no personal data on chain).")

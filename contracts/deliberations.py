"""Council sittings and deliberations, with the SCDL *Délibérations* field names.

Rules (CGCT articles cited; docs/contracts.md has one line per rule):
- A sitting (``record_sitting``) records the members in office, the members present, the
  date and whether it meets on a second convocation. L2121-17: a second convocation (no
  quorum required) follows a sitting of the same council that failed its quorum, held
  at least three days before (``first_sitting_id``); it never sits with nobody present.
- Quorum (L2121-17), checked at the opening (the sitting) and for each deliberation,
  because members may leave during a sitting: more than half of the members in office
  are present (``present * 2 > in_office``), unless on second convocation
  (``quorum_not_met``). Proxies never count toward the quorum.
- Proxies (pouvoirs, L2121-20): a present member holds at most one (``proxies <=
  present``), and only absent members give one (``present + proxies <= in_office``).
- Vote arithmetic (``vote_arithmetic``): VOTE_POUR + VOTE_CONTRE + VOTE_ABSTENTION <=
  VOTE_REEL <= present + proxies <= VOTE_EFFECTIF, and VOTE_EFFECTIF is the sitting's
  members in office. The five counts come together or not at all (an act taken without
  a vote, "prend acte").
- Outcome, stored with the record: ``adopted`` iff VOTE_POUR > VOTE_CONTRE, else
  ``rejected``; ``no_vote`` when no counts are given. On a tie (VOTE_POUR = VOTE_CONTRE
  > 0) in an open ballot the president's casting vote decides (L2121-20, voix
  prépondérante): ``casting_vote`` is then required; in a secret ballot there is no
  casting vote and the tie leaves the proposal ``rejected``.
- DELIB_MATIERE_CODE is a level-2 code of the ACTES nomenclature (``ACTES_SUBJECTS``);
  when DELIB_MATIERE_NOM spells an ACTES subject name it is the code's
  (``matiere_mismatch``).
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
import unicodedata
from datetime import date, timedelta
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
    siret,
    text,
)
from contracts.view import StateView
from ledger.encoding import Value

MEMBERS_IN_OFFICE_MAX = 1_000
ORDER_NUMBER_MAX = 9_999
MATIERE_CODE_RE = re.compile(r"^[0-9]\.[0-9]{1,2}$")
AID_CENTS_MAX = 10**13
"""Same bound as social_aid.CENTS_MAX (that module reads deliberations, not the reverse)."""
AID_TERMS = ("aid_budget_cents", "aid_ceiling_cents", "aid_four_eyes_threshold_cents")
SECOND_CONVOCATION_DELAY_DAYS = 3
"""L2121-17: the second convocation is sent at least three days after the failed sitting."""
BALLOTS = ("open", "secret")
CASTING_VOTES = ("pour", "contre")
ACTES_FAMILIES = {
    "1": "Commande publique", "2": "Urbanisme", "3": "Domaine et patrimoine",
    "4": "Fonction publique", "5": "Institutions et vie politique",
    "6": "Libertés publiques et pouvoirs de police", "7": "Finances locales",
    "8": "Domaines de compétences par thèmes", "9": "Autres domaines de compétences",
}
ACTES_SUBJECTS = {
    "1.1": "Marchés publics", "1.2": "Délégation de service public",
    "1.3": "Conventions de mandat", "1.4": "Autres types de contrats",
    "1.5": "Transactions /protocole d'accord transactionnel", "1.6": "Maîtrise d'œuvre",
    "1.7": "Actes spéciaux et divers",
    "2.1": "Documents d'urbanisme",
    "2.2": "Actes relatifs au droit d'occupation ou d'utilisation des sols",
    "2.3": "Droit de préemption urbain",
    "3.1": "Acquisitions", "3.2": "Aliénations", "3.3": "Locations",
    "3.4": "Limites territoriales", "3.5": "Actes de gestion du domaine public",
    "3.6": "Actes de gestion du domaine privé",
    "4.1": "Personnels titulaires et stagiaires de la F.P.T.",
    "4.2": "Personnels contractuels", "4.3": "Fonction publique hospitalière",
    "4.4": "Autres catégories de personnels", "4.5": "Régime indemnitaire",
    "5.1": "Election exécutif", "5.2": "Fonctionnement des assemblées",
    "5.3": "Désignation de représentants", "5.4": "Délégation de fonctions",
    "5.5": "Délégation de signature", "5.6": "Exercice des mandats locaux",
    "5.7": "Intercommunalité", "5.8": "Décision d'ester en justice",
    "6.1": "Police municipale", "6.2": "Pouvoir du président du conseil général",
    "6.3": "Pouvoir du président du conseil régional", "6.4": "Autres actes réglementaires",
    "6.5": "Actes pris au nom de l'Etat et soumis au contrôle hiérarchique",
    "7.1": "Décisions budgétaires", "7.2": "Fiscalité", "7.3": "Emprunts",
    "7.4": "Interventions économiques", "7.5": "Subventions",
    "7.6": "Contributions budgétaires", "7.7": "Avances", "7.8": "Fonds de concours",
    "7.9": "Prise de participation (SEM, etc.)", "7.10": "Divers",
    "8.1": "Enseignement", "8.2": "Aide sociale", "8.3": "Voirie",
    "8.4": "Aménagement du territoire", "8.5": "Politique de la ville-habitat-logement",
    "8.6": "Emploi-formation professionnelle", "8.7": "Transports", "8.8": "Environnement",
    "8.9": "Culture",
    "9.1": "Autres domaines de compétences des communes",
    "9.2": "Autres domaines de compétences des départements",
    "9.3": "Autres domaines de compétences des régions", "9.4": "Voeux et motions",
}
"""The ACTES nomenclature (classification of acts sent to the prefecture), level 2."""


def _spelling(name: str) -> str:
    """A subject name reduced for comparison: no accents, case, punctuation or spacing."""
    plain = unicodedata.normalize("NFKD", name.replace("œ", "oe").replace("Œ", "OE"))
    plain = "".join(c for c in plain if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


def _actes_spellings() -> dict[str, str]:
    """ACTES spelling -> the code (or family digit) it names: a subject alone, "family/
    subject" (the SCDL form) or "code subject"; a family alone names its digit."""
    spellings = {_spelling(family): digit for digit, family in ACTES_FAMILIES.items()}
    for code, name in ACTES_SUBJECTS.items():
        family = ACTES_FAMILIES[code.split(".")[0]]
        for form in (name, f"{family}/{name}", f"{code} {name}"):
            spellings[_spelling(form)] = code
    return spellings


_SPELLINGS = _actes_spellings()


def matiere_code_problem(code: str) -> str | None:
    """``None`` if ``code`` is an ACTES level-2 code, else what is wrong (for a clerk)."""
    if code in ACTES_SUBJECTS:
        return None
    return ("is not an ACTES level-2 subject code (1.1 to 1.7, 2.1 to 2.3, 3.1 to 3.6, "
            "4.1 to 4.5, 5.1 to 5.8, 6.1 to 6.5, 7.1 to 7.10, 8.1 to 8.9, 9.1 to 9.4)")


def matiere_name_mismatch(code: str, name: str) -> str | None:
    """The ACTES subject ``name`` spells if it is not ``code``'s (else ``None``); a name
    that spells no ACTES subject is the municipality's own wording and is accepted."""
    named = _SPELLINGS.get(_spelling(name))
    if named is None or named == code or named == code.split(".")[0]:
        return None
    return named
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


COLL_SIRET = siret("COLL_SIRET", "SIRET of the municipality (must be the signer's).")


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
def _check_second_convocation(ctx: Context) -> None:
    """L2121-17: a second convocation follows a recorded sitting that failed its quorum,
    at least three days before, and someone attends it."""
    p = ctx.payload
    if p["members_present"] == 0:
        reject("no_member_present",
               "a sitting on second convocation needs no quorum, but at least one member "
               "present: nobody deliberates with no one in the room")
    first_id = p.get("first_sitting_id")
    if first_id is None:
        reject("no_failed_sitting",
               "a second convocation follows a sitting that failed its quorum: give its "
               "first_sitting_id (record that sitting first)")
    first = sitting(ctx.state, p["COLL_SIRET"], first_id)
    if first is None:
        reject("no_failed_sitting", f"sitting {first_id} is not recorded; record the sitting "
               "that failed its quorum first")
    if first["quorum_met"]:
        reject("no_failed_sitting",
               f"sitting {first_id} met its quorum ({first['members_present']} present out "
               f"of {first['members_in_office']}): a second convocation follows a sitting "
               "that failed it")
    earliest = date.fromisoformat(first["date"]) + timedelta(days=SECOND_CONVOCATION_DELAY_DAYS)
    if date.fromisoformat(p["date"]) < earliest:
        reject("second_convocation_too_early",
               f"sitting {first_id} failed its quorum on {first['date']}: the second "
               f"convocation sits at least {SECOND_CONVOCATION_DELAY_DAYS} days later, "
               f"from {earliest.isoformat()}")


def _validate_sitting(ctx: Context) -> None:
    p = ctx.payload
    if p["members_present"] > p["members_in_office"]:
        reject("invalid_sitting",
               f"members_present ({p['members_present']}) cannot exceed members_in_office "
               f"({p['members_in_office']})")
    if p["second_convocation"]:
        _check_second_convocation(ctx)
    elif p.get("first_sitting_id") is not None:
        reject("invalid_sitting", "first_sitting_id is only for a second convocation; "
               "remove it or set second_convocation")
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
        "first_sitting_id": p.get("first_sitting_id"), "height": ctx.env.height,
    })
    return {"sitting_id": p["sitting_id"], "quorum_met": quorum_met, "quorum_needed": needed}


# ---------------------------------------------------------------- record / correct
def _check_attendance(p: Any, s: dict[str, Any]) -> None:
    """Quorum for this deliberation, and proxies (L2121-17, L2121-20)."""
    present, proxies, in_office = p["members_present"], p.get("proxies") or 0, s[
        "members_in_office"]
    if present > in_office:
        reject("invalid_attendance", f"members_present ({present}) cannot exceed the "
               f"{in_office} members in office")
    if proxies > present:
        reject("too_many_proxies",
               f"{proxies} proxies for {present} members present: each present member "
               "holds at most one proxy (CGCT L2121-20)")
    if present + proxies > in_office:
        reject("too_many_proxies",
               f"{present} present + {proxies} proxies exceed the {in_office} members in "
               "office: only absent members give a proxy")
    if s["second_convocation"]:
        if present == 0:
            reject("no_member_present", "no member present: nobody can deliberate, even "
                   "on a second convocation")
    elif present < quorum_needed(in_office):
        reject("quorum_not_met",
               f"{present} members present for this deliberation out of {in_office} in "
               f"office; a quorum of {quorum_needed(in_office)} is needed (proxies do not "
               "count), or a second convocation")


def _check_votes(p: Any, in_office: int) -> str:
    """Check the vote counts; return the outcome."""
    given = [name for name in VOTES if p.get(name) is not None]
    if not given:
        if p.get("casting_vote") is not None:
            reject("casting_vote_without_tie", "a casting vote needs vote counts showing a tie")
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
    present, proxies = p["members_present"], p.get("proxies") or 0
    if reel > present + proxies:
        reject("vote_arithmetic",
               f"VOTE_REEL ({reel}) cannot exceed the members present ({present}) plus "
               f"the proxies they hold ({proxies})")
    if pour + contre + abst > reel:
        reject("vote_arithmetic",
               f"VOTE_POUR + VOTE_CONTRE + VOTE_ABSTENTION = {pour} + {contre} + {abst} = "
               f"{pour + contre + abst}, more than the {reel} members voting (VOTE_REEL)")
    return _outcome(p, pour, contre)


def _outcome(p: Any, pour: int, contre: int) -> str:
    """Majority of the votes cast; on an open-ballot tie, the president's casting vote."""
    casting, secret = p.get("casting_vote"), p.get("ballot") == "secret"
    tie = pour == contre and pour > 0
    if casting is not None and secret:
        reject("casting_vote_secret_ballot",
               "there is no casting vote in a secret ballot (CGCT L2121-20): remove "
               "casting_vote; a tie leaves the proposal rejected")
    if casting is not None and not tie:
        reject("casting_vote_without_tie",
               f"the president's vote decides only a tie; here {pour} for and {contre} "
               "against: remove casting_vote")
    if tie and not secret:
        if casting is None:
            reject("casting_vote_required",
                   f"{pour} for and {contre} against in an open ballot: the president's "
                   "vote decides (CGCT L2121-20); give casting_vote (pour or contre)")
        return "adopted" if casting == "pour" else "rejected"
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
    _check_attendance(p, s)
    given = [name for name in AID_TERMS if p.get(name) is not None]
    if given and len(given) != len(AID_TERMS):
        reject("invalid_payload", f"{', '.join(given)} given without the others: an aid "
               f"scheme's terms are {', '.join(AID_TERMS)}, all three or none")
    named = matiere_name_mismatch(p["DELIB_MATIERE_CODE"], p["DELIB_MATIERE_NOM"])
    if named is not None:
        reject("matiere_mismatch",
               f"DELIB_MATIERE_NOM {p['DELIB_MATIERE_NOM']!r} is the ACTES subject {named}, "
               f"but DELIB_MATIERE_CODE is {p['DELIB_MATIERE_CODE']} "
               f"({ACTES_SUBJECTS[p['DELIB_MATIERE_CODE']]}): make them agree")
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
        "members_present": p.get("members_present"), "proxies": p.get("proxies"),
        "ballot": p.get("ballot"), "casting_vote": p.get("casting_vote"),
        **{name: p.get(name) for name in AID_TERMS},
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
         hint="an ACTES subject code such as 7.1 or 7.10",
         value_check=matiere_code_problem,
         doc="Subject code of the ACTES nomenclature, level 2 (1.1 .. 9.4)."),
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
    integer("members_present", 0, MEMBERS_IN_OFFICE_MAX,
            doc="Members present when this deliberation was voted (quorum)."),
    integer("proxies", 0, MEMBERS_IN_OFFICE_MAX, required=False,
            doc="Proxies (pouvoirs) held by present members; none if absent."),
    text("ballot", 6, choices=BALLOTS, required=False,
         doc="open (default) or secret ballot."),
    text("casting_vote", 6, choices=CASTING_VOTES, required=False,
         doc="On an open-ballot tie: the president's vote, pour or contre."),
    integer("aid_budget_cents", 1, AID_CENTS_MAX, required=False,
            doc="An aid scheme decided here: its budget in cents."),
    integer("aid_ceiling_cents", 1, AID_CENTS_MAX, required=False,
            doc="An aid scheme decided here: most per beneficiary and month, cents."),
    integer("aid_four_eyes_threshold_cents", 0, AID_CENTS_MAX, required=False,
            doc="An aid scheme decided here: payments above it need a second agent."),
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
        _id("first_sitting_id", "Second convocation: the sitting that failed its quorum.",
            required=False),
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

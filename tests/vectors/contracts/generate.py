"""Generate the contract test vectors: ``python -m tests.vectors.contracts.generate``.

Each vector is one rule exercised once: the pre-state (genesis plus setup blocks, every
transaction as canonical hex, every block environment), the transaction, the expected
receipt (code, message, data), the state roots before and after, and the new validator
set if the transaction changed it (else null). Keys derive from
names and Ed25519 signing is deterministic, so running this twice writes identical files;
the generator checks each expected code while it writes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.engine import BlockEnv
from ledger.records import Transaction
from tests.vectors.contracts import scenario as s
from tests.vectors.contracts.scenario import Chain, siret

HERE = Path(__file__).resolve().parent
M = siret("montreuil")
Build = Callable[[Chain], Transaction]


@dataclass(frozen=True, slots=True)
class Case:
    file: str
    name: str
    rule: str
    code: str
    build: Build


def _env(env: BlockEnv) -> dict[str, Any]:
    return {"chain_id": env.chain_id, "height": env.height, "time_ms": env.time_ms,
            "proposer": env.proposer.hex()}


def _tx(tx: Transaction) -> dict[str, Any]:
    return {"hex": tx.encode().hex(), "contract": tx.contract, "action": tx.action,
            "signer": tx.signer.hex(), "payload": tx.payload}


def run_case(case: Case) -> dict[str, Any]:
    chain = Chain()
    tx = case.build(chain)
    setup = [{"env": _env(env), "txs": [t.encode().hex() for t in txs]} for env, txs in chain.log]
    pre_root = chain.root().hex()
    env = chain.env()
    receipt = chain.run(tx)
    changed = chain.results[-1].validator_set
    if receipt.code != case.code:
        raise SystemExit(f"{case.file}/{case.name}: expected {case.code}, got "
                         f"{receipt.code}: {receipt.message}")
    return {
        "name": case.name, "rule": case.rule, "setup_blocks": setup,
        "pre_state_root": pre_root, "env": _env(env), "tx": _tx(tx),
        "receipt": {"code": receipt.code, "message": receipt.message, "data": receipt.data},
        "post_state_root": chain.root().hex(),
        "new_validator_set": None if changed is None else [k.hex() for k in changed.keys],
    }


# ---------------------------------------------------------------- builders
def do(who: str, contract: str, action: str, payload: dict[str, Any]) -> Build:
    """A case with no setup: just this transaction."""
    return lambda chain: chain.tx(who, contract, action, payload)


def after(steps: list[tuple[str, str, str, dict[str, Any]]], who: str, contract: str,
          action: str, payload: dict[str, Any]) -> Build:
    """Run ``steps`` (one block each, each must succeed), then this transaction."""
    def build(chain: Chain) -> Transaction:
        for step in steps:
            receipt = chain.do(*step)
            assert receipt.ok, (step, receipt.message)
        return chain.tx(who, contract, action, payload)
    return build


def replayed(chain: Chain) -> Transaction:
    tx = chain.tx("montreuil.clerk", "notary", "anchor", s.anchor())
    chain.run(tx)
    return tx


def _proposal(then: str, town: str, *, advance_ms: int = 0, votes: tuple[str, ...] = (),
              payload: dict[str, Any] | None = None) -> Build:
    def build(chain: Chain) -> Transaction:
        tx = chain.tx("montreuil.admin", "governance", "propose", payload or ADD)
        assert chain.run(tx).ok
        for voter in votes:
            assert chain.do(f"{voter}.admin", "governance", "approve",
                            {"siret": siret(voter), "proposal_id": tx.tx_id.hex()}).ok
        chain.time_ms += advance_ms
        return chain.tx(f"{town}.admin", "governance", then,
                        {"siret": siret(town), "proposal_id": tx.tx_id.hex()})
    return build


def _report_then(action: str, who: str, first: str | None = None) -> Build:
    def build(chain: Chain) -> Transaction:
        receipt = chain.do("montreuil.clerk", "reports", "submit", s.report())
        rid = str(receipt.data["service_request_id"])
        if first is not None:
            assert chain.do("montreuil.clerk", "reports", first,
                            {"siret": M, "service_request_id": rid}).ok
        return chain.tx(who, "reports", action, {"siret": M, "service_request_id": rid})
    return build


ADD = {"siret": M, "kind": "add_municipality", "municipality_name": "Rosny-sous-Bois",
       "municipality_siret": "21930063900016", "validator_key": s.pub("rosny.validator"),
       "admin_key": s.pub("rosny.admin")}
REMOVE = {"siret": M, "kind": "remove_municipality", "municipality_siret": siret("vincennes")}
SITTING = ("montreuil.clerk", "deliberations", "record_sitting", s.sitting())
RECORD = ("montreuil.clerk", "deliberations", "record", s.act())
SCHEME_STEPS = s.scheme_steps()
SCHEME_SETUP, SCHEME = SCHEME_STEPS[:-1], SCHEME_STEPS[-1]
PAY_REF = {k: v for k, v in s.disbursement(amount=25_000).items() if k != "amount_cents"}
PENDING = ("montreuil.agent", "social_aid", "disburse", s.disbursement(amount=25_000))
WITHDRAW = {"COLL_SIRET": M, "DELIB_ID": "DEL-2026-001-W", "DELIB_DATE": "2026-01-01",
            "replaces": "DEL-2026-001", "reason": "retrait demandé par la préfecture",
            "act_sha256": "12" * 32}
FAILED = ("montreuil.clerk", "deliberations", "record_sitting",
          s.sitting(sitting_id="CM-FAILED", date="2025-12-20", present=20))
"""A sitting that failed its quorum (20 of 49), 12 days before the block date."""


def _second(present: int = 10, date: str = "2026-01-01", first: str | None = "CM-FAILED"
            ) -> tuple[str, str, str, dict[str, Any]]:
    return ("montreuil.clerk", "deliberations", "record_sitting",
            s.sitting(sitting_id="CM-SECOND", date=date, present=present, second=True,
                      first=first))


def _tie(**extra: Any) -> dict[str, Any]:
    """An act voted 14 for, 14 against, 2 abstentions by 30 present."""
    return s.act(votes=(49, 30, 14, 14, 2), **extra)


def _rotated_approver(chain: Chain) -> Transaction:
    """Finding (2) of issue 14: the agent records a pending payment, an admin rotates the
    agent's key, and the same person approves with the new key."""
    for step in [*SCHEME_STEPS, PENDING]:
        assert chain.do(*step).ok, step
    assert chain.do("montreuil.admin", "identity", "rotate",
                    {"siret": M, "old_key": s.pub("montreuil.agent"),
                     "new_key": s.pub("montreuil.agent.rotated")}).ok
    return chain.tx("montreuil.agent.rotated", "social_aid", "approve", PAY_REF)


NAME_AS_TAG = b"Jeanne Dupont 12 rue Hoche".hex().ljust(64, "0")
"""A name and address spelled in hex and padded to look like a tag."""
CORRECT = s.act(delib_id="DEL-2026-001-R1", replaces="DEL-2026-001",
                DELIB_OBJET="Budget primitif 2026 (rectifié)")

GATEWAY = s.enroll_gateway()
ENROLL_METER = ("montreuil.clerk", "metering", "enroll_meter", s.meter())
ENROLL_WATER = ("montreuil.clerk", "metering", "enroll_meter", s.meter("EAU-1", "water"))
DEC30 = s.interval("2025-12-30")
FIRST = ("montreuil.gateway", "metering", "file_readings",
         s.readings(("PRM-0001", DEC30, [1000, 1500, 2100])))


def gateway(payload: dict[str, Any], *steps: tuple[str, str, str, dict[str, Any]]) -> Build:
    """The gateway files ``payload`` after enrolment of itself, the meter and ``steps``."""
    return after([GATEWAY, ENROLL_METER, *steps], "montreuil.gateway", "metering",
                 "file_readings", payload)


def _window_readings() -> dict[str, Any]:
    """30-minute readings from 2025-12-30 00:00 to 2025-12-31 19:00: 1,000 Wh per
    interval, except 600 Wh per interval in the window 17:00-19:00 of 2025-12-31."""
    steps = [600 if n >= 48 + 34 else 1000 for n in range(48 + 38)]
    return s.readings(("PRM-0001", DEC30, s.cumulative(0, steps)))


EVENT = {"siret": M, "event_id": "ecowatt-2025-12-31", "date": "2025-12-31",
         "start_hour": 17, "end_hour": 19, "signal": "EcoWatt rouge", "baseline_days": 1}
SETTLE = {"siret": M, "event_id": "ecowatt-2025-12-31"}

CASES = [
    # engine and framework
    Case("engine", "ok", "a well-formed permitted transaction commits", "ok",
         do("montreuil.clerk", "notary", "anchor", s.anchor())),
    Case("engine", "replay", "a committed id is refused", "already_committed", replayed),
    Case("engine", "unknown_contract", "the contract must exist", "unknown_contract",
         do("montreuil.clerk", "budget", "vote", {})),
    Case("engine", "unknown_action", "the action must exist", "unknown_action",
         do("montreuil.clerk", "notary", "erase", {})),
    Case("engine", "unknown_signer", "the signer must be enrolled", "unknown_signer",
         do("stranger", "notary", "anchor", s.anchor())),
    Case("engine", "unknown_field", "no field outside the schema", "invalid_payload",
         do("montreuil.clerk", "notary", "anchor", {**s.anchor(), "citizen": "x"})),
    Case("engine", "missing_field", "required fields are present", "invalid_payload",
         do("montreuil.clerk", "notary", "anchor", {"siret": M})),
    Case("engine", "not_permitted", "the signer holds a role of the action", "not_permitted",
         do("montreuil.auditor", "notary", "anchor", s.anchor())),
    Case("engine", "wrong_municipality", "nobody writes for another municipality",
         "wrong_municipality", do("pantin.clerk", "notary", "anchor", s.anchor())),
    # identity
    Case("identity", "enroll", "an admin enrolls a key in its municipality", "ok",
         do("montreuil.admin", "identity", "enroll",
            {"siret": M, "key": s.pub("montreuil.new"), "roles": ["clerk"]})),
    Case("identity", "enroll_twice", "a key is enrolled once, ever", "key_already_enrolled",
         do("montreuil.admin", "identity", "enroll",
            {"siret": M, "key": s.pub("pantin.clerk"), "roles": ["clerk"]})),
    Case("identity", "rotate", "rotation moves the roles to a new key", "ok",
         do("montreuil.admin", "identity", "rotate",
            {"siret": M, "old_key": s.pub("montreuil.clerk"),
             "new_key": s.pub("montreuil.clerk2")})),
    Case("identity", "revoke", "an admin revokes a key of its municipality", "ok",
         do("montreuil.admin", "identity", "revoke",
            {"siret": M, "key": s.pub("montreuil.clerk")})),
    Case("identity", "revoke_other_town", "keys of another municipality are out of reach",
         "wrong_municipality",
         do("montreuil.admin", "identity", "revoke", {"siret": M, "key": s.pub("pantin.clerk")})),
    Case("identity", "revoke_twice", "revocation is permanent", "already_revoked",
         after([("montreuil.admin", "identity", "revoke",
                 {"siret": M, "key": s.pub("montreuil.clerk")})],
               "montreuil.admin", "identity", "revoke",
               {"siret": M, "key": s.pub("montreuil.clerk")})),
    Case("identity", "revoke_unknown", "the key to revoke is enrolled", "unknown_member",
         do("montreuil.admin", "identity", "revoke", {"siret": M, "key": "00" * 32})),
    Case("identity", "last_admin", "a municipality keeps an active admin", "last_admin",
         do("montreuil.admin", "identity", "revoke",
            {"siret": M, "key": s.pub("montreuil.admin")})),
    Case("identity", "revoked_signer", "a revoked key signs nothing", "signer_revoked",
         after([("montreuil.admin", "identity", "revoke",
                 {"siret": M, "key": s.pub("montreuil.clerk")})],
               "montreuil.clerk", "notary", "anchor", s.anchor())),
    # governance
    Case("governance", "propose", "a proposal counts its proposer's approval", "ok",
         do("montreuil.admin", "governance", "propose", ADD)),
    Case("governance", "propose_existing", "an existing municipality cannot be added",
         "municipality_exists",
         do("montreuil.admin", "governance", "propose",
            {**ADD, "municipality_siret": siret("pantin")})),
    Case("governance", "approve_open", "an approval below the majority keeps it open", "ok",
         _proposal("approve", "bagnolet")),
    Case("governance", "approve_passes", "two thirds of municipalities pass it and the "
         "validator set changes", "ok", _proposal("approve", "pantin", votes=("bagnolet",))),
    Case("governance", "approve_twice", "one vote per municipality", "already_approved",
         _proposal("approve", "montreuil")),
    Case("governance", "approve_expired", "a proposal expires after 30 days",
         "proposal_expired", _proposal("approve", "bagnolet", advance_ms=31 * 86_400_000)),
    Case("governance", "approve_unknown", "the proposal must exist", "unknown_proposal",
         do("bagnolet.admin", "governance", "approve",
            {"siret": siret("bagnolet"), "proposal_id": "ab" * 32})),
    Case("governance", "approve_passed", "a passed proposal takes no more votes",
         "proposal_closed",
         _proposal("approve", "vincennes", votes=("bagnolet", "pantin"))),
    Case("governance", "remove_passes", "removing a municipality drops its validator", "ok",
         _proposal("approve", "pantin", votes=("bagnolet",), payload=REMOVE)),
    Case("governance", "remove_unknown", "only a member municipality can be removed",
         "unknown_municipality",
         do("montreuil.admin", "governance", "propose",
            {**REMOVE, "municipality_siret": "21930063900016"})),
    Case("governance", "siret_luhn", "a new municipality's SIRET passes the check digit",
         "invalid_payload",
         do("montreuil.admin", "governance", "propose",
            {**ADD, "municipality_siret": "21930063900017"})),
    Case("governance", "bad_parameter", "parameters keep their bounds", "invalid_parameter",
         do("montreuil.admin", "governance", "propose",
            {"siret": M, "kind": "set_parameter", "parameter": "approval_numerator",
             "value": 4})),
    # deliberations
    Case("deliberations", "sitting", "a sitting records members in office and present", "ok",
         do(*SITTING)),
    Case("deliberations", "sitting_twice", "sitting ids are unique", "duplicate_sitting",
         after([SITTING], *SITTING)),
    Case("deliberations", "correct_unknown", "a correction replaces a recorded act",
         "unknown_deliberation",
         after([SITTING], "montreuil.clerk", "deliberations", "correct",
               s.act(delib_id="X-R1", replaces="X"))),
    Case("deliberations", "sitting_overfull", "present <= in office", "invalid_sitting",
         do("montreuil.clerk", "deliberations", "record_sitting", s.sitting(present=50))),
    Case("deliberations", "sitting_future", "no sitting after the block date",
         "date_in_future",
         do("montreuil.clerk", "deliberations", "record_sitting", s.sitting(date="2026-01-02"))),
    Case("deliberations", "record", "a deliberation with quorum and consistent votes", "ok",
         after([SITTING], *RECORD)),
    Case("deliberations", "record_rejected", "more contre than pour is stored as rejected",
         "ok", after([SITTING], "montreuil.clerk", "deliberations", "record",
                     s.act(votes=(49, 30, 10, 12, 8)))),
    Case("deliberations", "quorum", "more than half of members in office present",
         "quorum_not_met",
         after([("montreuil.clerk", "deliberations", "record_sitting", s.sitting(present=24))],
               *RECORD)),
    Case("deliberations", "second_convocation", "no quorum on a second convocation", "ok",
         after([FAILED, ("montreuil.clerk", "deliberations", "record_sitting",
                         s.sitting(present=10, second=True, first="CM-FAILED"))],
               "montreuil.clerk", "deliberations", "record",
               s.act(votes=(49, 10, 8, 1, 1), present=10))),
    Case("deliberations", "votes_sum", "pour + contre + abstention <= réel",
         "vote_arithmetic", after([SITTING], "montreuil.clerk", "deliberations", "record",
                                  s.act(votes=(49, 30, 20, 9, 2)))),
    Case("deliberations", "votes_reel", "réel <= effectif", "vote_arithmetic",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(votes=(49, 50, 20, 8, 2)))),
    Case("deliberations", "order_number", "order numbers unique within a sitting",
         "duplicate_order_number",
         after([SITTING, RECORD], "montreuil.clerk", "deliberations", "record",
               s.act(delib_id="DEL-2026-002"))),
    Case("deliberations", "delib_id", "DELIB_ID unique in the municipality",
         "duplicate_delib_id",
         after([SITTING, RECORD], "montreuil.clerk", "deliberations", "record",
               s.act(order=2))),
    Case("deliberations", "siret_format", "COLL_SIRET has 14 digits", "invalid_payload",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(COLL_SIRET="2193004800001"))),
    Case("deliberations", "matiere_code", "DELIB_MATIERE_CODE is digit.digit(s)",
         "invalid_payload", after([SITTING], "montreuil.clerk", "deliberations", "record",
                                  s.act(DELIB_MATIERE_CODE="7.123"))),
    Case("deliberations", "unknown_sitting", "the sitting is recorded first",
         "unknown_sitting", do(*RECORD)),
    Case("deliberations", "date_mismatch", "DELIB_DATE is the sitting's date",
         "date_mismatch", after([SITTING], "montreuil.clerk", "deliberations", "record",
                                s.act(date="2025-12-30"))),
    Case("deliberations", "coll_nom", "COLL_NOM is the registered name", "coll_nom_mismatch",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(COLL_NOM="Ville de Montreuil"))),
    Case("deliberations", "pref_date", "PREF_DATE is not before DELIB_DATE",
         "pref_date_before_delib", after([SITTING], "montreuil.clerk", "deliberations",
                                         "record", s.act(PREF_DATE="2025-12-31"))),
    Case("deliberations", "correct", "a correction is a new record replacing the current",
         "ok", after([SITTING, RECORD], "montreuil.clerk", "deliberations", "correct",
                     CORRECT)),
    Case("deliberations", "correct_stale", "only the current version can be replaced",
         "not_current_version",
         after([SITTING, RECORD, ("montreuil.clerk", "deliberations", "correct", CORRECT)],
               "montreuil.clerk", "deliberations", "correct",
               s.act(delib_id="DEL-2026-001-R2", replaces="DEL-2026-001"))),
    Case("deliberations", "withdraw", "a withdrawal is a new record ending the chain", "ok",
         after([SITTING, RECORD], "montreuil.clerk", "deliberations", "withdraw", WITHDRAW)),
    Case("deliberations", "correct_withdrawn", "a withdrawn deliberation cannot change",
         "already_withdrawn",
         after([SITTING, RECORD, ("montreuil.clerk", "deliberations", "withdraw", WITHDRAW)],
               "montreuil.clerk", "deliberations", "correct", CORRECT)),
    Case("deliberations", "sitting_quorum_per_act", "quorum for each deliberation "
         "(L2121-17): members may leave", "quorum_not_met",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(present=20, votes=(49, 20, 15, 3, 2)))),
    Case("deliberations", "proxies", "a present member holds one proxy (L2121-20); "
         "VOTE_REEL <= present + proxies", "ok",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(proxies=5, votes=(49, 35, 25, 8, 2)))),
    Case("deliberations", "proxies_over_one_each", "at most one proxy per present member "
         "(L2121-20)", "too_many_proxies",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(present=25, proxies=26, votes=(49, 30, 20, 8, 2)))),
    Case("deliberations", "proxies_not_quorum", "proxies never count toward the quorum "
         "(L2121-17)", "quorum_not_met",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(present=20, proxies=10, votes=(49, 30, 20, 8, 2)))),
    Case("deliberations", "reel_above_present", "VOTE_REEL <= present + proxies: 3 "
         "present cannot cast 33 votes (L2121-20)", "vote_arithmetic",
         after([FAILED, _second(present=3)], "montreuil.clerk", "deliberations", "record",
               s.act(sitting_id="CM-SECOND", present=3, votes=(49, 33, 30, 2, 1)))),
    Case("deliberations", "second_convocation_nobody", "never a sitting with 0 present "
         "(L2121-17)", "no_member_present", after([FAILED], *_second(present=0))),
    Case("deliberations", "second_convocation_no_failed", "a second convocation follows a "
         "recorded sitting that failed its quorum (L2121-17)", "no_failed_sitting",
         do(*_second(first=None))),
    Case("deliberations", "second_convocation_quorate_first", "the first sitting must "
         "have failed its quorum (L2121-17)", "no_failed_sitting",
         after([SITTING], *_second(first="CM-2026-03-12"))),
    Case("deliberations", "second_convocation_too_early", "at least three days after the "
         "failed sitting (L2121-17)", "second_convocation_too_early",
         after([FAILED], *_second(date="2025-12-22"))),
    Case("deliberations", "second_convocation_three_days", "three days after the failed "
         "sitting, no quorum needed (L2121-17)", "ok",
         after([FAILED], *_second(date="2025-12-23"))),
    Case("deliberations", "casting_vote", "open-ballot tie: the president's vote decides "
         "(L2121-20)", "ok",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               _tie(casting_vote="pour"))),
    Case("deliberations", "tie_needs_casting_vote", "an open-ballot tie is decided by the "
         "president's vote, which must be given (L2121-20)", "casting_vote_required",
         after([SITTING], "montreuil.clerk", "deliberations", "record", _tie())),
    Case("deliberations", "secret_ballot_tie", "a secret-ballot tie is rejected "
         "(L2121-20: no casting vote)", "ok",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               _tie(ballot="secret"))),
    Case("deliberations", "secret_ballot_casting_vote", "no casting vote in a secret ballot "
         "(L2121-20)", "casting_vote_secret_ballot",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               _tie(ballot="secret", casting_vote="pour"))),
    Case("deliberations", "casting_vote_without_tie", "the casting vote decides only a tie",
         "casting_vote_without_tie",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(casting_vote="contre"))),
    Case("deliberations", "matiere_code_zero", "DELIB_MATIERE_CODE is an ACTES level-2 "
         "code", "invalid_payload",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(DELIB_MATIERE_CODE="0.0"))),
    Case("deliberations", "matiere_code_9_99", "9.1 .. 9.4 only (ACTES)", "invalid_payload",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(DELIB_MATIERE_CODE="9.99"))),
    Case("deliberations", "matiere_code_7_10", "7.10 is an ACTES code", "ok",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(DELIB_MATIERE_CODE="7.10", DELIB_MATIERE_NOM="Finances locales/Divers"))),
    Case("deliberations", "matiere_name", "an ACTES subject name matches its code",
         "matiere_mismatch",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(DELIB_MATIERE_NOM="Aide sociale"))),
    Case("deliberations", "siret_luhn", "COLL_SIRET passes the SIRET check digit (INSEE)",
         "invalid_payload",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(COLL_SIRET="21930048000016"))),
    Case("deliberations", "objet_email", "no e-mail address in DELIB_OBJET (GDPR)",
         "personal_data",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(DELIB_OBJET="Recrutement, candidatures à rh.dupont@montreuil.fr"))),
    Case("deliberations", "objet_article_and_amount", "an article number and an amount "
         "are not personal data", "ok",
         after([SITTING], "montreuil.clerk", "deliberations", "record",
               s.act(DELIB_OBJET="Vu l'article L2121-17 du CGCT : subvention de "
                                 "15 000,00 € au CCAS, marché n° 2026-04-0012"))),
    # social aid
    Case("social_aid", "scheme", "a scheme with budget, period, ceiling, threshold", "ok",
         after(SCHEME_SETUP, *SCHEME)),
    Case("social_aid", "scheme_twice", "scheme ids are unique", "duplicate_scheme",
         after(SCHEME_STEPS, *SCHEME)),
    Case("social_aid", "approve_unknown", "the payment to approve exists", "unknown_payment",
         after(SCHEME_STEPS, "montreuil.agent2", "social_aid", "approve", PAY_REF)),
    Case("social_aid", "scheme_period", "the period ends after it starts", "invalid_period",
         after(SCHEME_SETUP, "montreuil.admin", "social_aid", "create_scheme",
               s.scheme(start="2026-12", end="2026-01"))),
    Case("social_aid", "scheme_ceiling", "the ceiling fits in the budget",
         "ceiling_above_budget", after(s.scheme_steps(ceiling=2_000_000)[:-1],
                                       "montreuil.admin", "social_aid", "create_scheme",
                                       s.scheme(ceiling=2_000_000))),
    Case("social_aid", "pay", "a payment under the threshold is paid", "ok",
         after(SCHEME_STEPS, "montreuil.agent", "social_aid", "disburse", s.disbursement())),
    Case("social_aid", "pay_pending", "above the threshold it waits for a second agent", "ok",
         after(SCHEME_STEPS, *PENDING)),
    Case("social_aid", "ceiling", "amount <= ceiling", "above_ceiling",
         after(SCHEME_STEPS, "montreuil.agent", "social_aid", "disburse",
               s.disbursement(amount=30_001))),
    Case("social_aid", "budget", "the budget is never exceeded", "budget_exceeded",
         after([*s.scheme_steps(budget=15_000, ceiling=10_000),
                ("montreuil.agent", "social_aid", "disburse", s.disbursement(n=1))],
               "montreuil.agent", "social_aid", "disburse", s.disbursement(n=2, amount=5_001))),
    Case("social_aid", "once_per_month", "one payment per beneficiary, scheme and month",
         "duplicate_payment",
         after([*SCHEME_STEPS, ("montreuil.agent", "social_aid", "disburse", s.disbursement())],
               "montreuil.agent", "social_aid", "disburse", s.disbursement(amount=500))),
    Case("social_aid", "period", "the month is within the scheme's period",
         "outside_scheme_period", after(SCHEME_STEPS, "montreuil.agent", "social_aid", "disburse",
                                        s.disbursement(period="2027-01"))),
    Case("social_aid", "unknown_scheme", "the scheme exists", "unknown_scheme",
         do("montreuil.agent", "social_aid", "disburse", s.disbursement())),
    Case("social_aid", "approve", "a second agent approves", "ok",
         after([*SCHEME_STEPS, PENDING], "montreuil.agent2", "social_aid", "approve", PAY_REF)),
    Case("social_aid", "approve_self", "four eyes: not the recording agent", "same_agent",
         after([*SCHEME_STEPS, PENDING], "montreuil.agent", "social_aid", "approve", PAY_REF)),
    Case("social_aid", "approve_paid", "only a pending payment is approved", "not_pending",
         after([*SCHEME_STEPS, PENDING, ("montreuil.agent2", "social_aid", "approve", PAY_REF)],
               "montreuil.agent2", "social_aid", "approve", PAY_REF)),
    Case("social_aid", "cancel", "a pending payment may be cancelled", "ok",
         after([*SCHEME_STEPS, PENDING], "montreuil.agent2", "social_aid", "cancel", PAY_REF)),
    Case("social_aid", "scheme_by_agent", "only the town's admin creates a scheme",
         "not_permitted", after(SCHEME_SETUP, "montreuil.agent", "social_aid",
                                "create_scheme", s.scheme())),
    Case("social_aid", "scheme_without_deliberation", "a scheme needs an adopted "
         "deliberation on chain", "no_deciding_deliberation", do(
             "montreuil.admin", "social_aid", "create_scheme", s.scheme())),
    Case("social_aid", "scheme_own_terms", "the budget, ceiling and threshold are the "
         "deliberation's (issue 14 finding 1: 10 billion euros)", "scheme_terms_mismatch",
         after(SCHEME_SETUP, "montreuil.admin", "social_aid", "create_scheme",
               s.scheme(budget=10**12, ceiling=999_999_999, threshold=10**12))),
    Case("social_aid", "scheme_rejected_deliberation", "the deliberation was adopted",
         "deliberation_not_adopted",
         after([SCHEME_SETUP[0], (*SCHEME_SETUP[1][:3], {
             **SCHEME_SETUP[1][3], "VOTE_POUR": 8, "VOTE_CONTRE": 20})],
               *SCHEME)),
    Case("social_aid", "scheme_subject", "the deliberation is on ACTES 7.x or 8.x",
         "deliberation_subject",
         after([SCHEME_SETUP[0], (*SCHEME_SETUP[1][:3], {
             **SCHEME_SETUP[1][3], "DELIB_MATIERE_CODE": "5.2",
             "DELIB_MATIERE_NOM": "Fonctionnement des assemblées"})], *SCHEME)),
    Case("social_aid", "scheme_deliberation_reused", "one deliberation, one scheme",
         "deliberation_already_used",
         after(SCHEME_STEPS, "montreuil.admin", "social_aid", "create_scheme",
               {**s.scheme(), "scheme_id": "energie-2026-bis"})),
    Case("social_aid", "approve_rotated_key", "four eyes bind people, not keys (issue 14 "
         "finding 2)", "same_agent", _rotated_approver),
    Case("social_aid", "tag_is_text", "a tag is an HMAC output, not a name in hex",
         "invalid_payload",
         after(SCHEME_STEPS, "montreuil.agent", "social_aid", "disburse",
               {**s.disbursement(), "beneficiary": NAME_AS_TAG})),
    Case("social_aid", "cancel_reason_personal", "no name and address in a cancel reason",
         "personal_data",
         after([*SCHEME_STEPS, PENDING], "montreuil.agent2", "social_aid", "cancel",
               {**PAY_REF, "reason": "Mme Dupont a déménagé au 4 rue Hoche"})),
    Case("social_aid", "no_name", "no personal data field exists", "invalid_payload",
         after(SCHEME_STEPS, "montreuil.agent", "social_aid", "disburse",
               {**s.disbursement(), "beneficiary_name": "Jeanne Dupont"})),
    # reports
    Case("reports", "submit", "a member files a report with a location", "ok",
         do("montreuil.clerk", "reports", "submit", s.report())),
    Case("reports", "description_phone", "no phone number in a report (GDPR)",
         "personal_data",
         do("montreuil.clerk", "reports", "submit",
            s.report(description="Nid de poule, rappeler M. Martin au 06 12 34 56 78"))),
    Case("reports", "coordinates_10m", "a location is kept to about 10 m",
         "location_too_precise",
         do("montreuil.clerk", "reports", "submit", s.report(lat=48_861_523))),
    Case("reports", "address_string_number", "address_string locates the problem and may "
         "carry a street number", "ok",
         do("montreuil.clerk", "reports", "submit",
            s.report(lat=None, long=None, address_string="12 rue de Paris"))),
    Case("reports", "no_location", "a report needs a location", "location_required",
         do("montreuil.clerk", "reports", "submit", s.report(lat=None, long=None))),
    Case("reports", "acknowledge", "open -> acknowledged", "ok",
         _report_then("acknowledge", "montreuil.clerk")),
    Case("reports", "close", "acknowledged -> closed", "ok",
         _report_then("close", "montreuil.clerk", first="acknowledge")),
    Case("reports", "backwards", "status only moves forward", "status_not_forward",
         _report_then("acknowledge", "montreuil.clerk", first="close")),
    Case("reports", "unknown_report", "the report exists in the signer's municipality",
         "unknown_report",
         do("montreuil.clerk", "reports", "close", {"siret": M, "service_request_id": "ab" * 32})),
    Case("reports", "close_auditor", "closing needs an agent", "not_permitted",
         _report_then("close", "montreuil.auditor")),
    # notary
    Case("notary", "anchor", "a document hash is anchored", "ok",
         do("montreuil.clerk", "notary", "anchor", s.anchor())),
    Case("notary", "anchor_twice", "a hash is anchored once", "already_anchored",
         after([("montreuil.clerk", "notary", "anchor", s.anchor())],
               "pantin.clerk", "notary", "anchor", s.anchor(town="pantin"))),
    Case("notary", "title_nir", "no social security number in a title", "personal_data",
         do("montreuil.clerk", "notary", "anchor",
            s.anchor(title="Attestation pour 1 85 05 78 006 084 91"))),
    Case("notary", "title_iban", "no IBAN in a title", "personal_data",
         do("montreuil.clerk", "notary", "anchor",
            s.anchor(title="Mandat SEPA FR76 3000 6000 0112 3456 7890 189"))),
    Case("notary", "title_plain", "an ordinary title is accepted", "ok",
         do("montreuil.clerk", "notary", "anchor",
            s.anchor(title="Arrêté n° 2026-042 réglementant le stationnement rue de Paris"))),
    Case("notary", "bad_hash", "the hash is 64 lowercase hex", "invalid_payload",
         do("montreuil.clerk", "notary", "anchor", s.anchor(sha256="AB" * 32))),
    # metering
    Case("metering", "enroll_meter", "a clerk enrolls a meter with its kind's fields", "ok",
         do(*ENROLL_METER)),
    Case("metering", "enroll_twice", "a meter id is enrolled once", "duplicate_meter",
         after([ENROLL_METER], *ENROLL_METER)),
    Case("metering", "unit_per_kind", "a meter's unit is one of its kind's",
         "unit_not_allowed", do("montreuil.clerk", "metering", "enroll_meter",
                                s.meter("EAU-2", "water", unit="Wh"))),
    Case("metering", "kind_fields", "subscribed power for electricity only", "invalid_meter",
         do("montreuil.clerk", "metering", "enroll_meter",
            s.meter("EAU-3", "water", subscribed_power_w=9000))),
    Case("metering", "readings", "consumption per interval from cumulative indexes", "ok",
         gateway(s.readings(("PRM-0001", DEC30, [1000, 1500, 2100])))),
    Case("metering", "gateway_only", "only the metering gateway files readings",
         "not_permitted", after([ENROLL_METER], "montreuil.clerk", "metering",
                                "file_readings", s.readings(("PRM-0001", DEC30, [1])))),
    Case("metering", "unit_fixed", "a batch's unit is each meter's", "unit_mismatch",
         gateway(s.readings(("PRM-0001", DEC30, [1]), unit="L"))),
    Case("metering", "unknown_meter", "readings name enrolled meters", "unknown_meter",
         gateway(s.readings(("PRM-0404", DEC30, [1])))),
    Case("metering", "batch_shape", "one count per meter, one index per interval",
         "invalid_batch", gateway({**s.readings(("PRM-0001", DEC30, [1, 2])), "counts": [1]})),
    Case("metering", "backwards", "a cumulative index never goes backwards",
         "index_backwards", gateway(s.readings(("PRM-0001", DEC30 + 3, [2000])), FIRST)),
    Case("metering", "replacement", "after a recorded replacement the index restarts", "ok",
         gateway(s.readings(("PRM-0001", DEC30 + 3, [40])), FIRST,
                 ("montreuil.clerk", "metering", "replace_meter",
                  {"siret": M, "meter_id": "PRM-0001", "old_final_index": 2150,
                   "new_start_index": 0}))),
    Case("metering", "duplicate", "an interval is read once", "duplicate_interval",
         gateway(s.readings(("PRM-0001", DEC30 + 2, [2200])), FIRST)),
    Case("metering", "out_of_order", "intervals only move forward", "out_of_order_interval",
         gateway(s.readings(("PRM-0001", DEC30 + 1, [2200])), FIRST)),
    Case("metering", "gap", "missing intervals are recorded as a gap", "ok",
         gateway(s.readings(("PRM-0001", DEC30 + 6, [3000])), FIRST)),
    Case("metering", "future", "an interval is filed once it is over", "reading_in_future",
         gateway(s.readings(("PRM-0001", s.interval("2026-01-01", 1), [1])))),
    Case("metering", "peak", "power above the subscribed power raises a peak alert", "ok",
         gateway(s.readings(("PRM-0001", DEC30 + 3, [2100 + 18_001])), FIRST)),
    Case("metering", "leak", "night flow above the threshold for N nights raises a leak "
         "alert", "ok",
         after([GATEWAY, ENROLL_WATER], "montreuil.gateway", "metering", "file_readings",
               s.readings(("EAU-1", s.interval("2025-12-28"), s.cumulative(
                   0, [11 if 2 <= n % 48 < 10 else 50 for n in range(3 * 48 + 12)])),
                   unit="L"))),
    Case("metering", "event", "an event window gets its comparable baseline days", "ok",
         do("montreuil.clerk", "metering", "record_event", EVENT)),
    Case("metering", "event_window", "an event window is not empty", "invalid_window",
         do("montreuil.clerk", "metering", "record_event", {**EVENT, "end_hour": 17})),
    Case("metering", "settle", "each building's reduction against the baseline", "ok",
         after([GATEWAY, ENROLL_METER,
                ("montreuil.gateway", "metering", "file_readings", _window_readings()),
                ("montreuil.clerk", "metering", "record_event", EVENT)],
               "montreuil.clerk", "metering", "settle_event", SETTLE)),
    Case("metering", "settle_early", "an event is settled once it is over", "event_not_over",
         after([("montreuil.clerk", "metering", "record_event",
                 {**EVENT, "date": "2026-01-01"})],
               "montreuil.clerk", "metering", "settle_event", SETTLE)),
    Case("metering", "settle_unknown", "the event must be recorded", "unknown_event",
         do("montreuil.clerk", "metering", "settle_event", SETTLE)),
]


def vectors() -> dict[str, dict[str, Any]]:
    """Every vector file's content, by file name."""
    genesis = s.make_genesis().to_json()
    files: dict[str, dict[str, Any]] = {}
    for case in CASES:
        doc = files.setdefault(f"{case.file}.json", {
            "about": f"Tabellion contract vectors: {case.file}. Generated by "
                     "tests/vectors/contracts/generate.py; do not edit by hand.",
            "state_root": "ledger.state.compute_root of the whole state after genesis "
                          "(version 0) and the listed blocks",
            "genesis": genesis,
            "cases": [],
        })
        doc["cases"].append(run_case(case))
    return files


def main() -> int:
    for name, doc in vectors().items():
        (HERE / name).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n",
                                 encoding="utf-8")
        print(f"wrote {name}: {len(doc['cases'])} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())

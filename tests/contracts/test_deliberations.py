"""Sittings and deliberations: quorum, vote arithmetic, outcome, order numbers, versions."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.queries import current_deliberation, deliberation
from ledger.records import Receipt
from tests.vectors.contracts.scenario import Chain, act, siret, sitting

MONTREUIL = siret("montreuil")


@pytest.fixture
def chain() -> Chain:
    chain = Chain()
    assert chain.do("montreuil.clerk", "deliberations", "record_sitting", sitting()).ok
    return chain


def record(chain: Chain, action: str = "record", **kwargs: Any) -> Receipt:
    return chain.do("montreuil.clerk", "deliberations", action, act(**kwargs))


def test_a_deliberation_is_recorded_with_its_outcome(chain: Chain) -> None:
    receipt = record(chain)
    assert receipt.code == "ok" and receipt.data["outcome"] == "adopted"
    stored = deliberation(chain.state, MONTREUIL, "DEL-2026-001")
    assert stored is not None and stored["VOTE_POUR"] == 20 and stored["kind"] == "original"


def test_more_contre_than_pour_is_recorded_as_rejected(chain: Chain) -> None:
    assert record(chain, votes=(49, 30, 8, 12, 10)).data["outcome"] == "rejected"


def test_an_act_without_vote_counts(chain: Chain) -> None:
    assert record(chain, votes=None).data["outcome"] == "no_vote"


def test_quorum_is_more_than_half_of_members_in_office(chain: Chain) -> None:
    chain.do("montreuil.clerk", "deliberations", "record_sitting",
             sitting(sitting_id="S-23", present=23))
    receipt = record(chain, sitting_id="S-23")
    assert receipt.code == "quorum_not_met"
    assert receipt.message.startswith(
        "the sitting has 23 members present out of 49 in office; a quorum of 25 is needed")
    chain.do("montreuil.clerk", "deliberations", "record_sitting",
             sitting(sitting_id="S-25", present=25))
    assert record(chain, sitting_id="S-25", delib_id="D-25").code == "ok"
    chain.do("montreuil.clerk", "deliberations", "record_sitting",
             sitting(sitting_id="S-EVEN", in_office=48, present=24))
    assert record(chain, sitting_id="S-EVEN", delib_id="D-EVEN",
                  votes=(48, 24, 20, 2, 2)).code == "quorum_not_met"


def test_second_convocation_needs_no_quorum(chain: Chain) -> None:
    assert chain.do("montreuil.clerk", "deliberations", "record_sitting",
                    sitting(sitting_id="S-1", date="2025-12-01", present=12)).ok
    assert chain.do("montreuil.clerk", "deliberations", "record_sitting",
                    sitting(sitting_id="S-2C", present=10, second=True, first="S-1")).ok
    assert record(chain, sitting_id="S-2C", delib_id="D-2C", votes=(49, 10, 6, 2, 2),
                  present=10).ok


@pytest.mark.parametrize(("votes", "message"), [
    ((49, 30, 20, 8, 3), "VOTE_POUR + VOTE_CONTRE + VOTE_ABSTENTION = 20 + 8 + 3 = 31, "
                         "more than the 30 members voting (VOTE_REEL)"),
    ((49, 50, 20, 8, 2), "VOTE_REEL (50) cannot exceed VOTE_EFFECTIF (49)"),
    ((45, 30, 20, 8, 2), "VOTE_EFFECTIF is 45 but the sitting has 49 members in office"),
])
def test_vote_arithmetic(chain: Chain, votes: tuple[int, int, int, int, int],
                         message: str) -> None:
    receipt = record(chain, votes=votes)
    assert (receipt.code, receipt.message) == ("vote_arithmetic", message)


def test_vote_counts_come_all_together(chain: Chain) -> None:
    payload = act(votes=None, VOTE_POUR=3)
    receipt = chain.do("montreuil.clerk", "deliberations", "record", payload)
    assert receipt.code == "invalid_payload"
    assert receipt.message.startswith("VOTE_POUR given but VOTE_EFFECTIF, VOTE_REEL")


def test_order_numbers_are_unique_within_a_sitting(chain: Chain) -> None:
    assert record(chain).ok
    receipt = record(chain, delib_id="DEL-2026-002")
    assert receipt.code == "duplicate_order_number"
    assert receipt.message == ("order number 1 of sitting CM-2026-03-12 is already used by "
                               "DEL-2026-001; order numbers are unique within a sitting")
    assert record(chain, delib_id="DEL-2026-002", order=2).ok


def test_delib_id_is_unique(chain: Chain) -> None:
    record(chain)
    assert record(chain, order=2).code == "duplicate_delib_id"


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("COLL_SIRET", "2193004800001", "the field COLL_SIRET must be the 14-digit SIRET"),
    ("COLL_SIRET", "21930048000016", "the field COLL_SIRET fails the SIRET check digit"),
    ("DELIB_MATIERE_CODE", "71", "the field DELIB_MATIERE_CODE must be an ACTES subject code"),
    ("DELIB_MATIERE_CODE", "0.0", "the field DELIB_MATIERE_CODE is not an ACTES level-2"),
    ("DELIB_MATIERE_CODE", "9.99", "the field DELIB_MATIERE_CODE is not an ACTES level-2"),
    ("DELIB_DATE", "01/01/2026", "the field DELIB_DATE must be an ISO date YYYY-MM-DD"),
    ("DELIB_DATE", "2026-02-30", "the field DELIB_DATE is not a real calendar date"),
    ("act_sha256", "AB" * 32, "the field act_sha256 must be 64 lowercase hexadecimal"),
    ("VOTE_POUR", True, "the field VOTE_POUR must be a whole number"),
    ("DELIB_URL", "ftp://x", "the field DELIB_URL must be an http(s) URL"),
])
def test_scdl_formats_are_checked(chain: Chain, field: str, value: Any, expected: str) -> None:
    receipt = chain.do("montreuil.clerk", "deliberations", "record", act(**{field: value}))
    assert receipt.code == "invalid_payload"
    assert receipt.message.startswith(expected)


def test_the_sitting_must_exist_and_match_the_date(chain: Chain) -> None:
    assert record(chain, sitting_id="NOPE").code == "unknown_sitting"
    receipt = record(chain, date="2025-12-31")
    assert receipt.code == "date_mismatch"


def test_coll_nom_must_be_the_registered_name(chain: Chain) -> None:
    receipt = record(chain, COLL_NOM="Ville de Montreuil")
    assert receipt.code == "coll_nom_mismatch"
    assert "registered as 'Montreuil'" in receipt.message


def test_a_sitting_cannot_be_in_the_future_or_overfull() -> None:
    chain = Chain()
    future = chain.do("montreuil.clerk", "deliberations", "record_sitting",
                      sitting(date="2027-01-01"))
    assert future.code == "date_in_future"
    overfull = chain.do("montreuil.clerk", "deliberations", "record_sitting",
                        sitting(present=50))
    assert overfull.code == "invalid_sitting"


def test_only_clerks_and_admins_record(chain: Chain) -> None:
    receipt = chain.do("montreuil.auditor", "deliberations", "record", act())
    assert receipt.code == "not_permitted"


def test_a_correction_is_a_new_record_that_becomes_current(chain: Chain) -> None:
    record(chain)
    receipt = record(chain, "correct", delib_id="DEL-2026-001-R1", replaces="DEL-2026-001",
                     DELIB_OBJET="Budget primitif 2026 (corrigé)")
    assert receipt.code == "ok" and receipt.data["root"] == "DEL-2026-001"
    original = deliberation(chain.state, MONTREUIL, "DEL-2026-001")
    assert original is not None and original["DELIB_OBJET"] == "Budget primitif 2026"
    for any_version in ("DEL-2026-001", "DEL-2026-001-R1"):
        current = current_deliberation(chain.state, MONTREUIL, any_version)
        assert current is not None and current["DELIB_ID"] == "DEL-2026-001-R1"
    stale = record(chain, "correct", delib_id="DEL-2026-001-R2", replaces="DEL-2026-001")
    assert stale.code == "not_current_version"
    assert "the current version is DEL-2026-001-R1" in stale.message


def test_a_withdrawal_ends_the_chain(chain: Chain) -> None:
    record(chain)
    withdraw = {"COLL_SIRET": MONTREUIL, "DELIB_ID": "DEL-2026-001-W",
                "DELIB_DATE": "2026-01-01", "replaces": "DEL-2026-001",
                "reason": "illegal per the prefecture", "act_sha256": "12" * 32}
    assert chain.do("montreuil.clerk", "deliberations", "withdraw", withdraw).ok
    current = current_deliberation(chain.state, MONTREUIL, "DEL-2026-001")
    assert current is not None and current["kind"] == "withdrawal"
    again = record(chain, "correct", delib_id="DEL-2026-001-R1", replaces="DEL-2026-001")
    assert again.code == "already_withdrawn"


def test_a_correction_of_an_unknown_deliberation(chain: Chain) -> None:
    receipt = record(chain, "correct", delib_id="X-R1", replaces="X")
    assert (receipt.code, receipt.message) == ("unknown_deliberation",
                                               "deliberation X is not recorded")

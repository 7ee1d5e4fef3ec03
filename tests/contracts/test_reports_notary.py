"""Citizen reports (Open311) and notarisation."""

from __future__ import annotations

from typing import Any

from contracts.queries import notarised, report, report_status
from tests.vectors.contracts.scenario import Chain, anchor, siret
from tests.vectors.contracts.scenario import report as report_payload

MONTREUIL = siret("montreuil")


def submit(chain: Chain, **extra: Any) -> str:
    receipt = chain.do("montreuil.clerk", "reports", "submit", report_payload(**extra))
    assert receipt.ok, receipt.message
    return str(receipt.data["service_request_id"])


def move(chain: Chain, action: str, rid: str, who: str = "montreuil.clerk") -> tuple[str, str]:
    receipt = chain.do(who, "reports", action, {"siret": MONTREUIL, "service_request_id": rid})
    return receipt.code, receipt.message


def test_status_moves_forward_only() -> None:
    chain = Chain()
    rid = submit(chain)
    assert report_status(chain.state, MONTREUIL, rid) == "open"
    assert move(chain, "acknowledge", rid)[0] == "ok"
    assert move(chain, "close", rid)[0] == "ok"
    code, message = move(chain, "acknowledge", rid)
    assert code == "status_not_forward"
    assert message == (f"report {rid[:16]}… is already closed; its status only moves "
                       "forward: open -> acknowledged -> closed")
    assert move(chain, "close", rid)[0] == "status_not_forward"
    stored = report(chain.state, MONTREUIL, rid)
    assert stored is not None and stored["status"] == "closed"


def test_an_open_report_may_be_closed_directly() -> None:
    chain = Chain()
    rid = submit(chain)
    assert move(chain, "close", rid)[0] == "ok"


def test_closing_needs_an_agent_of_the_municipality() -> None:
    chain = Chain()
    rid = submit(chain)
    assert move(chain, "close", rid, who="montreuil.auditor")[0] == "not_permitted"
    assert move(chain, "close", rid, who="montreuil.agent")[0] == "not_permitted"
    code, _ = move(chain, "close", rid, who="pantin.clerk")
    assert code == "wrong_municipality"
    receipt = chain.do("pantin.clerk", "reports", "close",
                       {"siret": siret("pantin"), "service_request_id": rid})
    assert receipt.code == "unknown_report"


def test_a_report_needs_a_location() -> None:
    chain = Chain()
    receipt = chain.do("montreuil.clerk", "reports", "submit",
                       report_payload(lat=None, long=None))
    assert (receipt.code, receipt.message) == (
        "location_required", "a report needs a location: lat and long, or address_string")
    assert submit(chain, lat=None, long=None, address_string="12 rue de Paris")
    half = chain.do("montreuil.clerk", "reports", "submit", report_payload(long=None))
    assert half.code == "invalid_payload"
    far = chain.do("montreuil.clerk", "reports", "submit", report_payload(lat=90_000_001))
    assert far.code == "invalid_payload"
    assert far.message == ("the field lat must be between -90000000 and 90000000 "
                           "(got 90000001)")


def test_no_reporter_identity_field_exists() -> None:
    chain = Chain()
    receipt = chain.do("montreuil.clerk", "reports", "submit",
                       {**report_payload(), "email": "jeanne@example.org"})
    assert receipt.code == "invalid_payload"
    assert receipt.message.startswith("the field email is not part of reports.submit")


def test_anchor_and_look_up_by_hash() -> None:
    chain = Chain()
    payload = anchor()
    receipt = chain.do("montreuil.clerk", "notary", "anchor", payload)
    assert receipt.ok
    found = notarised(chain.state, payload["sha256"])
    assert found is not None
    assert (found["document_type"], found["reference"], found["height"]) == (
        "arrete", "ARR-2026-042", chain.height)
    assert notarised(chain.state, "00" * 32) is None
    assert notarised(chain.state, "not a hash") is None


def test_anchoring_the_same_hash_twice_is_refused() -> None:
    chain = Chain()
    chain.do("montreuil.clerk", "notary", "anchor", anchor())
    receipt = chain.do("pantin.clerk", "notary", "anchor",
                       anchor(town="pantin", reference="OTHER"))
    assert receipt.code == "already_anchored"
    assert receipt.message == ("this document was already anchored at height 1 by "
                               "municipality 21930048000015 (arrete ARR-2026-042); "
                               "look it up instead")


def test_anchor_fields_are_checked() -> None:
    chain = Chain()
    bad = chain.do("montreuil.clerk", "notary", "anchor", anchor(document_type="Arrêté"))
    assert bad.code == "invalid_payload"
    assert bad.message.startswith("the field document_type must be lowercase letters")

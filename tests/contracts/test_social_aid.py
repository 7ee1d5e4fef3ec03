"""Social aid: budget, one payment per beneficiary and month, ceiling, four eyes."""

from __future__ import annotations

import pytest

from contracts.queries import payment, scheme_balance
from contracts.social_aid import beneficiary_tag
from ledger.records import Receipt
from tests.vectors.contracts.scenario import (
    Chain,
    disbursement,
    open_scheme,
    scheme,
    scheme_steps,
    siret,
    tag,
)

MONTREUIL = siret("montreuil")


@pytest.fixture
def chain() -> Chain:
    chain = Chain()
    assert open_scheme(chain).ok
    return chain


def pay(chain: Chain, who: str = "montreuil.agent", action: str = "disburse", n: int = 1,
        amount: int = 10_000, period: str = "2026-01") -> Receipt:
    payload = disbursement(n=n, amount=amount, period=period)
    if action != "disburse":
        del payload["amount_cents"]
    return chain.do(who, "social_aid", action, payload)


def test_beneficiary_tag_is_a_keyed_hash_of_the_case_number() -> None:
    key = b"k" * 32
    assert beneficiary_tag(key, " CASE-1 ") == beneficiary_tag(key, "CASE-1")
    assert beneficiary_tag(key, "CASE-1") != beneficiary_tag(b"j" * 32, "CASE-1")
    assert len(beneficiary_tag(key, "CASE-1")) == 64
    with pytest.raises(ValueError, match="at least 16 bytes"):
        beneficiary_tag(b"short", "CASE-1")
    with pytest.raises(ValueError, match="case number"):
        beneficiary_tag(key, "   ")


def test_a_payment_under_the_threshold_is_paid_at_once(chain: Chain) -> None:
    receipt = pay(chain)
    assert receipt.code == "ok" and receipt.data["status"] == "paid"
    assert scheme_balance(chain.state, MONTREUIL, "energie-2026") == {
        "budget_cents": 1_000_000, "paid_cents": 10_000, "pending_cents": 0,
        "remaining_cents": 990_000, "paid_count": 1, "pending_count": 0}


def test_one_payment_per_beneficiary_scheme_and_month(chain: Chain) -> None:
    pay(chain)
    again = pay(chain, amount=5_000)
    assert again.code == "duplicate_payment"
    assert again.message == ("this beneficiary already has a paid payment of 100.00 € from "
                             "scheme energie-2026 for 2026-01; one payment per beneficiary, "
                             "scheme and month")
    assert pay(chain, period="2026-02").ok
    assert pay(chain, n=2).ok


def test_the_ceiling_is_enforced(chain: Chain) -> None:
    receipt = pay(chain, amount=30_001)
    assert (receipt.code, receipt.message) == (
        "above_ceiling",
        "300.01 € exceeds the ceiling of 300.00 € per beneficiary of scheme energie-2026")


def test_the_budget_is_never_exceeded() -> None:
    chain = Chain()
    assert open_scheme(chain, budget=25_000, ceiling=20_000, threshold=20_000).ok
    assert pay(chain, n=1, amount=15_000).ok
    receipt = pay(chain, n=2, amount=10_001)
    assert receipt.code == "budget_exceeded"
    assert receipt.message == ("100.01 € would bring scheme energie-2026 to 250.01 € "
                               "committed out of a budget of 250.00 €; 100.00 € remain")
    assert pay(chain, n=2, amount=10_000).ok
    balance = scheme_balance(chain.state, MONTREUIL, "energie-2026")
    assert balance is not None and balance["remaining_cents"] == 0


def test_above_the_threshold_a_second_agent_must_approve(chain: Chain) -> None:
    receipt = pay(chain, amount=25_000)
    assert receipt.data["status"] == "pending"
    balance = scheme_balance(chain.state, MONTREUIL, "energie-2026")
    assert balance is not None and balance["pending_cents"] == 25_000
    same = pay(chain, action="approve")
    assert same.code == "same_agent"
    assert same.message.startswith("you recorded this payment (with this key or one it "
                                   "replaced): the four-eyes rule needs")
    approved = pay(chain, who="montreuil.agent2", action="approve")
    assert approved.ok and approved.data == {
        "siret": MONTREUIL, "scheme_id": "energie-2026", "period": "2026-01",
        "amount_cents": 25_000, "status": "paid"}
    stored = payment(chain.state, MONTREUIL, "energie-2026", "2026-01", tag(1))
    assert stored is not None and stored["status"] == "paid"
    assert pay(chain, who="montreuil.agent2", action="approve").code == "not_pending"


def test_a_pending_payment_reserves_budget_until_cancelled() -> None:
    chain = Chain()
    assert open_scheme(chain, budget=30_000, ceiling=30_000, threshold=10_000).ok
    assert pay(chain, n=1, amount=20_000).data["status"] == "pending"
    assert pay(chain, n=2, amount=20_000).code == "budget_exceeded"
    assert pay(chain, who="montreuil.agent2", action="cancel", n=1).ok
    assert pay(chain, n=2, amount=20_000).ok
    assert pay(chain, n=1, amount=5_000).ok  # the cancelled slot is free again


def test_the_month_must_be_in_the_schemes_period(chain: Chain) -> None:
    receipt = pay(chain, period="2027-01")
    assert receipt.code == "outside_scheme_period"
    assert pay(chain, period="2026-13").code == "invalid_payload"


def test_schemes_are_checked_and_scoped() -> None:
    assert open_scheme(Chain(), ceiling=2_000_000).code == "ceiling_above_budget"
    assert open_scheme(Chain(), start="2026-06", end="2026-01").code == "invalid_period"
    chain = Chain()
    for step in scheme_steps()[:-1]:
        assert chain.do(*step).ok
    for member in ("montreuil.clerk", "montreuil.agent"):
        assert chain.do(member, "social_aid", "create_scheme",
                        scheme()).code == "not_permitted"
    assert chain.do("montreuil.admin", "social_aid", "create_scheme", scheme()).ok
    assert chain.do("montreuil.admin", "social_aid", "create_scheme",
                    scheme()).code == "duplicate_scheme"
    other = chain.do("pantin.agent", "social_aid", "disburse", disbursement())
    assert other.code == "wrong_municipality"
    own = chain.do("pantin.agent", "social_aid", "disburse", disbursement(town="pantin"))
    assert own.code == "unknown_scheme"


def test_no_personal_data_field_is_accepted(chain: Chain) -> None:
    payload = {**disbursement(), "beneficiary_name": "Jeanne Dupont"}
    receipt = chain.do("montreuil.agent", "social_aid", "disburse", payload)
    assert receipt.code == "invalid_payload"
    assert receipt.message.startswith("the field beneficiary_name is not part of "
                                      "social_aid.disburse; remove it")
    clear = {**disbursement(), "beneficiary": "CASE-00001"}
    assert chain.do("montreuil.agent", "social_aid", "disburse", clear).code == "invalid_payload"

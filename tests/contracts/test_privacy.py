"""No case number and no name reaches the chain through the contracts' public interfaces.

Clerks use the interfaces as intended (case numbers go through ``beneficiary_tag``) and
also try to slip names in (extra fields, a case number in place of the tag). Transactions
pass mempool admission (``check_admissible``), as on a node, then execution; every byte of
the included transactions, the receipts and the state is scanned.
"""

from __future__ import annotations

from typing import Any

from contracts.engine import check_admissible, check_schema
from contracts.social_aid import beneficiary_tag
from ledger.records import Transaction
from tests.vectors.contracts.scenario import Chain, open_scheme, report, siret

TAG_KEY = b"ccas-montreuil-secret-key-2026!!"
CASES = {"CCAS-2026-00417": "Jeanne Dupont", "CCAS-2026-00418": "Mohamed Benali",
         "CCAS-2026-00419": "Élodie Martin"}


def test_case_numbers_and_names_never_reach_the_chain() -> None:
    chain = Chain()
    assert open_scheme(chain).ok
    attempts: list[Transaction] = []

    def submit(who: str, contract: str, action: str, payload: dict[str, Any]) -> None:
        attempts.append(chain.tx(who, contract, action, payload))

    for case, name in CASES.items():
        base = {"siret": siret("montreuil"), "scheme_id": "energie-2026",
                "period": "2026-01", "amount_cents": 12_000}
        submit("montreuil.agent", "social_aid", "disburse",
               {**base, "beneficiary": beneficiary_tag(TAG_KEY, case)})
        submit("montreuil.agent", "social_aid", "disburse",
               {**base, "period": "2026-02", "beneficiary": case})
        submit("montreuil.agent", "social_aid", "disburse",
               {**base, "period": "2026-03", "beneficiary": beneficiary_tag(TAG_KEY, case),
                "beneficiary_name": name})
        submit("montreuil.clerk", "reports", "submit", {**report(), "reporter": name})
        submit("montreuil.clerk", "reports", "submit", {**report(), "email": f"{case}@x.fr"})
    admitted = [tx for tx in attempts if check_admissible(chain.state, tx, chain.time_ms) is None]
    assert len(admitted) == len(CASES), "only the tagged disbursements are admissible"
    receipts = chain.block(*admitted)
    assert all(r.ok for r in receipts)

    stored = b"".join(
        [tx.encode() for _, txs in chain.log for tx in txs]
        + [r.encode() for result in chain.results for r in result.receipts]
        + [k + v for k, v in chain.state.items().items()]
    )
    for case, name in CASES.items():
        for secret in (case, name, name.upper(), name.split()[-1]):
            assert secret.encode() not in stored, f"{secret!r} reached the chain"
    assert beneficiary_tag(TAG_KEY, "CCAS-2026-00417").encode() in stored  # the scan sees


def test_a_validator_can_spot_a_smuggled_field_without_state() -> None:
    chain = Chain()
    smuggled = chain.tx("montreuil.clerk", "reports", "submit",
                        {**report(), "reporter": "Jeanne Dupont"})
    refusal = check_schema(smuggled)
    assert refusal is not None and refusal.code == "invalid_payload"
    assert "reporter is not part of reports.submit" in refusal.message
    assert check_schema(chain.tx("montreuil.clerk", "reports", "submit", report())) is None
    unknown = check_schema(chain.tx("montreuil.clerk", "census", "add", {}))
    assert unknown is not None and unknown.code == "unknown_contract"

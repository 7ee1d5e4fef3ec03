"""The parts of ``tabellion bench`` that run without nodes: the pre-signed pool is made
of valid, distinct, realistic disbursements spread over the four nodes."""

from __future__ import annotations

import base64

from cli.bench import SCHEME_ID, SubmitterPlan, _sign_pool, percentile, verify_rate_per_core
from cli.submit import check_action
from ledger.crypto import SigningKey
from ledger.records import Transaction
from ledger.siret import complete_siret


def test_pool_holds_valid_distinct_disbursements_round_robin() -> None:
    agents = tuple((SigningKey.generate().seed, complete_siret(f"219300480000{i}"),
                    bytes([i]) * 32) for i in range(4))
    plan = SubmitterPlan("tabellion-bench", ("a", "b", "c", "d"), agents, count=200, batch=10,
                         clients=2, period="2026-11")
    batches = _sign_pool(plan)
    assert [node for node, _ in batches[:8]] == [0, 1, 2, 3, 0, 1, 2, 3]
    txs = [Transaction.decode(base64.b64decode(t)) for _, chunk in batches for t in chunk]
    assert len(txs) >= 200
    assert len({tx.tx_id for tx in txs}) == len(txs)
    assert len({(tx.payload["siret"], tx.payload["beneficiary"]) for tx in txs}) == len(txs)
    for tx in txs[:50]:
        assert tx.signature_valid() and tx.contract == "social_aid" and tx.action == "disburse"
        assert tx.payload["scheme_id"] == SCHEME_ID
        check_action(tx.contract, tx.action, tx.payload)
    sizes = [len(tx.encode()) for tx in txs]
    assert 250 <= sum(sizes) / len(sizes) <= 350  # "about 300 bytes" (issue 6)


def test_percentile_and_verify_rate() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0 and percentile(values, 0.99) == 100.0
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN: no sample, no figure
    assert verify_rate_per_core(0.05) > 100

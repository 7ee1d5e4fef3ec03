"""The demo's week of readings shows what the issue asks: one leak, one peak, one event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cli import demo_metering
from ledger.records import Transaction
from tests.vectors.contracts import scenario as s

TODAY = datetime(2026, 1, 20, 6, 0, tzinfo=UTC)  # a Tuesday: the event is on Monday


def test_the_demo_week_raises_a_leak_a_peak_and_settles_a_saving() -> None:
    chain = s.Chain()
    assert chain.do(*s.enroll_gateway()).ok
    chain.time_ms = int(TODAY.timestamp() * 1000)
    siret = s.siret("montreuil")
    who = {"clerk": "montreuil.clerk", "meter_gateway": "montreuil.gateway"}

    def tx(contract: str, action: str, payload: dict[str, Any], role: str) -> Transaction:
        return chain.tx(who[role], contract, action, payload)

    receipts = []
    for wave in (demo_metering.enrolments(siret, tx, TODAY),
                 demo_metering.readings(0, siret, tx, TODAY),
                 demo_metering.settlement(siret, tx, TODAY)):
        for t, label in wave:
            receipt = chain.run(t)
            assert receipt.ok, (label, receipt.message)
            receipts.append(receipt)
    leaks = [leak for r in receipts for leak in r.data.get("leaks", [])]
    peaks = [peak for r in receipts for peak in r.data.get("peaks", [])]
    assert [leak[:2] for leak in leaks] == [[f"{siret[-5:]}-gymnase", "2026-01-18"]]
    assert len(peaks) == 1 and peaks[0][2] == 24_000
    settled = receipts[-1].data
    assert settled["incomplete"] == [] and settled["buildings"] == 2
    # the school halved 4 half hours of 6,000 Wh; the town hall drew as usual
    assert settled["reduction_wh"] == 4 * 3_000

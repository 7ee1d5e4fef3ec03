"""The metering contract: enrolment, reading rules, derived figures, bounded state."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import keys, metering
from ledger.records import Receipt
from tests.vectors.contracts import scenario as s
from tests.vectors.contracts.scenario import Chain, siret

M = siret("montreuil")
FEB_MS = 1_769_904_000_000  # 2026-02-01T00:00:00Z: every January interval is over


def _meter(chain: Any, meter_id: str) -> dict[str, Any]:
    """The meter's record, which must exist."""
    record = metering.meter(chain.state, M, meter_id)
    assert record is not None, f"meter {meter_id} is not enrolled"
    return record


def _chain(*meters: dict[str, Any]) -> Chain:
    chain = Chain()
    assert chain.do(*s.enroll_gateway()).ok
    for payload in meters or (s.meter(),):
        assert chain.do("montreuil.clerk", "metering", "enroll_meter", payload).ok
    chain.time_ms = FEB_MS
    return chain


def _file(chain: Chain, *series: tuple[str, int, list[int]], unit: str = "Wh") -> Receipt:
    return chain.do("montreuil.gateway", "metering", "file_readings",
                    s.readings(*series, unit=unit))


def _day(chain: Chain, meter_id: str, day: str) -> dict[str, Any] | None:
    return metering.meter_day(chain.state, M, meter_id, day)


def test_consumption_per_interval_daily_and_yearly() -> None:
    chain = _chain()
    first = s.interval("2026-01-05")
    receipt = _file(chain, ("PRM-0001", first, s.cumulative(1000, [0, 500, 700, 300])))
    assert receipt.ok, receipt.message
    assert receipt.data["readings"] == 4
    # the first reading opens the series; the next three are consumptions
    assert receipt.data["consumption"] == [["PRM-0001", "2026-01-05", 1500]]
    day = _day(chain, "PRM-0001", "2026-01-05")
    assert day is not None
    assert day["slots"][:4] == [None, 500, 700, 300] and day["total"] == 1500
    more = _file(chain, ("PRM-0001", first + 4, s.cumulative(2500, [100])))
    assert more.data["consumption"] == [["PRM-0001", "2026-01-05", 100]]
    assert metering.meter_year(chain.state, M, "PRM-0001", "2026") == 1600


def test_index_never_goes_backwards_except_at_a_replacement() -> None:
    chain = _chain()
    first = s.interval("2026-01-05")
    assert _file(chain, ("PRM-0001", first, [5000, 5200])).ok
    refused = _file(chain, ("PRM-0001", first + 2, [40]))
    assert refused.code == "index_backwards"
    assert "replace_meter" in refused.message
    assert chain.do("montreuil.clerk", "metering", "replace_meter",
                    {"siret": M, "meter_id": "PRM-0001", "old_final_index": 5250,
                     "new_start_index": 0}).ok
    accepted = _file(chain, ("PRM-0001", first + 2, [40]))
    assert accepted.ok
    # 50 Wh on the old meter after its last reading, 40 on the new one
    assert accepted.data["consumption"] == [["PRM-0001", "2026-01-05", 90]]


@pytest.mark.parametrize(("offset", "code"), [(1, "duplicate_interval"),
                                             (0, "out_of_order_interval")])
def test_intervals_only_move_forward(offset: int, code: str) -> None:
    chain = _chain()
    first = s.interval("2026-01-05")
    assert _file(chain, ("PRM-0001", first, [10, 20])).ok
    assert _file(chain, ("PRM-0001", first + offset, [30])).code == code


def test_a_gap_is_recorded_and_counted_once() -> None:
    chain = _chain()
    first = s.interval("2026-01-05")
    assert _file(chain, ("PRM-0001", first, [100, 200])).ok
    receipt = _file(chain, ("PRM-0001", first + 5, [800]))
    assert receipt.data["gaps"] == [["PRM-0001", first + 2, first + 4, 600]]
    day = _day(chain, "PRM-0001", "2026-01-05")
    assert day is not None
    assert day["slots"][:6] == [None, 100, None, None, None, None]
    assert day["total"] == 700
    assert _meter(chain, "PRM-0001")["gaps"] == 1


def test_batch_rules() -> None:
    chain = _chain()
    first = s.interval("2026-01-05")
    assert _file(chain, ("PRM-0001", first, [1, 2]), unit="L").code == "unit_mismatch"
    assert _file(chain, ("PRM-9999", first, [1])).code == "unknown_meter"
    future = s.interval("2026-02-01")
    assert _file(chain, ("PRM-0001", future, [1])).code == "reading_in_future"
    bad = {**s.readings(("PRM-0001", first, [1, 2])), "counts": [3]}
    assert chain.do("montreuil.gateway", "metering", "file_readings", bad).code == (
        "invalid_batch")
    # only the gateway files readings; the gateway enrols nothing
    assert chain.do("montreuil.clerk", "metering", "file_readings",
                    s.readings(("PRM-0001", first, [1]))).code == "not_permitted"
    assert chain.do("montreuil.gateway", "metering", "enroll_meter",
                    s.meter("PRM-0002")).code == "not_permitted"
    too_many = s.readings(("PRM-0001", first, list(range(metering.READINGS_PER_BATCH_MAX
                                                         + 1))))
    assert chain.do("montreuil.gateway", "metering", "file_readings",
                    too_many).code == "invalid_payload"


def test_enrolment_rules() -> None:
    chain = _chain()
    clerk = ("montreuil.clerk", "metering", "enroll_meter")
    assert chain.do(*clerk, s.meter()).code == "duplicate_meter"
    assert chain.do(*clerk, s.meter("W-1", "water", unit="Wh")).code == "unit_not_allowed"
    assert chain.do(*clerk, s.meter("E-2", subscribed_power_w=None)).code == "invalid_meter"
    assert chain.do(*clerk, s.meter("E-3", minutes=20)).code == "invalid_meter"
    assert chain.do(*clerk, s.meter("G-1", "gas", unit="L")).ok


def test_peak_alert_above_subscribed_power() -> None:
    chain = _chain()
    first = s.interval("2026-01-05", 8)
    # 36 kW subscribed: 18,000 Wh in 30 min is exactly 36 kW (no alert), 18,001 is above
    receipt = _file(chain, ("PRM-0001", first, s.cumulative(0, [0, 18_000, 18_001, 9_000])))
    assert receipt.data["peaks"] == [["PRM-0001", first + 2, 36_002]]


def _nights(chain: Chain, meter_id: str, start_day: str, night_flow: list[int]) -> list[Receipt]:
    """File whole days of 30-minute water readings: ``night_flow[i]`` litres per interval
    at night on day i, 50 L per interval by day."""
    receipts, index = [], 0
    first = s.interval(start_day)
    for n, flow in enumerate(night_flow):
        steps = [flow if 2 <= slot < 10 else 50 for slot in range(48)]
        values = s.cumulative(index, steps)
        index = values[-1]
        receipts.append(chain.do("montreuil.gateway", "metering", "file_readings",
                                 s.readings((meter_id, first + 48 * n, values), unit="L")))
        assert receipts[-1].ok, receipts[-1].message
    return receipts


def test_leak_alert_after_n_nights_above_threshold_and_its_clearing() -> None:
    chain = _chain(s.meter("EAU-1", "water", building="gymnase"))
    # threshold 20 L/h = 10 L per half hour; 3 nights needed
    receipts = _nights(chain, "EAU-1", "2026-01-05", [0, 11, 11, 11, 11, 10, 0])
    alerts = [r.data["leaks"] for r in receipts]
    # a night is judged when the first daytime reading after it arrives (the same day)
    assert alerts[:3] == [[], [], []]
    assert alerts[3] == [["EAU-1", "2026-01-08", 3, 22]]
    assert alerts[4] == []  # still leaking: one alert, not one per night
    assert [r.data["leaks_cleared"] for r in receipts][5] == [["EAU-1", "2026-01-10"]]
    assert _meter(chain, "EAU-1")["leak_since"] is None


def test_an_incomplete_night_resets_the_leak_count() -> None:
    chain = _chain(s.meter("EAU-1", "water", building="gymnase"))
    _nights(chain, "EAU-1", "2026-01-05", [11, 11])
    # day 3: a night interval is missing (gap): the count starts again
    first = s.interval("2026-01-07")
    values = s.cumulative(10_000, [11] * 48)
    receipt = chain.do("montreuil.gateway", "metering", "file_readings",
                       s.readings(("EAU-1", first, values[:3]), unit="L"))
    assert receipt.ok
    later = chain.do("montreuil.gateway", "metering", "file_readings",
                     s.readings(("EAU-1", first + 4, values[4:]), unit="L"))
    assert later.data["leaks"] == []
    assert _meter(chain, "EAU-1")["leak_streak"] == 0


def _event_chain() -> Chain:
    """Two buildings, ten weekdays of flat 1,000 Wh per half hour; on the event day
    (Friday 2026-01-16) the school draws 400 Wh per interval from 17:00 to 19:00 and the
    town hall's readings for that window are missing."""
    chain = _chain(s.meter("E-ECOLE", building="ecole"),
                   s.meter("E-MAIRIE", building="mairie"))
    start = s.interval("2026-01-05")
    for meter_id in ("E-ECOLE", "E-MAIRIE"):
        steps = []
        for day in range(12):  # 2026-01-05 (Monday) to 2026-01-16 (Friday)
            for slot in range(48):
                event_day, window = day == 11, 34 <= slot < 38
                steps.append(400 if meter_id == "E-ECOLE" and event_day and window else 1000)
        values = s.cumulative(0, steps)
        for offset in range(0, len(values), 288):
            chunk = values[offset:offset + 288]
            if meter_id == "E-MAIRIE" and offset == 11 * 48 // 288 * 288:
                cut = 11 * 48 + 35 - offset  # drop the 17:30 reading of the event day
                chunk = chunk[:cut] + chunk[cut + 1:]
                assert _file(chain, (meter_id, start + offset, chunk[:cut])).ok
                assert _file(chain, (meter_id, start + offset + cut + 1, chunk[cut:])).ok
                continue
            assert _file(chain, (meter_id, start + offset, chunk)).ok
    return chain


def test_peak_shaving_reduction_against_the_baseline() -> None:
    chain = _event_chain()
    event = {"siret": M, "event_id": "ecowatt-2026-01-16", "date": "2026-01-16",
             "start_hour": 17, "end_hour": 19, "signal": "EcoWatt rouge", "baseline_days": 3}
    recorded = chain.do("montreuil.clerk", "metering", "record_event", event)
    assert recorded.data["baseline_dates"] == ["2026-01-15", "2026-01-14", "2026-01-13"]
    settled = chain.do("montreuil.clerk", "metering", "settle_event",
                       {"siret": M, "event_id": "ecowatt-2026-01-16"})
    assert settled.ok, settled.message
    # baseline: 4 intervals × 1000 Wh on each of 3 days / 3 = 4000; measured 4 × 400
    assert settled.data == {"event_id": "ecowatt-2026-01-16", "buildings": 1,
                            "incomplete": ["mairie"], "baseline_wh": 4000,
                            "measured_wh": 1600, "reduction_wh": 2400}
    stored = metering.event(chain.state, M, "ecowatt-2026-01-16")
    assert stored is not None
    assert stored["buildings"] == {"ecole": {"baseline_wh": 4000, "measured_wh": 1600,
                                             "reduction_wh": 2400}}
    again = chain.do("montreuil.clerk", "metering", "settle_event",
                     {"siret": M, "event_id": "ecowatt-2026-01-16"})
    assert again.code == "event_settled"


def test_an_event_is_settled_only_once_over() -> None:
    chain = _chain()
    event = {"siret": M, "event_id": "ev1", "date": "2026-02-01", "start_hour": 17,
             "end_hour": 19, "signal": "EcoWatt rouge", "baseline_days": 2}
    assert chain.do("montreuil.clerk", "metering", "record_event", event).ok
    assert chain.do("montreuil.clerk", "metering", "settle_event",
                    {"siret": M, "event_id": "ev1"}).code == "event_not_over"
    assert metering.comparable_days(metering.day_of(s.interval("2026-02-01"), 30)[0], 2) == [
        metering.day_of(s.interval(d), 30)[0] for d in ("2026-01-31", "2026-01-25")]


def test_state_stays_bounded() -> None:
    chain = _chain()
    chain.time_ms = FEB_MS + 40 * 86_400_000
    first = s.interval("2026-01-01")
    index = 0
    for day in range(60):
        values = s.cumulative(index, [10] * 48)
        index = values[-1]
        assert _file(chain, ("PRM-0001", first + 48 * day, values)).ok
    day_keys = [k for k in chain.state if k.startswith(b"meter/day/")]
    assert len(day_keys) == metering.RETAIN_DAYS
    assert min(day_keys) == keys.meter_day_key(M, "PRM-0001", "2026-01-26")
    # the annual total keeps what the pruned days held
    assert metering.meter_year(chain.state, M, "PRM-0001", "2026") == 60 * 48 * 10 - 10

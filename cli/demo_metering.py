"""The demo's metering records: a week of generated readings per town, with one water
leak, one peak alert and one peak-shaving event.

Rules:
- Every town gets three meters: the school's and the town hall's electricity, the
  gymnasium's water, read every 30 minutes over the seven UTC days before today.
- The figures are generated, not random: the same day gives the same records. The first
  town's gymnasium leaks (80 L/h at night from the third night on: a leak alert after
  three nights), its school goes above its subscribed power once (a peak alert), and
  on the last weekday of the week every town records an EcoWatt red window,
  17:00-19:00 UTC, during which the schools halve their load; the settlement shows each
  school's reduction against the three previous weekdays.
- Three waves, as the contract needs: enrolments and the event, then the readings (one
  batch per meter: 336 indexes), then the settlement.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from contracts.metering import is_weekend

Tx = Callable[[str, str, dict[str, Any], str], Any]
"""(contract, action, payload, role) -> a signed transaction of the town's member."""
DAYS = 7
SLOTS = 48
SUBSCRIBED_POWER_W = 20_000
EVENT_START_HOUR, EVENT_END_HOUR = 17, 19
METERS = (("ecole", "electricity"), ("mairie", "electricity"), ("gymnase", "water"))
_EPOCH = date(1970, 1, 1)


def week_start(today: datetime) -> date:
    return today.date() - timedelta(days=DAYS)


def event_day(today: datetime) -> date:
    """The last weekday of the week (it has at least three weekdays before it)."""
    day = today.date() - timedelta(days=1)
    while is_weekend((day - _EPOCH).days):
        day -= timedelta(days=1)
    return day


def meter_id(siret: str, building: str) -> str:
    return f"{siret[-5:]}-{building}"


def _usage(town: int, building: str, day: date, slot: int, start: date, event: date) -> int:
    """Wh or litres in one half hour."""
    hour = slot // 2
    if building == "gymnase":
        leaking = town == 0 and (day - start).days >= 3
        if 1 <= hour < 5:
            return 40 if leaking else 0
        return 60 if 8 <= hour < 21 else 5
    load = 6_000 if 7 <= hour < 19 else 1_500
    if building == "ecole" and day == event and EVENT_START_HOUR <= hour < EVENT_END_HOUR:
        load //= 2
    if town == 0 and building == "ecole" and day == event - timedelta(days=1) and slot == 21:
        load = 12_000  # 24 kW for half an hour: above the 20 kW subscribed
    return load


def enrolments(siret: str, tx: Tx, today: datetime) -> list[tuple[Any, str]]:
    out = []
    for building, kind in METERS:
        payload: dict[str, Any] = {"siret": siret, "meter_id": meter_id(siret, building),
                                   "building": building, "kind": kind,
                                   "unit": "L" if kind == "water" else "Wh",
                                   "interval_minutes": 30}
        if kind == "water":
            payload |= {"leak_threshold_l_per_h": 20, "leak_nights": 3}
        else:
            payload["subscribed_power_w"] = SUBSCRIBED_POWER_W
        out.append((tx("metering", "enroll_meter", payload, "clerk"), f"{kind} meter"))
    day = event_day(today).isoformat()
    out.append((tx("metering", "record_event", {
        "siret": siret, "event_id": f"ecowatt-{day}", "date": day,
        "start_hour": EVENT_START_HOUR, "end_hour": EVENT_END_HOUR,
        "signal": "EcoWatt rouge", "baseline_days": 3}, "clerk"), "peak-shaving event"))
    return out


def readings(town: int, siret: str, tx: Tx, today: datetime) -> list[tuple[Any, str]]:
    start, event = week_start(today), event_day(today)
    first = (start - _EPOCH).days * SLOTS
    out = []
    for building, kind in METERS:
        index, indexes = 1_000_000, []
        for n in range(DAYS * SLOTS):
            day = start + timedelta(days=n // SLOTS)
            index += _usage(town, building, day, n % SLOTS, start, event)
            indexes.append(index)
        out.append((tx("metering", "file_readings", {
            "siret": siret, "unit": "L" if kind == "water" else "Wh",
            "meters": [meter_id(siret, building)], "first_intervals": [first],
            "counts": [len(indexes)], "indexes": indexes}, "meter_gateway"),
            f"week of {kind} readings"))
    return out


def settlement(siret: str, tx: Tx, today: datetime) -> list[tuple[Any, str]]:
    day = event_day(today).isoformat()
    return [(tx("metering", "settle_event", {"siret": siret, "event_id": f"ecowatt-{day}"},
                "clerk"), "event settled")]

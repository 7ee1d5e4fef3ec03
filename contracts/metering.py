"""Metering: water and energy meters of municipal buildings, their readings and what
follows from them (consumption, leak and peak alerts, peak-shaving savings).

Rules:
- Deterministic like every contract: integers only (Wh, litres, watts, minutes), no clock
  but the block time, no iteration over an unordered collection reaching the state or a
  receipt. Days are UTC days; a weekday is computed from the day number.
- A meter is enrolled once per municipality (``enroll_meter``, admin or clerk): building,
  kind (electricity, water, gas, heat), unit (fixed for its life: ``UNITS`` per kind),
  interval length, and for electricity the subscribed power (W), for water the leak
  threshold (L/h) and the number of nights it must hold.
- Readings arrive in batches signed by the town's ``meter_gateway`` key
  (``file_readings``): for each meter, the number of its first interval (interval
  ``n`` covers ``[n, n + 1) × interval_minutes`` since the Unix epoch, UTC) and its
  cumulative indexes for consecutive intervals, at most ``READINGS_PER_BATCH_MAX`` in all.
  A batch is accepted whole or refused whole.
- A cumulative index never goes backwards (``index_backwards``) except across a recorded
  replacement (``replace_meter``: the old meter's final index and the new one's first
  index). Intervals only move forward: a repeated interval is ``duplicate_interval``, an
  earlier one ``out_of_order_interval``; an interval that has not ended at the block time
  is ``reading_in_future``. The batch names its unit; it must be each meter's
  (``unit_mismatch``).
- Consumption of interval ``n`` = index(n) − index(n − 1) (+ the rest of the old meter's
  run after a replacement). The first reading of a meter opens its series (no
  consumption). A gap (intervals missing before ``n``) is recorded as such: the
  consumption over the gap and interval ``n`` is only known together, so it is reported
  as one gap figure, counted in the daily and annual totals of ``n``'s day, and interval
  ``n`` gets no per-interval figure (no peak, no night minimum).
- Peak alert: an electricity interval whose mean power (consumption × 60 / minutes)
  exceeds the subscribed power.
- Leak alert: for water, the night minimum flow (the smallest interval consumption
  between ``NIGHT_START_MINUTE`` and ``NIGHT_END_MINUTE`` UTC, as L/h) above the meter's
  threshold for ``leak_nights`` consecutive complete nights raises an alert; the first
  complete night at or below the threshold clears it. A night with a missing interval
  is incomplete and resets the count (no alert without evidence).
- Peak-shaving event (``record_event``, then ``settle_event`` once the window is over):
  for every electricity meter of the town, grouped by building, measured = consumption
  over the window on the event day; baseline = the sum over the ``baseline_days`` most
  recent comparable days before it (weekday for a weekday, Saturday/Sunday for a
  weekend day; public holidays are not special) of the same window's consumption,
  divided by ``baseline_days`` (rounded down); reduction = baseline − measured. A
  building with a missing interval in any of these windows is listed as incomplete,
  with no figure, and left out of the totals.
- Bounded state: per meter, one record, at most ``RETAIN_DAYS`` day records of interval
  figures (older ones are deleted as newer days arrive) and one total per UTC year.
  Daily totals live in the receipts (``consumption``), where open data reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from contracts import keys
from contracts.registry import (
    SIRET,
    Action,
    Context,
    Contract,
    block_date,
    integer,
    integers,
    iso_date,
    reject,
    text,
    texts,
)
from contracts.view import StateView
from ledger.encoding import Value

KINDS = ("electricity", "water", "gas", "heat")
UNITS: dict[str, tuple[str, ...]] = {
    "electricity": ("Wh",), "water": ("L",), "gas": ("Wh", "L"), "heat": ("Wh",),
}
"""Units allowed per kind: a meter's unit is one of them, fixed at enrolment."""
ALL_UNITS = ("Wh", "L")
INTERVAL_MINUTES = (10, 15, 30, 60)
"""Interval lengths a meter may report in; each divides an hour and a day."""
METERS_PER_TOWN_MAX = 2000
READINGS_PER_BATCH_MAX = 400
"""Most cumulative indexes in one batch (a day of 30-minute readings for 8 meters, or
one interval of 400 meters)."""
METERS_PER_BATCH_MAX = READINGS_PER_BATCH_MAX
INDEX_MAX = 10**15
"""Largest cumulative index (10^15 Wh = 1 TWh): sums of them stay exact below 2^53."""
INTERVAL_NUMBER_MAX = 2**40
"""Interval numbers since the epoch (10-minute intervals reach it in 20 million years)."""
SUBSCRIBED_POWER_W_MAX = 100_000_000
LEAK_THRESHOLD_L_PER_H_MAX = 1_000_000
LEAK_NIGHTS_MAX = 14
NIGHT_START_MINUTE = 60
"""Night window for the leak watch: 01:00 to 05:00 UTC (02:00/03:00 to 06:00/07:00 in
Paris), when a building normally draws no water."""
NIGHT_END_MINUTE = 300
RETAIN_DAYS = 35
"""Day records kept per meter: enough for 5 comparable weekend days before an event
(up to 17 days back) and a few weeks to settle it."""
BASELINE_DAYS_MAX = 5
MS_PER_MINUTE = 60_000
MINUTES_PER_DAY = 1440
DAY_MS = MINUTES_PER_DAY * MS_PER_MINUTE
_ID_HINT = "1 to 64 letters, digits, '.', '_' or '-' (no '/')"
_EPOCH = date(1970, 1, 1)


# ---------------------------------------------------------------- time arithmetic
def day_of(interval: int, minutes: int) -> tuple[int, int]:
    """(UTC day number, minute of day) of the start of interval ``interval``."""
    start_minute = interval * minutes
    return start_minute // MINUTES_PER_DAY, start_minute % MINUTES_PER_DAY


def iso_day(day: int) -> str:
    return block_date(day * DAY_MS)


def is_weekend(day: int) -> bool:
    """Day 0 (1970-01-01) was a Thursday: weekday = (day + 3) % 7 with Monday = 0."""
    return (day + 3) % 7 >= 5


def comparable_days(day: int, count: int) -> list[int]:
    """The ``count`` most recent days before ``day`` of the same kind (weekday/weekend),
    most recent first."""
    found: list[int] = []
    candidate = day - 1
    while len(found) < count:
        if is_weekend(candidate) == is_weekend(day):
            found.append(candidate)
        candidate -= 1
    return found


# ---------------------------------------------------------------- queries
def meter(state: StateView, siret: str, meter_id: str) -> dict[str, Any] | None:
    """The meter record, or ``None``."""
    return keys.read_map(state, keys.meter_key(siret, meter_id))


def meter_ids(state: StateView, siret: str) -> list[str]:
    """Ids of the municipality's meters in enrolment order."""
    count = keys.read(state, keys.meter_count_key(siret)) or 0
    return [str(keys.read(state, keys.meter_index_key(siret, n))) for n in range(count)]


def meter_day(state: StateView, siret: str, meter_id: str, day: str) -> dict[str, Any] | None:
    """``{"slots": [Wh|L or None per interval], "total": int}`` of one retained UTC day."""
    return keys.read_map(state, keys.meter_day_key(siret, meter_id, day))


def meter_year(state: StateView, siret: str, meter_id: str, year: str) -> int:
    return int(keys.read(state, keys.meter_year_key(siret, meter_id, year)) or 0)


def event(state: StateView, siret: str, event_id: str) -> dict[str, Any] | None:
    return keys.read_map(state, keys.meter_event_key(siret, event_id))


# ---------------------------------------------------------------- enroll_meter
def _validate_enroll(ctx: Context) -> None:
    p = ctx.payload
    if meter(ctx.state, p["siret"], p["meter_id"]) is not None:
        reject("duplicate_meter", f"meter {p['meter_id']} is already enrolled; a meter id is "
               "used once (record a replacement with replace_meter instead)")
    if p["unit"] not in UNITS[p["kind"]]:
        reject("unit_not_allowed", f"a {p['kind']} meter reads in "
               f"{' or '.join(UNITS[p['kind']])}, not {p['unit']}")
    if p["interval_minutes"] not in INTERVAL_MINUTES:
        reject("invalid_meter", f"interval_minutes must be one of "
               f"{', '.join(map(str, INTERVAL_MINUTES))} (got {p['interval_minutes']})")
    power, leak = p.get("subscribed_power_w"), p.get("leak_threshold_l_per_h")
    if (power is not None) != (p["kind"] == "electricity"):
        reject("invalid_meter", "subscribed_power_w is required for an electricity meter "
               "and only for one")
    if (leak is not None) != (p["kind"] == "water") or (
            (p.get("leak_nights") is not None) != (p["kind"] == "water")):
        reject("invalid_meter", "leak_threshold_l_per_h and leak_nights are required for a "
               "water meter and only for one")
    count = keys.read(ctx.state, keys.meter_count_key(p["siret"])) or 0
    if count >= METERS_PER_TOWN_MAX:
        reject("too_many_meters", f"municipality {p['siret']} has enrolled "
               f"{METERS_PER_TOWN_MAX} meters, the limit")


def _apply_enroll(ctx: Context) -> dict[str, Value]:
    p = ctx.payload
    count = keys.read(ctx.state, keys.meter_count_key(p["siret"])) or 0
    keys.write(ctx.state, keys.meter_key(p["siret"], p["meter_id"]), {
        "building": p["building"], "kind": p["kind"], "unit": p["unit"],
        "interval_minutes": p["interval_minutes"],
        "subscribed_power_w": p.get("subscribed_power_w"),
        "leak_threshold_l_per_h": p.get("leak_threshold_l_per_h"),
        "leak_nights": p.get("leak_nights"), "enrolled_height": ctx.env.height,
        "last_interval": None, "last_index": None, "carry": 0, "oldest_day": None,
        "night_day": None, "night_min": 0, "night_seen": 0, "leak_streak": 0,
        "leak_since": None, "readings": 0, "gaps": 0, "peaks": 0, "replacements": 0,
    })
    keys.write(ctx.state, keys.meter_index_key(p["siret"], count), p["meter_id"])
    keys.write(ctx.state, keys.meter_count_key(p["siret"]), count + 1)
    return {"meter_id": p["meter_id"], "building": p["building"], "kind": p["kind"],
            "unit": p["unit"]}


def _enrolled(ctx: Context, meter_id: str) -> dict[str, Any]:
    found = meter(ctx.state, ctx.payload["siret"], meter_id)
    if found is None:
        reject("unknown_meter", f"there is no meter {meter_id} in municipality "
               f"{ctx.payload['siret']}; enroll it first (metering.enroll_meter)")
    return found


# ---------------------------------------------------------------- replace_meter
def _validate_replace(ctx: Context) -> None:
    p = ctx.payload
    found = _enrolled(ctx, p["meter_id"])
    last = found["last_index"]
    if last is not None and p["old_final_index"] < last:
        reject("index_backwards", f"the old meter's final index {p['old_final_index']} is "
               f"below its last reading {last}; read the old meter again")


def _apply_replace(ctx: Context) -> dict[str, Value]:
    p = ctx.payload
    found = _enrolled(ctx, p["meter_id"])
    last = found["last_index"]
    carry = found["carry"] + (0 if last is None else p["old_final_index"] - last)
    keys.write(ctx.state, keys.meter_key(p["siret"], p["meter_id"]), {
        **found, "last_index": p["new_start_index"] if last is not None else None,
        "carry": carry if last is not None else 0,
        "replacements": found["replacements"] + 1,
    })
    return {"meter_id": p["meter_id"], "carried": carry if last is not None else 0,
            "new_start_index": p["new_start_index"]}


# ---------------------------------------------------------------- file_readings
@dataclass(frozen=True, slots=True)
class Series:
    """The consecutive readings of one meter in a batch."""

    meter_id: str
    record: dict[str, Any]
    first: int
    indexes: list[int]


def _series(ctx: Context) -> list[Series]:
    """Check a batch against every rule without writing; its series in batch order."""
    p = ctx.payload
    meters, firsts, counts, indexes = (p["meters"], p["first_intervals"], p["counts"],
                                       p["indexes"])
    if not len(meters) == len(firsts) == len(counts):
        reject("invalid_batch", f"meters ({len(meters)}), first_intervals ({len(firsts)}) "
               f"and counts ({len(counts)}) must have one entry per meter")
    if sum(counts) != len(indexes):
        reject("invalid_batch", f"counts add up to {sum(counts)} but indexes holds "
               f"{len(indexes)} values; give one index per interval")
    result: list[Series] = []
    offset = 0
    for meter_id, first, count in zip(meters, firsts, counts, strict=True):
        record = _enrolled(ctx, meter_id)
        if record["unit"] != p["unit"]:
            reject("unit_mismatch", f"meter {meter_id} reads in {record['unit']}, this batch "
                   f"in {p['unit']}; a meter's unit never changes: send a batch per unit")
        minutes = record["interval_minutes"]
        last = record["last_interval"]
        if last is not None and first == last:
            reject("duplicate_interval", f"meter {meter_id} already has a reading for "
                   f"interval {first}; each interval is read once")
        if last is not None and first < last:
            reject("out_of_order_interval", f"meter {meter_id}'s interval {first} is before "
                   f"its last reading (interval {last}); readings only move forward")
        end_ms = (first + count) * minutes * MS_PER_MINUTE
        if end_ms > ctx.env.time_ms:
            reject("reading_in_future", f"meter {meter_id}'s interval {first + count - 1} "
                   f"ends after the block time; file a reading once its interval is over")
        series = indexes[offset:offset + count]
        offset += count
        previous = record["last_index"]
        for position, value in enumerate(series):
            if previous is not None and value < previous:
                reject("index_backwards", f"meter {meter_id}'s index goes back from "
                       f"{previous} to {value} at interval {first + position}; if the meter "
                       "was replaced, record it first (metering.replace_meter)")
            previous = value
        result.append(Series(meter_id, record, first, series))
    return result


def _validate_readings(ctx: Context) -> None:
    _series(ctx)


@dataclass(slots=True)
class _Out:
    """What a batch reports, in batch order (lists, never sets: receipts are ordered)."""

    consumption: list[Value]
    gaps: list[Value]
    peaks: list[Value]
    leaks: list[Value]
    cleared: list[Value]


def _close_night(record: dict[str, Any], meter_id: str, out: _Out) -> None:
    """Judge the night under watch (complete or not) and move the leak streak."""
    minutes = record["interval_minutes"]
    slots = (NIGHT_END_MINUTE - NIGHT_START_MINUTE) // minutes
    night = iso_day(record["night_day"])
    complete = record["night_seen"] == slots
    # flow in L/h = consumption × 60 / minutes; compared without dividing
    leaking = complete and (record["night_min"] * 60
                            > record["leak_threshold_l_per_h"] * minutes)
    record["leak_streak"] = record["leak_streak"] + 1 if leaking else 0
    if leaking and record["leak_since"] is None and (
            record["leak_streak"] >= record["leak_nights"]):
        record["leak_since"] = night
        out.leaks.append([meter_id, night, record["leak_streak"],
                          record["night_min"] * 60 // minutes])
    elif complete and not leaking and record["leak_since"] is not None:
        record["leak_since"] = None
        out.cleared.append([meter_id, night])
    record["night_day"], record["night_min"], record["night_seen"] = None, 0, 0


def _watch_night(record: dict[str, Any], meter_id: str, interval: int,
                 consumption: int | None, out: _Out) -> None:
    day, minute = day_of(interval, record["interval_minutes"])
    watched = record["night_day"]
    if watched is not None and (day > watched or minute >= NIGHT_END_MINUTE):
        _close_night(record, meter_id, out)
    if consumption is None or not NIGHT_START_MINUTE <= minute < NIGHT_END_MINUTE:
        return
    if record["night_day"] != day:
        record["night_day"], record["night_min"], record["night_seen"] = day, consumption, 0
    record["night_min"] = min(record["night_min"], consumption)
    record["night_seen"] += 1


class _Days:
    """The day records a series touches, read once and written once."""

    __slots__ = ("added", "ctx", "meter_id", "minutes", "records")

    def __init__(self, ctx: Context, meter_id: str, minutes: int) -> None:
        self.ctx, self.meter_id, self.minutes = ctx, meter_id, minutes
        self.records: dict[int, dict[str, Any]] = {}
        self.added: dict[int, int] = {}
        """What this batch adds to each day: the receipt's daily figure."""

    def add(self, day: int, slot: int | None, used: int) -> None:
        if day not in self.records:
            found = meter_day(self.ctx.state, self.ctx.payload["siret"], self.meter_id,
                              iso_day(day))
            slots = MINUTES_PER_DAY // self.minutes
            self.records[day] = found or {"slots": [None] * slots, "total": 0}
            self.added[day] = 0
        if slot is not None:
            self.records[day]["slots"][slot] = used
        self.records[day]["total"] += used
        self.added[day] += used


def _file_series(ctx: Context, s: Series, out: _Out) -> int:
    siret, record = ctx.payload["siret"], dict(s.record)
    minutes = record["interval_minutes"]
    days = _Days(ctx, s.meter_id, minutes)
    previous_newest = None if record["last_interval"] is None else day_of(
        record["last_interval"], minutes)[0]
    for position, value in enumerate(s.indexes):
        interval = s.first + position
        last, last_index = record["last_interval"], record["last_index"]
        consumption: int | None = None
        if last_index is not None:
            used = value - last_index + record["carry"]
            record["carry"] = 0
            day, minute = day_of(interval, minutes)
            if last is not None and interval > last + 1:
                out.gaps.append([s.meter_id, last + 1, interval - 1, used])
                record["gaps"] += 1
                days.add(day, None, used)
            else:
                consumption = used
                days.add(day, minute // minutes, used)
                power = record["subscribed_power_w"]
                # mean power in W = Wh × 60 / minutes; compared without dividing
                if power is not None and used * 60 > power * minutes:
                    out.peaks.append([s.meter_id, interval, used * 60 // minutes])
                    record["peaks"] += 1
        if record["kind"] == "water":
            _watch_night(record, s.meter_id, interval, consumption, out)
        record["last_interval"], record["last_index"] = interval, value
        record["readings"] += 1
    for day in sorted(days.records):
        keys.write(ctx.state, keys.meter_day_key(siret, s.meter_id, iso_day(day)),
                   days.records[day])
        out.consumption.append([s.meter_id, iso_day(day), days.added[day]])
        year_key = keys.meter_year_key(siret, s.meter_id, iso_day(day)[:4])
        keys.write(ctx.state, year_key, (keys.read(ctx.state, year_key) or 0) + days.added[day])
    if record["oldest_day"] is None and days.records:
        record["oldest_day"] = min(days.records)
    _prune_days(ctx, s.meter_id, record, previous_newest)
    keys.write(ctx.state, keys.meter_key(siret, s.meter_id), record)
    return len(s.indexes)


def _prune_days(ctx: Context, meter_id: str, record: dict[str, Any],
                previous_newest: int | None) -> None:
    """Delete day records more than RETAIN_DAYS before the meter's newest day. Retained
    days lie between ``oldest_day`` and the newest day, and ``oldest_day`` stays within
    RETAIN_DAYS of it, so the loop is bounded whatever the gap since the last batch."""
    oldest = record["oldest_day"]
    cutoff = day_of(record["last_interval"], record["interval_minutes"])[0] - RETAIN_DAYS
    if oldest is None or oldest > cutoff:
        return
    # days after previous_newest were written by this batch, all after the cutoff
    stop = cutoff if previous_newest is None else min(cutoff, previous_newest)
    for day in range(oldest, stop + 1):
        ctx.state.delete(keys.meter_day_key(ctx.payload["siret"], meter_id, iso_day(day)))
    record["oldest_day"] = cutoff + 1


def _apply_readings(ctx: Context) -> dict[str, Value]:
    out = _Out([], [], [], [], [])
    readings = sum(_file_series(ctx, s, out) for s in _series(ctx))
    return {"readings": readings, "consumption": out.consumption, "gaps": out.gaps,
            "peaks": out.peaks, "leaks": out.leaks, "leaks_cleared": out.cleared}


# ---------------------------------------------------------------- events
def _event_day(record: Any) -> int:
    return (date.fromisoformat(record["date"]) - _EPOCH).days


def _validate_event(ctx: Context) -> None:
    p = ctx.payload
    if event(ctx.state, p["siret"], p["event_id"]) is not None:
        reject("duplicate_event", f"event {p['event_id']} is already recorded; choose "
               "another id")
    if p["start_hour"] >= p["end_hour"]:
        reject("invalid_window", f"the window {p['start_hour']}:00-{p['end_hour']}:00 is "
               "empty; start_hour must be before end_hour (UTC)")


def _apply_event(ctx: Context) -> dict[str, Value]:
    p = ctx.payload
    day = _event_day(p)
    baseline = [iso_day(d) for d in comparable_days(day, p["baseline_days"])]
    keys.write(ctx.state, keys.meter_event_key(p["siret"], p["event_id"]), {
        "date": p["date"], "start_hour": p["start_hour"], "end_hour": p["end_hour"],
        "signal": p["signal"], "baseline_dates": baseline, "recorded_height": ctx.env.height,
        "settled": False, "buildings": {}, "baseline_wh": 0, "measured_wh": 0,
        "reduction_wh": 0, "incomplete": [],
    })
    return {"event_id": p["event_id"], "baseline_dates": list(baseline)}


def _open_event(ctx: Context) -> dict[str, Any]:
    p = ctx.payload
    found = event(ctx.state, p["siret"], p["event_id"])
    if found is None:
        reject("unknown_event", f"there is no event {p['event_id']} in municipality "
               f"{p['siret']}")
    if found["settled"]:
        reject("event_settled", f"event {p['event_id']} is already settled; its figures "
               "are final")
    end_ms = _event_day(found) * DAY_MS + found["end_hour"] * 60 * MS_PER_MINUTE
    if ctx.env.time_ms < end_ms:
        reject("event_not_over", f"event {p['event_id']} ends on {found['date']} at "
               f"{found['end_hour']}:00 UTC; settle it once the window is over and read")
    return found


def _validate_settle(ctx: Context) -> None:
    _open_event(ctx)


def _window(state: StateView, siret: str, meter_id: str, day: str, first: int, end: int
            ) -> int | None:
    """Consumption over slots [first, end) of a day, or None if one is missing."""
    found = meter_day(state, siret, meter_id, day)
    if found is None:
        return None
    values = found["slots"][first:end]
    if any(v is None for v in values):
        return None
    return int(sum(values))


def _apply_settle(ctx: Context) -> dict[str, Value]:
    p, found = ctx.payload, _open_event(ctx)
    siret = p["siret"]
    sums: dict[str, list[int]] = {}
    incomplete: set[str] = set()
    for meter_id in meter_ids(ctx.state, siret):
        record = meter(ctx.state, siret, meter_id)
        assert record is not None, "the meter index lists enrolled meters"
        if record["kind"] != "electricity":
            continue
        building, minutes = record["building"], record["interval_minutes"]
        first, end = found["start_hour"] * 60 // minutes, found["end_hour"] * 60 // minutes
        measured = _window(ctx.state, siret, meter_id, found["date"], first, end)
        base = [_window(ctx.state, siret, meter_id, d, first, end)
                for d in found["baseline_dates"]]
        if measured is None or any(b is None for b in base):
            incomplete.add(building)
            continue
        total = sums.setdefault(building, [0, 0])
        total[0] += sum(b for b in base if b is not None)
        total[1] += measured
    days = len(found["baseline_dates"])
    buildings: dict[str, Value] = {}
    baseline_wh = measured_wh = 0
    for building in sorted(sums):
        if building in incomplete:
            continue
        baseline, measured = sums[building][0] // days, sums[building][1]
        buildings[building] = {"baseline_wh": baseline, "measured_wh": measured,
                               "reduction_wh": baseline - measured}
        baseline_wh += baseline
        measured_wh += measured
    missing = sorted(incomplete)
    keys.write(ctx.state, keys.meter_event_key(siret, p["event_id"]), {
        **found, "settled": True, "buildings": buildings, "baseline_wh": baseline_wh,
        "measured_wh": measured_wh, "reduction_wh": baseline_wh - measured_wh,
        "incomplete": list(missing), "settled_height": ctx.env.height,
    })
    return {"event_id": p["event_id"], "buildings": len(buildings),
            "incomplete": list(missing), "baseline_wh": baseline_wh,
            "measured_wh": measured_wh, "reduction_wh": baseline_wh - measured_wh}


# ---------------------------------------------------------------- the contract
_METER_ID = text("meter_id", 64, pattern=keys.ID_RE, hint=_ID_HINT,
                 doc="Identifier of the meter (e.g. its PDL/PRM or serial number).")
_EVENT_ID = text("event_id", 64, pattern=keys.ID_RE, hint=_ID_HINT,
                 doc="Identifier of the event, unique in the municipality.")

CONTRACT = Contract("metering", (
    Action("enroll_meter", (
        SIRET, _METER_ID,
        text("building", 64, pattern=keys.ID_RE, hint=_ID_HINT,
             doc="Identifier of the building the meter serves (e.g. ecole-jaures)."),
        text("kind", 16, choices=KINDS, doc="electricity, water, gas or heat."),
        text("unit", 8, choices=ALL_UNITS, doc="Wh or L (litres), per kind (see UNITS)."),
        integer("interval_minutes", 10, 60, doc="Interval length: 10, 15, 30 or 60."),
        integer("subscribed_power_w", 1, SUBSCRIBED_POWER_W_MAX, required=False,
                doc="Electricity only (required): subscribed power in W."),
        integer("leak_threshold_l_per_h", 0, LEAK_THRESHOLD_L_PER_H_MAX, required=False,
                doc="Water only (required): night flow above which a leak is suspected."),
        integer("leak_nights", 1, LEAK_NIGHTS_MAX, required=False,
                doc="Water only (required): consecutive nights above the threshold."),
    ), ("admin", "clerk"), "siret", _validate_enroll, _apply_enroll,
        "Enroll a meter of a municipal building."),
    Action("replace_meter", (
        SIRET, _METER_ID,
        integer("old_final_index", 0, INDEX_MAX, doc="Last index of the removed meter."),
        integer("new_start_index", 0, INDEX_MAX, doc="First index of the new meter."),
        text("reason", 256, required=False, doc="Why (kept on chain)."),
    ), ("admin", "clerk"), "siret", _validate_replace, _apply_replace,
        "Record a meter replacement: the index may restart from the new meter's."),
    Action("file_readings", (
        SIRET,
        text("unit", 8, choices=ALL_UNITS, doc="Unit of every index in the batch."),
        texts("meters", items_max=METERS_PER_BATCH_MAX, bytes_max=64,
              doc="Meter ids, each once."),
        integers("first_intervals", 0, INTERVAL_NUMBER_MAX, items_max=METERS_PER_BATCH_MAX,
                 doc="Per meter: number of its first interval (start minute since epoch "
                     "/ interval_minutes)."),
        integers("counts", 1, READINGS_PER_BATCH_MAX, items_max=METERS_PER_BATCH_MAX,
                 doc="Per meter: how many consecutive intervals it reports."),
        integers("indexes", 0, INDEX_MAX, items_max=READINGS_PER_BATCH_MAX,
                 doc="Cumulative indexes, meter after meter, interval after interval."),
    ), ("meter_gateway",), "siret", _validate_readings, _apply_readings,
        "File a batch of interval readings (the town's metering gateway)."),
    Action("record_event", (
        SIRET, _EVENT_ID,
        iso_date("date", doc="Day of the event (UTC)."),
        integer("start_hour", 0, 23, doc="Window start, whole hour UTC."),
        integer("end_hour", 1, 24, doc="Window end, whole hour UTC."),
        text("signal", 128, doc="What called it, e.g. 'EcoWatt rouge'."),
        integer("baseline_days", 1, BASELINE_DAYS_MAX,
                doc="How many previous comparable days make the baseline."),
    ), ("admin", "clerk"), "siret", _validate_event, _apply_event,
        "Record a peak-shaving event window."),
    Action("settle_event", (SIRET, _EVENT_ID), ("admin", "clerk"), "siret",
           _validate_settle, _apply_settle,
           "Compute each building's measured reduction for an event that is over."),
), "Water and energy meters, readings, alerts and peak-shaving savings.")


"""Open-data exports of what is on chain: SCDL deliberations, aid aggregates, Open311,
metering.

Rules:
- Pure functions of committed records ``(Transaction, Receipt, BlockHeader)`` in commit
  order; only transactions whose receipt is ``ok`` count. No state, no clock.
- Deliberations: CSV with exactly the SCDL *Délibérations* columns in the schema's order
  (``deliberations.SCDL_FIELDS``), UTF-8, ISO dates, comma separator, RFC 4180 quoting
  and line ends. By default one row per deliberation in its current version (corrections
  replace, withdrawals remove); ``current_only=False`` lists every recorded version.
- Social aid: only aggregates leave the chain: per municipality, scheme and month, the
  number and total of paid disbursements. A cell whose count is below ``min_count`` is
  suppressed (count and total both ``None``): a small count would point at a household.
  The default, 11, follows the French rule for health and social data (SNDS).
- Reports: Open311 GeoReport v2 ``service_requests`` JSON. Open311 knows two statuses,
  ``open`` and ``closed``; an acknowledged report is ``open`` with
  ``x_tabellion_status: "acknowledged"``. lat/long are written as exact decimals from
  the integer micro-degrees (no float is ever formed).
- Metering: daily consumption per building, energy and unit (the receipts' figures
  summed over the building's meters) and annual totals; CSV columns
  ``METERING_DAILY_FIELDS`` / ``METERING_ANNUAL_FIELDS``. Meters are aggregated by
  building: no meter of a dwelling is ever enrolled (municipal buildings only).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.deliberations import SCDL_FIELDS
from ledger.records import BlockHeader, Receipt, Transaction

Record = tuple[Transaction, Receipt, BlockHeader]
SUPPRESSION_MIN_COUNT = 11
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _committed(records: Iterable[Record], contract: str) -> Iterable[Record]:
    for tx, receipt, header in records:
        if receipt.ok and tx.contract == contract:
            yield tx, receipt, header


def iso_datetime(time_ms: int) -> str:
    """``1767225660000`` -> ``"2026-01-01T00:01:00Z"`` (UTC, second precision)."""
    moment = _EPOCH + timedelta(milliseconds=time_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- deliberations
def _row(payload: dict[str, Any]) -> list[str]:
    return ["" if payload.get(name) is None else str(payload[name]) for name in SCDL_FIELDS]


def deliberations_csv(records: Iterable[Record], *, current_only: bool = True) -> str:
    """The SCDL Délibérations CSV of the committed deliberations."""
    versions: dict[tuple[str, str], dict[str, Any] | None] = {}
    rows: list[list[str]] = []
    for tx, receipt, _ in _committed(records, "deliberations"):
        if tx.action not in ("record", "correct", "withdraw"):
            continue
        chain = (tx.payload["COLL_SIRET"], str(receipt.data["root"]))
        if tx.action == "withdraw":
            versions[chain] = None
            continue
        versions[chain] = tx.payload  # insertion order keeps a chain at its first position
        rows.append(_row(tx.payload))
    if current_only:
        rows = [_row(p) for p in versions.values() if p is not None]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(SCDL_FIELDS)
    writer.writerows(rows)
    return out.getvalue()


# ---------------------------------------------------------------- social aid
@dataclass(frozen=True, slots=True)
class AidAggregate:
    """Paid disbursements of one scheme of one municipality in one month."""

    siret: str
    scheme_id: str
    month: str
    payments: int | None
    """Number of payments, or ``None`` when suppressed."""
    total_cents: int | None
    """Sum of the payments in cents, or ``None`` when suppressed."""

    @property
    def suppressed(self) -> bool:
        return self.payments is None


def social_aid_aggregates(records: Iterable[Record], *,
                          min_count: int = SUPPRESSION_MIN_COUNT) -> list[AidAggregate]:
    """Aggregates sorted by (siret, scheme, month); small counts suppressed."""
    assert min_count >= 1, "a threshold below 1 would suppress nothing by accident"
    cells: dict[tuple[str, str, str], tuple[int, int]] = {}
    for tx, receipt, _ in _committed(records, "social_aid"):
        data = receipt.data
        if tx.action not in ("disburse", "approve") or data.get("status") != "paid":
            continue
        cell = (str(data["siret"]), str(data["scheme_id"]), str(data["period"]))
        count, total = cells.get(cell, (0, 0))
        cells[cell] = (count + 1, total + int(data["amount_cents"]))
    result = []
    for (siret, scheme_id, month), (count, total) in sorted(cells.items()):
        shown = count >= min_count
        result.append(AidAggregate(siret, scheme_id, month, count if shown else None,
                                   total if shown else None))
    return result


def social_aid_csv(aggregates: Iterable[AidAggregate]) -> str:
    """CSV of aggregates: siret, scheme_id, month, payments, total_cents, suppressed."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("siret", "scheme_id", "month", "payments", "total_cents", "suppressed"))
    for a in aggregates:
        writer.writerow((a.siret, a.scheme_id, a.month,
                         "" if a.payments is None else a.payments,
                         "" if a.total_cents is None else a.total_cents,
                         "true" if a.suppressed else "false"))
    return out.getvalue()


# ---------------------------------------------------------------- reports
class _Decimal(str):
    """A number already written as exact decimal text; emitted unquoted."""

    __slots__ = ()


def micro_degrees(value: int) -> _Decimal:
    """``48861500`` -> ``48.8615``: exact decimal text of integer micro-degrees."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 1_000_000)
    digits = f"{frac:06d}".rstrip("0") or "0"
    return _Decimal(f"{sign}{whole}.{digits}")


def _dump(value: Any) -> str:
    if isinstance(value, _Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def service_requests(records: Iterable[Record]) -> list[dict[str, Any]]:
    """Open311 GeoReport v2 service requests, in filing order (lat/long as decimals)."""
    requests: dict[str, dict[str, Any]] = {}
    for tx, receipt, header in _committed(records, "reports"):
        p = tx.payload
        if tx.action == "submit":
            rid = str(receipt.data["service_request_id"])
            requests[rid] = {
                "service_request_id": rid, "status": "open", "status_notes": None,
                "service_name": p.get("service_name"), "service_code": p["service_code"],
                "description": p["description"], "agency_responsible": None,
                "service_notice": None,
                "requested_datetime": iso_datetime(header.time_ms),
                "updated_datetime": iso_datetime(header.time_ms), "expected_datetime": None,
                "address": p.get("address_string"), "address_id": None, "zipcode": None,
                "lat": None if p.get("lat") is None else micro_degrees(p["lat"]),
                "long": None if p.get("long") is None else micro_degrees(p["long"]),
                "media_url": p.get("media_url"), "x_tabellion_status": "open",
                "x_tabellion_siret": p["siret"],
            }
        elif tx.action in ("acknowledge", "close") and p["service_request_id"] in requests:
            entry = requests[p["service_request_id"]]
            status = "closed" if tx.action == "close" else "acknowledged"
            entry["status"] = "closed" if status == "closed" else "open"
            entry["x_tabellion_status"] = status
            entry["updated_datetime"] = iso_datetime(header.time_ms)
            if p.get("status_notes") is not None:
                entry["status_notes"] = p["status_notes"]
            if p.get("agency_responsible") is not None:
                entry["agency_responsible"] = p["agency_responsible"]
    return list(requests.values())


def service_requests_json(records: Iterable[Record]) -> str:
    """The Open311 ``GET /requests.json`` body: a JSON array of service requests."""
    return open311_json(service_requests(records))


def open311_json(value: Any) -> str:
    """JSON text of ``value`` (from ``service_requests``) with lat/long as exact decimals."""
    return _dump(value)


# ---------------------------------------------------------------- metering
METERING_DAILY_FIELDS = ("siret", "building", "kind", "unit", "date", "consumption")
METERING_ANNUAL_FIELDS = ("siret", "building", "kind", "unit", "year", "consumption")


@dataclass(frozen=True, slots=True)
class Consumption:
    """Consumption of one building, kind and unit over a UTC day or year."""

    siret: str
    building: str
    kind: str
    unit: str
    period: str
    """``YYYY-MM-DD`` (daily) or ``YYYY`` (annual)."""
    consumption: int
    """In the unit: Wh or litres, summed over the building's meters of that kind."""


def metering_daily(records: Iterable[Record]) -> list[Consumption]:
    """Daily consumption per building and energy, sorted by (siret, building, kind, unit,
    date), from the ``consumption`` figures of the reading receipts (gaps included in
    the day that closes them, as the contract counts them)."""
    meters: dict[tuple[str, str], tuple[str, str, str]] = {}
    cells: dict[tuple[str, str, str, str, str], int] = {}
    for tx, receipt, _ in _committed(records, "metering"):
        siret = str(tx.payload["siret"])
        if tx.action == "enroll_meter":
            meters[(siret, str(tx.payload["meter_id"]))] = (
                str(tx.payload["building"]), str(tx.payload["kind"]), str(tx.payload["unit"]))
        elif tx.action == "file_readings":
            for meter_id, day, amount in receipt.data["consumption"]:
                building, kind, unit = meters[(siret, str(meter_id))]
                cell = (siret, building, kind, unit, str(day))
                cells[cell] = cells.get(cell, 0) + int(amount)
    return [Consumption(*cell, total) for cell, total in sorted(cells.items())]


def metering_annual(records: Iterable[Record]) -> list[Consumption]:
    """Annual totals per building and energy (the figures a town reports for its
    tertiary buildings), sorted like ``metering_daily``."""
    cells: dict[tuple[str, str, str, str, str], int] = {}
    for day in metering_daily(records):
        cell = (day.siret, day.building, day.kind, day.unit, day.period[:4])
        cells[cell] = cells.get(cell, 0) + day.consumption
    return [Consumption(*cell, total) for cell, total in sorted(cells.items())]


def metering_csv(rows: Iterable[Consumption], *, annual: bool = False) -> str:
    """CSV with the columns ``METERING_DAILY_FIELDS`` (or ``METERING_ANNUAL_FIELDS``),
    UTF-8, comma separator, RFC 4180 quoting and CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(METERING_ANNUAL_FIELDS if annual else METERING_DAILY_FIELDS)
    for row in rows:
        writer.writerow((row.siret, row.building, row.kind, row.unit, row.period,
                         row.consumption))
    return out.getvalue()

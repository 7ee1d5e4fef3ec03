"""Citizen reports (Open311 GeoReport v2 service requests).

Rules:
- A report is filed by a member of the municipality (front desk, phone line or the
  town's web form back end, each holding an enrolled key) on the citizen's behalf: the
  reporter's identity never reaches the chain, and the schema has no field for it
  (no name, email, phone, device id). ADR 0007 explains why not an open intake key.
- Fields follow Open311: ``service_code``, ``service_name``, ``description``, ``lat`` and
  ``long`` (integers in micro-degrees: floats are banned from consensus), ``address_string``,
  ``media_url``. A location is required: lat and long together, or an address.
- A location is kept to about 10 m, no finer: ``lat`` and ``long`` are multiples of
  ``LOCATION_STEP_MICRO`` micro-degrees (0.0001°: 11 m of latitude, 7 m of longitude in
  France), else ``location_too_precise``; a finer point could single out a doorstep.
  ``address_string`` may carry a street number (it locates the problem, at the same
  precision); every other text passes the personal-data guard in full.
- ``service_request_id`` is the hex id of the filing transaction; ``requested_datetime`` is
  the block time.
- Status only moves forward: open -> acknowledged -> closed (closing an open report
  directly is allowed, going back never is: ``status_not_forward``).
- Acknowledging and closing need an agent of the municipality (clerk or admin).
"""

from __future__ import annotations

import re
from typing import Any

from contracts import keys
from contracts.registry import (
    SIRET,
    Action,
    Context,
    Contract,
    hex64,
    integer,
    reject,
    text,
)
from contracts.view import StateView
from ledger.encoding import Value

STATUSES = ("open", "acknowledged", "closed")
LAT_MICRO_MAX = 90_000_000
LONG_MICRO_MAX = 180_000_000
SERVICE_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
URL_RE = re.compile(r"^https?://[^\s]+$")
LOCATION_STEP_MICRO = 100
"""Coordinates are multiples of 100 micro-degrees (0.0001°, about 10 m)."""


def report(state: StateView, siret: str, request_id: str) -> dict[str, Any] | None:
    """The service request record, or ``None``."""
    return keys.read_map(state, keys.report_key(siret, request_id))


def report_status(state: StateView, siret: str, request_id: str) -> str | None:
    found = report(state, siret, request_id)
    return None if found is None else str(found["status"])


def _validate_submit(ctx: Context) -> None:
    p = ctx.payload
    has_lat, has_long = p.get("lat") is not None, p.get("long") is not None
    if has_lat != has_long:
        reject("invalid_payload", "give lat and long together (micro-degrees), or neither")
    if not has_lat and p.get("address_string") is None:
        reject("location_required",
               "a report needs a location: lat and long, or address_string")
    for name in ("lat", "long"):
        value = p.get(name)
        if value is not None and value % LOCATION_STEP_MICRO:
            reject("location_too_precise",
                   f"{name} {value} is finer than about 10 m: round it to a multiple of "
                   f"{LOCATION_STEP_MICRO} micro-degrees (4 decimals of a degree), e.g. "
                   f"{round_location(value)}")


def round_location(micro_degrees: int) -> int:
    """Round micro-degrees to the nearest ``LOCATION_STEP_MICRO`` (halves away from zero),
    as clients must before submitting."""
    sign = -1 if micro_degrees < 0 else 1
    step = LOCATION_STEP_MICRO
    return sign * ((abs(micro_degrees) + step // 2) // step * step)


def _apply_submit(ctx: Context) -> dict[str, Value]:
    p = ctx.payload
    request_id = ctx.tx.tx_id.hex()
    names = ("service_code", "service_name", "description", "lat", "long", "address_string",
             "media_url")
    keys.write(ctx.state, keys.report_key(p["siret"], request_id), {
        **{n: p.get(n) for n in names},
        "service_request_id": request_id, "status": "open", "status_notes": None,
        "agency_responsible": None, "requested_ms": ctx.env.time_ms,
        "updated_ms": ctx.env.time_ms,
    })
    return {"service_request_id": request_id, "status": "open"}


def _forward(ctx: Context, to: str) -> dict[str, Any]:
    p = ctx.payload
    found = report(ctx.state, p["siret"], p["service_request_id"])
    if found is None:
        reject("unknown_report", f"there is no report {p['service_request_id'][:16]}… in "
               f"municipality {p['siret']}")
    if STATUSES.index(found["status"]) >= STATUSES.index(to):
        reject("status_not_forward",
               f"report {p['service_request_id'][:16]}… is already {found['status']}; its "
               "status only moves forward: open -> acknowledged -> closed")
    return found


def _transition(ctx: Context, to: str) -> dict[str, Value]:
    p, found = ctx.payload, _forward(ctx, to)
    updated = {**found, "status": to, "updated_ms": ctx.env.time_ms,
               "status_notes": ctx.get("status_notes", found["status_notes"]),
               "agency_responsible": ctx.get("agency_responsible",
                                             found["agency_responsible"])}
    keys.write(ctx.state, keys.report_key(p["siret"], p["service_request_id"]), updated)
    return {"service_request_id": p["service_request_id"], "status": to}


def _validate_ack(ctx: Context) -> None:
    _forward(ctx, "acknowledged")


def _apply_ack(ctx: Context) -> dict[str, Value]:
    return _transition(ctx, "acknowledged")


def _validate_close(ctx: Context) -> None:
    _forward(ctx, "closed")


def _apply_close(ctx: Context) -> dict[str, Value]:
    return _transition(ctx, "closed")


_REQUEST = hex64("service_request_id", doc="Id of the report (its filing transaction id).")
_NOTES = text("status_notes", 1024, required=False, doc="Public note on the status.")

CONTRACT = Contract("reports", (
    Action("submit", (
        SIRET,
        text("service_code", 64, pattern=SERVICE_CODE_RE,
             hint="a service code of letters, digits, '.', '_' or '-'",
             doc="Open311 service code, e.g. streetlight."),
        text("service_name", 128, required=False, doc="Human name of the service."),
        text("description", 4000, doc="What the citizen reported (no personal data)."),
        integer("lat", -LAT_MICRO_MAX, LAT_MICRO_MAX, required=False,
                doc="Latitude in micro-degrees (WGS84), a multiple of 100 (about 10 m)."),
        integer("long", -LONG_MICRO_MAX, LONG_MICRO_MAX, required=False,
                doc="Longitude in micro-degrees (WGS84), a multiple of 100 (about 10 m)."),
        text("address_string", 256, required=False, street_address_allowed=True,
             doc="Address of the problem, if no coordinates."),
        text("media_url", 512, pattern=URL_RE, hint="an http(s) URL", required=False,
             doc="Photo of the problem."),
    ), ("clerk", "admin", "social_aid_agent", "intake"), "siret", _validate_submit, _apply_submit,
        "File a citizen's report on their behalf."),
    Action("acknowledge", (SIRET, _REQUEST, _NOTES,
                           text("agency_responsible", 128, required=False,
                                doc="Service in charge.")),
           ("clerk", "admin"), "siret", _validate_ack, _apply_ack,
           "Acknowledge a report."),
    Action("close", (SIRET, _REQUEST, _NOTES), ("clerk", "admin"), "siret",
           _validate_close, _apply_close, "Close a report."),
), "Citizen reports (Open311 GeoReport v2).")

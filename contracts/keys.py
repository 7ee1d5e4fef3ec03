"""The state key layout, in one place, and typed access to canonical values.

Rules:
- Every key is ASCII: a contract prefix, then ``/``-separated parts. SIRETs are 14
  digits, keys and hashes are lowercase hex, ids match ``ID_RE``: no part can contain
  ``/``, so no two distinct tuples of parts spell the same key.
- Every value is a canonical msgpack map (``ledger.encoding``), except where noted.
- docs/contracts.md lists the layout for integrators; change both together.
"""

from __future__ import annotations

import re
from typing import Any

from contracts.view import Overlay, StateView
from ledger import siret
from ledger.encoding import Value, decode_stored, encode

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""Identifiers chosen by clerks (DELIB_ID, sitting, scheme): no ``/``, at most 64 chars."""
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
"""A SHA-256 digest, an Ed25519 public key or an HMAC tag, in lowercase hex."""
SIRET_RE = siret.SIRET_RE


def _key(*parts: str) -> bytes:
    return "/".join(parts).encode("ascii")


# ---------------------------------------------------------------- engine and identity
VALIDATORS_KEY = b"sys/validators"
"""``sys/validators`` -> sorted list of validator public keys (hex) in force."""
MUNICIPALITIES_KEY = b"sys/municipalities"
"""``sys/municipalities`` -> sorted list of the SIRETs of active municipalities."""


def param_key(name: str) -> bytes:
    """``sys/param/<name>`` -> int: a governance-changeable parameter."""
    return _key("sys", "param", name)


def municipality_key(siret: str) -> bytes:
    """``id/muni/<siret>`` -> municipality record."""
    return _key("id", "muni", siret)


def retired_validator_key(public_key_hex: str) -> bytes:
    """``id/retired_validator/<key hex>`` -> {siret, retired_height, replaced_by}: a
    validator key replaced by governance (``replace_validator_key``), never used again."""
    return _key("id", "retired_validator", public_key_hex)


def roster_key(siret: str) -> bytes:
    """``id/roster/<siret>`` -> {enrolled, active_admins}: counters of a municipality."""
    return _key("id", "roster", siret)


def member_index_key(siret: str, n: int) -> bytes:
    """``id/members/<siret>/<n>`` -> the n-th key (hex) enrolled there, from 0."""
    return _key("id", "members", siret, str(n))


def member_key(public_key_hex: str) -> bytes:
    """``id/member/<key hex>`` -> member record (municipality, roles, heights)."""
    return _key("id", "member", public_key_hex)


# ---------------------------------------------------------------- governance
def proposal_key(proposal_id: str) -> bytes:
    """``gov/proposal/<id>`` -> proposal record; the id is the proposing tx id (hex)."""
    return _key("gov", "proposal", proposal_id)


# ---------------------------------------------------------------- deliberations
def sitting_key(siret: str, sitting_id: str) -> bytes:
    """``delib/sitting/<siret>/<sitting id>`` -> sitting record."""
    return _key("delib", "sitting", siret, sitting_id)


def deliberation_key(siret: str, delib_id: str) -> bytes:
    """``delib/act/<siret>/<DELIB_ID>`` -> deliberation record (never rewritten)."""
    return _key("delib", "act", siret, delib_id)


def order_key(siret: str, sitting_id: str, order: int) -> bytes:
    """``delib/order/<siret>/<sitting id>/<order>`` -> DELIB_ID holding that number."""
    return _key("delib", "order", siret, sitting_id, str(order))


def head_key(siret: str, root_id: str) -> bytes:
    """``delib/head/<siret>/<original DELIB_ID>`` -> DELIB_ID of the current version."""
    return _key("delib", "head", siret, root_id)


# ---------------------------------------------------------------- social aid
def scheme_key(siret: str, scheme_id: str) -> bytes:
    """``aid/scheme/<siret>/<scheme id>`` -> scheme record (terms, never rewritten)."""
    return _key("aid", "scheme", siret, scheme_id)


def scheme_decision_key(siret: str, delib_root: str) -> bytes:
    """``aid/decision/<siret>/<original DELIB_ID>`` -> the scheme id it created."""
    return _key("aid", "decision", siret, delib_root)


def scheme_totals_key(siret: str, scheme_id: str) -> bytes:
    """``aid/totals/<siret>/<scheme id>`` -> {paid_cents, pending_cents, payments}."""
    return _key("aid", "totals", siret, scheme_id)


def payment_key(siret: str, scheme_id: str, period: str, tag: str) -> bytes:
    """``aid/pay/<siret>/<scheme id>/<YYYY-MM>/<tag>`` -> disbursement record."""
    return _key("aid", "pay", siret, scheme_id, period, tag)


# ---------------------------------------------------------------- reports, notary
def report_key(siret: str, request_id: str) -> bytes:
    """``report/<siret>/<service_request_id>`` -> service request record."""
    return _key("report", siret, request_id)


def notary_key(sha256_hex: str) -> bytes:
    """``notary/<sha256 hex>`` -> anchor record (one per document hash, network-wide)."""
    return _key("notary", sha256_hex)


# ---------------------------------------------------------------- typed access
def read(state: StateView, key: bytes) -> Any:
    """The decoded value at ``key``, or ``None``. State values were written canonical by
    ``write`` (so they are not checked again, ``decode_stored``); a decode failure means
    the store is damaged and must not be papered over."""
    raw = state.get(key)
    return None if raw is None else decode_stored(raw)


def read_map(state: StateView, key: bytes) -> dict[str, Any] | None:
    value = read(state, key)
    assert value is None or isinstance(value, dict), f"state value at {key!r} is a map"
    return value


def read_list(state: StateView, key: bytes) -> list[Any]:
    value = read(state, key)
    assert value is None or isinstance(value, list), f"state value at {key!r} is a list"
    return value or []


def write(state: Overlay, key: bytes, value: Value) -> None:
    if type(value) is dict:  # canonical key order: encode's fast path takes it as it is
        value = dict(sorted(value.items()))
    state.put(key, encode(value))


# ---------------------------------------------------------------- metering
def meter_key(siret: str, meter_id: str) -> bytes:
    """``meter/m/<siret>/<meter id>`` -> meter record (enrolment, last reading, leak watch)."""
    return _key("meter", "m", siret, meter_id)


def meter_count_key(siret: str) -> bytes:
    """``meter/count/<siret>`` -> int: meters enrolled in the municipality."""
    return _key("meter", "count", siret)


def meter_index_key(siret: str, n: int) -> bytes:
    """``meter/idx/<siret>/<n>`` -> the id of the n-th meter enrolled there, from 0."""
    return _key("meter", "idx", siret, str(n))


def meter_day_key(siret: str, meter_id: str, day: str) -> bytes:
    """``meter/day/<siret>/<meter id>/<YYYY-MM-DD>`` -> {slots, total}: one UTC day of
    interval consumption, kept ``metering.RETAIN_DAYS`` days."""
    return _key("meter", "day", siret, meter_id, day)


def meter_year_key(siret: str, meter_id: str, year: str) -> bytes:
    """``meter/year/<siret>/<meter id>/<YYYY>`` -> int: consumption of a UTC year."""
    return _key("meter", "year", siret, meter_id, year)


def meter_event_key(siret: str, event_id: str) -> bytes:
    """``meter/event/<siret>/<event id>`` -> peak-shaving event (window, then results)."""
    return _key("meter", "event", siret, event_id)

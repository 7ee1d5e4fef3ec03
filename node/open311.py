"""Open311 GeoReport v2, served by every node under ``/open311/v2``.

Rules:
- Reading is public: ``services``, ``services/{code}``, ``requests`` (filters
  ``service_request_id``, ``service_code``, ``start_date``, ``end_date``, ``status``, and
  ``jurisdiction_id`` = a town's SIRET) and ``requests/{id}``, each as ``.json`` or
  ``.xml``. The requests come from the committed ``reports`` transactions through
  ``contracts.opendata.service_requests``, the one Open311 mapping of the project.
- As the spec says, without dates the range is the 90 days before now, a range may not
  span more than 90 days, and at most ``REQUESTS_RESULT_MAX`` requests are returned, the
  most recent first. Only the last ``REPORTS_SCAN_MAX`` report transactions are read
  per request (their locations come from the store's contract index), so an answer's
  cost is bounded whatever the chain holds.
- Filing (``POST requests.json``) is for the town's intake front end: it needs the API
  key whose SHA-256 the node's ``[open311]`` configuration holds; the node then signs
  ``reports.submit`` with the town's intake member key (role ``intake``, enrolled on
  chain like any member) and waits for the commit. The citizen's ``email``,
  ``first_name``, ``last_name``, ``phone``, ``device_id`` and ``account_id`` are
  accepted, as the spec lists them, and dropped: they never reach a transaction.
- Errors have the spec's shape (``[{"code": 400, "description": "..."}]``, or
  ``<errors>`` in XML) and say what to fix; nothing a client sends produces a 500.
- Coordinates are decimal degrees on the wire and integer micro-degrees on chain
  (converted with ``decimal``, never a float), rounded to about 10 m
  (``contracts.reports.round_location``: the chain keeps no finer location).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from contracts.opendata import Record, open311_json, service_requests
from contracts.reports import LAT_MICRO_MAX, LONG_MICRO_MAX, SERVICE_CODE_RE, round_location
from ledger.crypto import SigningKey, load_key
from ledger.errors import LedgerError
from ledger.records import Transaction
from ledger.store import ChainStore, TxLocation
from node.api import SubmitOutcome, read_body
from node.chain import Chain
from node.config import NodeConfig, Open311Config
from node.errors import ConfigError

log = logging.getLogger("tabellion.open311")

PREFIX = "/open311/v2"
REQUESTS_RESULT_MAX = 1000
REPORTS_SCAN_MAX = 20_000
RANGE_DAYS_MAX = 90
POST_FIELDS_MAX = 64
POST_BODY_BYTES_MAX = 64 * 1024
COMMIT_WAIT_MS = 15_000
TX_EXPIRY_MS = 10 * 60_000
SCAN_PAGE = 200
PERSONAL_FIELDS = ("email", "first_name", "last_name", "phone", "device_id", "account_id")
"""Accepted (the spec lists them) and dropped: never written to a transaction."""
_REQUEST_ID_RE = re.compile(r"^[0-9a-f]{64}$")
_SIRET_RE = re.compile(r"^[0-9]{14}$")
_DEGREES_RE = re.compile(r"^-?[0-9]{1,3}(\.[0-9]{1,15})?$")


@dataclass(frozen=True, slots=True)
class Service:
    code: str
    name: str
    description: str
    group: str
    keywords: str


SERVICES = (
    Service("streetlight", "Éclairage public", "Lampadaire éteint, clignotant ou abîmé",
            "Voirie", "lampadaire, éclairage"),
    Service("pothole", "Chaussée dégradée", "Nid-de-poule, trottoir ou chaussée abîmés",
            "Voirie", "nid-de-poule, trottoir"),
    Service("graffiti", "Tags et graffitis", "Tags sur un bâtiment ou du mobilier public",
            "Propreté", "tag, graffiti"),
    Service("illegal_dumping", "Dépôt sauvage", "Encombrants ou déchets abandonnés",
            "Propreté", "encombrants, déchets"),
    Service("water_leak", "Fuite d'eau", "Fuite sur la voie publique ou un bâtiment communal",
            "Eau", "fuite, eau"),
    Service("other", "Autre", "Tout autre signalement", "Divers", "autre"),
)
"""The service catalogue every town's endpoint offers (no service needs attributes)."""


@runtime_checkable
class Open311Node(Protocol):
    """What the Open311 endpoint needs from a node (``node.runtime.Node`` has it)."""

    config: NodeConfig
    chain: Chain
    chain_id: str

    async def submit(self, raws: Sequence[bytes]) -> list[SubmitOutcome]: ...

    async def wait_committed(self, tx_ids: Sequence[bytes], timeout_ms: int) -> bool: ...

    def transaction(self, tx_id: bytes) -> dict[str, Any] | None: ...


class Open311Error(Exception):
    """An answer in the spec's error shape."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


# ---------------------------------------------------------------- rendering
def _xml_value(name: str, value: Any) -> str:
    if isinstance(value, list):
        inner = "".join(_xml_value(name.rstrip("s") or name, v) for v in value)
        return f"<{name}>{inner}</{name}>"
    if isinstance(value, dict):
        inner = "".join(_xml_value(k, v) for k, v in value.items())
        return f"<{name}>{inner}</{name}>"
    if value is None:
        return f"<{name}/>"
    if isinstance(value, bool):
        return f"<{name}>{'true' if value else 'false'}</{name}>"
    return f"<{name}>{escape(str(value))}</{name}>"


def render(fmt: str, root: str, item: str, items: list[dict[str, Any]], status: int = 200
           ) -> Response:
    """A list of objects as the spec's JSON array or XML ``<root><item>…``."""
    if fmt == "xml":
        body = "".join(_xml_value(item, entry) for entry in items)
        return Response(f'<?xml version="1.0" encoding="utf-8"?><{root}>{body}</{root}>',
                        status_code=status, media_type="text/xml; charset=utf-8")
    return Response(open311_json(items), status_code=status,
                    media_type="application/json; charset=utf-8")


def error(fmt: str, status: int, description: str) -> Response:
    return render(fmt, "errors", "error", [{"code": status, "description": description}],
                  status)


def _format(fmt: str) -> str:
    if fmt not in ("json", "xml"):
        raise Open311Error(404, f"unknown format {fmt[:16]!r}: use .json or .xml")
    return fmt


# ---------------------------------------------------------------- reading
def _service_json(s: Service) -> dict[str, Any]:
    return {"service_code": s.code, "service_name": s.name, "description": s.description,
            "metadata": False, "type": "realtime", "keywords": s.keywords, "group": s.group}


def parse_datetime(name: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise Open311Error(400, f"{name} must be a W3C date-time such as "
                                "2026-01-05T00:00:00Z") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _csv(value: str | None, what: str, pattern: re.Pattern[str]) -> set[str] | None:
    if value is None:
        return None
    items = {v.strip() for v in value.split(",") if v.strip()}
    if not items or len(items) > REQUESTS_RESULT_MAX or not all(
            pattern.fullmatch(v) for v in items):
        raise Open311Error(400, f"{what} must be a comma-separated list of valid values")
    return items


@dataclass(frozen=True, slots=True)
class Query:
    """The filters of ``GET requests``, validated."""

    ids: set[str] | None
    codes: set[str] | None
    statuses: set[str] | None
    start: datetime
    end: datetime
    jurisdiction: str | None

    @staticmethod
    def parse(params: dict[str, str], now: datetime) -> Query:
        ids = _csv(params.get("service_request_id"), "service_request_id", _REQUEST_ID_RE)
        codes = _csv(params.get("service_code"), "service_code", SERVICE_CODE_RE)
        statuses = _csv(params.get("status"), "status", re.compile(r"^(open|closed)$"))
        start_text, end_text = params.get("start_date"), params.get("end_date")
        end = now if end_text is None else parse_datetime("end_date", end_text)
        start = (end - timedelta(days=RANGE_DAYS_MAX) if start_text is None
                 else parse_datetime("start_date", start_text))
        if end_text is None and start_text is not None:
            end = start + timedelta(days=RANGE_DAYS_MAX)
        if end < start:
            raise Open311Error(400, "end_date is before start_date")
        if end - start > timedelta(days=RANGE_DAYS_MAX):
            raise Open311Error(400, f"start_date to end_date may not span more than "
                                    f"{RANGE_DAYS_MAX} days")
        jurisdiction = params.get("jurisdiction_id")
        if jurisdiction is not None and not _SIRET_RE.fullmatch(jurisdiction):
            raise Open311Error(400, "jurisdiction_id must be a town's 14-digit SIRET")
        return Query(ids, codes, statuses, start, end, jurisdiction)

    def matches(self, request: dict[str, Any]) -> bool:
        if self.jurisdiction is not None and request["x_tabellion_siret"] != self.jurisdiction:
            return False
        if self.ids is not None:  # the spec: ids override every other filter
            return request["service_request_id"] in self.ids
        if self.codes is not None and request["service_code"] not in self.codes:
            return False
        if self.statuses is not None and request["status"] not in self.statuses:
            return False
        filed = parse_datetime("requested_datetime", request["requested_datetime"])
        return self.start <= filed <= self.end


def find_requests(records: Iterable[Record], query: Query) -> list[dict[str, Any]]:
    """The matching service requests, most recent first, at most REQUESTS_RESULT_MAX."""
    found = [r for r in service_requests(records) if query.matches(r)]
    return found[::-1][:REQUESTS_RESULT_MAX]


# ---------------------------------------------------------------- filing
def micro_degrees_of(name: str, text: str, bound: int) -> int:
    """``"48.8615"`` -> ``48861500``: decimal degrees to integer micro-degrees, exactly
    (rounded half-even beyond the sixth decimal), never through a float."""
    if not _DEGREES_RE.fullmatch(text.strip()):
        raise Open311Error(400, f"{name} must be decimal degrees such as 48.8615")
    try:
        micro = int((Decimal(text.strip()) * 1_000_000).quantize(Decimal(1), ROUND_HALF_EVEN))
    except InvalidOperation as exc:
        raise Open311Error(400, f"{name} must be decimal degrees such as 48.8615") from exc
    if not -bound <= micro <= bound:
        raise Open311Error(400, f"{name} is out of range")
    return micro


def submit_payload(form: dict[str, str], siret: str) -> dict[str, Any]:
    """The ``reports.submit`` payload for a POSTed form: personal fields dropped."""
    code = form.get("service_code", "")
    known = {s.code: s for s in SERVICES}
    if code not in known:
        raise Open311Error(400, f"service_code must be one of {', '.join(known)}")
    description = form.get("description", "").strip()
    if not description:
        raise Open311Error(400, "description is required: say what is wrong and where")
    payload: dict[str, Any] = {"siret": siret, "service_code": code,
                               "service_name": known[code].name,
                               # the personal-data guard (contracts/personal_data.py, issue
                               # 14) screens this text before it is signed
                               "description": description}
    # front ends send empty fields for what the citizen left blank: absent
    lat, long = form.get("lat", "").strip() or None, form.get("long", "").strip() or None
    if (lat is None) != (long is None):
        raise Open311Error(400, "give lat and long together, or an address_string")
    if lat is not None and long is not None:
        payload["lat"] = round_location(micro_degrees_of("lat", lat, LAT_MICRO_MAX))
        payload["long"] = round_location(micro_degrees_of("long", long, LONG_MICRO_MAX))
    if form.get("address_string", "").strip():
        payload["address_string"] = form["address_string"].strip()
    if "lat" not in payload and "address_string" not in payload:
        raise Open311Error(400, "a location is required: lat and long, or address_string")
    if form.get("media_url", "").strip():
        payload["media_url"] = form["media_url"].strip()
    return payload


def load_intake_key(config: NodeConfig) -> SigningKey | None:
    """The intake key named by ``[open311]`` (None when the section is absent). It is
    encrypted with the validator key's passphrase, from the same environment variable."""
    if config.open311 is None:
        return None
    passphrase = os.environ.get(config.passphrase_env, "")
    try:
        return load_key(config.open311.intake_key_file, passphrase.encode())
    except LedgerError as exc:
        raise ConfigError(f"open311.intake_key_file: {exc}") from exc


# ---------------------------------------------------------------- routes
def mount(app: FastAPI, node: Open311Node) -> None:
    """Add the Open311 routes to the node's API."""
    router = APIRouter(prefix=PREFIX, tags=["Open311 GeoReport v2"])
    settings: Open311Config | None = node.config.open311
    intake = load_intake_key(node.config)

    @router.get("/services.{fmt}", summary="Open311: the service list")
    async def services(fmt: str) -> Response:
        try:
            return render(_format(fmt), "services", "service",
                          [_service_json(s) for s in SERVICES])
        except Open311Error as exc:
            return error("json", exc.status, exc.description)

    @router.get("/services/{code}.{fmt}", summary="Open311: a service definition")
    async def service(code: str, fmt: str) -> Response:
        try:
            fmt = _format(fmt)
        except Open311Error as exc:
            return error("json", exc.status, exc.description)
        if code not in {s.code for s in SERVICES}:
            return error(fmt, 404, f"no service {code[:64]!r}; see services.{fmt}")
        body = {"service_code": code, "attributes": []}
        if fmt == "xml":
            return Response('<?xml version="1.0" encoding="utf-8"?>'
                            + _xml_value("service_definition", body),
                            media_type="text/xml; charset=utf-8")
        return Response(open311_json(body), media_type="application/json; charset=utf-8")

    @router.get("/requests.{fmt}", summary="Open311: service requests, filtered")
    async def requests(fmt: str, request: Request) -> Response:
        try:
            fmt = _format(fmt)
        except Open311Error as exc:
            return error("json", exc.status, exc.description)
        try:
            query = Query.parse(dict(request.query_params), datetime.now(UTC))
        except Open311Error as exc:
            return error(fmt, exc.status, exc.description)
        return render(fmt, "service_requests", "request",
                      find_requests(scan_reports(node.chain.store), query))

    @router.get("/requests/{request_id}.{fmt}", summary="Open311: one service request")
    async def one_request(request_id: str, fmt: str) -> Response:
        try:
            fmt = _format(fmt)
        except Open311Error as exc:
            return error("json", exc.status, exc.description)
        if not _REQUEST_ID_RE.fullmatch(request_id):
            return error(fmt, 400, "a service_request_id is 64 lowercase hex digits")
        found = [r for r in service_requests(scan_reports(node.chain.store))
                 if r["service_request_id"] == request_id]
        if not found:
            return error(fmt, 404, f"no service request {request_id}")
        return render(fmt, "service_requests", "request", found)

    @router.post("/requests.{fmt}", summary="Open311: file a service request (front end)")
    async def post_request(fmt: str, request: Request) -> Response:
        try:
            fmt = _format(fmt)
        except Open311Error as exc:
            return error("json", exc.status, exc.description)
        try:
            return await _file(fmt, request)
        except Open311Error as exc:
            return error(fmt, exc.status, exc.description)

    async def _file(fmt: str, request: Request) -> Response:
        if settings is None or intake is None:
            raise Open311Error(403, "this node files no reports: its operator has not "
                                    "configured [open311]")
        body = await read_body(request, POST_BODY_BYTES_MAX)
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                              max_num_fields=POST_FIELDS_MAX, strict_parsing=False)
        except (UnicodeDecodeError, ValueError) as exc:
            raise Open311Error(400, "send the fields form-encoded "
                                    "(application/x-www-form-urlencoded), UTF-8") from exc
        form = {k: v for k, v in pairs}
        given = hashlib.sha256(form.get("api_key", "").encode()).hexdigest()
        if not hmac.compare_digest(given, settings.api_key_sha256):
            raise Open311Error(403, "api_key is missing or wrong; ask the town for its key")
        jurisdiction = form.get("jurisdiction_id")
        if jurisdiction not in (None, "", settings.siret):
            raise Open311Error(400, f"this endpoint files for jurisdiction_id "
                                    f"{settings.siret} only")
        payload = submit_payload(form, settings.siret)
        now_ms = int(time.time() * 1000)
        tx = Transaction(node.chain_id, "reports", "submit", payload, intake.public_key,
                         int.from_bytes(os.urandom(8), "big"), now_ms + TX_EXPIRY_MS
                         ).signed(intake)
        (outcome,) = await node.submit([tx.encode()])
        if not outcome.accepted:
            log.warning("open311: the node refused the intake transaction: %s %s",
                        outcome.code, outcome.message)
            raise Open311Error(400 if outcome.code == "invalid_payload" else 503,
                               outcome.message or outcome.code)
        request_id = tx.tx_id.hex()
        if not await node.wait_committed([tx.tx_id], COMMIT_WAIT_MS):
            # the spec's answer when the id is not known yet: a token to look it up by
            return render(fmt, "service_requests", "request",
                          [{"token": request_id, "service_notice": "recording in progress",
                            "account_id": None}], 202)
        found = node.transaction(tx.tx_id) or {}
        receipt = found.get("receipt", {})
        if receipt.get("code") != "ok":
            raise Open311Error(400, str(receipt.get("message") or "the report was refused"))
        return render(fmt, "service_requests", "request", [{
            "service_request_id": request_id,
            "service_notice": "Recorded on the town's ledger; the contact details sent "
                              "with it were not kept.",
            "account_id": None}], 201)

    app.include_router(router)


def scan_reports(store: ChainStore, scan_max: int = REPORTS_SCAN_MAX) -> list[Record]:
    """The last ``scan_max`` committed ``reports`` records of a chain, oldest first.
    Locations come from the store's contract index (cheap); only those blocks are read."""
    locations: deque[TxLocation] = deque(maxlen=scan_max)
    position: TxLocation | None = None
    while True:
        page = store.txs_by_contract("reports", after=position, limit=SCAN_PAGE)
        locations.extend(page)
        if len(page) < SCAN_PAGE:
            break
        position = page[-1]
    records: list[Record] = []
    for location in locations:
        stored = store.get(location.height)
        records.append((stored.block.transactions[location.index],
                        stored.receipts[location.index], stored.block.header))
    return records

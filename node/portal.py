"""The citizens' transparency portal: pages at ``/``, their public JSON under ``/v1/portal``.

Rules (ADR 0013 gives the reasons):
- The pages are static files (``node/portal_static``: HTML, CSS, plain ES modules), read
  once when the application is built and served from memory: no build step, no CDN, no
  web font, nothing outside the node. Every page answer carries a Content-Security-Policy
  that allows only this origin, so a page that tried to load anything else would fail.
- The JSON routes use only the public reads of ``NodeFacade`` (``records``, ``block``,
  ``state``, ``status``): the portal sees nothing the public API does not show.
- Social aid leaves only as the aggregates of the open-data export
  (``contracts.opendata.social_aid_aggregates``, small counts suppressed): no route here
  returns a single payment, an amount of one payment or a beneficiary tag.
- Reports leave without their free-text description (a resident may have written a name
  or a phone number in it); deliberations leave with their SCDL fields, which are public
  by law.
- The portal index catches up with the chain incrementally, at most
  ``RECORD_PAGES_PER_REQUEST_MAX`` pages of records per request so that a request never
  holds the node's event loop for long; an answer says whether it is complete.
- The browser verifies receipts itself (``verify/*.js``, from docs/receipt.md); nothing
  here takes part in that verification.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, Query
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response

from contracts import keys, opendata
from ledger.encoding import decode
from ledger.errors import DecodeError
from ledger.files import read_bytes_bounded
from ledger.jsonview import committed_block_from_json
from ledger.records import BlockHeader
from node.errors import NodeError

STATIC_DIR = Path(__file__).resolve().parent / "portal_static"
STATIC_FILES_MAX = 64
STATIC_FILE_BYTES_MAX = 512 * 1024
RECORD_PAGE_SIZE = 500
RECORD_PAGES_PER_REQUEST_MAX = 20
INDEXED_RECORDS_MAX = 200_000
"""Records of one contract kept by the portal index; beyond, answers say incomplete."""
LIST_ANSWER_MAX = 500
LAST_BLOCKS = 10
SEARCH_TEXT_MAX = 100
PORTAL_CONTRACTS = ("deliberations", "reports", "social_aid")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'none'; object-src 'none'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class PortalSource(Protocol):
    """The public reads of a node the portal uses (a subset of ``node.api.NodeFacade``)."""

    def block(self, height: int | None) -> dict[str, Any] | None: ...

    def records(self, contract: str | None, municipality: str | None, kind: str | None,
                after: str | None, limit: int) -> dict[str, Any]: ...

    def state(self, key: bytes, height: int | None) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...


# --------------------------------------------------------------------------- static files


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    media_type: str


def load_static(directory: Path = STATIC_DIR) -> dict[str, StaticFile]:
    """Every file of the portal, by URL path, read once (bounded in count and size)."""
    files: dict[str, StaticFile] = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if len(files) >= STATIC_FILES_MAX:
            raise RuntimeError(f"the portal holds more than {STATIC_FILES_MAX} files")
        body = read_bytes_bounded(path, STATIC_FILE_BYTES_MAX, "portal file", RuntimeError)
        media = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
                 ".svg": "image/svg+xml", ".json": "application/json"}.get(
            path.suffix, mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        if media.startswith("text/") or media.endswith(("json", "xml")):
            media += "; charset=utf-8"
        files["/portal/" + path.relative_to(directory).as_posix()] = StaticFile(body, media)
    return files


# --------------------------------------------------------------------------- the index


@dataclass
class _Contract:
    cursor: str | None = None
    done: bool = False
    records: list[opendata.Record] = field(default_factory=list)


class PortalIndex:
    """The committed records the pages list, caught up from the node on each request."""

    def __init__(self, source: PortalSource) -> None:
        self._source = source
        self._contracts = {name: _Contract() for name in PORTAL_CONTRACTS}
        self._towns: dict[str, str] = {}

    def block_records(self, height: int) -> tuple[BlockHeader, list[opendata.Record]]:
        found = self._source.block(height)
        if found is None:
            raise LookupError(f"block {height} is not committed")
        block = committed_block_from_json(found, f"block {height}")
        header = block.block.header
        return header, [(tx, r, header) for tx, r in zip(block.block.transactions,
                                                          block.receipts, strict=True)]

    def catch_up(self) -> bool:
        """Read new records (bounded); True when every contract is complete."""
        pages = 0
        for name, entry in self._contracts.items():
            while pages < RECORD_PAGES_PER_REQUEST_MAX:
                page = self._source.records(name, None, None, entry.cursor, RECORD_PAGE_SIZE)
                pages += 1
                heights = sorted({int(r["height"]) for r in page["records"]})
                wanted = {(int(r["height"]), int(r["index"])) for r in page["records"]}
                for height in heights:
                    _, records = self.block_records(height)
                    for index, record in enumerate(records):
                        if (height, index) in wanted and \
                                len(entry.records) < INDEXED_RECORDS_MAX:
                            entry.records.append(record)
                if page["next"] is None:
                    # Nothing more now; remember the last location to resume from.
                    if page["records"]:
                        last = page["records"][-1]
                        entry.cursor = f"{last['height']}-{last['index']}"
                    entry.done = True
                    break
                entry.cursor = str(page["next"])
                entry.done = False
        return all(e.done for e in self._contracts.values()) and pages \
            < RECORD_PAGES_PER_REQUEST_MAX

    def records(self, contract: str) -> list[opendata.Record]:
        return self._contracts[contract].records

    def town(self, siret: str) -> str:
        """The municipality's name from the state (``id/muni/<siret>``), else its SIRET."""
        name = self._towns.get(siret)
        if name is None:
            found = _state_value(self._source, keys.municipality_key(siret))
            name = str(found.get("name")) if isinstance(found, dict) else siret
            self._towns[siret] = name
        return name

    def towns(self) -> list[dict[str, str]]:
        sirets = _state_value(self._source, keys.MUNICIPALITIES_KEY)
        if not isinstance(sirets, list):
            return []
        return [{"siret": str(s), "name": self.town(str(s))} for s in sirets]


def _state_value(source: PortalSource, key: bytes) -> Any:
    try:
        found = source.state(key, None)
    except NodeError:  # no state yet (a starting node): nothing to show
        return None
    value = found.get("value")
    if not isinstance(value, str):
        return None
    try:
        return decode(bytes.fromhex(value))
    except (ValueError, DecodeError):
        return None


# --------------------------------------------------------------------------- public views


def _folded(text: str) -> str:
    """Lower case without accents: "energie" finds "Aide énergie"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def deliberations_view(index: PortalIndex, town: str | None, query: str | None
                       ) -> list[dict[str, Any]]:
    """One entry per deliberation chain (a record and its corrections or withdrawal),
    newest first, each with every version."""
    chains: dict[tuple[str, str], dict[str, Any]] = {}
    for tx, receipt, header in index.records("deliberations"):
        if not receipt.ok or tx.action not in ("record", "correct", "withdraw"):
            continue
        p = tx.payload
        siret = str(p["COLL_SIRET"])
        key = (siret, str(receipt.data.get("root", p.get("DELIB_ID"))))
        version = {
            "action": tx.action, "tx_id": tx.tx_id.hex(), "height": header.height,
            "time_ms": header.time_ms, "DELIB_ID": p.get("DELIB_ID"),
            "DELIB_DATE": p.get("DELIB_DATE"), "reason": p.get("reason"),
        }
        entry = chains.setdefault(key, {"siret": siret, "town": index.town(siret),
                                        "versions": []})
        entry["versions"].append(version)
        if tx.action == "withdraw":
            entry["status"] = "withdrawn"
            continue
        entry["status"] = "corrected" if tx.action == "correct" else "current"
        entry["current"] = {name: p.get(name) for name in (
            "DELIB_ID", "DELIB_DATE", "DELIB_MATIERE_CODE", "DELIB_MATIERE_NOM", "DELIB_OBJET",
            "BUDGET_ANNEE", "VOTE_EFFECTIF", "VOTE_REEL", "VOTE_POUR", "VOTE_CONTRE",
            "VOTE_ABSTENTION", "DELIB_URL", "act_sha256")}
        entry["current"]["outcome"] = receipt.data.get("outcome")
        entry["tx_id"] = tx.tx_id.hex()
    out = [c for c in chains.values() if "current" in c]
    if town:
        out = [c for c in out if c["siret"] == town]
    if query:
        needle = _folded(query)
        out = [c for c in out if any(
            needle in _folded(str(c["current"].get(name) or ""))
            for name in ("DELIB_OBJET", "DELIB_MATIERE_NOM", "DELIB_MATIERE_CODE", "DELIB_ID"))]
    out.sort(key=lambda c: (str(c["current"].get("DELIB_DATE") or ""),
                            c["versions"][-1]["height"]), reverse=True)
    return out[:LIST_ANSWER_MAX]


def reports_view(index: PortalIndex, town: str | None, category: str | None
                 ) -> list[dict[str, Any]]:
    """Reports with their status history (no description: it is free text)."""
    reports: dict[str, dict[str, Any]] = {}
    for tx, receipt, header in index.records("reports"):
        if not receipt.ok:
            continue
        p = tx.payload
        if tx.action == "submit":
            rid = str(receipt.data["service_request_id"])
            siret = str(p["siret"])
            reports[rid] = {
                "service_request_id": rid, "siret": siret, "town": index.town(siret),
                "service_code": p.get("service_code"), "service_name": p.get("service_name"),
                "lat": p.get("lat"), "long": p.get("long"), "status": "open",
                "history": [{"status": "open", "time_ms": header.time_ms,
                             "height": header.height, "tx_id": tx.tx_id.hex()}],
            }
        elif tx.action in ("acknowledge", "close") and str(p.get("service_request_id")) \
                in reports:
            entry = reports[str(p["service_request_id"])]
            status = "closed" if tx.action == "close" else "acknowledged"
            entry["status"] = status
            entry["history"].append({"status": status, "time_ms": header.time_ms,
                                     "height": header.height, "tx_id": tx.tx_id.hex(),
                                     "agency_responsible": p.get("agency_responsible")})
    out = list(reports.values())
    if town:
        out = [r for r in out if r["siret"] == town]
    if category:
        out = [r for r in out if r["service_code"] == category]
    out.sort(key=lambda r: r["history"][0]["time_ms"], reverse=True)
    return out[:LIST_ANSWER_MAX]


def aid_view(index: PortalIndex) -> list[dict[str, Any]]:
    """The open-data aggregates (suppressed cells keep their place, without figures)."""
    return [{"siret": a.siret, "town": index.town(a.siret), "scheme_id": a.scheme_id,
             "month": a.month, "payments": a.payments, "total_cents": a.total_cents,
             "suppressed": a.suppressed}
            for a in opendata.social_aid_aggregates(index.records("social_aid"))]


def document_view(index: PortalIndex, source: PortalSource, sha256_hex: str
                  ) -> dict[str, Any] | None:
    """The anchor of a document hash, read from the state, with its transaction id."""
    anchor = _state_value(source, keys.notary_key(sha256_hex))
    if not isinstance(anchor, dict):
        return None
    height = int(anchor["height"])
    tx_id = None
    for tx, receipt, _ in index.block_records(height)[1]:
        if tx.contract == "notary" and receipt.ok and tx.payload.get("sha256") == sha256_hex:
            tx_id = tx.tx_id.hex()
    siret = str(anchor["siret"])
    return {"sha256": sha256_hex, "siret": siret, "town": index.town(siret),
            "document_type": anchor.get("document_type"), "reference": anchor.get("reference"),
            "title": anchor.get("title"), "height": height, "time_ms": anchor.get("time_ms"),
            "tx_id": tx_id}


def _recent_blocks(source: PortalSource, head: int) -> Iterator[dict[str, Any]]:
    for height in range(head, max(0, head - LAST_BLOCKS), -1):
        found = source.block(height)
        if found is not None:
            yield found


def network_view(index: PortalIndex, source: PortalSource) -> dict[str, Any]:
    status = source.status()
    head = int(status.get("height", 0))
    names: dict[str, str] = {}
    for town in index.towns():
        muni = _state_value(source, keys.municipality_key(town["siret"]))
        if isinstance(muni, dict) and isinstance(muni.get("validator_key"), str):
            names[muni["validator_key"]] = town["name"]
    last_signed: dict[str, int] = {}
    blocks = []
    for found in _recent_blocks(source, head):
        header, certificate = found["header"], found["certificate"]
        for s in certificate["signatures"]:
            last_signed.setdefault(s["voter"], int(header["height"]))
        blocks.append({"height": header["height"], "time_ms": header["time_ms"],
                       "transactions": len(found["transactions"]),
                       "proposer": names.get(header["proposer"], header["proposer"][:16]),
                       "block_hash": found.get("block_hash"),
                       "signatures": len(certificate["signatures"])})
    validators = [{"key": k, "town": names.get(k), "last_signed_height": last_signed.get(k)}
                  for k in status.get("validators", [])]
    return {"chain_id": status.get("chain_id"), "genesis_hash": status.get("genesis_hash"),
            "height": head, "executed_height": status.get("executed_height"),
            "view": status.get("view"), "view_active": status.get("view_active"),
            "primary": names.get(str(status.get("primary")), status.get("primary")),
            "validators": validators, "blocks": blocks}


# --------------------------------------------------------------------------- routes

SHA256_PATTERN = r"^[0-9a-f]{64}$"
SIRET_PATTERN = r"^[0-9]{14}$"
CATEGORY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def mount_portal(app: FastAPI, source: PortalSource) -> None:
    """Serve the portal's pages at ``/`` and ``/portal/...``, its data at ``/v1/portal``."""
    files = load_static()
    index = PortalIndex(source)
    page = files["/portal/index.html"]

    def static(path: str) -> Response:
        found = files.get(path)
        if found is None:
            return JSONResponse({"error": {"code": "not_found",
                                           "message": f"no portal file {path}"}},
                                status_code=404)
        return Response(found.body, media_type=found.media_type, headers=SECURITY_HEADERS)

    @app.get("/", include_in_schema=False)
    async def portal_home() -> Response:
        return Response(page.body, media_type=page.media_type, headers=SECURITY_HEADERS)

    @app.get("/portal/{path:path}", include_in_schema=False)
    async def portal_file(path: str) -> Response:
        return static("/portal/" + path)

    def answer(body: dict[str, Any], complete: bool) -> JSONResponse:
        return JSONResponse({**body, "complete": complete}, headers=SECURITY_HEADERS)

    @app.get("/v1/portal/towns", summary="Portal: the municipalities of the network")
    async def portal_towns() -> JSONResponse:
        return answer({"towns": index.towns()}, True)

    @app.get("/v1/portal/deliberations", summary="Portal: deliberations with their versions")
    async def portal_deliberations(
        town: Annotated[str | None, Query(pattern=SIRET_PATTERN)] = None,
        q: Annotated[str | None, Query(max_length=SEARCH_TEXT_MAX)] = None,
    ) -> JSONResponse:
        complete = index.catch_up()
        return answer({"deliberations": deliberations_view(index, town, q)}, complete)

    @app.get("/v1/portal/reports", summary="Portal: citizen reports and their status history")
    async def portal_reports(
        town: Annotated[str | None, Query(pattern=SIRET_PATTERN)] = None,
        category: Annotated[str | None, Query(pattern=CATEGORY_RE.pattern)] = None,
    ) -> JSONResponse:
        complete = index.catch_up()
        return answer({"reports": reports_view(index, town, category)}, complete)

    @app.get("/v1/portal/aid", summary="Portal: social-aid aggregates (open data)")
    async def portal_aid() -> JSONResponse:
        complete = index.catch_up()
        return answer({"aggregates": aid_view(index),
                       "min_count": opendata.SUPPRESSION_MIN_COUNT}, complete)

    @app.get("/v1/portal/documents/{sha256}", summary="Portal: look up a document hash")
    async def portal_document(
        sha256: Annotated[str, PathParam(pattern=SHA256_PATTERN)],
    ) -> JSONResponse:
        found = document_view(index, source, sha256)
        if found is None:
            return JSONResponse({"error": {
                "code": "not_anchored",
                "message": "no document with this SHA-256 was anchored on this network"}},
                status_code=404, headers=SECURITY_HEADERS)
        return answer({"document": found}, True)

    @app.get("/v1/portal/network", summary="Portal: height, validators, last blocks")
    async def portal_network() -> JSONResponse:
        return answer(network_view(index, source), True)

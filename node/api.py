"""The HTTP API of a validator node (FastAPI), versioned under ``/v1``.

Rules:
- The application depends on the ``NodeFacade`` protocol only, never on the runtime,
  so it is tested with a fake and served by the real node unchanged.
- Every error is JSON ``{"error": {"code": "...", "message": "..."}}``: ``code`` is
  stable (software may branch on it), ``message`` says what to fix. Validation errors
  of paths and query strings use the same shape (422, ``invalid_request``).
- Requests are rate-limited per client address and submissions per signer
  (``node.ratelimit``): 429 ``rate_limited`` with ``Retry-After``. An overloaded node
  sheds submissions with 429 ``busy`` and ``Retry-After`` (``node.mempool``).
- Request bodies are limited to ``limits.api_body_bytes_max``: a larger
  ``Content-Length`` is refused before anything is read, and a body streamed without
  one is cut off as soon as it crosses the limit (413, ``body_too_large``).
- No input produces a 500: handlers validate everything they read, and an unexpected
  exception is logged with its traceback and answered with a JSON 500 ``internal``
  (a bug to fix, found by the property test over this API).
- Social-aid payments are shown by role (``node.read_access``): public readers never
  get a payment's body (blocks show its leaf hash, records and pending views leave it
  out, its transaction and state answer 403 ``restricted``); requests signed by an
  enrolled member of the paying town, or by an auditor, get them in full.
- docs/api.md documents every route; /openapi.json and /docs are generated.
- Open311 GeoReport v2 is served under ``/open311/v2`` by ``node.open311``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.encoding import Limits as DecodeLimits
from ledger.encoding import decode
from ledger.errors import DecodeError
from node import read_access
from node.config import Limits
from node.errors import MempoolRejection, NodeError
from node.portal import mount_portal
from node.ratelimit import ClientRateLimit, retry_after_header
from node.read_access import Reader, ReadRefused
from verify.receipt import ReceiptNotFound, ReceiptNotReady

log = logging.getLogger("tabellion.api")

TX_ID_PATTERN = r"^[0-9a-f]{64}$"
STATE_KEY_BYTES_MAX = 512
MSGPACK = "application/msgpack"

REFUSAL_STATUS = {
    "malformed": 400,
    "malformed_body": 400,
    "bad_signature": 400,
    "wrong_chain": 400,
    "expired": 400,
    "expiry_too_far": 400,
    "already_committed": 409,
    "mempool_full": 503,
    "rate_limited": 429,
    "busy": 429,
    "unknown_signer": 403,
    "signer_revoked": 403,
    "not_permitted": 403,
    "wrong_municipality": 403,
}
"""HTTP status of a refused submission by code; other (contract) codes answer 422."""


class ApiError(NodeError):
    """An answer other than success: HTTP status, stable code, message for the client."""

    def __init__(self, status: int, code: str, message: str,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """What became of one submitted transaction."""

    tx_id: bytes | None
    """Its id when it decoded (even if refused), else ``None``."""
    code: str
    """``"accepted"`` or a refusal code (``bad_signature``, ``unknown_signer``, ...)."""
    message: str = ""
    retry_after_s: float | None = None
    """For a refusal that passes with time (``busy``, ``rate_limited``)."""

    @classmethod
    def refused(cls, exc: MempoolRejection) -> SubmitOutcome:
        return cls(None, exc.code, exc.message, exc.retry_after_s)

    @property
    def accepted(self) -> bool:
        return self.code == "accepted"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tx_id": self.tx_id.hex() if self.tx_id else None,
                               "code": self.code}
        if self.message:
            out["message"] = self.message
        return out


class ReceiptIssuer(Protocol):
    """What the receipt routes need: the node's executed chain (``node.chain.Chain``)."""

    def receipt(self, tx_id: bytes) -> dict[str, Any]:
        """The whole receipt; ``ReceiptNotFound`` / ``ReceiptNotReady`` otherwise."""
        ...

    def validator_changes(self) -> dict[str, Any]: ...


class NodeFacade(Protocol):
    """What the API needs from a node. Methods raise ``ApiError`` for refusals."""

    @property
    def limits(self) -> Limits: ...

    @property
    def chain(self) -> ReceiptIssuer: ...

    async def submit(self, raws: Sequence[bytes]) -> list[SubmitOutcome]: ...

    async def wait_committed(self, tx_ids: Sequence[bytes], timeout_ms: int) -> bool:
        """Wait until every id is committed; False on timeout."""
        ...

    def transaction(self, tx_id: bytes) -> dict[str, Any] | None:
        """``{"status": "pending"|"committed", ...}`` or ``None`` if unknown."""
        ...

    def block(self, height: int | None) -> dict[str, Any] | None: ...

    def records(self, contract: str | None, municipality: str | None, kind: str | None,
                after: str | None, limit: int) -> dict[str, Any]: ...

    def state(self, key: bytes, height: int | None) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...

    def health(self) -> tuple[bool, str]: ...

    def metrics(self) -> bytes: ...


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def _error(http_status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(code, message, **extra), status_code=http_status)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "malformed_body", "Content-Length must be a number")
        if int(declared) > limit:
            raise ApiError(413, "body_too_large",
                           f"the body is {declared} bytes; the limit is {limit}: "
                           "split the batch")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large",
                           f"the body exceeds {limit} bytes: split the batch")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_transactions(body: bytes, content_type: str, batch_max: int) -> list[bytes]:
    """The canonical transaction bytes carried by a submission body."""
    media = content_type.split(";")[0].strip().lower()
    if media == MSGPACK:
        try:
            value = decode(body, DecodeLimits(input_bytes_max=max(len(body), 1),
                                              array_len_max=batch_max, depth_max=2))
        except DecodeError as exc:
            raise ApiError(400, "malformed_body",
                           f"a msgpack body must be a canonical array of transaction byte "
                           f"strings: {exc}") from exc
        if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
            raise ApiError(400, "malformed_body",
                           "a msgpack body must be an array of transaction byte strings")
        raws = list(value)
    elif media in ("application/json", ""):
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, "malformed_body",
                           'the body must be JSON {"transactions": ["<base64>", ...]}'
                           ) from exc
        items = obj.get("transactions") if isinstance(obj, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ApiError(400, "malformed_body",
                           'the body must be JSON {"transactions": ["<base64>", ...]}: '
                           "a list of base64 strings, one canonical transaction each")
        if len(items) > batch_max:
            raise ApiError(413, "batch_too_large",
                           f"{len(items)} transactions in one request; at most {batch_max}")
        raws = []
        for index, item in enumerate(items):
            try:
                raws.append(base64.b64decode(item, validate=True))
            except (binascii.Error, ValueError) as exc:
                raise ApiError(400, "malformed_body",
                               f"transactions[{index}] is not valid base64") from exc
    else:
        raise ApiError(415, "unsupported_media_type",
                       f"send application/json or {MSGPACK}, not {media!r}")
    if not raws:
        raise ApiError(400, "malformed_body", "the batch holds no transaction")
    if len(raws) > batch_max:
        raise ApiError(413, "batch_too_large",
                       f"{len(raws)} transactions in one request; at most {batch_max}")
    return raws


def _visible(reader: Reader, found: dict[str, Any]) -> dict[str, Any]:
    """A transaction's details after submission, without a payment the reader may not
    read (its id and status only)."""
    try:
        return read_access.transaction_view(reader, found)
    except ReadRefused:
        return {"tx_id": found.get("tx_id"), "status": found.get("status"),
                "restricted": True}


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(x) for x in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is invalid"


NO_FRAMEWORK_TELEMETRY: TelemetryConfig = {
    "tracing": False, "metrics": False, "logs": False, "operation_spans": False,
    "auto_configure": False,
}
"""FastAPI's own OpenTelemetry is off: the node's metrics are its Prometheus ones
(``node.metrics``); the framework's logs would record exception messages and request
data, which may hold personal data, and could be exported by an environment variable
alone; its per-request spans cost CPU on every call; and its exit hook printed an
"Error in sys.excepthook" on every clean stop."""


def create_app(node: NodeFacade) -> FastAPI:
    """The FastAPI application serving ``node``."""
    app = FastAPI(
        title="Tabellion validator node",
        version="1",
        description="Submit signed municipal records, follow them to commit, read blocks, "
        "records and proven state. Errors: {\"error\": {\"code\", \"message\"}}.",
        telemetry=NO_FRAMEWORK_TELEMETRY,
    )

    app.add_middleware(ClientRateLimit, limits=node.limits)

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, **exc.extra)

    @app.exception_handler(ReadRefused)
    async def on_read_refused(request: Request, exc: ReadRefused) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    chain_ids: list[str] = []  # the node's chain id, asked once

    def member_state(key: bytes) -> bytes | None:
        value = node.state(key, None).get("value")
        return None if value is None else bytes.fromhex(str(value))

    def reader_of(request: Request) -> Reader:
        """Who signed the request (``read_access.PUBLIC`` if nobody did)."""
        if read_access.READER_KEY_HEADER not in request.headers and (
                read_access.READER_SIGNATURE_HEADER not in request.headers):
            return read_access.PUBLIC
        if not chain_ids:
            chain_ids.append(str(node.status()["chain_id"]))
        query = request.url.query
        path = request.url.path + (f"?{query}" if query else "")
        return read_access.authenticate(request.headers, request.method, path, chain_ids[0],
                                        member_state)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError
                                  ) -> JSONResponse:
        return _error(422, "invalid_request", _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {404: f"no route {request.url.path}; see /docs for the API",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(
            exc.status_code, str(exc.detail))
        return _error(exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, "internal", "the node failed to answer; the operator will find "
                      "the cause in its log")

    @app.post("/v1/transactions", status_code=202, summary="Submit signed transactions")
    async def post_transactions(
        request: Request,
        wait: Annotated[bool, Query(description="wait until every transaction commits")]
        = False,
        timeout_ms: Annotated[int, Query(ge=1, le=600_000, description="how long to wait")]
        = 10_000,
    ) -> JSONResponse:
        limits = node.limits
        reader = reader_of(request)
        body = await read_body(request, limits.api_body_bytes_max)
        raws = parse_transactions(body, request.headers.get("content-type", ""),
                                  limits.api_batch_txs_max)
        outcomes = await node.submit(raws)
        refused = [(i, o) for i, o in enumerate(outcomes) if not o.accepted]
        results = [o.to_json() for o in outcomes]
        if refused:
            index, first = refused[0]
            status = REFUSAL_STATUS.get(first.code, 422)
            where = f"transactions[{index}]: " if len(outcomes) > 1 else ""
            answer = _error(status, first.code, where + first.message, results=results)
            if first.retry_after_s is not None:  # busy, rate_limited: it passes with time
                answer.headers["Retry-After"] = retry_after_header(first.retry_after_s)
            return answer
        tx_ids = [o.tx_id for o in outcomes if o.tx_id is not None]
        if not wait:
            return JSONResponse({"tx_ids": [t.hex() for t in tx_ids]}, status_code=202)
        timeout = min(timeout_ms, limits.api_wait_ms_max)
        done = await node.wait_committed(tx_ids, timeout)
        details = [_visible(reader, node.transaction(t) or {"tx_id": t.hex(),
                                                            "status": "unknown"})
                   for t in tx_ids]
        return JSONResponse(
            {"tx_ids": [t.hex() for t in tx_ids], "committed": done, "results": details},
            status_code=200 if done else 202,
        )

    @app.get("/v1/transactions/{tx_id}", summary="Status, receipt and height of a transaction")
    async def get_transaction(
        request: Request,
        tx_id: Annotated[str, Path(pattern=TX_ID_PATTERN, description="64 hex digits")],
    ) -> JSONResponse:
        reader = reader_of(request)
        found = node.transaction(bytes.fromhex(tx_id))
        if found is None:
            return _error(404, "unknown_transaction",
                          f"no pending or committed transaction {tx_id}; if you just "
                          "submitted it to another node, retry in a moment", status="unknown")
        return JSONResponse(read_access.transaction_view(reader, found))

    @app.get("/v1/receipts/{tx_id}", summary="The portable receipt of a committed record")
    async def get_receipt(
        request: Request,
        tx_id: Annotated[str, Path(pattern=TX_ID_PATTERN, description="64 hex digits")],
    ) -> JSONResponse:
        # A receipt holds the whole record: the rule of a transaction's read applies (a
        # payment's receipt only to the readers who may read that payment), before any
        # work is done for the request.
        found = node.transaction(bytes.fromhex(tx_id))
        if found is not None:
            read_access.transaction_view(reader_of(request), found)
        try:
            return JSONResponse(node.chain.receipt(bytes.fromhex(tx_id)))
        except ReceiptNotFound as exc:
            return _error(404, "unknown_transaction", f"{exc.reason}; if you just submitted "
                          "it, wait for its commit and retry")
        except ReceiptNotReady as exc:
            return _error(409, "receipt_not_ready", exc.reason)

    @app.get("/v1/validators/changes",
             summary="Every validator-set change since genesis, with its proofs")
    async def get_validator_changes() -> JSONResponse:
        return JSONResponse(node.chain.validator_changes())

    @app.get("/v1/blocks/latest", summary="The last committed block")
    async def get_latest_block(request: Request) -> JSONResponse:
        reader = reader_of(request)
        found = node.block(None)
        if found is None:
            return _error(404, "no_block", "no block is committed yet")
        return JSONResponse(read_access.block_view(reader, found))

    @app.get("/v1/blocks/{height}", summary="A committed block by height")
    async def get_block(request: Request,
                        height: Annotated[int, Path(ge=1, le=2**63)]) -> JSONResponse:
        reader = reader_of(request)
        found = node.block(height)
        if found is None:
            return _error(404, "unknown_block", f"no committed block at height {height}")
        return JSONResponse(read_access.block_view(reader, found))

    @app.get("/v1/records", summary="Committed records, filtered and paginated")
    async def get_records(
        request: Request,
        contract: Annotated[str | None, Query(max_length=64)] = None,
        municipality: Annotated[str | None, Query(pattern=r"^[0-9]{14}$",
                                                  description="SIRET")] = None,
        type: Annotated[str | None, Query(max_length=64, description="action name")] = None,
        after: Annotated[str | None, Query(max_length=256,
                                           description="cursor from the previous page")]
        = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> JSONResponse:
        reader = reader_of(request)
        limit = min(limit, node.limits.api_page_max)
        return JSONResponse(read_access.records_view(
            reader, node.records(contract, municipality, type, after, limit)))

    @app.get("/v1/state/{key_hex}", summary="A state value with its proof")
    async def get_state(
        request: Request,
        key_hex: Annotated[str, Path(pattern=r"^([0-9a-f]{2}){1,512}$")],
        height: Annotated[int | None, Query(ge=0, le=2**63)] = None,
    ) -> JSONResponse:
        read_access.check_state_key(reader_of(request), bytes.fromhex(key_hex))
        return JSONResponse(node.state(bytes.fromhex(key_hex), height))

    @app.get("/v1/status", summary="Height, head, view, primary, peers, mempool")
    async def get_status() -> JSONResponse:
        return JSONResponse(node.status())

    @app.get("/healthz", summary="Liveness and readiness")
    async def healthz() -> JSONResponse:
        ok, reason = node.health()
        if ok:
            return JSONResponse({"status": "ok", "detail": reason})
        return _error(503, "unhealthy", reason)

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(node.metrics(), media_type="text/plain; version=0.0.4")

    from node import open311  # here: it builds on this module's helpers

    if isinstance(node, open311.Open311Node):  # a real node (the API's fakes have no chain)
        open311.mount(app, node)
    mount_portal(app, node)  # the citizens' portal at / (node/portal.py)
    return app

"""A small synchronous client of a node's HTTP API, for the CLI.

Rules:
- Every answer that is not a success becomes a ``CliError`` carrying the node's stable
  error code and message (exit code 1: the node refused), so commands never see raw HTTP.
- Transport failures (connection refused, timeouts) are left to ``cli.common.guarded``,
  which reports them with exit code 3.
- Every request has a timeout; answers are size-checked by httpx's own limits and parsed
  as JSON objects, anything else is reported as "not a Tabellion node".
- Given a ``reader`` key (the member's own key), every request after the first
  ``/v1/status`` is signed (``node.read_access.read_headers``), so the member reads
  their town's social-aid payments; without one, reads are public.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from cli.common import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, CliError
from ledger.crypto import SigningKey
from ledger.records import Transaction
from node.read_access import read_headers

TIMEOUT_S_DEFAULT = 15.0
RECORDS_PAGES_MAX = 10_000
"""Pages fetched by one ``records_all``: bounds a runaway pagination loop."""


@dataclass(frozen=True, slots=True)
class NodeRefusal:
    code: str
    message: str


@dataclass(slots=True)
class NodeClient:
    """The API of one node at ``base_url`` (``http://host:port``)."""

    base_url: str
    timeout_s: float = TIMEOUT_S_DEFAULT
    reader: SigningKey | None = None
    """Signs every request (read access by role); ``None`` reads publicly."""
    _http: httpx.Client = field(init=False)
    _chain_id: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        url = self.base_url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise CliError(f"--node {self.base_url!r} must be a URL such as "
                           "http://127.0.0.1:7100", EXIT_USAGE)
        self.base_url = url
        self._http = httpx.Client(base_url=url, timeout=self.timeout_s)
        if self.reader is not None:
            self._http.event_hooks["request"] = [self._sign]

    def _sign(self, request: httpx.Request) -> None:
        """Add the reader's signature headers (the status query that gives the chain id
        goes unsigned: it is public)."""
        assert self.reader is not None
        if request.url.path == "/v1/status":
            return
        if self._chain_id is None:
            self._chain_id = self.chain_id()
        query = request.url.query.decode("ascii")
        path = request.url.path + (f"?{query}" if query else "")
        request.headers.update(read_headers(self.reader, request.method, path,
                                            self._chain_id))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise CliError(f"{self.base_url} answered HTTP {response.status_code} without a "
                           "JSON object: is it a Tabellion node? Check --node",
                           EXIT_UNREACHABLE)
        return body

    def _checked(self, response: httpx.Response) -> dict[str, Any]:
        body = self._json(response)
        if response.status_code >= 400:
            error = body.get("error")
            if isinstance(error, dict):
                code, message = str(error.get("code")), str(error.get("message"))
                raise CliError(f"the node refused ({code}): {message}", EXIT_FAILED)
            raise CliError(f"the node answered HTTP {response.status_code}", EXIT_FAILED)
        return body

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._checked(self._http.get(path, params=params))

    def get_raw(self, path: str) -> dict[str, Any] | None:
        """The JSON body of a 200 answer, ``None`` for a 404; other errors raise."""
        response = self._http.get(path)
        if response.status_code == 404:
            return None
        return self._checked(response)

    # ------------------------------------------------------------------ API

    def status(self) -> dict[str, Any]:
        return self.get("/v1/status")

    def chain_id(self) -> str:
        found = self.status().get("chain_id")
        if not isinstance(found, str) or not found:
            raise CliError(f"{self.base_url} does not report its chain id; pass --chain-id",
                           EXIT_USAGE)
        return found

    def submit(self, txs: Sequence[Transaction], *, wait: bool, timeout_ms: int
               ) -> dict[str, Any]:
        body = {"transactions": [base64.b64encode(tx.encode()).decode() for tx in txs]}
        params: dict[str, Any] = {}
        if wait:
            params = {"wait": "true", "timeout_ms": timeout_ms}
        timeout = self.timeout_s + (timeout_ms / 1000 if wait else 0)
        response = self._http.post("/v1/transactions", json=body, params=params,
                                   timeout=timeout)
        return self._checked(response)

    def transaction(self, tx_id: str) -> dict[str, Any]:
        return self.get(f"/v1/transactions/{tx_id}")

    def wait_committed(self, tx_id: str, timeout_ms: int) -> dict[str, Any]:
        """Poll until ``tx_id`` is committed; ``CliError`` (exit 1) after ``timeout_ms``."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            response = self._http.get(f"/v1/transactions/{tx_id}")
            if response.status_code == 200:
                body = self._json(response)
                if body.get("status") == "committed":
                    return body
            elif response.status_code != 404:
                self._checked(response)
            if time.monotonic() > deadline:
                raise CliError(f"transaction {tx_id} was not committed within "
                               f"{timeout_ms} ms; check it later with tabellion tx show",
                               EXIT_FAILED)
            time.sleep(0.1)

    def records(self, *, contract: str | None = None, municipality: str | None = None,
                kind: str | None = None, after: str | None = None, limit: int = 100
                ) -> dict[str, Any]:
        params = {k: v for k, v in (("contract", contract), ("municipality", municipality),
                                    ("type", kind), ("after", after), ("limit", limit))
                  if v is not None}
        return self.get("/v1/records", params)

    def records_all(self, *, contract: str | None = None, municipality: str | None = None,
                    kind: str | None = None) -> Iterator[dict[str, Any]]:
        """Every record matching the filters, following the pagination cursor."""
        after: str | None = None
        for _ in range(RECORDS_PAGES_MAX):
            page = self.records(contract=contract, municipality=municipality, kind=kind,
                                after=after, limit=500)
            items = page.get("records", [])
            if not isinstance(items, list):
                raise CliError(f"{self.base_url} answered records without a list", EXIT_FAILED)
            yield from (item for item in items if isinstance(item, dict))
            cursor = page.get("next")
            if not cursor:  # a page may be empty yet continue: payments hidden from you
                return
            after = str(cursor)
        raise CliError(f"more than {RECORDS_PAGES_MAX} pages of records; narrow the filters",
                       EXIT_FAILED)

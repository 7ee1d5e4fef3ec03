"""The HTTP layer against a fake node: shapes, codes, limits, and no 500 for any input.

The real node behind the same application is tested end to end in test_cluster.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import hypothesis.strategies as st
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from ledger.crypto import SigningKey
from ledger.encoding import encode
from ledger.records import Transaction
from node.api import ApiError, SubmitOutcome, create_app
from node.config import Limits
from node.errors import MempoolRejection
from node.mempool import Mempool
from verify.receipt import ReceiptNotFound, ReceiptNotReady

CHAIN = "test-chain"
NOW = 1_700_000_000_000
KEY = SigningKey.generate()


def tx(nonce: int, chain: str = CHAIN) -> Transaction:
    return Transaction(chain, "notary", "anchor", {"sha256": "ab" * 32}, KEY.public_key,
                       nonce, NOW + 60_000).signed(KEY)


class FakeReceipts:
    """Receipts of the fake node: one ready id, one committed but not yet certified."""

    READY = "11" * 32
    NOT_READY = "22" * 32

    def receipt(self, tx_id: bytes) -> dict[str, Any]:
        if tx_id.hex() == self.READY:
            return {"format": "tabellion-receipt/1", "record": {"height": 1}}
        if tx_id.hex() == self.NOT_READY:
            raise ReceiptNotReady("record", "certified only in header 3 (head is 1)")
        raise ReceiptNotFound("record", f"transaction {tx_id.hex()} is not on this chain")

    def validator_changes(self) -> dict[str, Any]:
        return {"up_to": 1, "validator_changes": []}


class FakeNode:
    """A node without consensus: a real mempool; ``commit`` marks transactions final."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self.mempool = Mempool(CHAIN, limits, self.is_committed)
        self.committed: dict[bytes, int] = {}
        self.commit_on_wait = True

    def is_committed(self, tx_id: bytes) -> bool:
        return tx_id in self.committed

    @property
    def limits(self) -> Limits:
        return self._limits

    @property
    def chain(self) -> FakeReceipts:
        return FakeReceipts()

    async def submit(self, raws: Sequence[bytes]) -> list[SubmitOutcome]:
        out = []
        for raw in raws:
            try:
                out.append(SubmitOutcome(self.mempool.admit(raw, NOW, forward=True), "accepted"))
            except MempoolRejection as exc:
                out.append(SubmitOutcome.refused(exc))
        return out

    async def wait_committed(self, tx_ids: Sequence[bytes], timeout_ms: int) -> bool:
        if self.commit_on_wait:
            for t in tx_ids:
                self.committed[t] = 1
            self.mempool.committed(1, tx_ids)
        return all(t in self.committed for t in tx_ids)

    def transaction(self, tx_id: bytes) -> dict[str, Any] | None:
        if tx_id in self.committed:
            return {"tx_id": tx_id.hex(), "status": "committed", "height": 1}
        if tx_id in self.mempool:
            return {"tx_id": tx_id.hex(), "status": "pending"}
        return None

    def block(self, height: int | None) -> dict[str, Any] | None:
        return {"height": 1} if height in (None, 1) else None

    def records(self, contract: str | None, municipality: str | None, kind: str | None,
                after: str | None, limit: int) -> dict[str, Any]:
        if after is not None and not after.isdigit():
            raise ApiError(400, "invalid_cursor", "after must be a cursor from a previous page")
        return {"records": [], "next": None, "limit": limit}

    def state(self, key: bytes, height: int | None) -> dict[str, Any]:
        if height is not None and height > 1:
            raise ApiError(404, "unknown_height", f"no state at height {height}")
        return {"key": key.hex(), "value": None, "height": 1, "proof": {}}

    def status(self) -> dict[str, Any]:
        return {"chain_id": CHAIN, "height": 1}

    def health(self) -> tuple[bool, str]:
        return True, "ready"

    def metrics(self) -> bytes:
        return b"tabellion_height 1\n"


SMALL = Limits(api_body_bytes_max=4096, api_batch_txs_max=4)


def client(limits: Limits = SMALL) -> tuple[TestClient, FakeNode]:
    node = FakeNode(limits)
    return TestClient(create_app(node), raise_server_exceptions=False), node


def b64(t: Transaction) -> str:
    return base64.b64encode(t.encode()).decode()


def test_submit_json_then_status_then_wait() -> None:
    c, _ = client()
    t = tx(1)
    r = c.post("/v1/transactions", json={"transactions": [b64(t)]})
    assert r.status_code == 202 and r.json() == {"tx_ids": [t.tx_id.hex()]}
    assert c.get(f"/v1/transactions/{t.tx_id.hex()}").json()["status"] == "pending"
    t2 = tx(2)
    r = c.post("/v1/transactions?wait=true&timeout_ms=1000", json={"transactions": [b64(t2)]})
    assert r.status_code == 200 and r.json()["committed"] is True
    assert r.json()["results"][0]["status"] == "committed"


def test_submit_msgpack_batch() -> None:
    c, _ = client()
    body = encode([tx(1).encode(), tx(2).encode()])
    r = c.post("/v1/transactions", content=body,
               headers={"content-type": "application/msgpack"})
    assert r.status_code == 202 and len(r.json()["tx_ids"]) == 2


def test_refusals_carry_their_code_and_status() -> None:
    c, node = client()
    cases = [
        ({"transactions": ["not base64!"]}, 400, "malformed_body"),
        ({"transactions": [base64.b64encode(b"\x01\x02").decode()]}, 400, "malformed"),
        ({"transactions": [b64(replace(tx(3), signature=bytes(64)))]}, 400, "bad_signature"),
        ({"transactions": [b64(tx(4, chain="elsewhere"))]}, 400, "wrong_chain"),
        ({"wrong": 1}, 400, "malformed_body"),
        ({"transactions": []}, 400, "malformed_body"),
        ({"transactions": [b64(tx(i)) for i in range(10, 15)]}, 413, "batch_too_large"),
    ]
    for body, status, code in cases:
        r = c.post("/v1/transactions", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), body
        assert r.json()["error"]["message"]
    node.committed[tx(5).tx_id] = 1
    r = c.post("/v1/transactions", json={"transactions": [b64(tx(5))]})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "already_committed")
    r = c.post("/v1/transactions", content=b"<xml/>", headers={"content-type": "text/xml"})
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_media_type")
    assert len(node.mempool) == 0


def test_a_batch_reports_each_transaction() -> None:
    c, node = client()
    r = c.post("/v1/transactions",
               json={"transactions": [b64(tx(1)), b64(replace(tx(2), signature=bytes(64)))]})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "bad_signature" and err["message"].startswith("transactions[1]")
    assert [x["code"] for x in err["results"]] == ["accepted", "bad_signature"]
    assert len(node.mempool) == 1  # the valid one is admitted; resubmitting it is harmless


def test_body_limit_is_enforced_before_reading() -> None:
    c, _ = client()
    r = c.post("/v1/transactions", content=b"x" * 5000,
               headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def chunks() -> Any:  # no Content-Length: streamed, cut off at the limit
        for _ in range(100):
            yield b"y" * 1000
    r = c.post("/v1/transactions", content=chunks(),
               headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_reads_and_errors_share_one_shape() -> None:
    c, _ = client()
    assert c.get("/v1/blocks/latest").json() == {"height": 1}
    assert c.get("/v1/blocks/2").json()["error"]["code"] == "unknown_block"
    assert c.get("/v1/blocks/zero").json()["error"]["code"] == "invalid_request"
    assert c.get("/v1/transactions/xyz").status_code == 422
    r = c.get("/v1/transactions/" + "00" * 32)
    assert r.status_code == 404 and r.json()["error"]["status"] == "unknown"
    assert c.get("/v1/records?limit=0").json()["error"]["code"] == "invalid_request"
    assert c.get("/v1/records?after=zz").json()["error"]["code"] == "invalid_cursor"
    assert c.get("/v1/records?limit=3").json()["limit"] == 3
    assert c.get("/v1/state/abcd?height=5").json()["error"]["code"] == "unknown_height"
    assert c.get("/v1/state/abc").status_code == 422
    assert c.get("/nowhere").json()["error"]["code"] == "not_found"
    assert c.delete("/v1/status").json()["error"]["code"] == "method_not_allowed"
    assert c.get("/healthz").json()["status"] == "ok"
    assert c.get("/metrics").text.startswith("tabellion_height")
    assert "/v1/transactions" in c.get("/openapi.json").json()["paths"]


PATHS = ["/v1/transactions", "/v1/transactions/{}", "/v1/blocks/{}", "/v1/blocks/latest",
         "/v1/records", "/v1/state/{}", "/v1/status", "/healthz", "/metrics", "/{}"]
segment = st.one_of(st.text(max_size=80), st.integers(-(2**70), 2**70).map(str),
                    st.binary(max_size=40).map(bytes.hex))
params = st.dictionaries(
    st.sampled_from(["wait", "timeout_ms", "contract", "municipality", "type", "after",
                     "limit", "height", "x"]),
    st.one_of(st.text(max_size=30), st.integers(-(2**70), 2**70).map(str)), max_size=5)
bodies = st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4)
                 | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                 max_leaves=12).map(lambda v: json.dumps({"transactions": v}).encode()),
    st.lists(st.binary(max_size=200), max_size=5).map(encode),
)


FUZZ_CLIENT = client()[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]), path=st.sampled_from(PATHS),
       seg=segment, query=params, body=bodies,
       ctype=st.sampled_from(["application/json", "application/msgpack", "text/plain", "",
                              "application/json; charset=utf-8"]))
def test_no_input_produces_a_500(method: str, path: str, seg: str, query: dict[str, str],
                                 body: bytes, ctype: str) -> None:
    c = FUZZ_CLIENT
    url = path.format(quote(seg, safe=""))
    r = c.request(method, url, params=query, content=body,
                  headers={"content-type": ctype} if ctype else {})
    assert r.status_code < 500, (method, url, query, r.text)
    if r.status_code >= 400:
        assert set(r.json()["error"]) >= {"code", "message"}


def test_receipt_route_serves_the_document_and_names_why_there_is_none() -> None:
    api, _ = client()
    ready = api.get(f"/v1/receipts/{FakeReceipts.READY}")
    assert ready.status_code == 200 and ready.json()["format"] == "tabellion-receipt/1"
    unknown = api.get(f"/v1/receipts/{'33' * 32}")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_transaction"
    waiting = api.get(f"/v1/receipts/{FakeReceipts.NOT_READY}")
    assert waiting.status_code == 409
    assert waiting.json()["error"]["code"] == "receipt_not_ready"
    assert "header 3" in waiting.json()["error"]["message"]
    malformed = api.get("/v1/receipts/not-an-id")
    assert malformed.status_code == 422
    assert api.get("/v1/validators/changes").json() == {"up_to": 1, "validator_changes": []}


def test_an_overloaded_node_answers_429_busy_with_retry_after() -> None:
    c, _ = client(replace(SMALL, client_backlog_txs_min=2))
    r = c.post("/v1/transactions", json={"transactions": [b64(tx(n)) for n in range(2)]})
    assert r.status_code == 202
    r = c.post("/v1/transactions", json={"transactions": [b64(tx(7))]})
    assert r.status_code == 429 and r.json()["error"]["code"] == "busy"
    assert int(r.headers["Retry-After"]) >= 1
    assert "retry in" in r.json()["error"]["message"]

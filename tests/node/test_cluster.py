"""Four real validator processes on 127.0.0.1: commits, refusals, hostile peers, fuzzing.

One cluster serves the tests of this module (starting four processes is the slow part);
the crash and recovery scenarios have their own cluster in test_recovery.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from contracts.keys import notary_key
from ledger.crypto import SigningKey
from ledger.encoding import decode, encode
from ledger.records import Transaction
from ledger.state import StateProof, verify_state_proof
from node.config import Limits
from node.transport import (
    PROTOCOL_VERSION,
    SEAL_BYTES,
    frame,
    handshake_bytes,
    read_frame,
)
from testkit.wait import wait_for
from tests.node.cluster import Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # The fuzz tests send hundreds of requests a second: let them reach the handlers
    # (the rate limits have their own tests in test_abuse_limits.py).
    c = Cluster(tmp_path_factory.mktemp("cluster"),
                limits=Limits(api_client_requests_per_s=100_000,
                              api_client_requests_burst=100_000))
    with c:  # all nodes started and answering; every process killed on exit
        yield c


def _same_head(c: Cluster, height: int) -> bool:
    heads = set()
    for i in range(4):
        r = c.get(i, f"/v1/blocks/{height}")
        if r.status_code != 200:
            return False
        heads.add(r.json()["block_hash"])
    return len(heads) == 1


def test_four_nodes_commit_what_any_of_them_receives(cluster: Cluster) -> None:
    txs = [cluster.anchor(i % 4) for i in range(8)]
    for i, tx in enumerate(txs):
        r = cluster.submit(i % 4, [tx])
        assert r.status_code == 202, r.text
        assert r.json() == {"tx_ids": [tx.tx_id.hex()]}
    for tx in txs:
        for i in range(4):
            wait_for(partial(cluster.committed, i, tx), 60,
                     f"{tx.tx_id.hex()[:8]} committed on node {i}")
    found = cluster.get(2, f"/v1/transactions/{txs[0].tx_id.hex()}").json()
    assert found["receipt"]["code"] == "ok"
    height = max(cluster.height(i) for i in range(4))
    wait_for(lambda: _same_head(cluster, height), 60, "the same block everywhere")
    statuses = [cluster.status(i) for i in range(4)]
    assert all(s is not None for s in statuses)
    latest = cluster.get(0, "/v1/blocks/latest").json()
    assert latest["header"]["height"] >= height


def test_wait_returns_the_receipt(cluster: Cluster) -> None:
    tx = cluster.anchor(1)
    r = cluster.submit(3, [tx], wait="true", timeout_ms=30_000)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["committed"] is True
    assert body["results"][0]["status"] == "committed"
    assert body["results"][0]["receipt"]["code"] == "ok"


def _code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_refusals_have_their_own_code_and_never_commit(cluster: Cluster) -> None:
    chain = cluster.net.genesis.chain_id
    good = cluster.anchor(0)
    r = cluster.submit(0, [good], wait="true", timeout_ms=30_000)
    assert r.status_code == 200, r.text
    stranger = SigningKey.generate()
    unknown = Transaction(chain, "notary", "anchor",
                          {"siret": cluster.net.nodes[0].siret, "sha256": "ab" * 32,
                           "document_type": "arrete", "reference": "X"},
                          stranger.public_key, 1, good.expiry_ms).signed(stranger)
    refused = {
        "bad_signature": replace(cluster.anchor(0), signature=bytes(64)),
        "wrong_chain": cluster.anchor(0, chain_id=chain + "-other"),
        "unknown_signer": unknown,
        "wrong_municipality": cluster.anchor(0, siret=cluster.net.nodes[1].siret),
    }
    for code, tx in refused.items():
        r = cluster.submit(0, [tx])
        assert _code(r)[1] == code, r.text
        assert r.json()["error"]["message"]
    assert _code(cluster.submit(1, [good])) == (409, "already_committed")
    r = cluster.http.post(cluster.url(0, "/v1/transactions"), content=b"{not json",
                          headers={"content-type": "application/json"})
    assert _code(r) == (400, "malformed_body")
    # A later transaction commits; none of the refused ones ever does, anywhere.
    later = cluster.anchor(2)
    assert cluster.submit(2, [later], wait="true", timeout_ms=30_000).status_code == 200
    for tx in refused.values():
        for i in range(4):
            assert cluster.get(i, f"/v1/transactions/{tx.tx_id.hex()}").status_code == 404


async def _hostile_peer(c: Cluster, target: int) -> None:
    """Garbage, an oversized frame and an unknown key against one node's peer port."""
    host, port = c.net.nodes[target].config.listen_peer.split(":")
    limits = c.net.nodes[target].config.limits
    # 1. garbage
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(os.urandom(4096))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 60) == b""
    writer.close()
    # 2. an unknown key
    stranger = SigningKey.generate()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(frame(encode([PROTOCOL_VERSION, c.net.genesis.chain_id,
                               stranger.public_key, os.urandom(32)])))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 60) == b""
    writer.close()
    # 3. a validator's key (node 3's, as if it were compromised) then an oversized frame
    me = c.net.nodes[3].validator_key
    them = c.net.nodes[target].validator_key.public_key
    reader, writer = await asyncio.open_connection(host, int(port))
    nonce = os.urandom(32)
    writer.write(frame(encode([PROTOCOL_VERSION, c.net.genesis.chain_id, me.public_key,
                               nonce])))
    reply = decode(await read_frame(reader, 1024))
    signed = handshake_bytes(c.net.genesis.chain_id, "dialer", me.public_key, them, nonce,
                             reply[3])
    writer.write(frame(encode([me.sign(signed)])))
    writer.write(struct.pack(">I", limits.frame_bytes_max + SEAL_BYTES + 1))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 60) == b""
    writer.close()


def test_hostile_peers_are_disconnected_and_the_cluster_keeps_committing(
    cluster: Cluster,
) -> None:
    asyncio.run(_hostile_peer(cluster, 0))
    tx = cluster.anchor(0)
    r = cluster.submit(0, [tx], wait="true", timeout_ms=30_000)
    assert r.status_code == 200, r.text
    assert "refused connection" in cluster.log_of(0) or "disconnected peer" in cluster.log_of(0)


PATHS = ["/v1/transactions", "/v1/transactions/{}", "/v1/blocks/{}", "/v1/blocks/latest",
         "/v1/records", "/v1/state/{}", "/v1/status", "/healthz", "/metrics", "/{}"]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "POST", "PUT"]), path=st.sampled_from(PATHS),
    seg=st.one_of(st.text(max_size=70), st.integers(-(2**70), 2**70).map(str),
                  st.binary(max_size=40).map(bytes.hex)),
    query=st.dictionaries(st.sampled_from(["wait", "timeout_ms", "contract", "municipality",
                                           "type", "after", "limit", "height"]),
                          st.one_of(st.text(max_size=20), st.integers(-5, 2**66).map(str)),
                          max_size=4),
    body=st.one_of(st.binary(max_size=200),
                   st.lists(st.binary(max_size=100).map(lambda b: base64.b64encode(b).decode()),
                            max_size=3).map(lambda v: json.dumps({"transactions": v}).encode())),
    ctype=st.sampled_from(["application/json", "application/msgpack", "text/plain"]),
)
def test_no_request_gets_a_500_from_a_real_node(
    cluster: Cluster, method: str, path: str, seg: str, query: dict[str, Any], body: bytes,
    ctype: str,
) -> None:
    if "timeout_ms" in query:
        query["timeout_ms"] = "50"  # keep waits short: the answer shape is what matters
    url = cluster.url(1, path.format(quote(seg, safe="")))
    r = cluster.http.request(method, url, params=query, content=body,
                             headers={"content-type": ctype})
    assert r.status_code < 500, (method, url, query, r.text)
    if r.status_code >= 400:
        assert {"code", "message"} <= set(r.json()["error"])


def test_status_and_metrics_describe_the_node(cluster: Cluster) -> None:
    s = cluster.status(0)
    assert s is not None
    assert s["chain_id"] == cluster.net.genesis.chain_id
    assert len(s["peers"]) == 3 and all(p["connected"] for p in s["peers"])
    assert s["primary"] in s["validators"]
    text = cluster.get(0, "/metrics").text
    for name in ("tabellion_height", "tabellion_view", "tabellion_mempool_transactions",
                 "tabellion_commit_latency_seconds_bucket", "tabellion_peers_connected",
                 "tabellion_signature_verifications", "tabellion_view_changes_total"):
        assert name in text
    assert cluster.get(0, "/healthz").status_code == 200


def test_records_are_filtered_and_paginated(cluster: Cluster) -> None:
    mine = [cluster.anchor(2) for _ in range(5)]
    r = cluster.submit(2, mine, wait="true", timeout_ms=30_000)
    assert r.status_code == 200, r.text
    siret = cluster.net.nodes[2].siret
    seen: list[str] = []
    after = None
    for _ in range(20):
        params: dict[str, Any] = {"contract": "notary", "municipality": siret,
                                  "type": "anchor", "limit": 2}
        if after:
            params["after"] = after
        page = cluster.get(0, "/v1/records", **params).json()
        assert len(page["records"]) <= 2
        for record in page["records"]:
            assert record["payload"]["siret"] == siret and record["action"] == "anchor"
        seen += [rec["tx_id"] for rec in page["records"]]
        after = page["next"]
        if after is None:
            break
    assert {t.tx_id.hex() for t in mine} <= set(seen)
    assert len(seen) == len(set(seen))  # no record twice across pages
    other = cluster.get(0, "/v1/records", municipality=cluster.net.nodes[3].siret).json()
    assert all(rec["payload"]["siret"] != siret for rec in other["records"])
    bad = cluster.get(0, "/v1/records", after="nonsense")
    assert _code(bad) == (400, "invalid_cursor")


def test_state_values_come_with_a_proof_that_verifies(cluster: Cluster) -> None:
    tx = cluster.anchor(1)
    r = cluster.submit(1, [tx], wait="true", timeout_ms=30_000)
    assert r.status_code == 200, r.text
    height = r.json()["results"][0]["height"]
    key = notary_key(tx.payload["sha256"])
    wait_for(lambda: cluster.get(1, f"/v1/state/{key.hex()}").json().get("value"), 30,
             "the anchor in the state")
    got = cluster.get(1, f"/v1/state/{key.hex()}", height=height).json()
    proof = StateProof.from_value(decode(bytes.fromhex(got["proof"])))
    verify_state_proof(bytes.fromhex(got["state_root"]), key, bytes.fromhex(got["value"]),
                       proof)
    absent = cluster.get(1, f"/v1/state/{key.hex()}", height=height - 1).json()
    assert absent["value"] is None
    verify_state_proof(bytes.fromhex(absent["state_root"]), key, None,
                       StateProof.from_value(decode(bytes.fromhex(absent["proof"]))))
    too_high = cluster.get(1, f"/v1/state/{key.hex()}", height=10**9)
    assert _code(too_high) == (404, "unknown_height")


@pytest.mark.parametrize("query", [
    {"after": "\u00b2-0"},  # a digit for str.isdigit, not for int()
    {"contract": "notary", "after": "99999999999999999999-0"},  # beyond a u64 height
    {"after": "1-99999999999"},  # beyond a u32 index
    {"after": "0-0"},  # no block has height 0 (found by the OpenAPI fuzz test below)
])
def test_cursors_out_of_range_are_refused_not_a_500(cluster: Cluster,
                                                    query: dict[str, str]) -> None:
    if cluster.height(0) < 1:  # the scan only reaches the cursor past a committed block
        r = cluster.submit(0, [cluster.anchor(0)], wait="true", timeout_ms=30_000)
        assert r.status_code == 200, r.text
    r = cluster.get(0, "/v1/records", **query)
    assert _code(r) == (400, "invalid_cursor"), (r.text, r.request.url)
    assert "HEIGHT-INDEX" in r.json()["error"]["message"]
    assert cluster.get(0, "/healthz").status_code == 200  # and the node keeps serving


# ---------------------------------------------------------------- fuzz from the OpenAPI document
NUMBERISH = st.one_of(
    st.from_regex(r"\A[0-9\u00b2\u0663+-]{1,25}\Z"),
    st.from_regex(r"\A[0-9\u00b2]{1,22}-[0-9\u00b9]{1,12}\Z"),
)
"""Values that look like numbers or cursors: where parsing by hand tends to break."""
JUNK = st.one_of(st.text(max_size=40), NUMBERISH, st.integers(-(2**70), 2**70).map(str))


def _value_for(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    """A string for a parameter: one that fits the schema, or junk."""
    for option in schema.get("anyOf", [schema]):
        kind = option.get("type")
        if kind == "string" and "pattern" in option:
            fits: st.SearchStrategy[str] = st.from_regex(option["pattern"], fullmatch=True)
        elif kind == "string":
            fits = st.text(max_size=option.get("maxLength", 64))
        elif kind == "integer":
            fits = st.integers(option.get("minimum", -(2**70)),
                               option.get("maximum", 2**70)).map(str)
        elif kind == "boolean":
            fits = st.sampled_from(["true", "false", "1", "0"])
        else:
            continue
        # Mostly values that fit, so that one odd value at a time reaches the handler
        # rather than all of them stopping at the schema check.
        return st.one_of(fits, fits, fits, NUMBERISH, JUNK)
    return st.one_of(NUMBERISH, JUNK)


def _request_for(path: str, method: str, operation: dict[str, Any]
                 ) -> st.SearchStrategy[tuple[str, str, dict[str, str]]]:
    path_params = {p["name"]: _value_for(p["schema"]) for p in operation.get("parameters", [])
                   if p["in"] == "path"}
    query_params = {p["name"]: _value_for(p["schema"]) for p in operation.get("parameters", [])
                    if p["in"] == "query"}
    return st.tuples(
        st.just(method.upper()),
        st.fixed_dictionaries(path_params).map(
            lambda values: path.format(**{k: quote(v, safe="") for k, v in values.items()})),
        st.fixed_dictionaries({}, optional=query_params),
    )


def _openapi_requests(document: dict[str, Any]
                      ) -> st.SearchStrategy[tuple[str, str, dict[str, str]]]:
    return st.one_of(*[_request_for(path, method, operation)
                       for path, operations in document["paths"].items()
                       for method, operation in operations.items()])


BODIES = st.one_of(
    st.binary(max_size=200),
    st.lists(st.binary(max_size=100).map(lambda b: base64.b64encode(b).decode()),
             max_size=3).map(lambda v: json.dumps({"transactions": v}).encode()),
)


def test_no_request_built_from_the_openapi_document_gets_a_500(cluster: Cluster) -> None:
    """Every operation the node documents, with parameters that fit its schema or not;
    run against a real node (a fake one would not reach the store's parsing)."""
    if cluster.height(0) < 1:  # cursors are only followed past a committed block
        r = cluster.submit(0, [cluster.anchor(0)], wait="true", timeout_ms=30_000)
        assert r.status_code == 200, r.text
    document = cluster.get(0, "/openapi.json").json()
    assert len(document["paths"]) >= 8  # the document describes the API, not nothing

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    @given(request=_openapi_requests(document), body=BODIES,
           ctype=st.sampled_from(["application/json", "application/msgpack"]))
    def check(request: tuple[str, str, dict[str, str]], body: bytes, ctype: str) -> None:
        method, path, query = request
        if "timeout_ms" in query:
            query["timeout_ms"] = "50"  # keep waits short: the answer shape is what matters
        r = cluster.http.request(method, cluster.url(0, path), params=query,
                                 content=body if method == "POST" else None,
                                 headers={"content-type": ctype})
        assert r.status_code < 500 or r.status_code == 503, (method, path, query, r.text)
        if r.status_code >= 400 and not path.startswith("/open311/"):
            # Open311 answers errors in the GeoReport v2 shape (a list), by its standard
            assert {"code", "message"} <= set(r.json()["error"]), r.text

    check()

"""Abuse limits of a real validator process: request rate per client address, transaction
rate per signer (429 with Retry-After), enrolment before signature work.

One node of a four-node network is enough: none of this needs consensus.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ledger.crypto import SigningKey
from ledger.records import Transaction
from node.config import Limits
from testkit.wait import wait_for
from tests.node.cluster import Cluster

LIMITS = Limits(api_client_requests_per_s=20, api_client_requests_burst=40,
                api_signer_txs_per_s=2, api_signer_txs_burst=5)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("limits"), limits=LIMITS)
    try:
        c.start(0)
        c.wait_ready([0])
        yield c
    finally:
        c.close()


def _settle(c: Cluster) -> None:
    """Wait until the client's bucket has refilled (the rate is per second)."""
    time.sleep(LIMITS.api_client_requests_burst / LIMITS.api_client_requests_per_s)


def test_a_client_beyond_its_request_rate_gets_429_with_retry_after(node: Cluster) -> None:
    _settle(node)
    answers = [node.get(0, "/v1/status") for _ in range(LIMITS.api_client_requests_burst + 20)]
    codes = [r.status_code for r in answers]
    assert codes[:LIMITS.api_client_requests_burst // 2] == [200] * (
        LIMITS.api_client_requests_burst // 2)
    refused = [r for r in answers if r.status_code == 429]
    assert refused, codes
    assert refused[0].json()["error"]["code"] == "rate_limited"
    retry_s = int(refused[0].headers["Retry-After"])
    assert retry_s >= 1
    time.sleep(retry_s)  # the answer says when to come back: then it is served
    assert node.get(0, "/v1/status").status_code == 200


def _anchors(c: Cluster, municipality: int, count: int) -> list[Transaction]:
    return [c.anchor(municipality) for _ in range(count)]


def test_a_signer_beyond_its_rate_gets_429_and_others_are_still_served(node: Cluster) -> None:
    _settle(node)
    burst = LIMITS.api_signer_txs_burst
    r = node.submit(0, _anchors(node, 1, burst + 3))
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    codes = [x["code"] for x in r.json()["error"]["results"]]
    assert codes[:burst] == ["accepted"] * burst
    assert set(codes[burst:]) == {"rate_limited"}
    other = node.submit(0, _anchors(node, 2, 1))  # another signer has its own budget
    assert other.status_code == 202, other.text
    # the budget refills at its rate: the same signer is served again a moment later
    wait_for(lambda: node.submit(0, _anchors(node, 1, 1)).status_code == 202, 10,
             "the signer's budget to refill")


def test_an_unknown_signer_is_refused_without_verifying_its_signatures(node: Cluster) -> None:
    _settle(node)

    def verifications() -> int:
        text = node.get(0, "/metrics").text
        line = next(x for x in text.splitlines()
                    if x.startswith("tabellion_signature_verifications"))
        return int(float(line.split()[-1]))

    before = verifications()
    stranger = SigningKey.generate()
    known = node.anchor(3)
    forged = [Transaction(known.chain_id, known.contract, known.action, known.payload,
                          stranger.public_key, known.nonce + i, known.expiry_ms
                          ).signed(stranger) for i in range(200)]
    r = node.submit(0, forged)
    assert r.status_code == 403 and r.json()["error"]["code"] == "unknown_signer", r.text
    assert verifications() == before  # 200 valid signatures, none verified

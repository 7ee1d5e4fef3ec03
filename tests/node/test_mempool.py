"""Mempool admission, bounds, the verified-signature cache, proposals and forwarding."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ledger.crypto import SigningKey
from ledger.records import Transaction
from node.config import Limits
from node.errors import MempoolRejection
from node.mempool import COMMIT_RATE_WINDOW_MS, Admissible, Mempool

CHAIN = "test-chain"
NOW = 1_700_000_000_000
KEY = SigningKey.generate()


def tx(nonce: int, *, key: SigningKey = KEY, chain: str = CHAIN, expiry: int = NOW + 60_000,
       payload_size: int = 10) -> Transaction:
    body = Transaction(chain, "notary", "anchor", {"x": "a" * payload_size}, key.public_key,
                       nonce, expiry)
    return body.signed(key)


DEFAULT_LIMITS = Limits()


def pool(limits: Limits = DEFAULT_LIMITS, committed: frozenset[bytes] = frozenset(),
         admissible: Admissible | None = None) -> Mempool:
    return Mempool(CHAIN, limits, committed.__contains__, admissible)


def code_of(m: Mempool, raw: bytes, *, forward: bool = True) -> str:
    with pytest.raises(MempoolRejection) as info:
        m.admit(raw, NOW, forward=forward)
    assert info.value.message  # every refusal explains itself
    return info.value.code


def test_each_refusal_has_its_own_code() -> None:
    good = tx(1)
    m = pool(committed=frozenset({tx(2).tx_id}))
    bad_sig = replace(good, signature=bytes(64))
    assert code_of(m, b"\x93garbage") == "malformed"
    assert code_of(m, b"x" * 200_000) == "malformed"
    assert code_of(m, bad_sig.encode()) == "bad_signature"
    assert code_of(m, tx(3, chain="other").encode()) == "wrong_chain"
    assert code_of(m, tx(4, expiry=NOW - 1).encode()) == "expired"
    assert code_of(m, tx(5, expiry=NOW + 8 * 86_400_000).encode()) == "expiry_too_far"
    assert code_of(m, tx(2).encode()) == "already_committed"
    assert len(m) == 0 and m.rejections == 7
    assert m.admit(good.encode(), NOW, forward=True) == good.tx_id
    assert good.tx_id in m


def test_contract_admission_refusals_pass_through() -> None:
    def admissible(t: Transaction, now_ms: int) -> tuple[str, str] | None:
        return ("unknown_signer", "enroll the key first") if t.nonce == 9 else None
    m = pool(admissible=admissible)
    assert code_of(m, tx(9).encode()) == "unknown_signer"
    m.admit(tx(10).encode(), NOW, forward=True)
    assert len(m) == 1


def test_bounded_in_count_and_bytes() -> None:
    m = pool(Limits(mempool_txs_max=3))
    for i in range(3):
        m.admit(tx(i).encode(), NOW, forward=False)
    assert code_of(m, tx(99).encode(), forward=False) == "mempool_full"
    assert code_of(m, tx(99).encode()) == "busy"  # a client is shed (429) before that
    big = tx(1, payload_size=5000).encode()
    m2 = pool(Limits(mempool_bytes_max=len(big) * 2 + 10))
    m2.admit(big, NOW, forward=False)
    m2.admit(tx(2, payload_size=5000).encode(), NOW, forward=False)
    assert code_of(m2, tx(3, payload_size=5000).encode()) == "mempool_full"
    assert m2.size_bytes == 2 * len(big)


def test_a_signature_is_verified_once() -> None:
    m = pool()
    t = tx(1)
    m.admit(t.encode(), NOW, forward=True)
    m.admit(t.encode(), NOW, forward=False)  # duplicate: idempotent, no new work
    m.committed(1, [t.tx_id])
    assert m.verify_signature(t)
    assert m.verifications == 1
    forged = replace(t, signature=bytes(64))
    assert not m.verify_signature(forged)  # same id, other signature: verified anew
    assert m.verifications == 2


def test_verified_cache_is_bounded() -> None:
    m = pool(Limits(verified_cache_max=2))
    txs = [tx(i) for i in range(3)]
    for t in txs:
        m.verify_signature(t)
    assert m.signature_known(txs[2]) and not m.signature_known(txs[0])


def test_take_marks_in_flight_and_a_commit_releases_the_rest() -> None:
    m = pool()
    txs = [tx(i) for i in range(5)]
    for t in txs:
        m.admit(t.encode(), NOW, forward=False)
    first = m.take(2, 1 << 20, NOW, height=7)
    assert first == txs[:2]
    assert m.take(10, 1 << 20, NOW, height=8) == txs[2:]
    assert m.take(10, 1 << 20, NOW, height=9) == []
    # Height 7 committed a different block (view change) holding only txs[0].
    m.committed(7, [txs[0].tx_id])
    assert m.take(10, 1 << 20, NOW, height=9) == [txs[1]]
    assert len(m) == 4


def test_take_respects_bytes_and_drops_expired() -> None:
    m = pool()
    short = tx(1, expiry=NOW + 10)
    m.admit(short.encode(), NOW, forward=False)
    keep = [tx(i) for i in range(2, 5)]
    for t in keep:
        m.admit(t.encode(), NOW, forward=False)
    one = len(keep[0].encode())
    assert m.take(10, 2 * one, NOW + 100, height=1) == keep[:2]
    assert short.tx_id not in m


def test_only_client_submissions_are_forwarded_once() -> None:
    m = pool()
    a, b = tx(1), tx(2)
    m.admit(a.encode(), NOW, forward=True)
    m.admit(b.encode(), NOW, forward=False)  # from a peer
    assert m.to_forward(100) == [a.encode()]
    assert m.to_forward(100) == []


def test_feed_hands_each_transaction_once_and_counts_the_rest() -> None:
    m = pool()
    txs = [tx(i) for i in range(5)]
    short = tx(99, expiry=NOW + 10)
    m.admit(short.encode(), NOW, forward=False)
    for t in txs:
        m.admit(t.encode(), NOW, forward=False)
    assert m.unfed == 6
    assert m.feed(3, NOW + 100) == txs[:3]  # the expired one is dropped on the way
    assert m.unfed == 2 and short.tx_id not in m
    m.remove([txs[3].tx_id])
    assert m.unfed == 1
    assert m.feed(10, NOW) == [txs[4]]
    assert m.feed(10, NOW) == [] and m.unfed == 0


def test_an_unknown_signer_costs_no_signature_work_and_evicts_nothing() -> None:
    """The enrolment check runs before the signature is verified: a flood of validly
    signed transactions from a key nobody enrolled is refused without verifying them,
    and the verified-signature cache keeps the legitimate entries."""
    stranger = SigningKey.generate()

    def admissible(t: Transaction, now_ms: int) -> tuple[str, str] | None:
        if t.signer == stranger.public_key:
            return ("unknown_signer", "enroll the key first")
        return None

    m = pool(replace(DEFAULT_LIMITS, verified_cache_max=4), admissible=admissible)
    legit = [tx(i) for i in range(4)]
    for t in legit:
        m.admit(t.encode(), NOW, forward=True)
    assert m.verifications == 4
    for i in range(50):
        assert code_of(m, tx(1000 + i, key=stranger).encode()) == "unknown_signer"
    assert m.verifications == 4  # no signature of the stranger was verified
    assert all(m.signature_known(t) for t in legit)  # nothing was evicted
    assert all(m.verify_signature(t) for t in legit) and m.verifications == 4


def test_an_overloaded_node_sheds_client_submissions_before_any_signature_work() -> None:
    limits = replace(DEFAULT_LIMITS, client_backlog_txs_min=3,
                                 client_backlog_ms=1_000)
    m = pool(limits)
    for nonce in range(3):
        m.admit(tx(nonce).encode(), NOW, forward=True)
    work = m.verifications
    with pytest.raises(MempoolRejection) as refused:
        m.admit(tx(3).encode(), NOW, forward=True)
    assert refused.value.code == "busy" and m.verifications == work
    assert refused.value.retry_after_s is not None and refused.value.retry_after_s > 0
    m.admit(tx(4).encode(), NOW, forward=False)  # a peer's: admitted under its node's bound
    assert len(m) == 4


def test_the_backlog_follows_the_measured_commit_rate() -> None:
    limits = replace(DEFAULT_LIMITS, client_backlog_txs_min=3,
                                 client_backlog_ms=2_000)
    m = pool(limits)
    assert m.client_backlog_txs_max(NOW) == 3
    m.record_commit(NOW, [bytes([i]) * 32 for i in range(50)])  # 50 in the 10 s window
    assert m.client_backlog_txs_max(NOW) == 10  # 5 tx/s for 2 s
    for nonce in range(10):
        m.admit(tx(nonce).encode(), NOW, forward=True)
    with pytest.raises(MempoolRejection) as refused:
        m.admit(tx(10).encode(), NOW, forward=True)
    assert refused.value.code == "busy"
    assert refused.value.retry_after_s == pytest.approx((10 - 10 / 2) / 5)
    later = NOW + COMMIT_RATE_WINDOW_MS + 1
    assert m.client_backlog_txs_max(later) == 3  # nothing committed lately: the floor


def test_feed_after_removals_hands_over_only_what_is_still_pending() -> None:
    m = pool()
    txs = [tx(n) for n in range(6)]
    for t in txs:
        m.admit(t.encode(), NOW, forward=True)
    m.remove([txs[0].tx_id, txs[3].tx_id])
    assert [t.tx_id for t in m.feed(10, NOW)] == [txs[i].tx_id for i in (1, 2, 4, 5)]
    assert m.unfed == 0 and m.feed(10, NOW) == []

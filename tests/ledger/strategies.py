"""Hypothesis strategies for the ledger records, shared by the ledger test files.

Rules: every strategy yields a well-formed record (each field within its documented type
and size), so that round-trip and mutation properties test the codec, not the builders.
Keys come from a small fixed pool of real Ed25519 keys, so signatures are real.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import strategies as st

from ledger.crypto import SigningKey
from ledger.encoding import INT_MAX, INT_MIN
from ledger.records import (
    PAYLOAD_DEPTH_MAX,
    Block,
    BlockHeader,
    CommitCertificate,
    CommitSignature,
    CommittedBlock,
    Phase,
    Receipt,
    Transaction,
    ValidatorSet,
    Vote,
)

KEYS = tuple(SigningKey(bytes([i + 1]) * 32) for i in range(6))

hashes = st.binary(min_size=32, max_size=32)
pubkeys = st.binary(min_size=32, max_size=32)
sigs = st.binary(min_size=64, max_size=64)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
small_u64 = st.one_of(st.integers(0, 300), u64)


def names(max_chars: int = 16) -> st.SearchStrategy[str]:
    """Non-empty UTF-8 text of at most 64 bytes (4 bytes per character at most)."""
    return st.text(min_size=1, max_size=max_chars)


json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(INT_MIN, INT_MAX), st.text(max_size=20)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
def _levels(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_levels, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_levels, value), default=0)
    return 0


payloads: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(max_size=10), json_values, max_size=5
).filter(lambda p: _levels(p) <= PAYLOAD_DEPTH_MAX)  # deeper is refused (test_records)


@st.composite
def transactions(draw: st.DrawFn, signed: bool = False) -> Transaction:
    key = draw(st.sampled_from(KEYS))
    tx = Transaction(
        chain_id=draw(names()),
        contract=draw(names()),
        action=draw(names()),
        payload=draw(payloads),
        signer=key.public_key if signed else draw(pubkeys),
        nonce=draw(small_u64),
        expiry_ms=draw(small_u64),
        signature=bytes(64),
    )
    return tx.signed(key) if signed else dataclasses.replace(tx, signature=draw(sigs))


headers = st.builds(
    BlockHeader,
    chain_id=names(),
    height=small_u64,
    prev_hash=hashes,
    proposer=pubkeys,
    view=small_u64,
    time_ms=small_u64,
    txs_root=hashes,
    results_root=hashes,
    state_root=hashes,
    validator_set_hash=hashes,
)

votes = st.builds(
    Vote,
    chain_id=names(),
    phase=st.sampled_from(Phase.ALL),
    view=small_u64,
    height=small_u64,
    block_hash=hashes,
    voter=pubkeys,
    signature=sigs,
)

certificates = st.builds(
    CommitCertificate,
    height=small_u64,
    view=small_u64,
    block_hash=hashes,
    signatures=st.lists(
        st.builds(CommitSignature, pubkeys, sigs), max_size=5, unique_by=lambda s: s.voter
    ).map(lambda xs: tuple(sorted(xs, key=lambda s: s.voter))),
)

blocks = st.builds(Block, header=headers, transactions=st.lists(transactions(), max_size=3)
                   .map(tuple))

receipts = st.builds(
    Receipt,
    tx_id=hashes,
    code=names(),
    message=st.text(max_size=30),
    data=payloads,
)

committed_blocks = st.builds(
    CommittedBlock,
    block=blocks,
    certificate=certificates,
    receipts=st.lists(receipts, max_size=3).map(tuple),
)

validator_sets = st.lists(pubkeys, min_size=1, max_size=10, unique=True).map(ValidatorSet.of)

ALL_RECORDS: dict[str, st.SearchStrategy[Any]] = {
    "Transaction": transactions(),
    "BlockHeader": headers,
    "Vote": votes,
    "CommitCertificate": certificates,
    "Block": blocks,
    "Receipt": receipts,
    "CommittedBlock": committed_blocks,
    "ValidatorSet": validator_sets,
}

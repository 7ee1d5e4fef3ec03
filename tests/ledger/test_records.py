"""ledger.records: every record round-trips through its canonical bytes, and no change to
those bytes yields the same record under the same id (non-malleability)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import records
from ledger.encoding import decode, encode
from ledger.errors import DecodeError
from ledger.hashing import Tag, tagged_hash
from ledger.lru import Lru
from ledger.records import (
    PAYLOAD_DEPTH_MAX,
    Block,
    BlockHeader,
    CommitCertificate,
    CommittedBlock,
    Phase,
    Receipt,
    Transaction,
    ValidatorSet,
    Vote,
)
from ledger.validation import receipts_root, txs_root
from tests.ledger import strategies as S

RECORD_TYPES: dict[str, Any] = {
    "Transaction": Transaction, "BlockHeader": BlockHeader, "Vote": Vote,
    "CommitCertificate": CommitCertificate, "Block": Block, "Receipt": Receipt,
    "CommittedBlock": CommittedBlock, "ValidatorSet": ValidatorSet,
}


def identity(record: Any) -> tuple[bytes, ...]:
    """What the protocol uses to name or commit to a record: the ids, hashes and roots
    that a signature, a header or a Merkle tree covers."""
    if isinstance(record, Transaction):
        return (record.tx_id, record.signature)
    if isinstance(record, BlockHeader):
        return (record.block_hash,)
    if isinstance(record, Vote):
        return (record.signing_bytes(), record.voter, record.signature)
    if isinstance(record, Receipt):
        return (record.receipt_hash,)
    if isinstance(record, ValidatorSet):
        return (record.set_hash,)
    if isinstance(record, Block):
        return (record.header.block_hash, txs_root(record.transactions))
    if isinstance(record, CommittedBlock):
        return (*identity(record.block), tagged_hash(Tag.STORED, record.certificate.encode()),
                receipts_root(record.receipts))
    if isinstance(record, CommitCertificate):
        return (tagged_hash(Tag.STORED, record.encode()),)
    raise AssertionError(type(record))


@pytest.mark.parametrize("name", list(S.ALL_RECORDS))
def test_round_trip_every_record_type(name: str) -> None:
    cls = RECORD_TYPES[name]

    @settings(max_examples=80, deadline=None)
    @given(S.ALL_RECORDS[name])
    def check(record: Any) -> None:
        data = record.encode()
        back = cls.decode(data)
        assert back == record
        assert back.encode() == data
        assert identity(back) == identity(record)

    check()


@pytest.mark.parametrize("name", list(S.ALL_RECORDS))
def test_mutation_or_truncation_is_rejected_or_changes_the_id(name: str) -> None:
    cls = RECORD_TYPES[name]

    @settings(max_examples=80, deadline=None)
    @given(S.ALL_RECORDS[name], st.data())
    def check(record: Any, data: Any) -> None:
        encoded = record.encode()
        cut = data.draw(st.integers(0, len(encoded) - 1), label="truncate at")
        with pytest.raises(DecodeError):
            cls.decode(encoded[:cut])
        position = data.draw(st.integers(0, len(encoded) - 1), label="position")
        byte = data.draw(st.integers(0, 255).filter(lambda b: b != encoded[position]))
        mutated = encoded[:position] + bytes([byte]) + encoded[position + 1:]
        try:
            other = cls.decode(mutated)
        except DecodeError:
            return
        # Not ``other != record``: decoded values compare with Python's equality, where
        # False == 0 (a flipped 0xc2 byte decodes to the integer 0). What a mutation must
        # change is the canonical encoding and the identity, which follows it.
        assert other.encode() == mutated
        assert identity(other) != identity(record)

    check()


def _signed_tx() -> Transaction:
    key = S.KEYS[0]
    return Transaction(
        "tabellion-test", "deliberations", "record", {"DELIB_ID": "2024-17", "VOTE_POUR": 12},
        key.public_key, 42, 1_700_000_600_000,
    ).signed(key)


def test_recent_decodings_give_back_the_same_transaction_and_stay_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "_recently_decoded", Lru(2))
    key = S.KEYS[0]
    txs = [Transaction("tabellion-test", "notary", "anchor", {"n": n}, key.public_key, n,
                       1_700_000_600_000).signed(key) for n in range(3)]
    first = Transaction.decode(txs[0].encode())
    assert Transaction.decode(bytes(txs[0].encode())) is first  # same bytes: no work
    Transaction.decode(txs[1].encode())
    Transaction.decode(txs[2].encode())  # two remembered at most: the first is forgotten
    again = Transaction.decode(txs[0].encode())
    assert again is not first and again == first and again.encode() == first.encode()
    big = Transaction("tabellion-test", "notary", "anchor",
                      {"text": "x" * records.DECODED_TX_BYTES_MAX}, key.public_key, 9,
                      1_700_000_600_000).signed(key)
    assert Transaction.decode(big.encode()) is not Transaction.decode(big.encode())
    # Remembering is by the exact bytes: another spelling of a remembered transaction is
    # still decoded, and refused (a non-minimal nonce: uint16 where a fixint is due).
    spelled = txs[2].encode().replace(b"\x02\xcf", b"\xcd\x00\x02\xcf", 1)
    assert spelled != txs[2].encode()
    with pytest.raises(DecodeError, match="canonical"):
        Transaction.decode(spelled)


def test_every_single_byte_change_of_a_signed_transaction() -> None:
    """Exhaustive over positions and a spread of byte values: a change is rejected by the
    decoder, or changes the transaction id, or breaks the signature. Nothing else."""
    tx = _signed_tx()
    encoded = tx.encode()
    accepted = 0
    for position in range(len(encoded)):
        for byte in range(0, 256, 7):
            if byte == encoded[position]:
                continue
            mutated = encoded[:position] + bytes([byte]) + encoded[position + 1:]
            try:
                other = Transaction.decode(mutated)
            except DecodeError:
                continue
            accepted += 1
            assert other.tx_id != tx.tx_id or other.signature != tx.signature
            assert not other.signature_valid(), f"byte {position} -> {byte:#x} still verifies"
    assert accepted > 0  # some changes decode (e.g. inside strings): the id must catch them
    for cut in range(len(encoded)):
        with pytest.raises(DecodeError):
            Transaction.decode(encoded[:cut])


def test_tx_id_covers_the_body_not_the_signature() -> None:
    tx = _signed_tx()
    assert tx.signature_valid()
    forged = dataclasses.replace(tx, signature=bytes(64))
    assert forged.tx_id == tx.tx_id
    assert not forged.signature_valid()
    changes: list[tuple[str, Any]] = [
        ("chain_id", "other-net"), ("nonce", 43), ("expiry_ms", 1),
        ("payload", {"DELIB_ID": "2024-18", "VOTE_POUR": 12}),
        ("contract", "notary"), ("action", "withdraw"),
    ]
    for field, value in changes:
        kwargs: dict[str, Any] = {field: value}
        changed = dataclasses.replace(tx, **kwargs)
        assert changed.tx_id != tx.tx_id, field
        assert not changed.signature_valid(), field
    assert tx.signing_bytes().startswith(b"tabellion/tx-sign\x00")


def test_signing_needs_the_signer_key() -> None:
    tx = _signed_tx()
    with pytest.raises(ValueError, match="does not match"):
        tx.signed(S.KEYS[1])


def test_unsigned_transaction_does_not_decode() -> None:
    key = S.KEYS[0]
    unsigned = Transaction("net", "c", "a", {}, key.public_key, 0, 0)
    with pytest.raises(DecodeError, match="signature must be 64 raw bytes"):
        Transaction.decode(unsigned.encode())


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (0, "", "chain_id must be 1 to 64 bytes"),
        (0, "x" * 65, "chain_id must be 1 to 64 bytes"),
        (1, 5, "contract must be a text string"),
        (3, [], "payload must be a map"),
        (3, {"x": "y" * 70_000}, "payload exceeds"),
        (4, b"\x01" * 31, "signer must be 32 raw bytes"),
        (5, -1, "nonce must be an integer between 0"),
        (6, True, "expiry_ms must be an integer"),
    ],
)
def test_transaction_fields_are_checked(index: int, value: Any, message: str) -> None:
    fields = _signed_tx().to_value()
    fields[index] = value
    with pytest.raises(DecodeError, match=message):
        Transaction.decode(encode(fields))


def test_field_count_is_checked_for_every_record() -> None:
    for cls in RECORD_TYPES.values():
        with pytest.raises(DecodeError, match="array"):
            cls.decode(encode([0] * 12))
        with pytest.raises(DecodeError):
            cls.decode(encode({"height": 1}))


@pytest.mark.parametrize("n", range(1, 40))
def test_quorum_formula_and_intersection(n: int) -> None:
    validators = ValidatorSet.of([bytes([i]) * 32 for i in range(n)])
    f = (n - 1) // 3
    q = -(-(n + f + 1) // 2)  # ceil((n + f + 1) / 2), docs/architecture.md §3
    assert (validators.f, validators.quorum) == (f, q)
    if n == 3 * f + 1:
        assert q == 2 * f + 1
    # Two quorums share at least f + 1 validators, so at least one correct one.
    assert 2 * q - n >= f + 1
    # A quorum is reachable with f validators down.
    assert q <= n - f


def test_validator_set_rules() -> None:
    keys = [bytes([i]) * 32 for i in (3, 1, 2)]
    vs = ValidatorSet.of(keys)
    assert vs.keys == tuple(sorted(keys))
    assert [vs.primary(v) for v in range(4)] == [vs.keys[0], vs.keys[1], vs.keys[2], vs.keys[0]]
    assert vs.index(keys[0]) == 2
    with pytest.raises(DecodeError, match="sorted and distinct"):
        ValidatorSet(tuple(keys))
    with pytest.raises(DecodeError, match="sorted and distinct"):
        ValidatorSet((keys[1], keys[1]))
    with pytest.raises(DecodeError, match="1 to 256"):
        ValidatorSet(())
    with pytest.raises(DecodeError, match="sorted and distinct"):
        ValidatorSet.decode(encode([[keys[2], keys[1]]]))
    assert ValidatorSet.of(list(reversed(keys))).set_hash == vs.set_hash


def test_vote_rules() -> None:
    key = S.KEYS[2]
    vote = Vote.make(key, "net", Phase.COMMIT, 3, 9, b"\x05" * 32)
    assert vote.signature_valid()
    assert vote.signing_bytes().startswith(b"tabellion/vote-sign\x00")
    prepare = dataclasses.replace(vote, phase=Phase.PREPARE)
    assert not prepare.signature_valid()  # a PREPARE signature never counts as a COMMIT
    fields = vote.to_value()
    fields[1] = 3
    with pytest.raises(DecodeError, match="phase must be 1"):
        Vote.decode(encode(fields))


def test_certificate_from_votes_is_sorted_and_one_per_voter() -> None:
    votes = [Vote.make(k, "net", Phase.COMMIT, 0, 4, b"\x09" * 32) for k in S.KEYS[:4]]
    cert = CommitCertificate.from_votes([*reversed(votes), votes[0]])
    voters = [s.voter for s in cert.signatures]
    assert voters == sorted({v.voter for v in votes})
    assert (cert.height, cert.view, cert.block_hash) == (4, 0, b"\x09" * 32)
    assert CommitCertificate.decode(cert.encode()) == cert


def test_receipt_and_decode_value_shape() -> None:
    receipt = Receipt(b"\x01" * 32, "ok", "", {"id": "ab"})
    assert receipt.ok
    assert not dataclasses.replace(receipt, code="quorum_not_met").ok
    assert decode(receipt.encode()) == [b"\x01" * 32, "ok", "", {"id": "ab"}]


def test_payload_and_receipt_data_hold_json_values_only() -> None:
    """Raw bytes would decode but have no JSON form for the API, receipts or open data."""
    fields = _signed_tx().to_value()
    fields[3] = {"doc": {"sha256": [b"\x01" * 32]}}
    with pytest.raises(DecodeError, match="payload holds raw bytes; use lowercase hex"):
        Transaction.decode(encode(fields))
    with pytest.raises(DecodeError, match="receipt data holds raw bytes"):
        Receipt.decode(encode([b"\x01" * 32, "ok", "", {"id": b"\x02"}]))


def test_payload_nesting_leaves_room_for_the_enclosing_records() -> None:
    """A payload at the nesting limit still encodes inside a committed block; one level
    more is refused when the transaction is decoded, not later when a block is built."""
    key = S.KEYS[0]

    def nested(levels: int) -> dict[str, Any]:
        value: Any = 1
        for _ in range(levels - 1):
            value = [value]
        return {"v": value}

    deepest = Transaction("net", "c", "a", nested(PAYLOAD_DEPTH_MAX), key.public_key, 0, 9
                          ).signed(key)
    tx = Transaction.decode(deepest.encode())
    header = BlockHeader("net", 1, bytes(32), key.public_key, 0, 1, txs_root((tx,)),
                         bytes(32), bytes(32), bytes(32))
    receipt = Receipt(tx.tx_id, "ok", "", nested(PAYLOAD_DEPTH_MAX))
    committed = CommittedBlock(Block(header, (tx,)), CommitCertificate(1, 0, bytes(32), ()),
                               (receipt,))
    assert CommittedBlock.decode(committed.encode()) == committed
    too_deep = dataclasses.replace(deepest, payload=nested(PAYLOAD_DEPTH_MAX + 1))
    with pytest.raises(DecodeError, match=f"deeper than {PAYLOAD_DEPTH_MAX} levels"):
        Transaction.decode(too_deep.encode())


@pytest.mark.parametrize("bad", [{"x": 1.5}, {"x": [2**64]}, {"x": {1: 2}}, {"x": "\ud800"}])
def test_payload_values_are_checked_without_the_decoder(bad: dict[str, Any]) -> None:
    fields = _signed_tx().to_value()
    fields[3] = bad
    with pytest.raises(DecodeError, match="payload"):
        Transaction.from_value(fields)


# --------------------------------------------------------------------------- encode once
# A transaction keeps the bytes it was decoded from (or its first encoding) and its id;
# blocks are assembled from those bytes and split back into them. Each shortcut must give
# exactly what the plain encoder gives, and refuse exactly what the plain decoder refuses.


@settings(max_examples=150, deadline=None)
@given(S.transactions(signed=True))
def test_cached_bytes_and_id_equal_the_plain_encoding(tx: Transaction) -> None:
    plain = encode(tx.to_value())
    body = encode(tx.body_value())
    fresh = dataclasses.replace(tx)  # no cache yet
    assert fresh.encode() == plain and fresh.body_bytes() == body
    assert fresh.tx_id == tagged_hash(Tag.TX_ID, body)
    decoded = Transaction.decode(plain)
    assert decoded.encode() == plain
    assert decoded.tx_id == tx.tx_id == tagged_hash(Tag.TX_ID, body)
    assert decoded.signing_bytes() == tx.signing_bytes()
    assert decoded.signature_valid()
    # Caches are not part of the record: equal records compare equal whatever they hold.
    assert decoded == fresh == tx


def test_signing_a_transaction_caches_the_id_of_the_body() -> None:
    key = S.KEYS[0]
    unsigned = Transaction("net", "notary", "anchor", {"b": 1, "a": 2}, key.public_key, 1, 2)
    signed = unsigned.signed(key)
    assert signed.tx_id == unsigned.tx_id == tagged_hash(Tag.TX_ID, encode(signed.body_value()))
    assert signed.encode() == encode(signed.to_value())
    assert Transaction.decode(signed.encode()).signature_valid()


@settings(max_examples=100, deadline=None)
@given(S.blocks, st.data())
def test_block_shortcuts_agree_with_the_plain_codec(block: Block, data: Any) -> None:
    plain = encode(block.to_value())
    assert block.encode() == plain
    back = Block.decode(plain)
    assert back == block == Block.from_value(decode(plain))
    assert [tx.encode() for tx in back.transactions] == [
        encode(tx.to_value()) for tx in block.transactions]
    position = data.draw(st.integers(0, len(plain) - 1), label="position")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != plain[position]))
    mutated = plain[:position] + bytes([byte]) + plain[position + 1:]
    via_split: Any
    via_plain: Any
    try:
        via_split = Block.decode(mutated)
    except DecodeError:
        via_split = DecodeError
    try:
        via_plain = Block.from_value(decode(mutated))
    except DecodeError:
        via_plain = DecodeError
    assert via_split == via_plain
    if via_split is not DecodeError:
        assert via_split.encode() == mutated


@settings(max_examples=60, deadline=None)
@given(S.committed_blocks)
def test_committed_block_shortcuts_agree_with_the_plain_codec(record: CommittedBlock) -> None:
    plain = encode(record.to_value())
    assert record.encode() == plain
    assert CommittedBlock.decode(plain) == record == CommittedBlock.from_value(decode(plain))

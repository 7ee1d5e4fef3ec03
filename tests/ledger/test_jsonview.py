"""ledger.jsonview: lossless JSON forms, and rejection of bad JSON with the field named."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import jsonview
from ledger.errors import DecodeError
from ledger.merkle import inclusion_proof, merkle_root, verify_inclusion
from ledger.records import (
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
from tests.ledger import strategies as S

ROUND_TRIPS: list[tuple[str, st.SearchStrategy[Any], Callable[[Any], Any], Callable[[Any], Any]]]
ROUND_TRIPS = [
    ("tx", S.transactions(), jsonview.tx_to_json, jsonview.tx_from_json),
    ("header", S.headers, jsonview.header_to_json, jsonview.header_from_json),
    ("vote", S.votes, jsonview.vote_to_json, jsonview.vote_from_json),
    ("certificate", S.certificates, jsonview.certificate_to_json,
     jsonview.certificate_from_json),
    ("receipt", S.receipts, jsonview.receipt_to_json, jsonview.receipt_from_json),
    ("block", S.blocks, jsonview.block_to_json, jsonview.block_from_json),
    ("committed", S.committed_blocks, jsonview.committed_block_to_json,
     jsonview.committed_block_from_json),
    ("validators", S.validator_sets, jsonview.validator_set_to_json,
     jsonview.validator_set_from_json),
]


@pytest.mark.parametrize(("name", "strategy", "to_json", "from_json"), ROUND_TRIPS,
                         ids=[r[0] for r in ROUND_TRIPS])
def test_round_trip_through_json_text(
    name: str, strategy: st.SearchStrategy[Any], to_json: Callable[[Any], Any],
    from_json: Callable[[Any], Any],
) -> None:
    @settings(max_examples=60, deadline=None)
    @given(strategy)
    def check(record: Any) -> None:
        text = json.dumps(to_json(record))  # really JSON: no bytes or tuples left behind
        back = from_json(json.loads(text))
        assert back == record
        assert back.encode() == record.encode()

    check()


@settings(max_examples=60, deadline=None)
@given(S.transactions(signed=True))
def test_b64_is_the_canonical_bytes(tx: Transaction) -> None:
    text = jsonview.tx_to_b64(tx)
    assert base64.b64decode(text) == tx.encode()
    assert jsonview.encoded_tx_from_b64(text) == tx
    assert jsonview.tx_from_json(jsonview.tx_to_json(tx)).signature_valid()


def test_proof_round_trip_still_verifies() -> None:
    leaves = [bytes([i]) * i for i in range(11)]
    root = merkle_root(leaves)
    for index in range(len(leaves)):
        proof = inclusion_proof(leaves, index)
        back = jsonview.proof_from_json(json.loads(json.dumps(jsonview.proof_to_json(proof))))
        assert back == proof
        verify_inclusion(leaves[index], back, root)


def _sample_tx() -> Transaction:
    key = S.KEYS[0]
    tx = Transaction("tabellion-test", "notary", "anchor", {"sha256": "ab" * 32, "n": 3},
                     key.public_key, 7, 1_700_000_000_000)
    return tx.signed(key)


def _rejected(obj: Any, parse: Callable[[Any], Any], field: str) -> None:
    with pytest.raises(DecodeError) as info:
        parse(obj)
    assert field in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("signer", "AB" * 32),            # uppercase
        ("signer", "ab" * 31),            # too short
        ("signer", "zz" * 32),            # not hex
        ("signer", 5),
        ("signature", "00" * 63),
        ("nonce", -1),
        ("nonce", 2**64),
        ("nonce", True),
        ("nonce", 1.5),
        ("expiry_ms", "12"),
        ("chain_id", ""),
        ("chain_id", "x" * 65),
        ("chain_id", "\ud800"),
        ("contract", None),
        ("action", ["a"]),
        ("payload", []),
        ("payload", {"amount": 1.5}),
        ("payload", {"big": 2**64}),
        ("payload", {"s": "\udfff"}),
        ("payload", {"x": "y" * (70 * 1024)}),
        ("tx_id", "00" * 32),              # derived member that does not match
    ],
)
def test_tx_from_json_names_the_bad_field(field: str, value: Any) -> None:
    obj = jsonview.tx_to_json(_sample_tx())
    obj[field] = value
    with pytest.raises(DecodeError) as info:
        jsonview.tx_from_json(obj)
    message = str(info.value)
    assert message.startswith("transaction") and field in message, message


def test_tx_from_json_rejects_missing_unknown_and_non_objects() -> None:
    good = jsonview.tx_to_json(_sample_tx())
    missing = dict(good)
    del missing["nonce"]
    _rejected(missing, jsonview.tx_from_json, "transaction.nonce: is missing")
    _rejected({**good, "nounce": 1}, jsonview.tx_from_json, "transaction.nounce")
    not_objects: tuple[Any, ...] = (None, [], "tx", 3)
    for bad in not_objects:
        _rejected(bad, jsonview.tx_from_json, "transaction: must be a JSON object")
    # tx_id is optional on input
    without_id = dict(good)
    del without_id["tx_id"]
    assert jsonview.tx_from_json(without_id) == _sample_tx()


def test_payload_nesting_is_bounded_without_recursion_error() -> None:
    deep: Any = 0
    for _ in range(5000):
        deep = {"a": deep}
    obj = jsonview.tx_to_json(_sample_tx())
    obj["payload"] = deep
    _rejected(obj, jsonview.tx_from_json, "nested deeper than")


def _sample_committed() -> CommittedBlock:
    tx = _sample_tx()
    header = BlockHeader("tabellion-test", 3, b"\x01" * 32, S.KEYS[1].public_key, 0,
                         1_700_000_000_000, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32,
                         b"\x05" * 32)
    votes = [Vote.make(k, header.chain_id, Phase.COMMIT, 0, 3, header.block_hash)
             for k in S.KEYS[:3]]
    receipt = Receipt(tx.tx_id, "ok", "", {"record": "ab" * 32})
    return CommittedBlock(Block(header, (tx,)), CommitCertificate.from_votes(votes),
                          (receipt,))


def test_nested_errors_carry_the_path() -> None:
    committed = _sample_committed()
    obj = jsonview.committed_block_to_json(committed)
    bad = copy.deepcopy(obj)
    bad["transactions"][0]["nonce"] = "x"
    _rejected(bad, jsonview.committed_block_from_json, "committed_block.transactions[0].nonce")
    bad = copy.deepcopy(obj)
    bad["receipts"][0]["tx_id"] = "x"
    _rejected(bad, jsonview.committed_block_from_json, "committed_block.receipts[0].tx_id")
    bad = copy.deepcopy(obj)
    bad["header"]["height"] = -4
    _rejected(bad, jsonview.committed_block_from_json, "committed_block.header.height")
    bad = copy.deepcopy(obj)
    bad["block_hash"] = "11" * 32
    _rejected(bad, jsonview.committed_block_from_json, "committed_block.block_hash")
    bad = copy.deepcopy(obj)
    bad["certificate"]["signatures"] = [{"voter": "00" * 32}]
    _rejected(bad, jsonview.committed_block_from_json,
              "committed_block.certificate.signatures[0].signature: is missing")


def test_other_records_reject_bad_fields() -> None:
    committed = _sample_committed()
    header = jsonview.header_to_json(committed.block.header)
    _rejected({**header, "prev_hash": "00"}, jsonview.header_from_json, "header.prev_hash")
    _rejected({**header, "block_hash": "00" * 32}, jsonview.header_from_json, "header.block_hash")
    vote = jsonview.vote_to_json(
        Vote.make(S.KEYS[0], "tabellion-test", Phase.PREPARE, 1, 2, b"\x07" * 32))
    _rejected({**vote, "phase": 3}, jsonview.vote_from_json, "vote: vote phase must be 1")
    vs = jsonview.validator_set_to_json(ValidatorSet.of([k.public_key for k in S.KEYS]))
    _rejected({**vs, "keys": []}, jsonview.validator_set_from_json, "validator_set:")
    _rejected({**vs, "quorum": 999}, jsonview.validator_set_from_json, "validator_set.quorum")
    keys = ["22" * 32, "11" * 32]
    _rejected({"keys": keys}, jsonview.validator_set_from_json, "sorted and distinct")
    _rejected({"keys": ["11" * 32] * 257}, jsonview.validator_set_from_json,
              "validator_set.keys: holds more than 256")
    proof = {"index": 0, "size": 1, "path": ["00" * 32] * 65}
    _rejected(proof, jsonview.proof_from_json, "proof.path: holds more than 64")
    _rejected({"index": -1, "size": 1, "path": []}, jsonview.proof_from_json, "proof.index")
    receipt = jsonview.receipt_to_json(committed.receipts[0])
    _rejected({**receipt, "message": "m" * 2000}, jsonview.receipt_from_json,
              "receipt.message: must be 0 to 1024")
    _rejected({**receipt, "data": None}, jsonview.receipt_from_json, "receipt.data")


@pytest.mark.parametrize(
    "text",
    ["", "not base64!", "AAA", "=" * 4, 5, None, "A" * (jsonview.TX_B64_CHARS_MAX + 4),
     base64.b64encode(b"\x93\x01\x02\x03").decode()],
)
def test_b64_rejects_bad_text(text: Any) -> None:
    with pytest.raises(DecodeError, match="transaction"):
        jsonview.encoded_tx_from_b64(text)


def test_b64_rejects_a_second_spelling() -> None:
    good = jsonview.tx_to_b64(_sample_tx())
    assert good.endswith("=")  # this sample's length leaves padding bits to flip
    raw = base64.b64decode(good)
    # Same bytes, different text: set the unused low bits of the last data character.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = good.rstrip("=")
    last = alphabet.index(body[-1])
    respelt = body[:-1] + alphabet[last | 1] + good[len(body):]
    assert respelt != good and base64.b64decode(respelt) == raw
    with pytest.raises(DecodeError, match="canonical"):
        jsonview.encoded_tx_from_b64(respelt)
    # Surrounding whitespace (a trailing newline from a file) is tolerated.
    assert jsonview.encoded_tx_from_b64(good + "\n") == _sample_tx()


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=70)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=12), inner, max_size=9)),
    max_leaves=30,
))
def test_arbitrary_json_raises_only_decode_error(obj: Any) -> None:
    parsers = (jsonview.tx_from_json, jsonview.header_from_json, jsonview.receipt_from_json,
               jsonview.certificate_from_json, jsonview.committed_block_from_json,
               jsonview.validator_set_from_json, jsonview.proof_from_json,
               jsonview.vote_from_json, jsonview.block_from_json)
    for parse in parsers:
        with contextlib.suppress(DecodeError):  # any other exception fails the test
            parse(obj)


@settings(max_examples=100, deadline=None)
@given(S.transactions(), st.sampled_from(jsonview._TX_FIELDS), st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=130),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.floats()),
))
def test_any_field_replaced_raises_only_decode_error_or_parses(
    tx: Transaction, field: str, value: Any
) -> None:
    obj = jsonview.tx_to_json(tx)
    del obj["tx_id"]  # else every accepted change would be reported as a tx_id mismatch
    obj[field] = value
    try:
        back = jsonview.tx_from_json(obj)
    except DecodeError as exc:
        assert f"transaction.{field}" in str(exc) or "transaction:" in str(exc)
    else:
        assert jsonview.tx_to_json(back)[field] == value

"""The ledger test vectors in tests/vectors/*.json, checked against the code.

Two layers: every file must equal what tests/vectors/generate.py writes today (so no
encoding, tag, hash or signature can change without this failing), and each file is also
read back on its own, decoded and verified, the way another implementation would use it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ledger import jsonview
from ledger.crypto import SigningKey, verify
from ledger.encoding import decode, encode
from ledger.errors import DecodeError, InvalidTransaction
from ledger.genesis import genesis_from_json
from ledger.hashing import Tag, tagged_hash
from ledger.merkle import inclusion_proof, merkle_root, verify_inclusion
from ledger.records import BlockHeader, CommitCertificate, CommittedBlock, Receipt, Transaction
from ledger.validation import (
    check_transaction,
    receipts_root,
    txs_root,
    validate_block,
    verify_certificate,
)
from tests.vectors import generate

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", list(generate.FILES))
def test_files_equal_what_the_code_produces(name: str) -> None:
    on_disk = (VECTORS / name).read_text(encoding="utf-8")
    assert on_disk == generate.render(generate.FILES[name]()), (
        f"tests/vectors/{name} no longer matches the code: an encoding, tag, hash or "
        "signature changed. If that is intended (a new network), run "
        "`python -m tests.vectors.generate` and say so in docs/protocol.md."
    )


def _value(v: Any) -> Any:
    if isinstance(v, dict) and set(v) == {"bin"}:
        return bytes.fromhex(v["bin"])
    if isinstance(v, list):
        return [_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _value(x) for k, x in v.items()}
    return v


def test_encoding_vectors() -> None:
    doc = load("encoding.json")
    assert len(doc["values"]) >= 15 and len(doc["rejected"]) >= 10
    for case in doc["values"]:
        value = _value(case["value"])
        assert encode(value).hex() == case["hex"], case["name"]
        assert decode(bytes.fromhex(case["hex"])) == value, case["name"]
    for case in doc["rejected"]:
        with pytest.raises(DecodeError):
            decode(bytes.fromhex(case["hex"]))


def test_hashing_vectors() -> None:
    doc = load("hashing.json")
    assert [(t["name"], t["tag"]) for t in doc["tags"]] == [
        (t.name, t.value.decode()) for t in Tag
    ]
    for t in doc["tags"]:
        assert tagged_hash(Tag[t["name"]], b"\xc0").hex() == t["hash_of_c0"]


def test_key_vectors() -> None:
    doc = load("keys.json")
    for k in doc["keys"]:
        assert SigningKey(bytes.fromhex(k["seed"])).public_key.hex() == k["public_key"]
    s = doc["signature"]
    key = SigningKey(bytes.fromhex(s["seed"]))
    message = bytes.fromhex(s["message"])
    assert key.sign(message).hex() == s["signature"]
    assert verify(key.public_key, message, bytes.fromhex(s["signature"]))


def test_transaction_vectors() -> None:
    cases = load("transactions.json")["cases"]
    assert len(cases) >= 3
    for case in cases:
        tx = jsonview.tx_from_json(case["fields"])  # also checks fields["tx_id"]
        canonical = bytes.fromhex(case["canonical_hex"])
        assert Transaction.decode(canonical) == tx
        assert tx.encode() == canonical
        assert encode(tx.body_value()).hex() == case["body_hex"]
        assert tx.signing_bytes().hex() == case["signing_bytes_hex"]
        assert tx.signing_bytes() == b"tabellion/tx-sign\x00" + bytes.fromhex(case["body_hex"])
        assert tx.tx_id.hex() == case["tx_id"]
        assert tagged_hash(Tag.TX_ID, bytes.fromhex(case["body_hex"])).hex() == case["tx_id"]
        assert tx.signature.hex() == case["signature"]
        assert tx.signature_valid()
        key = SigningKey(bytes.fromhex(case["signer_seed"]))
        assert key.sign(tx.signing_bytes()).hex() == case["signature"]  # deterministic
        assert base64.b64decode(case["base64"]) == canonical
        assert jsonview.encoded_tx_from_b64(case["base64"]) == tx


def test_rejected_transaction_vectors() -> None:
    rejected = load("transactions.json")["rejected"]
    assert {r["stage"] for r in rejected} == {"decode", "signature"}
    for case in rejected:
        data = bytes.fromhex(case["hex"])
        if case["stage"] == "decode":
            with pytest.raises(DecodeError):
                Transaction.decode(data)
        else:
            tx = Transaction.decode(data)
            assert not tx.signature_valid(), case["why"]
            with pytest.raises(InvalidTransaction):
                check_transaction(tx, tx.chain_id, 0)


def test_block_vectors() -> None:
    doc = load("block.json")
    genesis = genesis_from_json(load("genesis.json")["document"])
    validators = jsonview.validator_set_from_json(doc["validator_set"])
    assert validators == genesis.validator_set
    assert validators.encode().hex() == doc["validator_set_hex"]
    assert sorted(SigningKey(bytes.fromhex(s)).public_key for s in doc["validator_seeds"]) == list(
        validators.keys)

    header = BlockHeader.decode(bytes.fromhex(doc["header_hex"]))
    assert header == jsonview.header_from_json(doc["header"])
    assert header.block_hash.hex() == doc["block_hash"]
    assert header.prev_hash == genesis.genesis_hash
    assert tagged_hash(Tag.HEADER, header.encode()).hex() == doc["block_hash"]

    for vote in doc["votes"]:
        body = bytes.fromhex(vote["signing_bytes_hex"])
        assert body.startswith(b"tabellion/vote-sign\x00")
        assert verify(bytes.fromhex(vote["voter"]), body, bytes.fromhex(vote["signature"]))
    assert len(doc["votes"]) == 3 == validators.quorum

    cert = CommitCertificate.decode(bytes.fromhex(doc["certificate_hex"]))
    assert cert == jsonview.certificate_from_json(doc["certificate"])
    verify_certificate(cert, header, validators, chain_id=header.chain_id)

    committed = CommittedBlock.decode(bytes.fromhex(doc["committed_block_hex"]))
    assert committed.block.header == header and committed.certificate == cert
    assert txs_root(committed.block.transactions) == header.txs_root
    assert [tx.tx_id for tx in committed.block.transactions] == [
        bytes.fromhex(c["tx_id"]) for c in load("transactions.json")["cases"]
    ]
    validate_block(committed.block, prev_hash=genesis.genesis_hash, prev_height=0,
                   prev_time_ms=genesis.genesis_time_ms, chain_id=genesis.chain_id,
                   validators=validators, params=genesis.consensus)
    for r, expected in zip(committed.receipts, doc["receipts"], strict=True):
        assert r == Receipt.decode(bytes.fromhex(expected["hex"]))
        assert r == jsonview.receipt_from_json(expected["json"])
        assert r.receipt_hash.hex() == expected["receipt_hash"]
    assert receipts_root(committed.receipts).hex() == doc["receipts_root"]


def test_merkle_vectors() -> None:
    doc = load("merkle.json")
    assert merkle_root([]).hex() == doc["empty_root"]
    for tree in doc["trees"]:
        leaves = [bytes.fromhex(h) for h in tree["leaves_hex"]]
        root = bytes.fromhex(tree["root"])
        assert merkle_root(leaves) == root
        for index, proof_json in enumerate(tree["proofs"]):
            proof = jsonview.proof_from_json(proof_json)
            assert proof == inclusion_proof(leaves, index)
            verify_inclusion(leaves[index], proof, root)


def test_genesis_vectors() -> None:
    doc = load("genesis.json")
    g = genesis_from_json(doc["document"])
    assert encode(g.to_value()).hex() == doc["canonical_hex"]
    assert g.genesis_hash.hex() == doc["genesis_hash"]
    assert tagged_hash(Tag.GENESIS, bytes.fromhex(doc["canonical_hex"])).hex() == doc[
        "genesis_hash"]
    assert g.validator_set.set_hash.hex() == doc["validator_set_hash"]


def test_generator_check_mode_agrees() -> None:
    assert generate.main(["--check"]) == 0

"""Generate the test vectors: ``python -m tests.vectors.generate`` (``--check`` only
compares); this includes the contract vectors of tests/vectors/contracts.

The vectors are what another implementation needs to check itself against Tabellion
byte for byte (docs/protocol.md refers to them): canonical msgpack spellings, domain tags,
keys from fixed seeds, transactions (fields, canonical bytes, signing bytes, id,
signature), a block header with its hash and a commit certificate of 3 of 4 fixed
validators, a committed block, Merkle roots and inclusion proofs, and a genesis document
with its hash.

Everything is deterministic: fixed seeds, fixed times, and Ed25519 signatures are
deterministic (RFC 8032), so running this twice writes identical files. tests/ledger/test_vectors.py
checks the files against the code, so neither can drift without a failing test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ledger import jsonview
from ledger.crypto import SigningKey
from ledger.encoding import encode
from ledger.genesis import Genesis, genesis_from_json
from ledger.hashing import Tag, tagged_hash
from ledger.merkle import inclusion_proof, leaf_hash, merkle_root
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
from ledger.validation import receipts_root, txs_root
from tests.vectors.contracts.generate import vectors as contract_vectors

HERE = Path(__file__).resolve().parent
CHAIN_ID = "tabellion-vectors"
GENESIS_TIME_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
BLOCK_TIME_MS = GENESIS_TIME_MS + 5_000


def seed(label: str) -> bytes:
    """A fixed 32-byte seed spelled out from a label (readable, and no RNG involved)."""
    raw = label.encode()
    assert 0 < len(raw) <= 32, label
    return raw + bytes(32 - len(raw))


CLERK_SEED = seed("vector clerk")
VALIDATOR_SEEDS = [seed(f"vector validator {i}") for i in range(4)]


def key_json(s: bytes) -> dict[str, str]:
    return {"seed": s.hex(), "public_key": SigningKey(s).public_key.hex()}


# --------------------------------------------------------------------------- encoding

ENCODING_VALUES: list[tuple[str, Any]] = [
    ("zero", 0), ("positive fixint max", 127), ("uint8", 200), ("uint16", 1000),
    ("uint32", 70_000), ("uint64", 2**40), ("u64 max", 2**64 - 1), ("negative fixint", -5),
    ("int8", -100), ("int16", -1000), ("int64 min", -(2**63)), ("nil", None), ("false", False),
    ("true", True), ("empty str", ""), ("str", "Délibération n°17"), ("str8", "x" * 40),
    ("bin", b"\x00\xff"), ("array", [1, "a", [None]]),
    ("map sorted by UTF-8 key bytes", {"b": 1, "a": 2, "é": 3, "B": 4, "aa": 5}),
]

ENCODING_REJECTED: list[tuple[str, str]] = [
    ("cc05", "uint8 spelling of 5 (fixint required)"),
    ("d005", "int8 spelling of 5"),
    ("cd00ff", "uint16 spelling of 255"),
    ("d90161", "str8 spelling of a 1-byte string (fixstr required)"),
    ("dc000101", "array16 spelling of a 1-item array"),
    ("82a16201a16102", "map keys out of order"),
    ("82a16101a16102", "duplicate map key"),
    ("cb3ff0000000000000", "float64"),
    ("ca3f800000", "float32"),
    ("d40100", "extension type"),
    ("a2c328", "invalid UTF-8"),
    ("c0c0", "trailing bytes"),
    ("81c40161c0", "bin map key"),
    ("", "empty input"),
]


def encoding_vectors() -> dict[str, Any]:
    return {
        "description": "Canonical msgpack: each value has exactly one spelling; decoders "
                       "must reject every input in 'rejected'. JSON cannot hold bytes, so "
                       "'value' uses {\"bin\": hex} for a byte string.",
        "values": [{"name": name, "value": _jsonable(v), "hex": encode(v).hex()}
                   for name, v in ENCODING_VALUES],
        "rejected": [{"hex": h, "why": why} for h, why in ENCODING_REJECTED],
    }


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"bin": v.hex()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


# --------------------------------------------------------------------------- hashing, keys


def hashing_vectors() -> dict[str, Any]:
    data = bytes.fromhex("c0")
    return {
        "description": "hash = SHA-256(tag || 0x00 || data); signed bytes = tag || 0x00 || "
                       "data. Each entry hashes data = 0xc0 (msgpack nil) under one tag.",
        "tags": [{"name": t.name, "tag": t.value.decode("ascii"),
                  "hash_of_c0": tagged_hash(t, data).hex()} for t in Tag],
    }


def keys_vectors() -> dict[str, Any]:
    message = b"tabellion/tx-sign\x00" + encode("hello")
    clerk = SigningKey(CLERK_SEED)
    return {
        "description": "Ed25519 (RFC 8032) keys from 32-byte seeds, and one signature.",
        "keys": [key_json(s) for s in [CLERK_SEED, *VALIDATOR_SEEDS]],
        "signature": {"seed": CLERK_SEED.hex(), "message": message.hex(),
                      "signature": clerk.sign(message).hex()},
    }


# --------------------------------------------------------------------------- transactions

TX_CASES: list[tuple[str, str, str, dict[str, Any], int, int]] = [
    ("notary anchor", "notary", "anchor",
     {"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
      "doc_type": "arrete", "reference": "AR-2025-001"}, 1, BLOCK_TIME_MS + 3_600_000),
    ("deliberation, nested and unicode", "deliberations", "record",
     {"COLL_SIRET": "21930048000015", "DELIB_ID": "2025-017", "DELIB_OBJET": "Budget primitif "
      "— exercice 2025", "VOTE_POUR": 24, "VOTE_CONTRE": 3, "VOTE_ABSTENTION": 0,
      "BUDGET_ANNEE": 2025, "annexes": [{"n": 1, "sha256": "00" * 32}, None, True]},
     2, BLOCK_TIME_MS + 3_600_000),
    ("empty payload, large nonce", "identity", "noop", {}, 2**64 - 1, BLOCK_TIME_MS + 1),
    ("negative and large integers", "social_aid", "disburse",
     {"amount_cents": 12_345, "delta": -7, "big": 2**63, "small": -(2**63)}, 4,
     BLOCK_TIME_MS + 60_000),
]


def transactions() -> list[Transaction]:
    clerk = SigningKey(CLERK_SEED)
    return [
        Transaction(CHAIN_ID, contract, action, payload, clerk.public_key, nonce, expiry)
        .signed(clerk)
        for _, contract, action, payload, nonce, expiry in TX_CASES
    ]


def tx_vectors() -> dict[str, Any]:
    cases = []
    for (name, *_), tx in zip(TX_CASES, transactions(), strict=True):
        cases.append({
            "name": name,
            "signer_seed": CLERK_SEED.hex(),
            "fields": jsonview.tx_to_json(tx),
            "body_hex": encode(tx.body_value()).hex(),
            "signing_bytes_hex": tx.signing_bytes().hex(),
            "tx_id": tx.tx_id.hex(),
            "signature": tx.signature.hex(),
            "canonical_hex": tx.encode().hex(),
            "base64": jsonview.tx_to_b64(tx),
            "merkle_leaf_hash": leaf_hash(tx.encode()).hex(),
        })
    return {
        "description": "Signed transactions. body = [chain_id, contract, action, payload, "
                       "signer, nonce, expiry_ms]; signing bytes = 'tabellion/tx-sign' || 0x00 "
                       "|| canonical(body); tx_id = SHA-256('tabellion/tx' || 0x00 || "
                       "canonical(body)); canonical = canonical(body + [signature]). "
                       "'rejected' lists encodings every implementation must refuse, at "
                       "decoding ('decode') or at signature verification ('signature').",
        "cases": cases,
        "rejected": rejected_transactions(),
    }


ED25519_L = 2**252 + 27742317777372353535851937790883648493


def rejected_transactions() -> list[dict[str, str]]:
    tx = transactions()[0]
    good = tx.encode()
    # An array's encoding is its 1-byte header followed by its items' encodings.
    nonce_at = 1 + sum(len(encode(field)) for field in tx.to_value()[:5])
    assert good[nonce_at] == 0x01  # nonce 1 as a positive fixint
    other = SigningKey(seed("vector other signer"))
    s = int.from_bytes(tx.signature[32:], "little")
    respelt = tx.signature[:32] + (s + ED25519_L).to_bytes(32, "little")
    foreign = Transaction(tx.chain_id + "-other", tx.contract, tx.action, tx.payload, tx.signer,
                          tx.nonce, tx.expiry_ms, tx.signature)
    unsorted = good.replace(encode(tx.payload), _unsorted_payload_bytes(tx.payload))
    cases = [
        ("decode", good[:nonce_at] + bytes.fromhex("cc01") + good[nonce_at + 1:],
         "nonce 1 spelled as uint8 (cc01) instead of fixint 01"),
        ("decode", unsorted, "payload keys not in UTF-8 byte order"),
        ("decode", good[:-1], "truncated signature"),
        ("decode", good + b"\xc0", "trailing byte"),
        ("decode", encode([*tx.body_value(), tx.signature[:63]]), "63-byte signature"),
        ("decode", encode([*tx.body_value()[:3], {"x": b"\x00"}, *tx.body_value()[4:],
                           tx.signature]), "raw bytes inside the payload"),
        ("signature", _with_signature(tx, other.sign(tx.signing_bytes())),
         "signed by another key than the signer"),
        ("signature", _with_signature(tx, respelt),
         "signature re-spelt with S + L (non-canonical S)"),
        ("signature", foreign.encode(), "signature made for another chain_id"),
    ]
    return [{"stage": stage, "hex": data.hex(), "why": why} for stage, data, why in cases]


def _with_signature(tx: Transaction, signature: bytes) -> bytes:
    return encode([*tx.body_value(), signature])


def _unsorted_payload_bytes(payload: dict[str, Any]) -> bytes:
    """The payload map with its first two keys swapped (a second spelling)."""
    canonical = encode(payload)
    items = [(k, payload[k]) for k in sorted(payload)]
    items[0], items[1] = items[1], items[0]
    body = b"".join(encode(k) + encode(v) for k, v in items)
    swapped = canonical[:1] + body
    assert len(swapped) == len(canonical) and swapped != canonical
    return swapped


# --------------------------------------------------------------------------- block


def committed_block() -> tuple[ValidatorSet, CommittedBlock, list[Vote]]:
    keys = [SigningKey(s) for s in VALIDATOR_SEEDS]
    validators = ValidatorSet.of([k.public_key for k in keys])
    txs = tuple(transactions())
    genesis_hash = genesis().genesis_hash
    header = BlockHeader(
        chain_id=CHAIN_ID, height=1, prev_hash=genesis_hash,
        proposer=validators.primary(0), view=0, time_ms=BLOCK_TIME_MS, txs_root=txs_root(txs),
        results_root=merkle_root([]), state_root=tagged_hash(Tag.STATE_NODE, b"vector state"),
        validator_set_hash=validators.set_hash,
    )
    # Validators 0, 1 and 3 (by seed) sign the COMMIT: a quorum of 3 of 4, not the first 3.
    votes = [Vote.make(keys[i], CHAIN_ID, Phase.COMMIT, 0, 1, header.block_hash)
             for i in (0, 1, 3)]
    cert = CommitCertificate.from_votes(votes)
    receipts = tuple(
        Receipt(tx.tx_id, "ok" if i % 2 == 0 else "not_authorised",
                "" if i % 2 == 0 else "this key may not record for that municipality",
                {"position": i} if i % 2 == 0 else {})
        for i, tx in enumerate(txs)
    )
    return validators, CommittedBlock(Block(header, txs), cert, receipts), votes


def block_vectors() -> dict[str, Any]:
    validators, committed, votes = committed_block()
    header = committed.block.header
    return {
        "description": "Block 1 on the vectors network: header (prev_hash = genesis hash of "
                       "genesis.json), its hash = SHA-256('tabellion/header' || 0x00 || "
                       "canonical(header)), the COMMIT votes of 3 of the 4 validators, the "
                       "certificate built from them, receipts and the committed block.",
        "validator_seeds": [s.hex() for s in VALIDATOR_SEEDS],
        "validator_set": jsonview.validator_set_to_json(validators),
        "validator_set_hex": validators.encode().hex(),
        "header": jsonview.header_to_json(header),
        "header_hex": header.encode().hex(),
        "block_hash": header.block_hash.hex(),
        "votes": [
            {"voter": v.voter.hex(), "signing_bytes_hex": v.signing_bytes().hex(),
             "signature": v.signature.hex(), "vote_hex": v.encode().hex()}
            for v in votes
        ],
        "certificate": jsonview.certificate_to_json(committed.certificate),
        "certificate_hex": committed.certificate.encode().hex(),
        "receipts": [
            {"json": jsonview.receipt_to_json(r), "hex": r.encode().hex(),
             "receipt_hash": r.receipt_hash.hex()}
            for r in committed.receipts
        ],
        "receipts_root": receipts_root(committed.receipts).hex(),
        "committed_block_hex": committed.encode().hex(),
    }


# --------------------------------------------------------------------------- Merkle

MERKLE_SIZES = (1, 2, 3, 5, 7, 8, 13)


def merkle_leaves(size: int) -> list[bytes]:
    return [f"leaf {i} of {size}".encode() for i in range(size)]


def merkle_vectors() -> dict[str, Any]:
    trees = []
    for size in MERKLE_SIZES:
        leaves = merkle_leaves(size)
        trees.append({
            "leaves_hex": [leaf.hex() for leaf in leaves],
            "root": merkle_root(leaves).hex(),
            "proofs": [jsonview.proof_to_json(inclusion_proof(leaves, i)) for i in range(size)],
        })
    return {
        "description": "RFC 6962: leaf hash = SHA-256(0x00 || leaf), node hash = "
                       "SHA-256(0x01 || left || right), split at the largest power of two "
                       "below n; proofs list sibling hashes from the leaf up.",
        "empty_root": merkle_root([]).hex(),
        "trees": trees,
    }


# --------------------------------------------------------------------------- genesis


def genesis_document() -> dict[str, Any]:
    validators = [SigningKey(s).public_key.hex() for s in VALIDATOR_SEEDS]
    clerk = SigningKey(CLERK_SEED).public_key.hex()
    towns = [("Montreuil", "21930048000015"), ("Saint-Étienne", "21420218600018"),
             ("Brest", "21290019700014"), ("Pau", "21640445100017")]
    return {
        "chain_id": CHAIN_ID,
        "genesis_time_ms": GENESIS_TIME_MS,
        "consensus": {"checkpoint_interval": 16, "watermark_window": 64, "block_txs_max": 2000,
                      "block_bytes_max": 2097152, "view_timeout_ms": 2000, "execution_lag": 4},
        "governance": {"approval_numerator": 2, "approval_denominator": 3},
        "municipalities": [
            {"name": name, "siret": siret, "validator_key": validators[i],
             "members": [{"key": SigningKey(seed(f"vector admin {i}")).public_key.hex(),
                          "role": "admin"}]
             + ([{"key": clerk, "role": "clerk"}] if i == 0 else [])}
            for i, (name, siret) in enumerate(towns)
        ],
    }


def genesis() -> Genesis:
    return genesis_from_json(genesis_document())


def genesis_vectors() -> dict[str, Any]:
    g = genesis()
    return {
        "description": "A genesis file's content and its hash = SHA-256('tabellion/genesis' || "
                       "0x00 || canonical(normalised content)); whitespace and key order in "
                       "the file do not matter.",
        "document": genesis_document(),
        "canonical_hex": encode(g.to_value()).hex(),
        "genesis_hash": g.genesis_hash.hex(),
        "validator_set_hash": g.validator_set.set_hash.hex(),
    }


# --------------------------------------------------------------------------- files

FILES = {
    "encoding.json": encoding_vectors,
    "hashing.json": hashing_vectors,
    "keys.json": keys_vectors,
    "transactions.json": tx_vectors,
    "block.json": block_vectors,
    "merkle.json": merkle_vectors,
    "genesis.json": genesis_vectors,
}


def render(content: dict[str, Any]) -> str:
    return json.dumps(content, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """Write (or with ``--check`` compare) the ledger vectors here and the contract
    vectors of tests/vectors/contracts, so one command covers every vector file."""
    check = "--check" in argv
    stale = []
    for name, doc in contract_vectors().items():
        path = HERE / "contracts" / name
        content = render(doc)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != content:
                stale.append(f"contracts/{name}")
        else:
            path.write_text(content, encoding="utf-8")
    for name, build in FILES.items():
        text = render(build())
        path = HERE / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("stale vectors (regenerate with python -m tests.vectors.generate):", *stale)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

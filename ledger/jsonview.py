"""Lossless JSON forms of protocol records, for the HTTP API, receipt files and the CLI.

Rules:
- Every record has one JSON object form: one member per record field, named as the
  field; raw bytes (keys, hashes, signatures) are lowercase hex of exactly the field's
  length; integers stay JSON integers; payloads and receipt data are JSON as they are
  (they hold only str, int, bool, null, arrays and str-keyed objects).
- ``*_to_json`` adds read-only members derived from the record (``tx_id``,
  ``block_hash``, ``set_hash``); ``*_from_json`` accepts them, recomputes them and rejects
  the object if they differ, so a reader can trust them after a successful parse.
- ``*_from_json`` checks the type and size of every member *before* building anything,
  rejects unknown members (a misspelt field must not be silently dropped) and raises
  ``DecodeError`` whose message names the field (``transaction.signer: ...``), and never
  another exception, whatever the input.
- ``x_from_json(x_to_json(r)) == r`` for every record ``r``: the forms are lossless.
- The authoritative submit form of a transaction is standard base64 of its canonical
  bytes (``tx_to_b64`` / ``encoded_tx_from_b64``): what is signed is exactly what arrives.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, TypeVar

from ledger import crypto
from ledger.encoding import DEFAULT_LIMITS, INT_MAX, INT_MIN, Value
from ledger.errors import DecodeError, InvalidProof
from ledger.hashing import HASH_BYTES
from ledger.merkle import PROOF_PATH_MAX, InclusionProof
from ledger.records import (
    BLOCK_TXS_MAX,
    CERT_VOTES_MAX,
    CHAIN_ID_BYTES_MAX,
    MESSAGE_BYTES_MAX,
    NAME_BYTES_MAX,
    TX_BYTES_MAX,
    Block,
    BlockHeader,
    CommitCertificate,
    CommitSignature,
    CommittedBlock,
    Receipt,
    Transaction,
    ValidatorSet,
    Vote,
)

Json = dict[str, Any]
T = TypeVar("T")

TX_B64_CHARS_MAX = 4 * ((TX_BYTES_MAX + 2) // 3)
"""Longest base64 text of a transaction: the encoding of ``TX_BYTES_MAX`` bytes."""


# --------------------------------------------------------------------------- input checks


def _object(obj: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
            ) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DecodeError(f"{where}: must be a JSON object")
    missing = [k for k in required if k not in obj]
    if missing:
        raise DecodeError(f"{where}.{missing[0]}: is missing")
    unknown = sorted(str(k) for k in obj if k not in required and k not in optional)
    if unknown:
        raise DecodeError(f"{where}.{unknown[0][:64]}: is not a field of {where}")
    return obj


def _int(value: Any, where: str) -> int:
    # bool is an int subclass in Python, but true/false are not numbers in JSON.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT_MAX:
        raise DecodeError(f"{where}: must be an integer between 0 and {INT_MAX}")
    return int(value)


def _str(value: Any, where: str, max_bytes: int | None = None, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"{where}: must be a string")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate from a "\ud800" JSON escape
        raise DecodeError(f"{where}: is not valid Unicode text") from exc
    if max_bytes is not None and (size > max_bytes or (size == 0 and not empty)):
        low = 0 if empty else 1
        raise DecodeError(f"{where}: must be {low} to {max_bytes} bytes of UTF-8 text")
    return value


def _hex(value: Any, where: str, length: int) -> bytes:
    # Length is checked before decoding, so a huge string is never converted.
    if not isinstance(value, str) or len(value) != 2 * length:
        raise DecodeError(f"{where}: must be {2 * length} lowercase hex digits ({length} bytes)")
    if value != value.lower():
        raise DecodeError(f"{where}: hex digits must be lowercase")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise DecodeError(
            f"{where}: must be {2 * length} lowercase hex digits ({length} bytes)"
        ) from exc


def _array(value: Any, where: str, length_max: int) -> list[Any]:
    if not isinstance(value, list):
        raise DecodeError(f"{where}: must be an array")
    if len(value) > length_max:
        raise DecodeError(f"{where}: holds more than {length_max} items")
    return value


def _json_value(value: Any, where: str, depth: int) -> Value:
    """Check that ``value`` is JSON the canonical encoding accepts: bounded depth, no
    floats, 64-bit integers, valid text. Iterative depth bound: no RecursionError."""
    if depth > DEFAULT_LIMITS.depth_max:
        raise DecodeError(f"{where}: nested deeper than {DEFAULT_LIMITS.depth_max} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise DecodeError(f"{where}: integer outside the 64-bit range")
        return value
    if isinstance(value, str):
        return _str(value, where)
    if isinstance(value, list):
        if len(value) > DEFAULT_LIMITS.array_len_max:
            raise DecodeError(f"{where}: array longer than {DEFAULT_LIMITS.array_len_max}")
        return [_json_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if len(value) > DEFAULT_LIMITS.map_len_max:
            raise DecodeError(f"{where}: object with more than {DEFAULT_LIMITS.map_len_max} keys")
        out: dict[str, Value] = {}
        for k, v in value.items():
            key = _str(k, f"{where} key")
            out[key] = _json_value(v, f"{where}.{key[:64]}", depth + 1)
        return out
    if isinstance(value, float):
        raise DecodeError(f"{where}: numbers must be integers (money in cents, times in ms)")
    raise DecodeError(f"{where}: {type(value).__name__} is not a JSON value")


def _map(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(f"{where}: must be a JSON object")
    checked = _json_value(value, where, 1)
    assert isinstance(checked, dict)  # _json_value maps objects to dicts
    return checked


def _build(where: str, build: Callable[[], T]) -> T:
    """Run a record constructor; prefix its ``DecodeError`` with the JSON path, and turn
    any other failure into ``DecodeError`` so callers have exactly one exception to catch."""
    try:
        return build()
    except DecodeError as exc:
        raise DecodeError(f"{where}: {exc}") from exc
    except (ValueError, TypeError, UnicodeError, RecursionError, OverflowError) as exc:
        # Last line of defence: the checks above should already have rejected the input.
        raise DecodeError(f"{where}: cannot be decoded ({type(exc).__name__})") from exc


def _check_derived(obj: dict[str, Any], key: str, where: str, actual: bytes) -> None:
    if key in obj and _hex(obj[key], f"{where}.{key}", HASH_BYTES) != actual:
        raise DecodeError(f"{where}.{key}: does not match the other fields (recomputed)")


# --------------------------------------------------------------------------- transactions

_TX_FIELDS = ("chain_id", "contract", "action", "payload", "signer", "nonce", "expiry_ms",
              "signature")


def tx_to_json(tx: Transaction) -> Json:
    """JSON form of a transaction, with its read-only ``tx_id``."""
    return {
        "tx_id": tx.tx_id.hex(),
        "chain_id": tx.chain_id,
        "contract": tx.contract,
        "action": tx.action,
        "payload": tx.payload,
        "signer": tx.signer.hex(),
        "nonce": tx.nonce,
        "expiry_ms": tx.expiry_ms,
        "signature": tx.signature.hex(),
    }


def tx_from_json(obj: Any, where: str = "transaction") -> Transaction:
    """Parse the JSON form of a signed transaction; ``tx_id``, if given, must match."""
    o = _object(obj, where, _TX_FIELDS, ("tx_id",))
    value = [
        _str(o["chain_id"], f"{where}.chain_id", CHAIN_ID_BYTES_MAX),
        _str(o["contract"], f"{where}.contract", NAME_BYTES_MAX),
        _str(o["action"], f"{where}.action", NAME_BYTES_MAX),
        _map(o["payload"], f"{where}.payload"),
        _hex(o["signer"], f"{where}.signer", crypto.PUBLIC_KEY_BYTES),
        _int(o["nonce"], f"{where}.nonce"),
        _int(o["expiry_ms"], f"{where}.expiry_ms"),
        _hex(o["signature"], f"{where}.signature", crypto.SIGNATURE_BYTES),
    ]
    tx = _build(where, lambda: Transaction.from_value(value))
    _check_derived(o, "tx_id", where, tx.tx_id)
    return tx


def tx_to_b64(tx: Transaction) -> str:
    """Standard base64 (RFC 4648, with padding) of the canonical transaction bytes."""
    return base64.b64encode(tx.encode()).decode("ascii")


def encoded_tx_from_b64(text: Any) -> Transaction:
    """Decode the base64 submit form; only the one canonical spelling is accepted."""
    if not isinstance(text, str):
        raise DecodeError("transaction: the base64 form must be a string")
    text = text.strip()
    if len(text) > TX_B64_CHARS_MAX:
        raise DecodeError(f"transaction: larger than {TX_BYTES_MAX} bytes")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError("transaction: not valid standard base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        # Non-zero padding bits would give a second spelling of the same bytes.
        raise DecodeError("transaction: base64 is not in its canonical form")
    return _build("transaction", lambda: Transaction.decode(raw))


# --------------------------------------------------------------------------- validator sets


def validator_set_to_json(validators: ValidatorSet) -> Json:
    """JSON form: sorted keys, plus read-only ``set_hash``, ``quorum`` and ``f``."""
    return {
        "keys": [k.hex() for k in validators.keys],
        "set_hash": validators.set_hash.hex(),
        "quorum": validators.quorum,
        "f": validators.f,
    }


def validator_set_from_json(obj: Any, where: str = "validator_set") -> ValidatorSet:
    o = _object(obj, where, ("keys",), ("set_hash", "quorum", "f"))
    raw = _array(o["keys"], f"{where}.keys", CERT_VOTES_MAX)
    keys = tuple(
        _hex(k, f"{where}.keys[{i}]", crypto.PUBLIC_KEY_BYTES) for i, k in enumerate(raw)
    )
    validators = _build(where, lambda: ValidatorSet(keys))
    _check_derived(o, "set_hash", where, validators.set_hash)
    for key, actual in (("quorum", validators.quorum), ("f", validators.f)):
        if key in o and _int(o[key], f"{where}.{key}") != actual:
            raise DecodeError(f"{where}.{key}: does not match the keys (recomputed)")
    return validators


# --------------------------------------------------------------------------- headers, votes


def header_to_json(header: BlockHeader) -> Json:
    """JSON form of a header, with its read-only ``block_hash``."""
    return {
        "block_hash": header.block_hash.hex(),
        "chain_id": header.chain_id,
        "height": header.height,
        "prev_hash": header.prev_hash.hex(),
        "proposer": header.proposer.hex(),
        "view": header.view,
        "time_ms": header.time_ms,
        "txs_root": header.txs_root.hex(),
        "results_root": header.results_root.hex(),
        "state_root": header.state_root.hex(),
        "validator_set_hash": header.validator_set_hash.hex(),
    }


_HEADER_FIELDS = ("chain_id", "height", "prev_hash", "proposer", "view", "time_ms",
                  "txs_root", "results_root", "state_root", "validator_set_hash")


def header_from_json(obj: Any, where: str = "header") -> BlockHeader:
    o = _object(obj, where, _HEADER_FIELDS, ("block_hash",))
    value = [
        _str(o["chain_id"], f"{where}.chain_id", CHAIN_ID_BYTES_MAX),
        _int(o["height"], f"{where}.height"),
        _hex(o["prev_hash"], f"{where}.prev_hash", HASH_BYTES),
        _hex(o["proposer"], f"{where}.proposer", crypto.PUBLIC_KEY_BYTES),
        _int(o["view"], f"{where}.view"),
        _int(o["time_ms"], f"{where}.time_ms"),
        _hex(o["txs_root"], f"{where}.txs_root", HASH_BYTES),
        _hex(o["results_root"], f"{where}.results_root", HASH_BYTES),
        _hex(o["state_root"], f"{where}.state_root", HASH_BYTES),
        _hex(o["validator_set_hash"], f"{where}.validator_set_hash", HASH_BYTES),
    ]
    header = _build(where, lambda: BlockHeader.from_value(value))
    _check_derived(o, "block_hash", where, header.block_hash)
    return header


def vote_to_json(vote: Vote) -> Json:
    return {
        "chain_id": vote.chain_id,
        "phase": vote.phase,
        "view": vote.view,
        "height": vote.height,
        "block_hash": vote.block_hash.hex(),
        "voter": vote.voter.hex(),
        "signature": vote.signature.hex(),
    }


def vote_from_json(obj: Any, where: str = "vote") -> Vote:
    o = _object(obj, where, ("chain_id", "phase", "view", "height", "block_hash", "voter",
                             "signature"))
    value = [
        _str(o["chain_id"], f"{where}.chain_id", CHAIN_ID_BYTES_MAX),
        _int(o["phase"], f"{where}.phase"),
        _int(o["view"], f"{where}.view"),
        _int(o["height"], f"{where}.height"),
        _hex(o["block_hash"], f"{where}.block_hash", HASH_BYTES),
        _hex(o["voter"], f"{where}.voter", crypto.PUBLIC_KEY_BYTES),
        _hex(o["signature"], f"{where}.signature", crypto.SIGNATURE_BYTES),
    ]
    return _build(where, lambda: Vote.from_value(value))


# --------------------------------------------------------------------------- certificates


def certificate_to_json(cert: CommitCertificate) -> Json:
    return {
        "height": cert.height,
        "view": cert.view,
        "block_hash": cert.block_hash.hex(),
        "signatures": [
            {"voter": s.voter.hex(), "signature": s.signature.hex()} for s in cert.signatures
        ],
    }


def certificate_from_json(obj: Any, where: str = "certificate") -> CommitCertificate:
    o = _object(obj, where, ("height", "view", "block_hash", "signatures"))
    raw = _array(o["signatures"], f"{where}.signatures", CERT_VOTES_MAX)
    sigs: list[CommitSignature] = []
    for i, item in enumerate(raw):
        at = f"{where}.signatures[{i}]"
        s = _object(item, at, ("voter", "signature"))
        sigs.append(CommitSignature(
            _hex(s["voter"], f"{at}.voter", crypto.PUBLIC_KEY_BYTES),
            _hex(s["signature"], f"{at}.signature", crypto.SIGNATURE_BYTES),
        ))
    return CommitCertificate(
        height=_int(o["height"], f"{where}.height"),
        view=_int(o["view"], f"{where}.view"),
        block_hash=_hex(o["block_hash"], f"{where}.block_hash", HASH_BYTES),
        signatures=tuple(sigs),
    )


# --------------------------------------------------------------------------- receipts, blocks


def receipt_to_json(receipt: Receipt) -> Json:
    return {
        "tx_id": receipt.tx_id.hex(),
        "code": receipt.code,
        "message": receipt.message,
        "data": receipt.data,
    }


def receipt_from_json(obj: Any, where: str = "receipt") -> Receipt:
    o = _object(obj, where, ("tx_id", "code", "message", "data"))
    value = [
        _hex(o["tx_id"], f"{where}.tx_id", HASH_BYTES),
        _str(o["code"], f"{where}.code", NAME_BYTES_MAX),
        _str(o["message"], f"{where}.message", MESSAGE_BYTES_MAX, empty=True),
        _map(o["data"], f"{where}.data"),
    ]
    return _build(where, lambda: Receipt.from_value(value))


def block_to_json(block: Block) -> Json:
    return {
        "header": header_to_json(block.header),
        "transactions": [tx_to_json(tx) for tx in block.transactions],
    }


def block_from_json(obj: Any, where: str = "block") -> Block:
    o = _object(obj, where, ("header", "transactions"))
    raw = _array(o["transactions"], f"{where}.transactions", BLOCK_TXS_MAX)
    return Block(
        header_from_json(o["header"], f"{where}.header"),
        tuple(tx_from_json(t, f"{where}.transactions[{i}]") for i, t in enumerate(raw)),
    )


def committed_block_to_json(committed: CommittedBlock) -> Json:
    """A block with its certificate and receipts, plus read-only ``height`` and
    ``block_hash`` for readers that do not want to look inside the header."""
    header = committed.block.header
    return {
        "height": header.height,
        "block_hash": header.block_hash.hex(),
        "header": header_to_json(header),
        "transactions": [tx_to_json(tx) for tx in committed.block.transactions],
        "certificate": certificate_to_json(committed.certificate),
        "receipts": [receipt_to_json(r) for r in committed.receipts],
    }


def committed_block_from_json(obj: Any, where: str = "committed_block") -> CommittedBlock:
    o = _object(obj, where, ("header", "transactions", "certificate", "receipts"),
                ("height", "block_hash"))
    block = block_from_json({"header": o["header"], "transactions": o["transactions"]}, where)
    _check_derived(o, "block_hash", where, block.header.block_hash)
    if "height" in o and _int(o["height"], f"{where}.height") != block.header.height:
        raise DecodeError(f"{where}.height: does not match the header (recomputed)")
    raw = _array(o["receipts"], f"{where}.receipts", BLOCK_TXS_MAX)
    receipts = tuple(receipt_from_json(r, f"{where}.receipts[{i}]") for i, r in enumerate(raw))
    cert = certificate_from_json(o["certificate"], f"{where}.certificate")
    return CommittedBlock(block, cert, receipts)


# --------------------------------------------------------------------------- Merkle proofs


def proof_to_json(proof: InclusionProof) -> Json:
    return {"index": proof.index, "size": proof.size, "path": [h.hex() for h in proof.path]}


def proof_from_json(obj: Any, where: str = "proof") -> InclusionProof:
    o = _object(obj, where, ("index", "size", "path"))
    raw = _array(o["path"], f"{where}.path", PROOF_PATH_MAX)
    value = [
        _int(o["index"], f"{where}.index"),
        _int(o["size"], f"{where}.size"),
        [_hex(h, f"{where}.path[{i}]", HASH_BYTES) for i, h in enumerate(raw)],
    ]
    try:
        return InclusionProof.from_value(value)
    except InvalidProof as exc:
        raise DecodeError(f"{where}: {exc}") from exc

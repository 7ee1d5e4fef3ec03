"""Read access by role: the public never reads a social-aid payment; members sign reads.

Threat model and reasons: docs/adr/0014-aid-privacy-and-read-access.md.

Rules:
- A *payment* is a transaction of ``social_aid`` whose action is in ``PAYMENT_ACTIONS``
  (disburse, approve, cancel): its body names a beneficiary tag, an amount and a month.
  Its receipt repeats the amount. Everything else (deliberations, reports, anchors,
  schemes, headers, certificates) is public.
- A request is *public* unless it carries the three headers ``READER_KEY_HEADER``
  (the reader's Ed25519 public key, hex), ``READER_TIME_HEADER`` (milliseconds since
  the epoch) and ``READER_SIGNATURE_HEADER`` (hex): the signature, by that key, of
  ``READ_DOMAIN || 0x00 || canonical([method, path with query, time_ms, chain_id])``
  (``read_signing_bytes``). The time is within ``READ_CLOCK_SKEW_MS`` of the node's
  clock (a captured request stops working), the key is an enrolled member not revoked
  in the node's latest state. Partial or invalid headers are refused (401) with what to
  fix: never silently downgraded to public. No password exists anywhere.
- A payment of the municipality S is readable by a member of S holding
  ``social_aid_agent``, ``admin`` or ``auditor``, and by a *network auditor*: a member
  holding ``auditor`` in any municipality of the network (the chain stays fully
  auditable by auditors; their town's validator holds every block anyway).
- What a reader may not read is hidden, not faked: in a block, a payment becomes
  ``{"redacted": true, "leaf_hash": ...}`` (its RFC 6962 leaf hash, so ``txs_root``
  still recomputes with ``ledger.merkle.merkle_root_of_leaf_hashes``) and so does its
  receipt; record lists leave payments out; a payment's transaction, or a state key
  under ``aid/pay/``, answers 403 ``restricted`` saying how to authenticate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from contracts import keys as state_keys
from ledger import jsonview
from ledger.crypto import SigningKey, verify
from ledger.encoding import decode, encode
from ledger.errors import LedgerError
from ledger.merkle import leaf_hash
from node.errors import NodeError

PAYMENT_CONTRACT = "social_aid"
PAYMENT_ACTIONS = frozenset({"disburse", "approve", "cancel"})
PAYMENT_READER_ROLES = frozenset({"social_aid_agent", "admin", "auditor"})
NETWORK_AUDITOR_ROLE = "auditor"
READ_DOMAIN = b"tabellion/api-read"
READER_KEY_HEADER = "x-tabellion-reader"
READER_TIME_HEADER = "x-tabellion-time"
READER_SIGNATURE_HEADER = "x-tabellion-signature"
READ_CLOCK_SKEW_MS = 120_000
"""A signed read is accepted within two minutes of the node's clock, either way."""
READ_PATH_BYTES_MAX = 4096
PAYMENT_STATE_PREFIX = b"aid/pay/"


class ReadRefused(NodeError):
    """A read the API refuses: HTTP status, stable code, message for the reader."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def read_signing_bytes(method: str, path: str, time_ms: int, chain_id: str) -> bytes:
    """What a reader signs: the request line and time, bound to one network."""
    return READ_DOMAIN + b"\x00" + encode([method.upper(), path, time_ms, chain_id])


def read_headers(key: SigningKey, method: str, path: str, chain_id: str,
                 time_ms: int | None = None) -> dict[str, str]:
    """The headers that authenticate one request (clients call this)."""
    now = int(time.time() * 1000) if time_ms is None else time_ms
    signature = key.sign(read_signing_bytes(method, path, now, chain_id))
    return {READER_KEY_HEADER: key.public_key.hex(), READER_TIME_HEADER: str(now),
            READER_SIGNATURE_HEADER: signature.hex()}


@dataclass(frozen=True, slots=True)
class Reader:
    """Who is reading: ``siret`` and ``roles`` are empty for the public."""

    key_hex: str | None
    siret: str | None
    roles: frozenset[str]

    def may_read_payment_of(self, siret: str) -> bool:
        if NETWORK_AUDITOR_ROLE in self.roles:
            return True
        return self.siret == siret and bool(self.roles & PAYMENT_READER_ROLES)


PUBLIC = Reader(None, None, frozenset())

StateLookup = Callable[[bytes], bytes | None]
"""Reads the node's latest state: key -> value bytes or ``None``."""


def authenticate(headers: Mapping[str, str], method: str, path: str, chain_id: str,
                 member_state: StateLookup, now_ms: int | None = None) -> Reader:
    """The reader behind a request: ``PUBLIC`` without reader headers; raises
    ``ReadRefused`` (401) when they are partial, stale, badly signed or not a member."""
    given = [headers.get(h) for h in (READER_KEY_HEADER, READER_TIME_HEADER,
                                      READER_SIGNATURE_HEADER)]
    if all(v is None for v in given):
        return PUBLIC
    key_hex, time_text, signature_hex = given
    if key_hex is None or time_text is None or signature_hex is None:
        _refuse("give all three headers X-Tabellion-Reader, X-Tabellion-Time and "
                "X-Tabellion-Signature, or none (public read)")
    try:
        key = bytes.fromhex(key_hex)
        signature = bytes.fromhex(signature_hex)
        time_ms = int(time_text)
    except ValueError:
        _refuse("X-Tabellion-Reader and X-Tabellion-Signature are hex, X-Tabellion-Time "
                "is milliseconds since the epoch")
    if len(key) != 32 or len(signature) != 64 or len(path) > READ_PATH_BYTES_MAX:
        _refuse("X-Tabellion-Reader is a 32-byte key and X-Tabellion-Signature a 64-byte "
                "signature, in hex")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now - time_ms) > READ_CLOCK_SKEW_MS:
        _refuse(f"X-Tabellion-Time is {abs(now - time_ms) // 1000} s away from the node's "
                f"clock (at most {READ_CLOCK_SKEW_MS // 1000} s): sign each request "
                "afresh and check your clock")
    if not verify(key, read_signing_bytes(method, path, time_ms, chain_id), signature):
        _refuse("the signature does not match this request: sign method, path with "
                "query, time and chain id (see docs/api.md)")
    raw = member_state(state_keys.member_key(key_hex.lower()))
    record = None
    if raw is not None:
        try:
            record = decode(raw)
        except LedgerError:
            record = None
    if not isinstance(record, dict) or record.get("revoked_height") is not None:
        _refuse(f"the key {key_hex[:16]}… is not an enrolled member key (or it was "
                "revoked): read publicly, or sign with your current key")
    return Reader(key_hex.lower(), str(record["siret"]),
                  frozenset(str(r) for r in record["roles"]))


def _refuse(message: str) -> NoReturn:
    raise ReadRefused(401, "unauthenticated", message)


def restricted(what: str) -> ReadRefused:
    return ReadRefused(403, "restricted",
                       f"{what} is a social-aid payment: only members of the paying "
                       "municipality (agent, admin, auditor) and auditors read it, with a "
                       "signed request (headers X-Tabellion-Reader, -Time, -Signature; "
                       "see docs/api.md)")


# ---------------------------------------------------------------- views
def _payment_siret(tx: Mapping[str, Any]) -> str | None:
    """The paying municipality if ``tx`` (JSON form) is a payment, else ``None``."""
    if tx.get("contract") != PAYMENT_CONTRACT or tx.get("action") not in PAYMENT_ACTIONS:
        return None
    payload = tx.get("payload")
    siret = payload.get("siret") if isinstance(payload, dict) else None
    return str(siret) if siret is not None else ""


def hidden_from(reader: Reader, tx: Mapping[str, Any]) -> bool:
    """Whether the transaction (JSON form) is a payment ``reader`` may not read."""
    siret = _payment_siret(tx)
    return siret is not None and not reader.may_read_payment_of(siret)


def block_view(reader: Reader, block: dict[str, Any]) -> dict[str, Any]:
    """A committed block (JSON form) as ``reader`` may see it."""
    txs = block.get("transactions", [])
    hidden = [i for i, tx in enumerate(txs) if hidden_from(reader, tx)]
    if not hidden:
        return block
    receipts = list(block.get("receipts", []))
    shown = list(txs)
    for i in hidden:
        shown[i] = {"redacted": True,
                    "leaf_hash": leaf_hash(jsonview.tx_from_json(txs[i]).encode()).hex()}
        if i < len(receipts):
            receipt = jsonview.receipt_from_json(receipts[i])
            receipts[i] = {"redacted": True, "leaf_hash": leaf_hash(receipt.encode()).hex()}
    return {**block, "transactions": shown, "receipts": receipts}


def records_view(reader: Reader, page: dict[str, Any]) -> dict[str, Any]:
    """A page of records without the payments ``reader`` may not read (the cursor is
    kept, so paging goes on past them)."""
    records = page.get("records", [])
    kept = [r for r in records if not hidden_from(reader, r)]
    return page if len(kept) == len(records) else {**page, "records": kept}


def transaction_view(reader: Reader, found: dict[str, Any]) -> dict[str, Any]:
    """A transaction's status (JSON form), or ``restricted`` if it is a hidden payment."""
    tx = found.get("transaction")
    if isinstance(tx, dict) and hidden_from(reader, tx):
        raise restricted(f"transaction {found.get('tx_id', '')}")
    return found


def check_state_key(reader: Reader, key: bytes) -> None:
    """Refuse a proven state read of a payment record the reader may not read."""
    if not key.startswith(PAYMENT_STATE_PREFIX):
        return
    siret = key[len(PAYMENT_STATE_PREFIX):].split(b"/", 1)[0].decode("ascii", "replace")
    if not reader.may_read_payment_of(siret):
        raise restricted(f"the state key {key.decode('ascii', 'replace')[:60]}")

"""One stored block read, decoded and checked where it was read (a worker process).

Rules:
- ``decode_stored_block`` decodes the four stored parts one by one so that damage is
  located: a checksum mismatch is noted and the part still decoded when it can be, and an
  undecodable part names the transaction or receipt that breaks it.
- ``block_facts`` is every check of a block that needs nothing but the block itself:
  transaction ids, the transactions root, the network and expiry of each transaction,
  its payload against its action's schema (a field no schema has is where personal
  data would be smuggled: validators refuse to vote for such a block, and the audit
  names any that was certified anyway), the receipts against the transactions, the
  receipts root and (optionally) every transaction signature. It is pure, so the chain
  checker runs it in-process (level full, where the block is replayed anyway) and
  ``check_stored_block`` runs it in worker processes (level chain), handing back only
  the header, the certificate and the facts: the transactions never cross a process
  boundary.
- Transaction ids and Merkle leaves are computed from the stored bytes themselves (the
  canonical encoding of each element of the stored array, found by ``element_bytes``)
  instead of re-encoding every record: the bytes that were hashed are the bytes stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import msgpack

from contracts.engine import check_schema
from ledger import crypto
from ledger.encoding import decode, encode
from ledger.errors import DecodeError
from ledger.hashing import HASH_BYTES, Tag, tag_prefix, tagged_hash
from ledger.merkle import merkle_root
from ledger.records import (
    Block,
    BlockHeader,
    CommitCertificate,
    CommittedBlock,
    Receipt,
    Transaction,
)
from ledger.store import PARTS
from ledger.validation import TX_EXPIRY_HORIZON_MS_MAX
from verify.findings import Finding, SignatureJob, StoredBlock

_SIGNATURE_TAIL = b"\xc4\x40"
"""msgpack header of a 64-byte bin: how a transaction's encoding ends before its signature."""
_TX_ARRAY, _BODY_ARRAY = 0x98, 0x97
"""msgpack fixarray headers of a transaction (8 fields) and of its signed body (7)."""


@dataclass(frozen=True, slots=True)
class BlockFacts:
    """What the self-contained checks of one block found."""

    tx_ids: tuple[bytes, ...]
    receipts_root: bytes
    """Merkle root of the stored receipts (judged against header ``h + D``)."""
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class CheckedBlock:
    """A block read and checked by a worker (level chain): what the chain checker still
    needs, in height order: the header, the certificate and the facts."""

    height: int
    header: BlockHeader
    certificate: CommitCertificate
    facts: BlockFacts
    notes: tuple[Finding, ...] = ()
    """Damage seen while reading (a checksum that does not match)."""
    transactions: int = 0


def element_bytes(array: bytes) -> list[bytes] | None:
    """The canonical bytes of each element of an encoded array (already checked to be
    canonical by ``ledger.encoding.decode``), or ``None`` if it is not an array."""
    unpacker = msgpack.Unpacker(max_buffer_size=max(len(array), 1))
    unpacker.feed(array)
    try:
        count = unpacker.read_array_header()
        out: list[bytes] = []
        start = unpacker.tell()
        for _ in range(count):
            unpacker.skip()
            end = unpacker.tell()
            out.append(array[start:end])
            start = end
    except (ValueError, msgpack.OutOfData, msgpack.UnpackValueError):
        return None
    return out


def _body_of(tx: Transaction, stored: bytes | None) -> bytes:
    """The canonical bytes of a transaction's signed body: cut from its stored encoding
    when it has the expected shape, else encoded."""
    if (stored is not None and stored[0] == _TX_ARRAY and stored[-66:-64] == _SIGNATURE_TAIL
            and stored[-64:] == tx.signature):
        return bytes((_BODY_ARRAY,)) + stored[1:-66]
    return encode(tx.body_value())


def block_facts(
    block: CommittedBlock, chain_id: str, *, tx_bytes: Sequence[bytes] | None = None,
    receipt_bytes: Sequence[bytes] | None = None, verify_signatures: bool,
) -> tuple[BlockFacts, list[SignatureJob]]:
    """The self-contained checks of ``block`` (see the module rules). Without
    ``verify_signatures`` the signatures come back as jobs for a ``SignaturePool``."""
    header = block.block.header
    h = header.height
    txs = block.block.transactions
    stored_txs = tx_bytes if tx_bytes is not None and len(tx_bytes) == len(txs) else None
    bodies = [_body_of(tx, stored_txs[i] if stored_txs else None) for i, tx in enumerate(txs)]
    leaves = (list(stored_txs) if stored_txs is not None
              else [_with_signature(body, tx.signature) for body, tx in zip(bodies, txs,
                                                                            strict=True)])
    findings: list[Finding] = []
    if merkle_root(leaves) != header.txs_root:
        findings.append(Finding(
            h, "block", "txs_root does not match the stored transactions: a transaction "
            "was altered, added, removed or reordered"))
    ids: list[bytes] = []
    signed: list[tuple[bytes, bytes, bytes]] = []
    time_ms = header.time_ms
    latest_ms = time_ms + TX_EXPIRY_HORIZON_MS_MAX
    tx_id_tag, sign_tag = tag_prefix(Tag.TX_ID), tag_prefix(Tag.TX_SIGN)
    for tx, body in zip(txs, bodies, strict=True):
        # tagged_hash and tagged_bytes with their prefix taken once: once per transaction.
        ids.append(sha256(tx_id_tag + body).digest())
        signed.append((tx.signer, sign_tag + body, tx.signature))
        if tx.chain_id != chain_id or not time_ms <= tx.expiry_ms <= latest_ms:
            findings.extend(_transaction_findings(h, len(ids) - 1, ids[-1], tx, chain_id,
                                                  time_ms))
        refusal = check_schema(tx)
        if refusal is not None:
            findings.append(Finding(
                h, "transaction", f"the payload does not fit its action's schema "
                f"({refusal.message}): a field no schema has may hold personal data, "
                "which the chain cannot erase: tell the data protection officer "
                "(docs/operators.md)",
                ids[-1].hex(), len(ids) - 1))
    jobs: list[SignatureJob] = []
    if verify_signatures:
        findings.extend(signature_failure(SignatureJob(h, position, ids[position],
                                                       *signed[position]))
                        for position in crypto.invalid_signatures(signed))
    else:
        jobs = [SignatureJob(h, position, tx_id, *triple)
                for position, (tx_id, triple) in enumerate(zip(ids, signed, strict=True))]
    receipts = block.receipts
    if len(receipts) != len(txs):
        findings.append(Finding(
            h, "receipt", f"{len(receipts)} receipts are stored for {len(txs)} transactions"))
    for position, (tx_id, receipt) in enumerate(zip(ids, receipts, strict=False)):
        if receipt.tx_id != tx_id:
            findings.append(Finding(
                h, "receipt", "the stored receipt names another transaction",
                tx_id.hex(), position))
    stored_receipts = (receipt_bytes if receipt_bytes is not None
                       and len(receipt_bytes) == len(receipts) else None)
    receipts_root = merkle_root(list(stored_receipts) if stored_receipts is not None
                                else [r.encode() for r in receipts])
    return BlockFacts(tuple(ids), receipts_root, tuple(findings)), jobs


def _transaction_findings(h: int, position: int, tx_id: bytes, tx: Transaction,
                          chain_id: str, time_ms: int) -> list[Finding]:
    """What is wrong with a transaction's network or expiry in block ``h``."""
    hexid = tx_id.hex()
    findings = []
    if tx.chain_id != chain_id:
        findings.append(Finding(
            h, "transaction", f"signed for network {tx.chain_id!r}", hexid, position))
    if tx.expiry_ms < time_ms:
        findings.append(Finding(
            h, "transaction", "committed after its expiry", hexid, position))
    elif tx.expiry_ms > time_ms + TX_EXPIRY_HORIZON_MS_MAX:
        findings.append(Finding(
            h, "transaction", "expiry more than 7 days after the block", hexid, position))
    return findings


def signature_failure(job: SignatureJob) -> Finding:
    """The finding of a transaction signature that does not verify."""
    return Finding(job.height, "transaction", "the signature does not verify for its "
                   "signer: the transaction was altered after signing, or never signed by "
                   "that key", job.tx_id.hex(), job.position)


def _with_signature(body: bytes, signature: bytes) -> bytes:
    """Canonical bytes of a transaction from those of its body (a msgpack fixarray of 7
    fields): the same fields and the signature in a fixarray of 8."""
    assert body[0] == _BODY_ARRAY, "a transaction body is a msgpack array of 7 fields"
    return bytes((_TX_ARRAY,)) + body[1:] + encode(signature)


def check_stored_block(height: int, raw: dict[str, bytes | None],
                       chain_id: str) -> StoredBlock | CheckedBlock:
    """Worker (level chain): decode the stored parts and run ``block_facts`` with the
    signatures; a block that cannot be read comes back as the ``StoredBlock`` saying why."""
    stored = decode_stored_block(height, raw)
    block = stored.block
    if block is None or block.height != height:
        return stored
    tx_raw, receipt_raw = raw["t"], raw["r"]
    facts, _ = block_facts(
        block, chain_id, verify_signatures=True,
        tx_bytes=element_bytes(tx_raw[HASH_BYTES:]) if tx_raw else None,
        receipt_bytes=element_bytes(receipt_raw[HASH_BYTES:]) if receipt_raw else None)
    return CheckedBlock(height, block.block.header, block.certificate, facts, stored.notes,
                        len(block.block.transactions))


_PART_OF = {"h": "header", "t": "transaction", "c": "certificate", "r": "receipt"}


def _decoded(build: Callable[[Any], Any], body: bytes, what: str) -> Any:
    try:
        return build(decode(body))
    except DecodeError as exc:
        raise DecodeError(f"the {what} does not decode ({exc})") from exc


def _decoded_list(build: Callable[[Any], Any], body: bytes, what: str) -> list[Any]:
    try:
        items = decode(body)
    except DecodeError as exc:
        raise DecodeError(f"the list of {what}s does not decode ({exc})") from exc
    if not isinstance(items, list):
        raise DecodeError(f"the {what}s are not a list")
    out = []
    for position, item in enumerate(items):
        try:
            out.append(build(item))
        except DecodeError as exc:
            raise DecodeError(f"{what} {position} does not decode ({exc})") from exc
    return out


def decode_stored_block(height: int, raw: dict[str, bytes | None]) -> StoredBlock:
    """Decode the four stored parts of a block one by one, so that damage is located: a
    checksum mismatch is noted and the part is still decoded when it can be, and an
    undecodable part names the transaction or receipt that breaks it. Pure (it runs in
    a worker process)."""
    if all(value is None for value in raw.values()):
        return StoredBlock(height, None, f"no block is stored at height {height:,} "
                           "(deleted?)")
    notes: list[Finding] = []
    bodies: dict[str, bytes] = {}
    for part, value in raw.items():
        if value is None:
            return StoredBlock(height, None, f"the stored {PARTS[part]} of this block "
                               "are missing", _PART_OF[part])
        body = value[HASH_BYTES:]
        if len(value) < HASH_BYTES or tagged_hash(Tag.STORED, body) != value[:HASH_BYTES]:
            notes.append(Finding(height, _PART_OF[part], f"the checksum of the stored "
                                 f"{PARTS[part]} does not match: the bytes were altered "
                                 "on disk"))
        bodies[part] = body
    try:
        block = CommittedBlock(
            Block(_decoded(BlockHeader.from_value, bodies["h"], "header"),
                  tuple(_decoded_list(Transaction.from_value, bodies["t"], "transaction"))),
            _decoded(CommitCertificate.from_value, bodies["c"], "certificate"),
            tuple(_decoded_list(Receipt.from_value, bodies["r"], "receipt")),
        )
    except DecodeError as exc:
        return StoredBlock(height, None, f"the stored block cannot be decoded: {exc}",
                           "block", tuple(notes))
    return StoredBlock(height, block, notes=tuple(notes))

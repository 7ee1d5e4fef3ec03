"""The chain store: committed blocks, their certificates and receipts, on LevelDB.

Rules:
- One block is written as ONE synced write batch: its header, transactions, certificate,
  receipts, every index entry and the head pointer land together or not at all, so after
  a crash the head is always a complete block with consistent indexes.
- Every stored value carries its own checksum (``tagged_hash(Tag.STORED, body)``); on read
  the checksum, the transactions root and the certificate's block hash are checked, and a
  mismatch raises ``CorruptionError`` naming the height and the part. Damaged data is never
  returned. (Signatures are checked by validation and by the audit, not on every read.)
- Heights are 8-byte big-endian in keys so that iteration is in height order.
- Key layout (all under the prefix ``c/`` of the node's database; ADR 0004):

  ==========================  ===============================================
  ``c/H``                     head height (8 bytes BE)
  ``c/b/<h8>/h``              checksum + encoded ``BlockHeader``
  ``c/b/<h8>/t``              checksum + encoded list of transactions
  ``c/b/<h8>/c``              checksum + encoded ``CommitCertificate``
  ``c/b/<h8>/r``              checksum + encoded list of receipts
  ``c/t/<tx_id>``             height (8 BE) + index (4 BE)
  ``c/s/<signer><h8><i4>``    empty: signer index
  ``c/k/<contract>\\x00<h8><i4>`` empty: contract index
  ==========================  ===============================================
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ledger.encoding import decode, encode
from ledger.errors import CorruptionError, DecodeError, StoreError
from ledger.hashing import HASH_BYTES, Tag, tagged_hash
from ledger.kv import KV
from ledger.records import (
    Block,
    BlockHeader,
    CommitCertificate,
    CommittedBlock,
    Receipt,
    Transaction,
)
from ledger.validation import txs_root

CHAIN_PREFIX = b"c/"
STATE_PREFIX = b"s/"
CONSENSUS_PREFIX = b"p/"
PAGE_LIMIT_MAX = 1000
PARTS = {"h": "header", "t": "transaction list", "c": "certificate", "r": "receipt list"}

_HEAD = b"H"


@dataclass(frozen=True, slots=True, order=True)
class TxLocation:
    """Where a transaction sits: block height and position in the block."""

    height: int
    index: int

    def key(self) -> bytes:
        return struct.pack(">QI", self.height, self.index)

    @staticmethod
    def from_key(data: bytes) -> TxLocation:
        height, index = struct.unpack(">QI", data)
        return TxLocation(height, index)


def _h8(height: int) -> bytes:
    return struct.pack(">Q", height)


def block_key(height: int, part: str) -> bytes:
    """Key (inside the chain prefix) of one part of a stored block."""
    return b"b/" + _h8(height) + b"/" + part.encode()


def seal(body: bytes) -> bytes:
    """A stored value: its checksum, then its body."""
    return tagged_hash(Tag.STORED, body) + body


def unseal(value: bytes, height: int, part: str) -> bytes:
    """Check a stored value's checksum and return its body, or raise CorruptionError."""
    body = value[HASH_BYTES:]
    if len(value) < HASH_BYTES or tagged_hash(Tag.STORED, body) != value[:HASH_BYTES]:
        raise CorruptionError(
            f"block {height}: the stored {PARTS.get(part, part)} is damaged "
            "(checksum mismatch); restore the data directory from a peer"
        )
    return body


class ChainStore:
    """Committed blocks on LevelDB. Not thread-safe: one owner (the node's main task)."""

    def __init__(self, kv: KV) -> None:
        self.kv = kv
        self._chain = kv.prefixed(CHAIN_PREFIX)
        self._head = self._read_head()

    @staticmethod
    def open(path: Path, *, create: bool = True) -> ChainStore:
        return ChainStore(KV.open(path, create=create))

    def close(self) -> None:
        self.kv.close()

    def __enter__(self) -> ChainStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing

    def append(self, block: CommittedBlock) -> None:
        """Store the next block with its certificate and receipts in one synced batch."""
        header = block.block.header
        height = header.height
        if height != self._head + 1:
            raise StoreError(f"cannot store block {height}: the chain's head is {self._head}")
        if block.certificate.block_hash != header.block_hash or block.certificate.height != height:
            raise StoreError(f"block {height}: the certificate is for another header")
        txs = block.block.transactions
        if len(block.receipts) != len(txs) or any(
            r.tx_id != tx.tx_id for r, tx in zip(block.receipts, txs, strict=True)
        ):
            raise StoreError(f"block {height}: receipts do not match the transactions")
        if height > 1 and self.header(height - 1).block_hash != header.prev_hash:
            raise StoreError(f"block {height}: prev_hash does not match the stored block")
        with self._chain.batch(sync=True) as batch:
            batch.put(block_key(height, "h"), seal(header.encode()))
            batch.put(block_key(height, "t"), seal(encode([tx.to_value() for tx in txs])))
            batch.put(block_key(height, "c"), seal(block.certificate.encode()))
            batch.put(
                block_key(height, "r"), seal(encode([r.to_value() for r in block.receipts]))
            )
            for index, tx in enumerate(txs):
                location = TxLocation(height, index).key()
                batch.put(b"t/" + tx.tx_id, location)
                batch.put(b"s/" + tx.signer + location, b"")
                batch.put(b"k/" + tx.contract.encode() + b"\x00" + location, b"")
            batch.put(_HEAD, _h8(height))
        self._head = height

    # ------------------------------------------------------------------ reading

    def _read_head(self) -> int:
        raw = self._chain.get(_HEAD)
        if raw is None:
            return 0
        if len(raw) != 8:
            raise CorruptionError("the stored head pointer is damaged")
        return int(struct.unpack(">Q", raw)[0])

    def head_height(self) -> int:
        return self._head

    def head(self) -> CommittedBlock | None:
        return self.get(self._head) if self._head else None

    def _part(self, height: int, part: str) -> bytes:
        if not 1 <= height <= self._head:
            raise StoreError(f"no block at height {height} (the head is {self._head})")
        raw = self._chain.get(block_key(height, part))
        if raw is None:
            raise CorruptionError(
                f"block {height}: the stored {PARTS[part]} is missing; "
                "restore the data directory from a peer"
            )
        return unseal(raw, height, part)

    def _decoded(self, height: int, part: str) -> object:
        try:
            return decode(self._part(height, part))
        except DecodeError as exc:
            raise CorruptionError(
                f"block {height}: the stored {PARTS[part]} cannot be decoded ({exc})"
            ) from exc

    def header(self, height: int) -> BlockHeader:
        try:
            header = BlockHeader.from_value(self._decoded(height, "h"))
        except DecodeError as exc:
            raise CorruptionError(f"block {height}: the stored header is malformed") from exc
        if header.height != height:
            raise CorruptionError(
                f"block {height}: the stored header is for height {header.height}"
            )
        return header

    def get(self, height: int) -> CommittedBlock:
        header = self.header(height)
        try:
            raw_txs = self._decoded(height, "t")
            raw_receipts = self._decoded(height, "r")
            if not isinstance(raw_txs, list) or not isinstance(raw_receipts, list):
                raise DecodeError("not arrays")
            txs = tuple(Transaction.from_value(v) for v in raw_txs)
            receipts = tuple(Receipt.from_value(v) for v in raw_receipts)
            cert = CommitCertificate.from_value(self._decoded(height, "c"))
        except DecodeError as exc:
            raise CorruptionError(f"block {height}: a stored part is malformed ({exc})") from exc
        if txs_root(txs) != header.txs_root:
            raise CorruptionError(
                f"block {height}: the stored transactions do not match the header's txs_root; "
                "restore the data directory from a peer"
            )
        if cert.block_hash != header.block_hash:
            raise CorruptionError(f"block {height}: the stored certificate is for another header")
        if len(receipts) != len(txs):
            raise CorruptionError(f"block {height}: stored receipts do not match transactions")
        return CommittedBlock(Block(header, txs), cert, receipts)

    def blocks(self, start: int = 1, stop: int | None = None) -> Iterator[CommittedBlock]:
        """Blocks ``start`` .. ``stop - 1`` (to the head when ``stop`` is None)."""
        end = self._head + 1 if stop is None else min(stop, self._head + 1)
        for height in range(max(start, 1), end):
            yield self.get(height)

    def tx_location(self, tx_id: bytes) -> TxLocation | None:
        raw = self._chain.get(b"t/" + tx_id)
        if raw is None:
            return None
        if len(raw) != 12:
            raise CorruptionError(f"the index entry of transaction {tx_id.hex()} is damaged")
        return TxLocation.from_key(raw)

    def has_tx(self, tx_id: bytes) -> bool:
        return self.tx_location(tx_id) is not None

    def transaction(self, tx_id: bytes) -> tuple[Transaction, Receipt, TxLocation] | None:
        location = self.tx_location(tx_id)
        if location is None:
            return None
        block = self.get(location.height)
        if location.index >= len(block.block.transactions):
            raise CorruptionError(f"the index entry of transaction {tx_id.hex()} is damaged")
        tx = block.block.transactions[location.index]
        if tx.tx_id != tx_id:
            raise CorruptionError(f"the index entry of transaction {tx_id.hex()} is damaged")
        return tx, block.receipts[location.index], location

    def _page(self, prefix: bytes, after: TxLocation | None, limit: int) -> list[TxLocation]:
        limit = max(1, min(limit, PAGE_LIMIT_MAX))
        start = prefix + (after.key() + b"\x00" if after else b"")
        stop = prefix + b"\xff" * 12 + b"\xff"
        out = []
        for key, _ in self._chain.items(start=start, stop=stop):
            out.append(TxLocation.from_key(key[len(prefix):]))
            if len(out) >= limit:
                break
        return out

    def txs_by_signer(
        self, signer: bytes, *, after: TxLocation | None = None, limit: int = 100
    ) -> list[TxLocation]:
        return self._page(b"s/" + signer, after, limit)

    def txs_by_contract(
        self, contract: str, *, after: TxLocation | None = None, limit: int = 100
    ) -> list[TxLocation]:
        return self._page(b"k/" + contract.encode() + b"\x00", after, limit)

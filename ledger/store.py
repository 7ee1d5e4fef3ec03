"""The chain store: committed blocks, their certificates and receipts, on LevelDB.

Rules:
- One block is written as ONE synced write batch: its header, transactions, certificate,
  receipts, every index entry and the head pointer land together or not at all, so after
  a crash the head is always a complete block with consistent indexes. ``append`` writes
  that batch itself; ``stage`` adds the same writes to a caller's batch (the node writes
  a block and the state version it produced together: one fsync per block), and
  ``appended`` moves the head once that batch is written.
- Every stored value carries its own checksum (``tagged_hash(Tag.STORED, body)``); on read
  the checksum, the transactions root and the certificate's block hash are checked, and a
  mismatch raises ``CorruptionError`` naming the height and the part. Damaged data is never
  returned. (Signatures are checked by validation and by the audit, not on every read.)
- Heights are 8-byte big-endian in keys so that iteration is in height order.
- The transaction-id index keeps the FIRST location of an id. A replay of an already
  committed transaction can still be ordered into a later block (several heights are in
  flight; the engine then refuses it with ``already_committed``), and looking the id up
  must keep answering with the original commit and its receipt, not with the refusal.
  The signer and contract indexes list every position, replays included.
- Decoded blocks are immutable once stored: a few are kept decoded (bounded), those
  just written (``appended``: only once their batch is on disk) and those read and
  verified, so that walking an index page, or answering the clients who waited for a
  block, does not decode the same block for every entry.
- Key layout (all under the prefix ``c/`` of the node's database, ``ledger.layout``;
  ADR 0004):

  ================================  =========================================
  ``c/H``                           head height (8 bytes BE)
  ``c/b/<h8>/h``                    checksum + encoded ``BlockHeader``
  ``c/b/<h8>/t``                    checksum + encoded array of transactions
  ``c/b/<h8>/c``                    checksum + encoded ``CommitCertificate``
  ``c/b/<h8>/r``                    checksum + encoded array of receipts
  ``c/t/<tx_id 32>``                height (8 BE) + index (4 BE), first commit
  ``c/s/<signer 32><h8><i4>``       empty: signer index
  ``c/k/<n 1><contract n><h8><i4>`` empty: contract index (n = UTF-8 length)
  ================================  =========================================
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ledger.crypto import PUBLIC_KEY_BYTES
from ledger.encoding import decode, encode
from ledger.errors import CorruptionError, DecodeError, StoreError
from ledger.hashing import HASH_BYTES, Tag, tagged_hash
from ledger.kv import KV, Batch
from ledger.layout import CHAIN_PREFIX, STORES
from ledger.records import (
    BLOCK_TXS_MAX,
    NAME_BYTES_MAX,
    Block,
    BlockHeader,
    CommitCertificate,
    CommittedBlock,
    Receipt,
    Transaction,
    decode_transactions,
    encode_transactions,
)
from ledger.validation import txs_root

PAGE_LIMIT_MAX = 1000
BLOCK_CACHE_MAX = 8
"""Decoded blocks kept in memory, at most (and at most ``BLOCK_CACHE_TXS_MAX``)."""
BLOCK_CACHE_TXS_MAX = 2_000
"""Transactions in the decoded blocks kept, at most, the newest block always kept: their
memory follows their transactions (about 1.9 KB each decoded with its receipt: 1.5 KB
the transaction, tracemalloc, a disbursement), not the count of blocks. Eight blocks of
780 transactions, as a loaded network commits, raised a node's peak RSS by about 10 MiB
in ``tabellion bench``; a node may use 300 MB."""
PARTS = {"h": "header", "t": "transaction list", "c": "certificate", "r": "receipt list"}
RESTORE = "the data directory is damaged: restore it from a peer"

_HEAD = b"H"
_TX = b"t/"
_SIGNER = b"s/"
_CONTRACT = b"k/"
_LOCATION_BYTES = 12


@dataclass(frozen=True, slots=True, order=True)
class TxLocation:
    """Where a transaction sits: block height and position in the block."""

    height: int
    index: int

    def key(self) -> bytes:
        """12 bytes: height (8, big-endian) then index (4, big-endian)."""
        return struct.pack(">QI", self.height, self.index)

    @staticmethod
    def from_key(data: bytes) -> TxLocation:
        """Inverse of ``key``; raises ``DecodeError`` unless ``data`` is 12 bytes."""
        if len(data) != _LOCATION_BYTES:
            raise DecodeError(f"a transaction location is {_LOCATION_BYTES} bytes")
        height, index = struct.unpack(">QI", data)
        return TxLocation(height, index)


def _h8(height: int) -> bytes:
    return struct.pack(">Q", height)


def block_key(height: int, part: str) -> bytes:
    """Key (inside the chain prefix) of one part of a stored block."""
    return b"b/" + _h8(height) + b"/" + part.encode()


def contract_index_prefix(contract: str) -> bytes:
    """Key prefix (inside the chain prefix) of a contract's index entries.

    The name is length-prefixed so that no contract's entries fall inside another's
    range (names are arbitrary UTF-8 of 1..64 bytes, NUL included)."""
    name = contract.encode()
    return _CONTRACT + bytes([len(name)]) + name


def signer_index_prefix(signer: bytes) -> bytes:
    """Key prefix (inside the chain prefix) of a signer's index entries."""
    return _SIGNER + signer


def seal(body: bytes) -> bytes:
    """A stored value: its checksum, then its body."""
    return tagged_hash(Tag.STORED, body) + body


def unseal(value: bytes, height: int, part: str) -> bytes:
    """Check a stored value's checksum and return its body, or raise CorruptionError."""
    body = value[HASH_BYTES:]
    if len(value) < HASH_BYTES or tagged_hash(Tag.STORED, body) != value[:HASH_BYTES]:
        raise CorruptionError(
            f"block {height}: the stored {PARTS.get(part, part)} is damaged "
            f"(checksum mismatch); {RESTORE}"
        )
    return body


class ChainStore:
    """Committed blocks on LevelDB. Not thread-safe: one owner (the node's main task)."""

    def __init__(self, kv: KV) -> None:
        self.kv = kv
        self._chain = kv.prefixed(CHAIN_PREFIX)
        self._head = self._read_head()
        self._cache: dict[int, CommittedBlock] = {}

    @staticmethod
    def open(path: Path, *, create: bool = True) -> ChainStore:
        """Open the chain store of the data directory ``path`` (see ``KV.open``)."""
        return ChainStore(KV.open(path, create=create, routes=STORES))

    def close(self) -> None:
        self._cache.clear()
        self.kv.close()

    def __enter__(self) -> ChainStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing

    def append(self, block: CommittedBlock) -> None:
        """Store the next block with its certificate and receipts in one synced batch.

        Raises ``StoreError`` (nothing written) unless the block is the next height, its
        certificate is for its header, its receipts pair with its transactions, and (above
        height 1) it links to the stored head. Signatures are the caller's business
        (``ledger.validation``); block 1's link to genesis too."""
        with self.kv.batch(sync=True) as batch:
            self.stage(block, batch)
        self.appended(block)

    def stage(self, block: CommittedBlock, batch: Batch) -> None:
        """Check the next block as ``append`` does and add its writes to ``batch``, an open
        batch of this store's database (the node's state version goes in the same one);
        once the batch is written, ``appended`` makes the block the head."""
        header = block.block.header
        height = header.height
        if height != self._head + 1:
            raise StoreError(
                f"cannot store block {height}: the chain's head is {self._head}, "
                f"so the next block is {self._head + 1}"
            )
        if block.certificate.block_hash != header.block_hash or block.certificate.height != height:
            raise StoreError(f"cannot store block {height}: the certificate is for another header")
        txs = block.block.transactions
        if len(txs) > BLOCK_TXS_MAX:  # reads refuse more, so writes must too
            raise StoreError(
                f"cannot store block {height}: more than {BLOCK_TXS_MAX} transactions"
            )
        ids = [tx.tx_id for tx in txs]  # computed once: each is an encoding and a hash
        if [r.tx_id for r in block.receipts] != ids:
            raise StoreError(
                f"cannot store block {height}: its receipts do not pair with its transactions"
            )
        if height > 1:
            previous = self.header(height - 1)
            if previous.block_hash != header.prev_hash:
                raise StoreError(
                    f"cannot store block {height}: its prev_hash does not match the stored "
                    f"block {height - 1}"
                )
            if previous.chain_id != header.chain_id:
                raise StoreError(
                    f"cannot store block {height}: it is for network {header.chain_id!r}, "
                    f"the stored chain for {previous.chain_id!r}"
                )
        first_seen = self._first_commits(ids)
        batch = self._chain.joined(batch)
        batch.put(block_key(height, "h"), seal(header.encode()))
        batch.put(block_key(height, "t"), seal(encode_transactions(txs)))
        batch.put(block_key(height, "c"), seal(block.certificate.encode()))
        batch.put(
            block_key(height, "r"), seal(encode([r.to_value() for r in block.receipts]))
        )
        for index, (tx, tx_id) in enumerate(zip(txs, ids, strict=True)):
            location = TxLocation(height, index).key()
            if index in first_seen:
                batch.put(_TX + tx_id, location)
            batch.put(signer_index_prefix(tx.signer) + location, b"")
            batch.put(contract_index_prefix(tx.contract) + location, b"")
        batch.put(_HEAD, _h8(height))

    def appended(self, block: CommittedBlock) -> None:
        """The batch holding ``block``, which ``stage`` checked, was written: it is the
        head, and the first of the recent blocks kept decoded (the clients who waited
        for its transactions read them next: decoding it again from the store cost each
        node a block's decoding and Merkle root per block)."""
        height = block.height
        if height != self._head + 1:
            raise StoreError(f"block {height} is not the next one (head {self._head})")
        self._head = height
        self._keep(block)

    def _first_commits(self, ids: list[bytes]) -> set[int]:
        """Positions of the transactions whose id is committed here for the first time."""
        seen: set[bytes] = set()
        first: set[int] = set()
        for index, tx_id in enumerate(ids):
            if tx_id not in seen and self._chain.get(_TX + tx_id) is None:
                first.add(index)
            seen.add(tx_id)
        return first

    # ------------------------------------------------------------------ reading

    def _read_head(self) -> int:
        raw = self._chain.get(_HEAD)
        if raw is None:
            return 0
        if len(raw) != 8:
            raise CorruptionError(f"the stored head pointer is damaged; {RESTORE}")
        return int(struct.unpack(">Q", raw)[0])

    def head_height(self) -> int:
        """Height of the last stored block; 0 when the store is empty."""
        return self._head

    def head(self) -> CommittedBlock | None:
        return self.get(self._head) if self._head else None

    def _part(self, height: int, part: str) -> bytes:
        if not 1 <= height <= self._head:
            raise StoreError(f"no block at height {height} (the head is {self._head})")
        raw = self._chain.get(block_key(height, part))
        if raw is None:
            raise CorruptionError(f"block {height}: the stored {PARTS[part]} is missing; {RESTORE}")
        return unseal(raw, height, part)

    def _decoded(self, height: int, part: str) -> object:
        try:
            return decode(self._part(height, part))
        except DecodeError as exc:
            raise CorruptionError(
                f"block {height}: the stored {PARTS[part]} cannot be decoded ({exc}); {RESTORE}"
            ) from exc

    def header(self, height: int) -> BlockHeader:
        """The header at ``height``; ``StoreError`` if there is none."""
        cached = self._cache.get(height)
        if cached is not None:
            return cached.block.header
        try:
            header = BlockHeader.from_value(self._decoded(height, "h"))
        except DecodeError as exc:
            raise CorruptionError(
                f"block {height}: the stored header is malformed ({exc}); {RESTORE}"
            ) from exc
        if header.height != height:
            raise CorruptionError(
                f"block {height}: the stored header is for height {header.height}; {RESTORE}"
            )
        return header

    def get(self, height: int) -> CommittedBlock:
        """The block at ``height`` with its certificate and receipts, checked against its
        checksums, its header's ``txs_root`` and block hash; ``StoreError`` if absent."""
        cached = self._cache.get(height)
        if cached is not None:
            return cached
        header = self.header(height)
        try:
            # Each transaction keeps the bytes it is stored as (never re-encoded).
            txs = decode_transactions(self._part(height, "t"))
            raw_receipts = self._decoded(height, "r")
            if not isinstance(raw_receipts, list):
                raise DecodeError("the receipts must be an array")
            if len(raw_receipts) > BLOCK_TXS_MAX:
                raise DecodeError(f"more than {BLOCK_TXS_MAX} receipts")
            receipts = tuple(Receipt.from_value(v) for v in raw_receipts)
            cert = CommitCertificate.from_value(self._decoded(height, "c"))
        except DecodeError as exc:
            raise CorruptionError(
                f"block {height}: a stored part is malformed ({exc}); {RESTORE}"
            ) from exc
        if txs_root(txs) != header.txs_root:
            raise CorruptionError(
                f"block {height}: the stored transactions do not match the header's "
                f"txs_root; {RESTORE}"
            )
        if cert.block_hash != header.block_hash or cert.height != height:
            raise CorruptionError(
                f"block {height}: the stored certificate is for another header; {RESTORE}"
            )
        if [r.tx_id for r in receipts] != [tx.tx_id for tx in txs]:
            raise CorruptionError(
                f"block {height}: the stored receipts do not pair with the transactions; "
                f"{RESTORE}"
            )
        block = CommittedBlock(Block(header, txs), cert, receipts)
        self._keep(block)
        return block

    def _keep(self, block: CommittedBlock) -> None:
        """Keep a stored block decoded, forgetting the oldest beyond ``BLOCK_CACHE_MAX``
        blocks or ``BLOCK_CACHE_TXS_MAX`` transactions (never the block just kept)."""
        cache = self._cache
        cache[block.height] = block
        while len(cache) > 1 and (len(cache) > BLOCK_CACHE_MAX or sum(
                len(kept.block.transactions) for kept in cache.values()) > BLOCK_CACHE_TXS_MAX):
            del cache[next(iter(cache))]  # the oldest first

    def blocks(self, start: int = 1, stop: int | None = None) -> Iterator[CommittedBlock]:
        """Blocks ``start`` .. ``stop - 1`` (to the head when ``stop`` is None)."""
        end = self._head + 1 if stop is None else min(stop, self._head + 1)
        for height in range(max(start, 1), end):
            yield self.get(height)

    def tx_location(self, tx_id: bytes) -> TxLocation | None:
        """Where the transaction ``tx_id`` was first committed, or None."""
        raw = self._chain.get(_TX + tx_id)
        if raw is None:
            return None
        location = self._location(raw)
        if location is None or not 1 <= location.height <= self._head:
            raise CorruptionError(
                f"the index entry of transaction {tx_id.hex()} is damaged; {RESTORE}"
            )
        return location

    def has_tx(self, tx_id: bytes) -> bool:
        """Whether ``tx_id`` is committed (its first commit; a replay is never a second)."""
        return self.tx_location(tx_id) is not None

    def committed_below(self, tx_id: bytes, height: int) -> bool:
        """Whether a block below ``height`` holds ``tx_id``: the engine's replay guard
        (``contracts.engine``) for block ``height``, exact even when blocks above it are
        stored already, since the index keeps the first commit."""
        location = self.tx_location(tx_id)
        return location is not None and location.height < height

    def transaction(self, tx_id: bytes) -> tuple[Transaction, Receipt, TxLocation] | None:
        """The committed transaction ``tx_id`` with its receipt and location, or None."""
        location = self.tx_location(tx_id)
        if location is None:
            return None
        block = self.get(location.height)
        txs = block.block.transactions
        if location.index >= len(txs) or txs[location.index].tx_id != tx_id:
            raise CorruptionError(
                f"block {location.height}: the index entry of transaction {tx_id.hex()} "
                f"points to position {location.index}, which holds another transaction; "
                f"{RESTORE}"
            )
        return txs[location.index], block.receipts[location.index], location

    @staticmethod
    def _location(raw: bytes) -> TxLocation | None:
        return TxLocation.from_key(raw) if len(raw) == _LOCATION_BYTES else None

    def _page(self, prefix: bytes, after: TxLocation | None, limit: int) -> list[TxLocation]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        limit = min(limit, PAGE_LIMIT_MAX)
        start = prefix + (after.key() + b"\x00" if after else b"")
        stop = prefix + b"\xff" * (_LOCATION_BYTES + 1)
        out: list[TxLocation] = []
        for key, _ in self._chain.items(start=start, stop=stop):
            location = self._location(key[len(prefix):])
            if location is None or not 1 <= location.height <= self._head:
                raise CorruptionError(f"an index entry ({key.hex()}) is damaged; {RESTORE}")
            out.append(location)
            if len(out) >= limit:
                break
        return out

    def txs_by_signer(
        self, signer: bytes, *, after: TxLocation | None = None, limit: int = 100
    ) -> list[TxLocation]:
        """Locations of the signer's transactions in chain order, after the cursor
        ``after``, at most ``min(limit, PAGE_LIMIT_MAX)``."""
        if len(signer) != PUBLIC_KEY_BYTES:
            return []
        return self._page(signer_index_prefix(signer), after, limit)

    def txs_by_contract(
        self, contract: str, *, after: TxLocation | None = None, limit: int = 100
    ) -> list[TxLocation]:
        """Locations of the contract's transactions in chain order, after the cursor
        ``after``, at most ``min(limit, PAGE_LIMIT_MAX)``."""
        if not 1 <= len(contract.encode()) <= NAME_BYTES_MAX:
            return []
        return self._page(contract_index_prefix(contract), after, limit)

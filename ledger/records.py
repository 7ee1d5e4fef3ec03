"""Protocol records: frozen, slotted dataclasses with one canonical encoding each.

Rules:
- Every record encodes as a msgpack array whose elements are its fields in declaration
  order (docs/protocol.md gives the byte-level layout). Arrays, not maps, so that field
  order is fixed and no key is spelled twice.
- ``from_value`` checks the type, size and range of every field before building the
  record, so a decoded record is always well formed; semantic rules (signatures,
  quorums, links) live in :mod:`ledger.validation`.
- Identifiers are domain-tagged hashes (:mod:`ledger.hashing`): a transaction id covers
  the signed body, a block hash covers the header.
- Times are integers in milliseconds since the Unix epoch (UTC); money is in cents.
- Encode once. A transaction keeps its canonical bytes and its id in private,
  non-compared slots, filled when it is decoded (the bytes it came in) or signed, else on
  first use; blocks and the store assemble arrays from those bytes (``encode_array``)
  instead of re-encoding every field. This is sound because a record is immutable: never
  mutate a transaction's payload map after building it (build the map, then the record).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import msgpack

from ledger import crypto
from ledger.encoding import (
    INT_MAX,
    INT_MIN,
    Value,
    array_header,
    decode,
    encode,
    encode_array,
    split_array,
)
from ledger.errors import DecodeError
from ledger.hashing import HASH_BYTES, Tag, tagged_bytes, tagged_hash
from ledger.lru import Lru

CHAIN_ID_BYTES_MAX = 64
NAME_BYTES_MAX = 64
MESSAGE_BYTES_MAX = 1024
PAYLOAD_BYTES_MAX = 64 * 1024
PAYLOAD_DEPTH_MAX = 16
"""Most levels of maps and arrays in a payload or receipt data, the map itself included."""
TX_BYTES_MAX = 96 * 1024
BLOCK_TXS_MAX = 10_000
DECODED_TXS_MAX = 4_096
"""Transactions ``Transaction.decode`` remembers by their bytes, the least recently used
forgotten first: a second decoding of a block's transaction was 2 to 3 % of a backup's
CPU (py-spy, ``tabellion bench``). Only transactions of at most
``DECODED_TX_BYTES_MAX`` bytes are remembered: a few MB in all."""
DECODED_TX_BYTES_MAX = 2_048
CERT_VOTES_MAX = 256
U64_MAX = 2**64 - 1
ZERO_HASH = bytes(HASH_BYTES)


# --------------------------------------------------------------------------- field checks


def _list(value: Value, length: int, what: str) -> list[Value]:
    if not isinstance(value, list) or len(value) != length:
        raise DecodeError(f"{what} must be an array of {length} fields")
    return value


def _uint(value: Value, what: str, maximum: int = U64_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise DecodeError(f"{what} must be an integer between 0 and {maximum}")
    return int(value)


def _text(value: Value, what: str, max_bytes: int, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"{what} must be a text string")
    size = len(value.encode())
    if size > max_bytes or (size == 0 and not empty):
        raise DecodeError(f"{what} must be 1 to {max_bytes} bytes of UTF-8")
    return value


def _bytes(value: Value, what: str, length: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        raise DecodeError(f"{what} must be {length} raw bytes")
    return value


def _payload(value: Value, what: str) -> dict[str, Any]:
    """Check a payload or receipt data map: JSON values only, bounded nesting and size.

    JSON only (text, 64-bit integers, booleans, nil, arrays, text-keyed maps): payloads
    must have a JSON form for the HTTP API, receipts and open data, so raw bytes are
    refused (hashes and keys go in as lowercase hex text). Nesting is bounded well below
    the decoder's limit so that a transaction still encodes inside a block, a committed
    block and a consensus message.
    """
    if not isinstance(value, dict):
        raise DecodeError(f"{what} must be a map")
    # Only containers go on the stack; the common leaves (text, nil, booleans, integers)
    # are checked inline by exact type, the rest by ``_payload_child``.
    stack: list[tuple[Value, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > PAYLOAD_DEPTH_MAX:
            raise DecodeError(f"{what} nests maps and arrays deeper than "
                              f"{PAYLOAD_DEPTH_MAX} levels")
        if isinstance(item, dict):
            try:
                "".join(item)  # TypeError unless every key is text
            except TypeError:
                raise DecodeError(f"{what} map keys must be text") from None
            children = item.values()
        else:
            children = item
        for child in children:
            kind = type(child)
            if kind is str or kind is bool or child is None:
                continue
            if kind is int and INT_MIN <= child <= INT_MAX:
                continue
            _payload_child(child, level + 1, what, stack)
    try:
        # The encoded size does not depend on key order, so no sorting is needed here.
        size = len(msgpack.packb(value, use_bin_type=True))
    except UnicodeEncodeError as exc:
        raise DecodeError(f"{what} holds text that is not valid Unicode") from exc
    if size > PAYLOAD_BYTES_MAX:
        raise DecodeError(f"{what} exceeds {PAYLOAD_BYTES_MAX} bytes")
    return value


def _payload_child(item: Value, level: int, what: str, stack: list[tuple[Value, int]]) -> None:
    """The uncommon items of a payload: push a container, refuse anything else that is
    not a JSON value, with the reason."""
    if isinstance(item, (dict, list)):
        stack.append((item, level))
    elif isinstance(item, bytes):
        raise DecodeError(f"{what} holds raw bytes; use lowercase hex text for hashes and keys")
    elif isinstance(item, int) and not isinstance(item, bool):
        if not INT_MIN <= item <= INT_MAX:
            raise DecodeError(f"{what} holds an integer outside the 64-bit range")
    elif not (item is None or isinstance(item, (str, bool))):
        raise DecodeError(f"{what} holds a {type(item).__name__}: only JSON values "
                          "without floats are allowed (money in cents)")


class _Record:
    """Shared canonical encoding for records; subclasses define the field lists."""

    __slots__ = ()
    KIND: ClassVar[str] = "record"

    def to_value(self) -> list[Value]:
        raise NotImplementedError

    @classmethod
    def from_value(cls, value: Value) -> Self:
        raise NotImplementedError

    def encode(self) -> bytes:
        return encode(self.to_value())

    @classmethod
    def decode(cls, data: bytes) -> Self:
        return cls.from_value(decode(data))


# --------------------------------------------------------------------------- transactions


@dataclass(frozen=True, slots=True)
class Transaction(_Record):
    """A signed request to run one contract action."""

    KIND: ClassVar[str] = "transaction"
    FIELDS: ClassVar[int] = 8

    chain_id: str
    """Network this transaction is for (genesis ``chain_id``); UTF-8, 1..64 bytes."""
    contract: str
    """Contract name, e.g. ``"deliberations"``; UTF-8, 1..64 bytes."""
    action: str
    """Action of that contract, e.g. ``"record"``; UTF-8, 1..64 bytes."""
    payload: dict[str, Any]
    """Action arguments: a canonical map, at most 64 KiB encoded."""
    signer: bytes
    """Ed25519 public key of the signer, 32 bytes."""
    nonce: int
    """Replay guard chosen by the client (u64); the id covers it, and an id commits once."""
    expiry_ms: int
    """Last block time (ms since epoch) at which the transaction may be committed (u64)."""
    signature: bytes = field(default=b"", compare=True)
    """Ed25519 signature over ``signing_bytes``, 64 bytes (empty before signing)."""
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)
    """Cache: the canonical encoding (the exact bytes it was decoded from, if it was)."""
    _id: bytes | None = field(default=None, init=False, repr=False, compare=False)
    """Cache: ``tx_id``."""

    def body_value(self) -> list[Value]:
        return [
            self.chain_id,
            self.contract,
            self.action,
            self.payload,
            self.signer,
            self.nonce,
            self.expiry_ms,
        ]

    def to_value(self) -> list[Value]:
        return [*self.body_value(), self.signature]

    @classmethod
    def from_value(cls, value: Value) -> Transaction:
        v = _list(value, cls.FIELDS, "transaction")
        return cls(
            chain_id=_text(v[0], "chain_id", CHAIN_ID_BYTES_MAX),
            contract=_text(v[1], "contract", NAME_BYTES_MAX),
            action=_text(v[2], "action", NAME_BYTES_MAX),
            payload=_payload(v[3], "payload"),
            signer=_bytes(v[4], "signer", crypto.PUBLIC_KEY_BYTES),
            nonce=_uint(v[5], "nonce"),
            expiry_ms=_uint(v[6], "expiry_ms"),
            signature=_bytes(v[7], "signature", crypto.SIGNATURE_BYTES),
        )

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        """Decode canonical bytes and keep them: the transaction is never re-encoded. The
        same bytes decoded recently give back the same (immutable) transaction: a
        validator decodes each transaction when a peer forwards it, then again in the
        block that proposes it (``DECODED_TXS_MAX``)."""
        data = bytes(data)
        known = _recently_decoded.get(data)
        if known is not None:
            return known
        tx = cls.from_value(decode(data))
        object.__setattr__(tx, "_wire", data)
        if len(data) <= DECODED_TX_BYTES_MAX:
            _recently_decoded.remember(data, tx)
        return tx

    def encode(self) -> bytes:
        wire = self._wire
        if wire is None:
            wire = encode(self.to_value())
            object.__setattr__(self, "_wire", wire)
        return wire

    def body_bytes(self) -> bytes:
        """The canonical encoding of the signed body (every field but the signature).

        Cut from the cached encoding: an array of 8 is the one-byte header 0x98 followed by
        the body's 7 items, then the signature (bin8: 0xc4, its length, its bytes); the
        body alone is the header 0x97 followed by the same 7 items."""
        if len(self.signature) > 0xFF:  # not a valid record; no shortcut to take
            return encode(self.body_value())
        wire = self.encode()
        return array_header(self.FIELDS - 1) + wire[1:len(wire) - 2 - len(self.signature)]

    def signing_bytes(self) -> bytes:
        """Bytes the signer signs: tag ``tabellion/tx-sign``, 0x00, canonical body."""
        return tagged_bytes(Tag.TX_SIGN, self.body_bytes())

    @property
    def tx_id(self) -> bytes:
        """SHA-256 over the tagged body: the same request has one id whatever its signature."""
        tx_id = self._id
        if tx_id is None:
            tx_id = tagged_hash(Tag.TX_ID, self.body_bytes())
            object.__setattr__(self, "_id", tx_id)
        return tx_id

    def signed(self, key: crypto.SigningKey) -> Transaction:
        if key.public_key != self.signer:
            raise ValueError("the key does not match the transaction's signer")
        return _replace_signature(self, key.sign(self.signing_bytes()))

    def signature_valid(self) -> bool:
        return crypto.verify(self.signer, self.signing_bytes(), self.signature)


def _replace_signature(tx: Transaction, signature: bytes) -> Transaction:
    """The same transaction with another signature; its id (same body) is carried over."""
    signed = Transaction(
        tx.chain_id, tx.contract, tx.action, tx.payload, tx.signer, tx.nonce, tx.expiry_ms,
        signature,
    )
    object.__setattr__(signed, "_id", tx.tx_id)
    return signed


# --------------------------------------------------------------------------- validators


@dataclass(frozen=True, slots=True)
class ValidatorSet(_Record):
    """The validators in force for a range of heights, sorted by public key."""

    KIND: ClassVar[str] = "validator set"

    keys: tuple[bytes, ...]
    """Ed25519 public keys, strictly increasing bytewise (no duplicates)."""

    def __post_init__(self) -> None:
        if list(self.keys) != sorted(set(self.keys)):
            raise DecodeError("validator keys must be sorted and distinct")
        if not 1 <= len(self.keys) <= CERT_VOTES_MAX:
            raise DecodeError(f"a validator set has 1 to {CERT_VOTES_MAX} keys")

    @staticmethod
    def of(keys: list[bytes] | tuple[bytes, ...]) -> ValidatorSet:
        return ValidatorSet(tuple(sorted(keys)))

    def to_value(self) -> list[Value]:
        return [list(self.keys)]

    @classmethod
    def from_value(cls, value: Value) -> ValidatorSet:
        v = _list(value, 1, "validator set")
        if not isinstance(v[0], list):
            raise DecodeError("validator keys must be an array")
        return cls(tuple(_bytes(k, "validator key", crypto.PUBLIC_KEY_BYTES) for k in v[0]))

    @property
    def n(self) -> int:
        return len(self.keys)

    @property
    def f(self) -> int:
        """Faults tolerated: floor((n - 1) / 3)."""
        return (self.n - 1) // 3

    @property
    def quorum(self) -> int:
        """q = ceil((n + f + 1) / 2): any two quorums share a correct validator."""
        return (self.n + self.f + 2) // 2

    @property
    def set_hash(self) -> bytes:
        return tagged_hash(Tag.VALIDATOR_SET, self.encode())

    def primary(self, view: int) -> bytes:
        return self.keys[view % self.n]

    def index(self, key: bytes) -> int:
        return self.keys.index(key)


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True, slots=True)
class BlockHeader(_Record):
    """What validators vote on.

    Execution results are deferred by ``D = execution_lag`` blocks (genesis parameter,
    ADR 0005): header ``h`` carries the receipts root of block ``h - D`` and the state root
    after block ``h - D`` (for ``h <= D``: the empty receipts root and the genesis state
    root). That lets a primary keep up to ``D`` heights in flight without executing
    speculatively.
    """

    KIND: ClassVar[str] = "block header"
    FIELDS: ClassVar[int] = 10

    chain_id: str
    """Network id from genesis."""
    height: int
    """Height of this block; the first block after genesis has height 1."""
    prev_hash: bytes
    """Hash of the header at ``height - 1``; for height 1, the genesis hash."""
    proposer: bytes
    """Public key of the primary that proposed the block."""
    view: int
    """PBFT view in which the block was proposed."""
    time_ms: int
    """Block time (ms since epoch), strictly greater than the previous block's."""
    txs_root: bytes
    """RFC 6962 Merkle root of the encoded transactions of this block."""
    results_root: bytes
    """Merkle root of the receipts of block ``height - D`` (empty root if ``height <= D``)."""
    state_root: bytes
    """Authenticated state root after block ``height - D`` (genesis state when ``height <= D``)."""
    validator_set_hash: bytes
    """Hash of the validator set in force at this height."""

    def to_value(self) -> list[Value]:
        return [
            self.chain_id, self.height, self.prev_hash, self.proposer, self.view,
            self.time_ms, self.txs_root, self.results_root, self.state_root,
            self.validator_set_hash,
        ]

    @classmethod
    def from_value(cls, value: Value) -> BlockHeader:
        v = _list(value, cls.FIELDS, "block header")
        return cls(
            chain_id=_text(v[0], "chain_id", CHAIN_ID_BYTES_MAX),
            height=_uint(v[1], "height"),
            prev_hash=_bytes(v[2], "prev_hash", HASH_BYTES),
            proposer=_bytes(v[3], "proposer", crypto.PUBLIC_KEY_BYTES),
            view=_uint(v[4], "view"),
            time_ms=_uint(v[5], "time_ms"),
            txs_root=_bytes(v[6], "txs_root", HASH_BYTES),
            results_root=_bytes(v[7], "results_root", HASH_BYTES),
            state_root=_bytes(v[8], "state_root", HASH_BYTES),
            validator_set_hash=_bytes(v[9], "validator_set_hash", HASH_BYTES),
        )

    @property
    def block_hash(self) -> bytes:
        return tagged_hash(Tag.HEADER, self.encode())


class Phase:
    """Vote phases; the integer is what is encoded."""

    PREPARE = 1
    COMMIT = 2
    ALL = (PREPARE, COMMIT)


@dataclass(frozen=True, slots=True)
class Vote(_Record):
    """A validator's signed PREPARE or COMMIT for one block hash at (view, height)."""

    KIND: ClassVar[str] = "vote"
    FIELDS: ClassVar[int] = 7

    chain_id: str
    """Network id."""
    phase: int
    """``Phase.PREPARE`` (1) or ``Phase.COMMIT`` (2)."""
    view: int
    """View of the vote."""
    height: int
    """Height of the block voted for."""
    block_hash: bytes
    """Hash of the header voted for."""
    voter: bytes
    """Public key of the voting validator."""
    signature: bytes
    """Ed25519 signature over ``signing_bytes``."""

    @staticmethod
    def body(chain_id: str, phase: int, view: int, height: int, block_hash: bytes) -> bytes:
        return tagged_bytes(Tag.VOTE_SIGN, encode([chain_id, phase, view, height, block_hash]))

    def signing_bytes(self) -> bytes:
        return Vote.body(self.chain_id, self.phase, self.view, self.height, self.block_hash)

    @staticmethod
    def make(
        key: crypto.SigningKey, chain_id: str, phase: int, view: int, height: int,
        block_hash: bytes,
    ) -> Vote:
        sig = key.sign(Vote.body(chain_id, phase, view, height, block_hash))
        return Vote(chain_id, phase, view, height, block_hash, key.public_key, sig)

    def to_value(self) -> list[Value]:
        return [
            self.chain_id, self.phase, self.view, self.height, self.block_hash,
            self.voter, self.signature,
        ]

    @classmethod
    def from_value(cls, value: Value) -> Vote:
        v = _list(value, cls.FIELDS, "vote")
        phase = _uint(v[1], "phase")
        if phase not in Phase.ALL:
            raise DecodeError("vote phase must be 1 (prepare) or 2 (commit)")
        return cls(
            chain_id=_text(v[0], "chain_id", CHAIN_ID_BYTES_MAX),
            phase=phase,
            view=_uint(v[2], "view"),
            height=_uint(v[3], "height"),
            block_hash=_bytes(v[4], "block_hash", HASH_BYTES),
            voter=_bytes(v[5], "voter", crypto.PUBLIC_KEY_BYTES),
            signature=_bytes(v[6], "signature", crypto.SIGNATURE_BYTES),
        )

    def signature_valid(self) -> bool:
        return crypto.verify(self.voter, self.signing_bytes(), self.signature)


@dataclass(frozen=True, slots=True)
class CommitSignature(_Record):
    """One validator's COMMIT signature inside a certificate."""

    voter: bytes
    """Public key of the validator."""
    signature: bytes
    """Its signature over the COMMIT vote body for the certified (view, height, hash)."""

    def to_value(self) -> list[Value]:
        return [self.voter, self.signature]

    @classmethod
    def from_value(cls, value: Value) -> CommitSignature:
        v = _list(value, 2, "commit signature")
        return cls(
            _bytes(v[0], "voter", crypto.PUBLIC_KEY_BYTES),
            _bytes(v[1], "signature", crypto.SIGNATURE_BYTES),
        )


@dataclass(frozen=True, slots=True)
class CommitCertificate(_Record):
    """A quorum of COMMIT votes for one header: the proof that a block is final."""

    KIND: ClassVar[str] = "commit certificate"
    FIELDS: ClassVar[int] = 4

    height: int
    """Height of the certified block."""
    view: int
    """View in which the votes were cast."""
    block_hash: bytes
    """Hash of the certified header."""
    signatures: tuple[CommitSignature, ...]
    """COMMIT signatures, sorted by voter key, one per voter."""

    def to_value(self) -> list[Value]:
        return [self.height, self.view, self.block_hash, [s.to_value() for s in self.signatures]]

    @classmethod
    def from_value(cls, value: Value) -> CommitCertificate:
        v = _list(value, cls.FIELDS, "commit certificate")
        if not isinstance(v[3], list) or len(v[3]) > CERT_VOTES_MAX:
            raise DecodeError(f"certificate signatures must be an array of <= {CERT_VOTES_MAX}")
        return cls(
            height=_uint(v[0], "height"),
            view=_uint(v[1], "view"),
            block_hash=_bytes(v[2], "block_hash", HASH_BYTES),
            signatures=tuple(CommitSignature.from_value(s) for s in v[3]),
        )

    @staticmethod
    def from_votes(votes: list[Vote]) -> CommitCertificate:
        """Build a certificate from matching COMMIT votes (one per voter)."""
        first = votes[0]
        by_voter = {v.voter: v for v in votes}
        sigs = tuple(
            CommitSignature(k, by_voter[k].signature) for k in sorted(by_voter)
        )
        return CommitCertificate(first.height, first.view, first.block_hash, sigs)


@dataclass(frozen=True, slots=True)
class Block(_Record):
    """A header with its transactions (certificate and receipts are stored beside it)."""

    KIND: ClassVar[str] = "block"

    header: BlockHeader
    """The header voted on."""
    transactions: tuple[Transaction, ...]
    """Transactions in execution order; their Merkle root is ``header.txs_root``."""

    def to_value(self) -> list[Value]:
        return [self.header.to_value(), [tx.to_value() for tx in self.transactions]]

    @classmethod
    def from_value(cls, value: Value) -> Block:
        v = _list(value, 2, "block")
        if not isinstance(v[1], list) or len(v[1]) > BLOCK_TXS_MAX:
            raise DecodeError(f"block transactions must be an array of <= {BLOCK_TXS_MAX}")
        return cls(BlockHeader.from_value(v[0]), tuple(Transaction.from_value(t) for t in v[1]))

    def encode(self) -> bytes:
        """Assembled from the transactions' own bytes (equal to ``encode(to_value())``)."""
        return encode_array([self.header.encode(), encode_transactions(self.transactions)])

    @classmethod
    def decode(cls, data: bytes) -> Block:
        """Each transaction keeps the bytes it was decoded from (see ``decode_transactions``)."""
        parts = split_array(data)
        if len(parts) != 2:
            raise DecodeError("block must be an array of 2 fields")
        return cls(BlockHeader.decode(parts[0]), decode_transactions(parts[1]))

    @property
    def height(self) -> int:
        return self.header.height


_recently_decoded: Lru[bytes, Transaction] = Lru(DECODED_TXS_MAX)
"""``Transaction.decode``'s memory of recent decodings (``DECODED_TXS_MAX``)."""


def encode_transactions(txs: tuple[Transaction, ...] | list[Transaction]) -> bytes:
    """The canonical array of ``txs``, assembled from their cached encodings."""
    return encode_array([tx.encode() for tx in txs])


def decode_transactions(data: bytes) -> tuple[Transaction, ...]:
    """Inverse of ``encode_transactions``: at most ``BLOCK_TXS_MAX``, each decoded from (and
    keeping) its own exact bytes, so the whole array is canonical iff every item is."""
    parts = split_array(data)
    if len(parts) > BLOCK_TXS_MAX:
        raise DecodeError(f"block transactions must be an array of <= {BLOCK_TXS_MAX}")
    return tuple(Transaction.decode(part) for part in parts)


@dataclass(frozen=True, slots=True)
class Receipt(_Record):
    """The outcome of one transaction: a stable code, a message, and result data."""

    KIND: ClassVar[str] = "receipt"
    FIELDS: ClassVar[int] = 4

    tx_id: bytes
    """Id of the transaction."""
    code: str
    """Stable outcome code: ``"ok"`` or a rejection code such as ``"quorum_not_met"``."""
    message: str
    """Human-readable explanation for a clerk (may be empty when ``code`` is ``"ok"``)."""
    data: dict[str, Any]
    """Result data of the action (e.g. the id of the record created); a canonical map."""

    @property
    def ok(self) -> bool:
        return self.code == "ok"

    def to_value(self) -> list[Value]:
        return [self.tx_id, self.code, self.message, self.data]

    @classmethod
    def from_value(cls, value: Value) -> Receipt:
        v = _list(value, cls.FIELDS, "receipt")
        return cls(
            tx_id=_bytes(v[0], "tx_id", HASH_BYTES),
            code=_text(v[1], "code", NAME_BYTES_MAX),
            message=_text(v[2], "message", MESSAGE_BYTES_MAX, empty=True),
            data=_payload(v[3], "receipt data"),
        )

    @property
    def receipt_hash(self) -> bytes:
        return tagged_hash(Tag.RECEIPT, self.encode())


@dataclass(frozen=True, slots=True)
class CommittedBlock(_Record):
    """A block with its certificate and the receipts of its own transactions."""

    KIND: ClassVar[str] = "committed block"

    block: Block
    """The block."""
    certificate: CommitCertificate
    """Quorum of COMMIT signatures over ``block.header``."""
    receipts: tuple[Receipt, ...]
    """One receipt per transaction, same order; their root appears in header ``h + D``."""

    def to_value(self) -> list[Value]:
        return [
            self.block.to_value(), self.certificate.to_value(),
            [r.to_value() for r in self.receipts],
        ]

    @classmethod
    def from_value(cls, value: Value) -> CommittedBlock:
        v = _list(value, 3, "committed block")
        if not isinstance(v[2], list) or len(v[2]) > BLOCK_TXS_MAX:
            raise DecodeError("receipts must be an array")
        return cls(
            Block.from_value(v[0]), CommitCertificate.from_value(v[1]),
            tuple(Receipt.from_value(r) for r in v[2]),
        )

    def encode(self) -> bytes:
        """Assembled from the block's own bytes (equal to ``encode(to_value())``)."""
        return encode_array([self.block.encode(), self.certificate.encode(),
                             encode([r.to_value() for r in self.receipts])])

    @classmethod
    def decode(cls, data: bytes) -> CommittedBlock:
        parts = split_array(data)
        if len(parts) != 3:
            raise DecodeError("committed block must be an array of 3 fields")
        receipts = decode(parts[2])
        if not isinstance(receipts, list) or len(receipts) > BLOCK_TXS_MAX:
            raise DecodeError("receipts must be an array")
        return cls(Block.decode(parts[0]), CommitCertificate.decode(parts[1]),
                   tuple(Receipt.from_value(r) for r in receipts))

    @property
    def height(self) -> int:
        return self.block.header.height

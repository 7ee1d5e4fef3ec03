"""Consensus messages: signed, canonical, bounded.

Rules:
- Every message travels as the canonical msgpack array ``[kind, body]``; ``body`` is the
  message's fields in declaration order (arrays, not maps). ``decode_message`` accepts
  only the canonical form (``ledger.encoding``) and raises ``DecodeError`` for anything
  else, whatever the bytes: wrong kind, wrong arity, out-of-range integer, oversize list.
- PREPARE and COMMIT are ``ledger.records.Vote`` (signed under ``Tag.VOTE_SIGN`` over the
  chain id, phase, view, height and block hash), so a quorum of COMMITs is directly a
  ``ledger.records.CommitCertificate``.
- Every other signed message is signed by its ``sender`` under ``Tag.CONSENSUS_SIGN``
  over ``[chain_id, kind, *fields]`` (every field except the signature). Large parts
  (blocks) are covered through their hash: a pre-prepare signs the block hash, so its
  body-less form, the ``Proposal`` (header only), carries the same signature.
- Bounded: only PRE-PREPARE, BLOCK-BODY and BLOCKS-RESPONSE carry block bodies.
  VIEW-CHANGE and NEW-VIEW carry headers, hashes and signatures; a body is fetched by
  hash (BODY-REQUEST) from a validator that vouched for it, and checked against its
  header. ``message_bytes_bound`` gives the largest size of every kind as a function of
  n, the watermark window L and the block limits (docs/protocol.md states it).
- Decoding checks form only. Signatures, membership, views and watermarks are checked by
  the replica (``consensus.replica``), which knows the validator set in force.
- ``BlocksResponse`` is unsigned: each block in it carries its own commit certificate,
  which the receiver verifies; a response is worth exactly what its certificates prove.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import ClassVar, TypeVar

from ledger import crypto
from ledger.encoding import Value, decode, encode, encode_array, split_array
from ledger.errors import DecodeError, GenesisError
from ledger.hashing import HASH_BYTES, Tag, tagged_bytes
from ledger.records import (
    CHAIN_ID_BYTES_MAX,
    U64_MAX,
    Block,
    BlockHeader,
    CommitCertificate,
    CommitSignature,
    CommittedBlock,
    Phase,
    Vote,
)

MESSAGE_BYTES_MAX = 8 * 1024 * 1024
"""Largest encoded consensus message accepted (the decoder's input bound)."""
CERTS_PER_VIEW_CHANGE_MAX = 1024
"""Most certificates one VIEW-CHANGE may carry (at most one per height in the window)."""
VOTES_PER_CERT_MAX = 256
"""Most votes in a prepared certificate or a checkpoint proof (the validator-set bound)."""
BLOCKS_PER_RESPONSE_MAX = 64
"""Most blocks in one state-transfer response."""
HEIGHTS_PER_REQUEST_MAX = 64
"""Most heights one state-transfer request may ask for."""


class Kind:
    """Message kinds; the integer is what is encoded."""

    PRE_PREPARE = 1
    PREPARE = 2
    COMMIT = 3
    CHECKPOINT = 4
    VIEW_CHANGE = 5
    NEW_VIEW = 6
    STATUS = 7
    BLOCKS_REQUEST = 8
    BLOCKS_RESPONSE = 9
    PROPOSAL = 10
    BODY_REQUEST = 11
    BLOCK_BODY = 12
    VIEW_CHANGE_REQUEST = 13


# --------------------------------------------------------------------------- field checks


def _list(value: Value, length: int, what: str) -> list[Value]:
    if not isinstance(value, list) or len(value) != length:
        raise DecodeError(f"{what} must be an array of {length} fields")
    return value


def _seq(value: Value, maximum: int, what: str) -> list[Value]:
    if not isinstance(value, list) or len(value) > maximum:
        raise DecodeError(f"{what} must be an array of at most {maximum} items")
    return value


def _uint(value: Value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise DecodeError(f"{what} must be an integer between 0 and {U64_MAX}")
    return int(value)


def _bytes(value: Value, what: str, length: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        raise DecodeError(f"{what} must be {length} raw bytes")
    return value


def _chain(value: Value) -> str:
    if not isinstance(value, str) or not 0 < len(value.encode()) <= CHAIN_ID_BYTES_MAX:
        raise DecodeError(f"chain_id must be 1 to {CHAIN_ID_BYTES_MAX} bytes of UTF-8")
    return value


def _key(value: Value, what: str) -> bytes:
    return _bytes(value, what, crypto.PUBLIC_KEY_BYTES)


def _sig(value: Value) -> bytes:
    return _bytes(value, "signature", crypto.SIGNATURE_BYTES)


def _hash(value: Value, what: str) -> bytes:
    return _bytes(value, what, HASH_BYTES)


def _vote(value: Value, phase: int) -> Vote:
    vote = Vote.from_value(value)
    if vote.phase != phase:
        raise DecodeError("vote has the wrong phase for its place")
    return vote


def consensus_signing_bytes(chain_id: str, kind: int, fields: list[Value]) -> bytes:
    """Bytes signed by the sender of a non-vote message."""
    return tagged_bytes(Tag.CONSENSUS_SIGN, encode([chain_id, kind, *fields]))


@lru_cache(maxsize=4096)
def header_hash(header: BlockHeader) -> bytes:
    """``header.block_hash``, memoised: a header is hashed at every vote that names it
    (headers are frozen and hashable, so the cache key is the header's value)."""
    return header.block_hash


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class PrePrepare:
    """The primary of ``view`` assigns ``block`` to height ``block.height``."""

    KIND: ClassVar[int] = Kind.PRE_PREPARE

    chain_id: str
    """Network id."""
    view: int
    """View in which the block is (re-)proposed; may exceed ``block.header.view``."""
    block: Block
    """The proposed block (a re-proposal keeps the original header)."""
    sender: bytes
    """Public key of the primary of ``view``."""
    signature: bytes
    """Signature over ``[chain_id, kind, view, height, block_hash, sender]``."""

    @property
    def header(self) -> BlockHeader:
        return self.block.header

    @property
    def height(self) -> int:
        return self.block.header.height

    @property
    def block_hash(self) -> bytes:
        return header_hash(self.block.header)

    def signed_fields(self) -> list[Value]:
        return [self.view, self.height, self.block_hash, self.sender]

    def proposal(self) -> Proposal:
        """The same pre-prepare without its body (same signature)."""
        return Proposal(self.chain_id, self.view, self.block.header, self.sender,
                        self.signature)

    def to_value(self) -> list[Value]:
        return [self.chain_id, self.view, self.block.to_value(), self.sender, self.signature]

    def encode(self) -> bytes:
        """``encode(self.to_value())``, assembled from the block's own bytes: the primary
        broadcasts and every replica persists each pre-prepare, and rebuilding the block's
        values to encode them took a third of the replica's own time under load."""
        return encode_array([encode(self.chain_id), encode(self.view), self.block.encode(),
                             encode(self.sender), encode(self.signature)])

    @classmethod
    def from_value(cls, value: Value) -> PrePrepare:
        v = _list(value, 5, "pre-prepare")
        return cls._checked(v, Block.from_value(v[2]))

    @classmethod
    def from_parts(cls, parts: list[bytes]) -> PrePrepare:
        """``from_value`` over the exact bytes of each field (see ``decode_message``)."""
        _list(parts, 5, "pre-prepare")
        return cls._checked([decode(p) if i != 2 else None for i, p in enumerate(parts)],
                            Block.decode(parts[2]))

    @classmethod
    def _checked(cls, v: list[Value], block: Block) -> PrePrepare:
        return cls(_chain(v[0]), _uint(v[1], "view"), block, _key(v[3], "sender"),
                   _sig(v[4]))

    @staticmethod
    def make(key: crypto.SigningKey, chain_id: str, view: int, block: Block) -> PrePrepare:
        return signed_by(key, PrePrepare(chain_id, view, block, key.public_key, b""))


@dataclass(frozen=True, slots=True)
class Proposal:
    """A pre-prepare without its body: the header the primary of ``view`` assigned to its
    height. Signed exactly as the pre-prepare it stands for (kind PRE-PREPARE over
    ``[view, height, block_hash, sender]``), so ``with_body`` restores that pre-prepare
    once a body whose header is this one arrives."""

    KIND: ClassVar[int] = Kind.PROPOSAL

    chain_id: str
    """Network id."""
    view: int
    """View of the (re-)proposal."""
    header: BlockHeader
    """The proposed header (a re-proposal keeps the original header)."""
    sender: bytes
    """Public key of the primary of ``view``."""
    signature: bytes
    """The pre-prepare's signature over ``[chain_id, PRE-PREPARE, view, height, block_hash,
    sender]``."""

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def block_hash(self) -> bytes:
        return header_hash(self.header)

    def signed_fields(self) -> list[Value]:
        return [self.view, self.height, self.block_hash, self.sender]

    def with_body(self, block: Block) -> PrePrepare:
        """The pre-prepare with ``block`` as body; its header must be this one (the caller
        then runs the block check, which binds the body through ``txs_root``)."""
        if block.header != self.header:
            raise DecodeError("the body belongs to another header")
        return PrePrepare(self.chain_id, self.view, block, self.sender, self.signature)

    def to_value(self) -> list[Value]:
        return [self.chain_id, self.view, self.header.to_value(), self.sender, self.signature]

    @classmethod
    def from_value(cls, value: Value) -> Proposal:
        v = _list(value, 5, "proposal")
        return cls(_chain(v[0]), _uint(v[1], "view"), BlockHeader.from_value(v[2]),
                   _key(v[3], "sender"), _sig(v[4]))

    @staticmethod
    def make(key: crypto.SigningKey, chain_id: str, view: int,
             header: BlockHeader) -> Proposal:
        return signed_by(key, Proposal(chain_id, view, header, key.public_key, b""))


@dataclass(frozen=True, slots=True)
class PreparedCertificate:
    """Proof that ``proposal`` was prepared: q - 1 matching PREPAREs from backups. Carries
    the header only; whoever sends it holds the body and serves it on request."""

    proposal: Proposal
    """The pre-prepare (without body), signed by the primary of its view."""
    prepares: tuple[Vote, ...]
    """PREPARE votes for the same (view, height, hash), sorted by voter, one per voter."""

    @property
    def view(self) -> int:
        return self.proposal.view

    @property
    def height(self) -> int:
        return self.proposal.height

    def to_value(self) -> list[Value]:
        return [self.proposal.to_value(), [p.to_value() for p in self.prepares]]

    @classmethod
    def from_value(cls, value: Value) -> PreparedCertificate:
        v = _list(value, 2, "prepared certificate")
        prepares = tuple(_vote(p, Phase.PREPARE)
                         for p in _seq(v[1], VOTES_PER_CERT_MAX, "prepares"))
        return cls(Proposal.from_value(v[0]), prepares)


@dataclass(frozen=True, slots=True)
class CertifiedHeader:
    """A committed header with its commit certificate (a VIEW-CHANGE's committed part)."""

    header: BlockHeader
    """The committed header."""
    certificate: CommitCertificate
    """Quorum of COMMIT signatures over ``header``."""

    @property
    def height(self) -> int:
        return self.header.height

    def to_value(self) -> list[Value]:
        return [self.header.to_value(), self.certificate.to_value()]

    @classmethod
    def from_value(cls, value: Value) -> CertifiedHeader:
        v = _list(value, 2, "certified header")
        return cls(BlockHeader.from_value(v[0]), CommitCertificate.from_value(v[1]))


@dataclass(frozen=True, slots=True)
class CommittedProof:
    """A block with the commit certificate that made it final."""

    block: Block
    """The committed block."""
    certificate: CommitCertificate
    """Quorum of COMMIT signatures over ``block.header``."""

    @property
    def height(self) -> int:
        return self.block.header.height

    def certified_header(self) -> CertifiedHeader:
        return CertifiedHeader(self.block.header, self.certificate)

    def to_value(self) -> list[Value]:
        return [self.block.to_value(), self.certificate.to_value()]

    def encode(self) -> bytes:
        """``encode(self.to_value())``, assembled from the block's own bytes (its
        transactions keep theirs) instead of rebuilding and re-checking every value."""
        return encode_array([self.block.encode(), self.certificate.encode()])

    @classmethod
    def from_value(cls, value: Value) -> CommittedProof:
        v = _list(value, 2, "committed block")
        return cls(Block.from_value(v[0]), CommitCertificate.from_value(v[1]))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A validator's signed digest of the chain after executing height ``height``."""

    KIND: ClassVar[int] = Kind.CHECKPOINT

    chain_id: str
    """Network id."""
    height: int
    """Checkpoint height, a multiple of ``checkpoint_interval``."""
    block_hash: bytes
    """Hash of the header at ``height`` (binds the whole chain below it)."""
    time_ms: int
    """Block time of that header (the next block's time must exceed it)."""
    state_root: bytes
    """State root after executing block ``height``."""
    sender: bytes
    """Public key of the signing validator."""
    signature: bytes
    """Signature over ``[chain_id, kind, height, block_hash, time_ms, state_root, sender]``."""

    @property
    def digest(self) -> tuple[int, bytes, int, bytes]:
        """What q checkpoints must agree on to be stable."""
        return (self.height, self.block_hash, self.time_ms, self.state_root)

    def signed_fields(self) -> list[Value]:
        return [self.height, self.block_hash, self.time_ms, self.state_root, self.sender]

    def to_value(self) -> list[Value]:
        return [self.chain_id, *self.signed_fields(), self.signature]

    @classmethod
    def from_value(cls, value: Value) -> Checkpoint:
        v = _list(value, 7, "checkpoint")
        return cls(_chain(v[0]), _uint(v[1], "height"), _hash(v[2], "block_hash"),
                   _uint(v[3], "time_ms"), _hash(v[4], "state_root"), _key(v[5], "sender"),
                   _sig(v[6]))

    @staticmethod
    def make(key: crypto.SigningKey, chain_id: str, height: int, block_hash: bytes,
             time_ms: int, state_root: bytes) -> Checkpoint:
        return signed_by(key, Checkpoint(chain_id, height, block_hash, time_ms, state_root,
                                         key.public_key, b""))


@dataclass(frozen=True, slots=True)
class ViewChange:
    """A validator's request to move to ``new_view``, with what it must not lose."""

    KIND: ClassVar[int] = Kind.VIEW_CHANGE

    chain_id: str
    """Network id."""
    new_view: int
    """The view asked for."""
    checkpoint: tuple[Checkpoint, ...]
    """Proof of the sender's stable checkpoint: q matching checkpoints (empty = genesis)."""
    prepared: tuple[PreparedCertificate, ...]
    """Highest-view prepared certificate per height above the checkpoint, by height
    (headers only; the sender holds each body and serves it on request)."""
    committed: tuple[CertifiedHeader, ...]
    """Committed headers above the checkpoint that the sender holds, by height."""
    sender: bytes
    """Public key of the sender."""
    signature: bytes
    """Signature over ``[chain_id, kind, new_view, checkpoint, prepared, committed, sender]``."""

    def signed_fields(self) -> list[Value]:
        return [
            self.new_view, [c.to_value() for c in self.checkpoint],
            [p.to_value() for p in self.prepared], [c.to_value() for c in self.committed],
            self.sender,
        ]

    def to_value(self) -> list[Value]:
        return [self.chain_id, *self.signed_fields(), self.signature]

    @classmethod
    def from_value(cls, value: Value) -> ViewChange:
        v = _list(value, 7, "view-change")
        return cls(
            _chain(v[0]), _uint(v[1], "new_view"),
            tuple(Checkpoint.from_value(c)
                  for c in _seq(v[2], VOTES_PER_CERT_MAX, "checkpoint proof")),
            tuple(PreparedCertificate.from_value(p)
                  for p in _seq(v[3], CERTS_PER_VIEW_CHANGE_MAX, "prepared certificates")),
            tuple(CertifiedHeader.from_value(c)
                  for c in _seq(v[4], CERTS_PER_VIEW_CHANGE_MAX, "committed headers")),
            _key(v[5], "sender"), _sig(v[6]),
        )

    @staticmethod
    def make(key: crypto.SigningKey, chain_id: str, new_view: int,
             checkpoint: tuple[Checkpoint, ...], prepared: tuple[PreparedCertificate, ...],
             committed: tuple[CertifiedHeader, ...]) -> ViewChange:
        return signed_by(key, ViewChange(chain_id, new_view, checkpoint, prepared, committed,
                                         key.public_key, b""))


@dataclass(frozen=True, slots=True)
class NewView:
    """The primary of ``view`` starts it: the view-change quorum and the re-proposals O."""

    KIND: ClassVar[int] = Kind.NEW_VIEW

    chain_id: str
    """Network id."""
    view: int
    """The new view."""
    view_changes: tuple[ViewChange, ...]
    """q VIEW-CHANGE messages for ``view`` from distinct validators."""
    pre_prepares: tuple[Proposal, ...]
    """O: proposals (pre-prepares without bodies) in ``view`` for consecutive heights above
    the chosen checkpoint."""
    sender: bytes
    """Public key of the primary of ``view``."""
    signature: bytes
    """Signature over ``[chain_id, kind, view, view_changes, O hashes, sender]``."""

    def signed_fields(self) -> list[Value]:
        return [self.view, [vc.to_value() for vc in self.view_changes],
                [[p.height, p.block_hash] for p in self.pre_prepares], self.sender]

    def to_value(self) -> list[Value]:
        return [self.chain_id, self.view, [vc.to_value() for vc in self.view_changes],
                [p.to_value() for p in self.pre_prepares], self.sender, self.signature]

    @classmethod
    def from_value(cls, value: Value) -> NewView:
        v = _list(value, 6, "new-view")
        return cls(
            _chain(v[0]), _uint(v[1], "view"),
            tuple(ViewChange.from_value(x)
                  for x in _seq(v[2], VOTES_PER_CERT_MAX, "view changes")),
            tuple(Proposal.from_value(x)
                  for x in _seq(v[3], CERTS_PER_VIEW_CHANGE_MAX, "re-proposals")),
            _key(v[4], "sender"), _sig(v[5]),
        )

    @staticmethod
    def make(key: crypto.SigningKey, chain_id: str, view: int,
             view_changes: tuple[ViewChange, ...],
             pre_prepares: tuple[Proposal, ...]) -> NewView:
        return signed_by(key, NewView(chain_id, view, view_changes, pre_prepares,
                                      key.public_key, b""))


@dataclass(frozen=True, slots=True)
class Status:
    """A periodic heartbeat: where the sender is, so peers can help it catch up."""

    KIND: ClassVar[int] = Kind.STATUS

    chain_id: str
    """Network id."""
    view: int
    """The sender's current view."""
    view_active: bool
    """False while the sender is changing view."""
    committed_height: int
    """Highest height the sender has delivered in order."""
    sender: bytes
    """Public key of the sender."""
    signature: bytes
    """Signature over ``[chain_id, kind, view, view_active, committed_height, sender]``."""

    def signed_fields(self) -> list[Value]:
        return [self.view, self.view_active, self.committed_height, self.sender]

    def to_value(self) -> list[Value]:
        return [self.chain_id, *self.signed_fields(), self.signature]

    @classmethod
    def from_value(cls, value: Value) -> Status:
        v = _list(value, 6, "status")
        if not isinstance(v[2], bool):
            raise DecodeError("view_active must be a boolean")
        return cls(_chain(v[0]), _uint(v[1], "view"), v[2], _uint(v[3], "committed_height"),
                   _key(v[4], "sender"), _sig(v[5]))

    @staticmethod
    def make(key: crypto.SigningKey, chain_id: str, view: int, view_active: bool,
             committed_height: int) -> Status:
        return signed_by(key, Status(chain_id, view, view_active, committed_height,
                                     key.public_key, b""))


@dataclass(frozen=True, slots=True)
class BlocksRequest:
    """Ask a peer for the committed blocks ``from_height..to_height`` (inclusive)."""

    KIND: ClassVar[int] = Kind.BLOCKS_REQUEST

    chain_id: str
    """Network id."""
    from_height: int
    """First height wanted."""
    to_height: int
    """Last height wanted; at most ``HEIGHTS_PER_REQUEST_MAX`` heights in all."""
    sender: bytes
    """Public key of the requester (the node answers to it)."""
    signature: bytes
    """Signature over ``[chain_id, kind, from_height, to_height, sender]``."""

    def signed_fields(self) -> list[Value]:
        return [self.from_height, self.to_height, self.sender]

    def to_value(self) -> list[Value]:
        return [self.chain_id, *self.signed_fields(), self.signature]

    @classmethod
    def from_value(cls, value: Value) -> BlocksRequest:
        v = _list(value, 5, "blocks request")
        first, last = _uint(v[1], "from_height"), _uint(v[2], "to_height")
        if not 1 <= first <= last or last - first >= HEIGHTS_PER_REQUEST_MAX:
            raise DecodeError(
                f"a blocks request asks for 1 to {HEIGHTS_PER_REQUEST_MAX} heights from 1 up")
        return cls(_chain(v[0]), first, last, _key(v[3], "sender"), _sig(v[4]))

    @staticmethod
    def make(key: crypto.SigningKey, chain_id: str, from_height: int,
             to_height: int) -> BlocksRequest:
        return signed_by(key, BlocksRequest(chain_id, from_height, to_height, key.public_key,
                                            b""))


@dataclass(frozen=True, slots=True)
class BlocksResponse:
    """Committed blocks with their certificates, in increasing height order."""

    KIND: ClassVar[int] = Kind.BLOCKS_RESPONSE

    chain_id: str
    """Network id."""
    blocks: tuple[CommittedProof, ...]
    """At most ``BLOCKS_PER_RESPONSE_MAX`` consecutive committed blocks."""

    def to_value(self) -> list[Value]:
        return [self.chain_id, [b.to_value() for b in self.blocks]]

    def encode(self) -> bytes:
        """``encode(self.to_value())``, assembled from the blocks' own bytes."""
        return encode_array([encode(self.chain_id),
                             encode_array([proof.encode() for proof in self.blocks])])

    @classmethod
    def from_value(cls, value: Value) -> BlocksResponse:
        v = _list(value, 2, "blocks response")
        return cls(_chain(v[0]), tuple(
            CommittedProof.from_value(b)
            for b in _seq(v[1], BLOCKS_PER_RESPONSE_MAX, "blocks")))


@dataclass(frozen=True, slots=True)
class ViewChangeRequest:
    """A validator whose view timer expired asks to leave the current view, without
    leaving it yet: it sends its binding VIEW-CHANGE only once f + 1 validators asked (at
    least one correct replica saw no progress). A validator cut off alone therefore never
    leaves the view the others are in (ADR 0008, "pre-vote")."""

    KIND: ClassVar[int] = Kind.VIEW_CHANGE_REQUEST

    chain_id: str
    """Network id."""
    new_view: int
    """The view asked for: the sender's current view + 1."""
    sender: bytes
    """Public key of the sender."""
    signature: bytes
    """Signature over ``[chain_id, kind, new_view, sender]``."""

    def signed_fields(self) -> list[Value]:
        return [self.new_view, self.sender]

    def to_value(self) -> list[Value]:
        return [self.chain_id, *self.signed_fields(), self.signature]

    @classmethod
    def from_value(cls, value: Value) -> ViewChangeRequest:
        v = _list(value, 4, "view-change request")
        return cls(_chain(v[0]), _uint(v[1], "new_view"), _key(v[2], "sender"), _sig(v[3]))

    @staticmethod
    def make(key: crypto.SigningKey, chain_id: str, new_view: int) -> ViewChangeRequest:
        return signed_by(key, ViewChangeRequest(chain_id, new_view, key.public_key, b""))


@dataclass(frozen=True, slots=True)
class BodyRequest:
    """Ask a validator for the body of the block whose header hash is ``block_hash``."""

    KIND: ClassVar[int] = Kind.BODY_REQUEST

    chain_id: str
    """Network id."""
    height: int
    """Height of the block."""
    block_hash: bytes
    """Hash of its header."""
    sender: bytes
    """Public key of the requester."""
    signature: bytes
    """Signature over ``[chain_id, kind, height, block_hash, sender]``."""

    def signed_fields(self) -> list[Value]:
        return [self.height, self.block_hash, self.sender]

    def to_value(self) -> list[Value]:
        return [self.chain_id, *self.signed_fields(), self.signature]

    @classmethod
    def from_value(cls, value: Value) -> BodyRequest:
        v = _list(value, 5, "body request")
        return cls(_chain(v[0]), _uint(v[1], "height"), _hash(v[2], "block_hash"),
                   _key(v[3], "sender"), _sig(v[4]))

    @staticmethod
    def make(key: crypto.SigningKey, chain_id: str, height: int,
             block_hash: bytes) -> BodyRequest:
        return signed_by(key, BodyRequest(chain_id, height, block_hash, key.public_key, b""))


@dataclass(frozen=True, slots=True)
class BlockBody:
    """The answer to a ``BodyRequest``: one block. Unsigned: the receiver accepts it only
    for a hash it asked for, only if the header hashes to it, and only after the block
    check (``txs_root`` binds the transactions to that header)."""

    KIND: ClassVar[int] = Kind.BLOCK_BODY

    chain_id: str
    """Network id."""
    block: Block
    """The block asked for."""

    def to_value(self) -> list[Value]:
        return [self.chain_id, self.block.to_value()]

    def encode(self) -> bytes:
        """``encode(self.to_value())``, assembled from the block's own bytes."""
        return encode_array([encode(self.chain_id), self.block.encode()])

    @classmethod
    def from_value(cls, value: Value) -> BlockBody:
        v = _list(value, 2, "block body")
        return cls(_chain(v[0]), Block.from_value(v[1]))

    @classmethod
    def from_parts(cls, parts: list[bytes]) -> BlockBody:
        """``from_value`` over the exact bytes of each field (see ``decode_message``)."""
        _list(parts, 2, "block body")
        return cls(_chain(decode(parts[0])), Block.decode(parts[1]))


Signed = (PrePrepare | Proposal | Checkpoint | ViewChange | NewView | Status | BlocksRequest
          | BodyRequest | ViewChangeRequest)
Message = Signed | Vote | BlocksResponse | BlockBody


def _signing_bytes(message: Signed) -> bytes:
    # A Proposal is signed as the pre-prepare it stands for.
    kind = Kind.PRE_PREPARE if isinstance(message, Proposal) else message.KIND
    return consensus_signing_bytes(message.chain_id, kind, message.signed_fields())


def _sign(key: crypto.SigningKey, message: Signed) -> bytes:
    return key.sign(_signing_bytes(message))


SignedMessage = TypeVar("SignedMessage", PrePrepare, Proposal, Checkpoint, ViewChange, NewView,
                        Status, BlocksRequest, BodyRequest, ViewChangeRequest)


def signed_by(key: crypto.SigningKey, unsigned: SignedMessage) -> SignedMessage:
    """``unsigned`` (sent by ``key``, with an empty signature) signed by ``key``: every
    message's ``make`` goes through here, so the signing rule is written once."""
    assert unsigned.sender == key.public_key and not unsigned.signature, "sign a draft"
    return replace(unsigned, signature=_sign(key, unsigned))


def signature_valid(message: Signed) -> bool:
    """Whether the sender's signature over the message verifies."""
    return crypto.verify(message.sender, _signing_bytes(message), message.signature)


_DECODERS: dict[int, Callable[[Value], Message]] = {
    Kind.PRE_PREPARE: PrePrepare.from_value,
    Kind.CHECKPOINT: Checkpoint.from_value,
    Kind.VIEW_CHANGE: ViewChange.from_value,
    Kind.NEW_VIEW: NewView.from_value,
    Kind.STATUS: Status.from_value,
    Kind.BLOCKS_REQUEST: BlocksRequest.from_value,
    Kind.BLOCKS_RESPONSE: BlocksResponse.from_value,
    Kind.PROPOSAL: Proposal.from_value,
    Kind.BODY_REQUEST: BodyRequest.from_value,
    Kind.BLOCK_BODY: BlockBody.from_value,
    Kind.VIEW_CHANGE_REQUEST: ViewChangeRequest.from_value,
}


def encode_message(message: Message) -> bytes:
    """The canonical bytes ``[kind, body]`` of a message. Those that carry blocks are
    assembled from the blocks' own bytes (their ``encode``: the same bytes)."""
    if isinstance(message, Vote):
        kind = Kind.PREPARE if message.phase == Phase.PREPARE else Kind.COMMIT
        return encode([kind, message.to_value()])
    if isinstance(message, (PrePrepare, BlockBody, BlocksResponse)):
        return encode_array([encode(message.KIND), message.encode()])
    return encode([message.KIND, message.to_value()])


def encode_blocks_response(chain_id: str,
                           blocks: Sequence[CommittedBlock | CommittedProof]) -> bytes:
    """The reply to a ``ServeBlocks`` effect: the node's stored blocks (receipts are not
    sent; the receiver executes), at most ``BLOCKS_PER_RESPONSE_MAX`` of them."""
    proofs = tuple(CommittedProof(b.block, b.certificate)
                   for b in blocks[:BLOCKS_PER_RESPONSE_MAX])
    return encode_message(BlocksResponse(chain_id, proofs))


_FROM_PARTS: dict[int, Callable[[list[bytes]], Message]] = {
    Kind.PRE_PREPARE: PrePrepare.from_parts,
    Kind.BLOCK_BODY: BlockBody.from_parts,
}
"""Messages that carry a block, decoded field by field from their exact bytes: the block
through ``Block.decode``, so its transactions keep their bytes and one this node decoded
already (a peer forwarded it) is not decoded again (``Transaction.decode``). A message
is canonical iff its array headers are the shortest (``split_array``) and every field
is (``decode``): the same acceptance as decoding it whole."""


def decode_message(data: bytes) -> Message:
    """Decode a message; raise ``DecodeError`` for anything that is not one."""
    if not isinstance(data, bytes) or len(data) > MESSAGE_BYTES_MAX:
        raise DecodeError(f"a consensus message is bytes of at most {MESSAGE_BYTES_MAX}")
    # Canonical bytes of ``[kind, body]`` open with 0x92 and the kind as one byte: only
    # those may take the path by parts (any other spelling is decoded whole, and refused).
    from_parts = _FROM_PARTS.get(data[1]) if data[:1] == b"\x92" and len(data) > 1 else None
    if from_parts is not None:
        kind_and_body = split_array(data)
        _list(kind_and_body, 2, "consensus message")
        return from_parts(split_array(kind_and_body[1]))
    value = decode(data)
    envelope = _list(value, 2, "consensus message")
    kind = envelope[0]
    if kind == Kind.PREPARE or kind == Kind.COMMIT:
        if isinstance(kind, bool):
            raise DecodeError("message kind must be an integer")
        return _vote(envelope[1], Phase.PREPARE if kind == Kind.PREPARE else Phase.COMMIT)
    if isinstance(kind, bool) or not isinstance(kind, int) or kind not in _DECODERS:
        raise DecodeError("unknown consensus message kind")
    try:
        return _DECODERS[kind](envelope[1])
    except RecursionError as exc:  # defensive: nesting is bounded by the decoder already
        raise DecodeError("message nested too deeply") from exc


# --------------------------------------------------------------------------- size bounds

_WORST_CHAIN = "x" * CHAIN_ID_BYTES_MAX
_WORST_HASH = b"\xff" * HASH_BYTES
_WORST_KEY = b"\xff" * crypto.PUBLIC_KEY_BYTES
_WORST_SIG = b"\xff" * crypto.SIGNATURE_BYTES
_WORST_HEADER = BlockHeader(_WORST_CHAIN, U64_MAX, _WORST_HASH, _WORST_KEY, U64_MAX, U64_MAX,
                            _WORST_HASH, _WORST_HASH, _WORST_HASH, _WORST_HASH)
_WORST_VOTE = Vote(_WORST_CHAIN, Phase.PREPARE, U64_MAX, U64_MAX, _WORST_HASH, _WORST_KEY,
                   _WORST_SIG)
_WORST_CHECKPOINT = Checkpoint(_WORST_CHAIN, U64_MAX, _WORST_HASH, U64_MAX, _WORST_HASH,
                               _WORST_KEY, _WORST_SIG)
_WORST_PROPOSAL = Proposal(_WORST_CHAIN, U64_MAX, _WORST_HEADER, _WORST_KEY, _WORST_SIG)
ARRAY_HEADER_BYTES_MAX = 5
"""msgpack array or bin length prefix, at most (array32 / bin32)."""


def _size(value: Value) -> int:
    return len(encode(value))


def _certificate_bytes_max(n: int) -> int:
    signatures = tuple(CommitSignature(_WORST_KEY, _WORST_SIG) for _ in range(n))
    return _size(CommitCertificate(U64_MAX, U64_MAX, _WORST_HASH, signatures).to_value())


def view_change_bytes_max(n: int, window: int) -> int:
    """Largest VIEW-CHANGE a correct replica accepts with ``n`` validators and a watermark
    window of ``window`` heights: a checkpoint proof of at most n checkpoints, at most
    ``window`` prepared certificates (a proposal and at most n - 1 PREPAREs each) and at
    most ``window`` certified headers (n signatures each). Independent of block sizes."""
    envelope = _size([Kind.VIEW_CHANGE, [_WORST_CHAIN, U64_MAX, [], [], [], _WORST_KEY,
                                          _WORST_SIG]])
    checkpoints = n * _size(_WORST_CHECKPOINT.to_value()) + ARRAY_HEADER_BYTES_MAX
    prepared = window * (_size(_WORST_PROPOSAL.to_value()) + (n - 1) * _size(
        _WORST_VOTE.to_value()) + 2 * ARRAY_HEADER_BYTES_MAX) + ARRAY_HEADER_BYTES_MAX
    committed = window * (_size(_WORST_HEADER.to_value()) + _certificate_bytes_max(n)
                          + ARRAY_HEADER_BYTES_MAX) + ARRAY_HEADER_BYTES_MAX
    return envelope + checkpoints + prepared + committed


def new_view_bytes_max(n: int, window: int) -> int:
    """Largest NEW-VIEW: at most n VIEW-CHANGEs and ``window`` proposals."""
    envelope = _size([Kind.NEW_VIEW, [_WORST_CHAIN, U64_MAX, [], [], _WORST_KEY, _WORST_SIG]])
    return (envelope + n * view_change_bytes_max(n, window) + ARRAY_HEADER_BYTES_MAX
            + window * _size(_WORST_PROPOSAL.to_value()) + ARRAY_HEADER_BYTES_MAX)


def block_message_bytes_max(block_bytes_max: int) -> int:
    """Largest PRE-PREPARE or BLOCK-BODY: a header, the transactions (at most
    ``block_bytes_max`` encoded bytes) and the envelope."""
    envelope = _size([Kind.PRE_PREPARE, [_WORST_CHAIN, U64_MAX, [_WORST_HEADER.to_value(), []],
                                          _WORST_KEY, _WORST_SIG]])
    return envelope + block_bytes_max + ARRAY_HEADER_BYTES_MAX


def message_bytes_max(kind: int, n: int, window: int, block_bytes_max: int) -> int:
    """The documented largest encoding of a message of ``kind`` (docs/protocol.md), for n
    validators, a watermark window of ``window`` and ``block_bytes_max``. BLOCKS-RESPONSE
    is bounded by the responder's frame budget instead (it packs blocks until it is full)."""
    fixed = {
        Kind.PREPARE: _size([Kind.PREPARE, _WORST_VOTE.to_value()]),
        Kind.COMMIT: _size([Kind.COMMIT, _WORST_VOTE.to_value()]),
        Kind.CHECKPOINT: _size([Kind.CHECKPOINT, _WORST_CHECKPOINT.to_value()]),
        Kind.PROPOSAL: _size([Kind.PROPOSAL, _WORST_PROPOSAL.to_value()]),
        Kind.STATUS: _size([Kind.STATUS, [_WORST_CHAIN, U64_MAX, True, U64_MAX, _WORST_KEY,
                                          _WORST_SIG]]),
        Kind.BLOCKS_REQUEST: _size([Kind.BLOCKS_REQUEST, [_WORST_CHAIN, U64_MAX, U64_MAX,
                                                          _WORST_KEY, _WORST_SIG]]),
        Kind.BODY_REQUEST: _size([Kind.BODY_REQUEST, [_WORST_CHAIN, U64_MAX, _WORST_HASH,
                                                      _WORST_KEY, _WORST_SIG]]),
        Kind.VIEW_CHANGE_REQUEST: _size([Kind.VIEW_CHANGE_REQUEST, [_WORST_CHAIN, U64_MAX,
                                                                    _WORST_KEY, _WORST_SIG]]),
    }
    if kind in fixed:
        return fixed[kind]
    if kind in (Kind.PRE_PREPARE, Kind.BLOCK_BODY):
        return block_message_bytes_max(block_bytes_max)
    if kind == Kind.VIEW_CHANGE:
        return view_change_bytes_max(n, window)
    if kind == Kind.NEW_VIEW:
        return new_view_bytes_max(n, window)
    return MESSAGE_BYTES_MAX


def message_kind(data: bytes) -> int:
    """The kind of an encoded message (its first field), without decoding the rest."""
    if len(data) < 2 or data[0] != 0x92:
        raise DecodeError("not a consensus message envelope")
    return data[1]


def check_message_bounds(n: int, window: int) -> None:
    """Raise ``GenesisError`` unless a NEW-VIEW of ``n`` validators and a watermark window of
    ``window`` heights always fits ``MESSAGE_BYTES_MAX``: otherwise a view change could
    never complete (every correct replica would refuse the NEW-VIEW as too large)."""
    largest = new_view_bytes_max(n, window)
    if largest > MESSAGE_BYTES_MAX:
        fitting = max((w for w in range(1, window) if new_view_bytes_max(n, w)
                       <= MESSAGE_BYTES_MAX), default=0)
        raise GenesisError(
            f"with {n} validators and a watermark window of {window} heights a NEW-VIEW can "
            f"reach {largest:,} bytes, above the {MESSAGE_BYTES_MAX:,}-byte message limit: "
            f"choose a watermark_window of at most {fitting} (a multiple of "
            "checkpoint_interval) in the genesis file")

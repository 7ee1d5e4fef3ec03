"""SHA-256 with a domain tag per object kind.

Rule: every hash in Tabellion is ``SHA-256(tag || 0x00 || data)`` where ``tag`` is one of
the ASCII constants below. Two objects of different kinds can therefore never share a
hash, even if their encodings happen to be equal. Merkle leaves and nodes follow RFC 6962
instead (single prefix bytes 0x00 and 0x01, see :mod:`ledger.merkle`).
"""

from __future__ import annotations

import hashlib
from enum import Enum

HASH_BYTES = 32


class Tag(Enum):
    """Domain tags. The value is hashed; never change one once a chain exists."""

    TX_ID = b"tabellion/tx"
    TX_SIGN = b"tabellion/tx-sign"
    HEADER = b"tabellion/header"
    VOTE_SIGN = b"tabellion/vote-sign"
    CONSENSUS_SIGN = b"tabellion/consensus-sign"
    HANDSHAKE_SIGN = b"tabellion/handshake-sign"
    GENESIS = b"tabellion/genesis"
    VALIDATOR_SET = b"tabellion/validator-set"
    RECEIPT = b"tabellion/receipt"
    STATE_LEAF = b"tabellion/state-leaf"
    STATE_NODE = b"tabellion/state-node"
    STATE_KEY = b"tabellion/state-key"
    CHECKPOINT = b"tabellion/checkpoint"
    STORED = b"tabellion/stored"


def tag_prefix(tag: Tag) -> bytes:
    """``tag || 0x00``: what precedes the data in ``tagged_hash`` and ``tagged_bytes`` (a
    loop over millions of items takes it once instead of once per item)."""
    return tag.value + b"\x00"


def tagged_hash(tag: Tag, data: bytes) -> bytes:
    """Return ``SHA-256(tag || 0x00 || data)``."""
    return hashlib.sha256(tag_prefix(tag) + data).digest()


def tagged_bytes(tag: Tag, data: bytes) -> bytes:
    """The bytes a signature covers: the tag, a zero byte, then the canonical data."""
    return tag_prefix(tag) + data


def sha256(data: bytes) -> bytes:
    """Plain SHA-256, for documents whose hash is computed outside Tabellion."""
    return hashlib.sha256(data).digest()

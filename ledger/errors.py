"""One error hierarchy for the ledger and everything built on it.

Every message is written for the person who will read it (a clerk, an operator or an
auditor): it says what is wrong and, where possible, what to do about it.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error Tabellion raises on purpose."""


class DecodeError(LedgerError):
    """Bytes are not the canonical encoding of the expected record."""


class InvalidSignature(LedgerError):
    """A signature does not verify against the claimed public key."""


class KeyFileError(LedgerError):
    """A key file is missing, damaged, or the passphrase is wrong."""


class InvalidTransaction(LedgerError):
    """A transaction is malformed, badly signed, expired, or for another network."""


class InvalidBlock(LedgerError):
    """A block breaks a validity rule; the message names the height and the rule."""

    def __init__(self, height: int, reason: str) -> None:
        super().__init__(f"block {height}: {reason}")
        self.height = height
        self.reason = reason


class InvalidCertificate(InvalidBlock):
    """A commit certificate lacks a quorum or carries a bad vote."""


class InvalidProof(LedgerError):
    """A Merkle or state proof does not verify."""


class GenesisError(LedgerError):
    """The genesis file is unreadable or breaks a rule."""


class StoreError(LedgerError):
    """The chain store cannot be opened or written."""


class CorruptionError(StoreError):
    """Stored data does not match its hash: the data directory was damaged or altered."""


class DiskFullError(StoreError):
    """A write failed because the disk (or the process's file-size limit) is full: what
    was stored before it is intact; the node must stop until there is room again."""

"""Errors raised by the validator node, inside the one ``LedgerError`` hierarchy.

Rule: every message names what is wrong (the file, the field, the peer, the request)
and what to do about it; the operator or the clerk reading it should not need the code.
"""

from __future__ import annotations

from ledger.errors import LedgerError


class NodeError(LedgerError):
    """Base of the node's own errors."""


class ConfigError(NodeError):
    """The node configuration file is missing, unreadable or has a bad field."""


class TransportError(NodeError):
    """A peer connection broke a rule (framing, handshake, identity)."""


class MempoolRejection(NodeError):
    """A submitted transaction was refused before reaching a block.

    ``code`` is a stable identifier (``malformed``, ``bad_signature``, ``wrong_chain``,
    ``expired``, ``already_committed``, ``mempool_full``, ``busy``, ``rate_limited``, or a contract
    code such as ``unknown_signer``); ``message`` says what to fix.
    """

    def __init__(self, code: str, message: str, *, retry_after_s: float | None = None
                 ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        """For a refusal that passes with time (``busy``, ``rate_limited``): when to retry."""

"""Proofs of the validator set in force: ``sys/validators`` proven against a state root.

Rules:
- The validator set decided by governance is the value of ``contracts.keys.VALIDATORS_KEY``
  in the state after the deciding block; the state root of that version is certified in
  the header ``D`` heights later. A proof is the canonical bytes of a
  ``ledger.state.StateProof`` (format: docs/receipt.md, "State proofs").
- The value is read into a ``ValidatorSet`` by the contracts' own reader
  (``contracts.engine.validator_set``), never by a second parser.
"""

from __future__ import annotations

from contracts import engine
from contracts.keys import VALIDATORS_KEY
from ledger.encoding import decode
from ledger.errors import DecodeError, InvalidProof
from ledger.records import ValidatorSet
from ledger.state import StateProof, verify_state_proof


def verify_validators_proof(root: bytes, value: bytes | None, proof: bytes) -> None:
    """Raise ``InvalidProof`` (or ``DecodeError``) unless ``proof`` shows that
    ``sys/validators`` holds ``value`` (``None``: absent) in the state whose root is
    ``root``."""
    verify_state_proof(root, VALIDATORS_KEY, value, StateProof.from_value(decode(proof)))


class _OneKey:
    """A state view holding only ``sys/validators`` (what the reader needs)."""

    def __init__(self, value: bytes | None) -> None:
        self._value = value

    def get(self, key: bytes) -> bytes | None:
        return self._value if key == VALIDATORS_KEY else None


def validators_from_value(value: bytes | None) -> ValidatorSet:
    """The validator set a stored ``sys/validators`` value names; ``InvalidProof`` if it
    names none (a state without validators cannot certify anything)."""
    if value is None:
        raise InvalidProof("the state holds no validator set")
    try:
        validators = engine.validator_set(_OneKey(value))
    except (DecodeError, ValueError, TypeError, AssertionError) as exc:
        raise InvalidProof(f"the validator set does not decode: {exc}") from exc
    if not validators.keys:
        raise InvalidProof("the validator set is empty")
    return validators

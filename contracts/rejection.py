"""The one error a contract rule raises: a stable code and a message for a clerk.

Rules:
- ``Rejection`` is a ``ledger.errors.InvalidTransaction``: the engine turns it into a
  receipt with its code; any other exception is a contract bug and halts the node.
- It lives in its own module so that the rule modules the framework calls while
  checking a payload (``contracts.personal_data``) raise it without importing the
  framework (``contracts.registry`` re-exports both names).
"""

from __future__ import annotations

from typing import NoReturn

from ledger.errors import InvalidTransaction


class Rejection(InvalidTransaction):
    """A contract rule refused a transaction; ``code`` is stable, ``message`` is for a clerk."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def reject(code: str, message: str) -> NoReturn:
    raise Rejection(code, message)

"""Which validators this node admits and dials: the on-chain set, followed at run time.

Rules:
- Admitted (``PeerDirectory.admits``, asked by the transport at every handshake and
  frame): the validators of the set in force, and of every set already decided for a
  later height (a validator added by governance connects and catches up before its set
  takes over). A validator removed or whose key was replaced is refused as soon as the
  decision is in force.
- Dialled: the same keys but our own. The address of each is the one in this node's
  configuration if it lists the key (the operator's word wins: a private network path,
  a proxy), else the one governance wrote on chain (``validator_address`` of its
  municipality, ``contracts.identity.validator_addresses``). A validator with neither
  is not dialled (it can still dial us) and a warning names it once.
- The admitted keys are recomputed only when their inputs change (the history, the set
  in force, the low watermark): ``follow`` is cheap enough to call after every event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from contracts.identity import validator_addresses
from contracts.view import StateView
from ledger.records import ValidatorSet
from ledger.validator_history import ValidatorHistory
from node.config import PeerConfig

log = logging.getLogger("tabellion.membership")


def admitted_keys(active: ValidatorSet, history: ValidatorHistory, low: int
                  ) -> frozenset[bytes]:
    """The set in force and every set decided to take over after ``low + 1``."""
    keys = set(active.keys)
    for start, validators in history.changes():
        if start > low + 1:
            keys.update(validators.keys)
    return frozenset(keys)


class PeerDirectory:
    """The admitted keys and the peers to dial, kept in step with the chain."""

    def __init__(self, me: bytes, configured: Sequence[PeerConfig]) -> None:
        self._me = me
        self._configured = {p.validator_key: p for p in configured}
        self._basis: tuple[object, ...] = ()
        self._admitted: frozenset[bytes] = frozenset()
        self._unreachable_warned: set[bytes] = set()

    def admits(self, key: bytes) -> bool:
        return key in self._admitted

    def follow(self, active: ValidatorSet, history: ValidatorHistory, low: int,
               state: Callable[[], StateView]) -> tuple[PeerConfig, ...] | None:
        """The peers to dial if the admitted keys changed since the last call, else
        ``None``. ``state`` gives the executed state (read only when needed)."""
        basis = (history, active, low)  # the same objects compare by identity: cheap
        if basis == self._basis:
            return None
        self._basis = basis
        admitted = admitted_keys(active, history, low)
        if admitted == self._admitted:
            return None
        self._admitted = admitted
        on_chain = validator_addresses(state())
        peers: list[PeerConfig] = []
        for key in sorted(admitted - {self._me}):
            configured = self._configured.get(key)
            if configured is not None:
                peers.append(configured)
            elif key.hex() in on_chain:
                peers.append(PeerConfig(key, on_chain[key.hex()]))
            elif key not in self._unreachable_warned:
                self._unreachable_warned.add(key)
                log.warning("validator %s… has no address on chain nor in this node's peers: "
                            "it is not dialled (it can still dial us); add it to the peers "
                            "of the configuration", key.hex()[:16])
        return tuple(peers)

"""What a replica keeps across a crash: a small key/value map updated by ``Persist``.

Rules:
- The replica emits ``Persist(PersistRecord(key, value))`` before it sends the vote the
  record protects; ``value=None`` deletes the key. The node stores each record under a
  prefix of its own (keys sort like the heights in them: big-endian) and, on restart,
  hands back every pair it holds as a ``PersistedState``.
- Keys: ``view`` (view number, active flag); ``vote/<h><v><phase>`` (the vote this replica
  signed at (view, height, phase); for a pre-prepare the whole message, so a restarted
  primary re-sends the same block); ``prep/<h>`` (highest-view prepared certificate and its body);
  ``done/<h>`` (committed block with certificate); ``stable`` (checkpoint proof);
  ``vc`` (last VIEW-CHANGE sent); ``nv`` (last NEW-VIEW entered, so a primary that
  restarts re-sends the same one). The validator-set history is not consensus's to keep:
  the executor rebuilds it from the chain (``ledger.validator_history``); a ``vsets``
  record written by an older version is ignored.
- ``PersistedState.encode``/``decode`` give one canonical blob, for a caller that prefers
  to keep the whole map under one key (``apply`` folds records into it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from consensus.events import PersistRecord
from ledger.encoding import decode, encode
from ledger.errors import DecodeError

KEY_BYTES_MAX = 64
RECORDS_MAX = 100_000
"""Most records a persisted state may hold (a replica keeps about 5 per height in its
window, so this is far above what a correct replica writes)."""

KEY_VIEW = b"view"
KEY_STABLE = b"stable"
KEY_VIEW_CHANGE = b"vc"
KEY_NEW_VIEW = b"nv"
PREFIX_VOTE = b"vote/"
PREFIX_PREPARED = b"prep/"
PREFIX_COMMITTED = b"done/"

PHASE_PRE_PREPARE = 0
"""Phase number used for pre-prepare votes in keys (PREPARE = 1 and COMMIT = 2 as in
``ledger.records.Phase``)."""


def vote_key(height: int, view: int, phase: int) -> bytes:
    return PREFIX_VOTE + height.to_bytes(8, "big") + view.to_bytes(8, "big") + bytes([phase])


def parse_vote_key(key: bytes) -> tuple[int, int, int]:
    body = key[len(PREFIX_VOTE):]
    if len(body) != 17:
        raise DecodeError("malformed persisted vote key")
    return int.from_bytes(body[:8], "big"), int.from_bytes(body[8:16], "big"), body[16]


def height_key(prefix: bytes, height: int) -> bytes:
    return prefix + height.to_bytes(8, "big")


def parse_height_key(prefix: bytes, key: bytes) -> int:
    body = key[len(prefix):]
    if len(body) != 8:
        raise DecodeError("malformed persisted height key")
    return int.from_bytes(body, "big")


@dataclass(frozen=True, slots=True)
class PersistedState:
    """Every persisted key/value pair of one replica."""

    records: dict[bytes, bytes] = field(default_factory=dict)
    """Key to value, as written by ``Persist`` effects (deleted keys absent)."""

    @staticmethod
    def from_records(pairs: Iterable[tuple[bytes, bytes]]) -> PersistedState:
        """Build from the (key, value) pairs a store returns."""
        records: dict[bytes, bytes] = {}
        for key, value in pairs:
            if len(key) > KEY_BYTES_MAX or len(records) >= RECORDS_MAX:
                raise DecodeError("persisted consensus state is larger than a replica writes")
            records[bytes(key)] = bytes(value)
        return PersistedState(records)

    def apply(self, record: PersistRecord) -> PersistedState:
        """The state after one ``Persist`` record."""
        records = dict(self.records)
        if record.value is None:
            records.pop(record.key, None)
        else:
            records[record.key] = record.value
        return PersistedState(records)

    def encode(self) -> bytes:
        return encode([[k, self.records[k]] for k in sorted(self.records)])

    @staticmethod
    def decode(data: bytes) -> PersistedState:
        value = decode(data)
        if not isinstance(value, list) or len(value) > RECORDS_MAX:
            raise DecodeError("persisted consensus state must be an array of pairs")
        pairs: list[tuple[bytes, bytes]] = []
        for item in value:
            if (not isinstance(item, list) or len(item) != 2
                    or not isinstance(item[0], bytes) or not isinstance(item[1], bytes)):
                raise DecodeError("persisted consensus state entries are [key, value] bytes")
            pairs.append((item[0], item[1]))
        return PersistedState.from_records(pairs)

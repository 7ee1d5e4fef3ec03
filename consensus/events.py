"""Events into the replica and effects out of it.

Rules:
- Events are frozen dataclasses, each carrying ``now_ms`` (the caller's clock, ms since
  the epoch): the replica has no clock of its own.
- Effects are carried out by the caller in list order. A ``Persist`` must be durable
  before any later effect of the same list is carried out: the replica places it before
  the ``Send``/``Broadcast`` of the vote it protects.
- ``Deliver`` is emitted in strict height order and is at-least-once: after a restart the
  replica re-delivers the committed blocks it persisted above ``executed_height()``; the
  caller ignores a height it already holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.records import Block, CommitCertificate, CommittedBlock, Transaction

# --------------------------------------------------------------------------- timers


class TimerId:
    """Timer identifiers (one timer per id; setting it again moves its deadline)."""

    VIEW = "view"
    """Progress timer: fires a view change when pending work does not commit in time."""
    TICK = "tick"
    """Heartbeat: retransmits this replica's current messages and its status."""
    TRANSFER = "transfer"
    """State-transfer retry: asks another peer when a request went unanswered."""
    GATHER = "gather"
    """End of a primary's wait for more transactions: the block that waited is proposed
    (``Executor.gather_ms_max``)."""


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Start:
    """The replica starts (or restarts from its persisted state)."""

    now_ms: int


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """Bytes from an authenticated peer connection; ``sender`` is the peer's key."""

    now_ms: int
    sender: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class TransactionsAvailable:
    """Transactions admitted by the node's mempool (already validated)."""

    now_ms: int
    txs: tuple[Transaction, ...]


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer set by ``SetTimer`` reached its deadline."""

    now_ms: int
    timer: str


@dataclass(frozen=True, slots=True)
class StateTransferData:
    """Committed blocks fetched from peers (not trusted: every certificate is checked)."""

    now_ms: int
    blocks: tuple[CommittedBlock, ...]


@dataclass(frozen=True, slots=True)
class BlockExecuted:
    """The node executed block ``height`` (a validator set it decided is already in the
    executor's ``validator_history``)."""

    now_ms: int
    height: int
    receipts_root: bytes
    state_root: bytes


Event = (Start | MessageReceived | TransactionsAvailable | TimerFired | StateTransferData
         | BlockExecuted)

# --------------------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` to the validator ``to``."""

    to: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``data`` to every other validator the node is connected to (including a
    validator about to join: it follows the chain from these messages)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PersistRecord:
    """One durable key/value update of the replica's state; ``value=None`` deletes."""

    key: bytes
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Persist:
    """Store ``record`` durably before carrying out any later effect of the same list."""

    record: PersistRecord


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Fire ``TimerFired(timer)`` at ``deadline_ms`` (replacing any earlier deadline)."""

    timer: str
    deadline_ms: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Forget the timer ``timer``."""

    timer: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """Execute and store this committed block: heights arrive strictly in order."""

    block: Block
    certificate: CommitCertificate

    @property
    def height(self) -> int:
        return self.block.header.height


@dataclass(frozen=True, slots=True)
class RequestStateTransfer:
    """This replica is behind: send ``request`` (an encoded ``BlocksRequest``) to one of
    ``peers``; the blocks come back as a ``BlocksResponse`` message (``MessageReceived``)
    or through ``StateTransferData``."""

    from_height: int
    to_height: int
    peers: tuple[bytes, ...]
    request: bytes


@dataclass(frozen=True, slots=True)
class ServeBlocks:
    """A peer asked for blocks: send ``to`` an encoded ``BlocksResponse`` with the
    committed blocks ``from_height..to_height`` the node holds (``encode_blocks_response``)."""

    to: bytes
    from_height: int
    to_height: int


@dataclass(frozen=True, slots=True)
class DropTransactions:
    """These transactions are committed: the mempool may forget them."""

    tx_ids: tuple[bytes, ...]


Effect = (Send | Broadcast | Persist | SetTimer | CancelTimer | Deliver
          | RequestStateTransfer | ServeBlocks | DropTransactions)

"""The execution engine: a block of transactions in, receipts and state changes out.

Rules:
- Deterministic: the only inputs are the state, the block environment and the
  transactions; no clock (``env.time_ms`` is the time), no randomness, no floats; state
  changes come out sorted by key.
- Transactions run in block order, each in its own overlay over the block's overlay: on
  success its writes are merged and its receipt says ``ok``; on a rejection its writes are
  dropped and its receipt carries the rule's stable code and a message for the clerk.
- Replay guard: a transaction whose id an earlier block of the chain already holds, or
  an earlier position of the same block, is refused (``already_committed``) and leaves
  the state untouched; a refused transaction consumes its id too, so the same signed
  bytes are committed once. Which ids earlier blocks hold is the chain's own record,
  handed to ``execute_block`` as ``committed_before`` (a node asks its transaction-id
  index; a replay from genesis keeps a ``RecentCommits``). Guards are not state: written
  in the authenticated tree they cost two leaves per transaction and two more to prune
  them, about two thirds of the tree's work (ADR 0007). Only the expiry horizon matters:
  a transaction is valid only while ``block time <= expiry`` (``ledger.validation``), so
  an id whose expiry has passed can be forgotten by an implementation that keeps ids in
  memory; a refused replay of it is refused as expired before execution.
- Signatures, chain id and expiry are checked before execution by
  ``ledger.validation.check_transaction`` (block validation and mempool): the engine
  trusts them and does not spend time re-verifying.
- A contract bug (an exception other than a rejection) is not swallowed: every correct
  node fails the same way at the same transaction, and halting beats diverging.
- The validator set in force is ``sys/validators``; when a block changes it
  (governance), ``BlockResult.validator_set`` carries the new set.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contracts import (
    deliberations,
    governance,
    identity,
    keys,
    metering,
    notary,
    reports,
    social_aid,
)
from contracts.registry import Context, Registry, Rejection, admit
from contracts.view import BlockEnv, DictState, Overlay, StateView
from ledger.genesis import Genesis
from ledger.records import MESSAGE_BYTES_MAX, U64_MAX, Receipt, Transaction, ValidatorSet
from ledger.validator_history import GOVERNED_PARAMETERS, Governed

__all__ = [
    "REGISTRY",
    "BlockEnv",
    "BlockExecution",
    "BlockResult",
    "CommittedBefore",
    "DictState",
    "Overlay",
    "RecentCommits",
    "StateView",
    "check_admissible",
    "check_schema",
    "execute_block",
    "genesis_changes",
    "validator_set",
]

REGISTRY = Registry((
    identity.CONTRACT,
    governance.CONTRACT,
    deliberations.CONTRACT,
    social_aid.CONTRACT,
    reports.CONTRACT,
    notary.CONTRACT,
    metering.CONTRACT,
))
"""Every contract of a Tabellion network; changing it changes the protocol."""


@dataclass(frozen=True, slots=True)
class BlockResult:
    """What executing a block produced."""

    receipts: tuple[Receipt, ...]
    """One receipt per transaction, in block order."""
    changes: dict[bytes, bytes | None]
    """State writes sorted by key (``None`` deletes), to apply at version = height."""
    validator_set: ValidatorSet | None
    """The new validator set if governance changed it in this block, else ``None``."""
    consensus_params: Governed | None = None
    """The governed consensus parameters (``ledger.validator_history.GOVERNED_PARAMETERS``)
    if governance changed one of them in this block, else ``None``."""


def genesis_changes(genesis: Genesis) -> dict[bytes, bytes | None]:
    """The state at version 0: municipalities, members, validators and parameters."""
    state = Overlay(DictState())
    identity.write_genesis(state, genesis)
    governance.write_genesis(state, genesis)
    return state.changes()


def validator_set(state: StateView) -> ValidatorSet:
    """The validator set in force according to ``state``."""
    return ValidatorSet.of([bytes.fromhex(k) for k in identity.validator_keys(state)])


def consensus_params(state: StateView) -> Governed:
    """The governed consensus parameters according to ``state``."""
    a, b, c = (governance.parameter(state, name) for name in GOVERNED_PARAMETERS)
    return a, b, c


def _clip(message: str) -> str:
    """Fit a message into a receipt (MESSAGE_BYTES_MAX bytes) without splitting a char."""
    data = message.encode("utf-8")
    if len(data) <= MESSAGE_BYTES_MAX:
        return message
    return data[: MESSAGE_BYTES_MAX - 3].decode("utf-8", errors="ignore") + "…"


def _refusal(tx_id: bytes, rejection: Rejection) -> Receipt:
    return Receipt(tx_id, rejection.code, _clip(rejection.message), {})


def _already(tx_id: bytes) -> Receipt:
    return Receipt(tx_id, "already_committed",
                   f"transaction {tx_id.hex()[:16]}… was already committed; "
                   "a signed transaction is recorded once", {})


CommittedBefore = Callable[[bytes], bool]
"""Whether a transaction id is held by a block below the one executing (the replay guard's
question; see the module rules)."""


class RecentCommits:
    """The ids a replay from genesis must remember: those of executed blocks whose
    transaction may still be valid, i.e. whose expiry has not passed the chain's time.
    Memory is bounded by the traffic of the expiry horizon, not by the chain's length.
    Call it as ``committed_before`` and ``record`` every executed block after it."""

    __slots__ = ("_by_expiry", "_expiry")

    def __init__(self) -> None:
        self._expiry: dict[bytes, int] = {}
        self._by_expiry: list[tuple[int, bytes]] = []
        """A min-heap of (expiry, id): forgetting takes the earliest first."""

    def __call__(self, tx_id: bytes) -> bool:
        return tx_id in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    def record(self, time_ms: int, txs: Sequence[Transaction]) -> None:
        """Remember the ids of a block executed at ``time_ms``; forget those expired before
        it: no later block (its time is later) may hold their transactions."""
        while self._by_expiry and self._by_expiry[0][0] < time_ms:
            _, tx_id = heapq.heappop(self._by_expiry)
            del self._expiry[tx_id]
        for tx in txs:
            if tx.tx_id not in self._expiry:
                self._expiry[tx.tx_id] = tx.expiry_ms
                heapq.heappush(self._by_expiry, (tx.expiry_ms, tx.tx_id))


def execute_transaction(block: Overlay, env: BlockEnv, tx: Transaction) -> Receipt:
    """Run one transaction against the block's overlay; merge its writes only if ok. The
    replay guard is the caller's (``execute_block``)."""
    tx_id = tx.tx_id
    scratch = Overlay(block)
    try:
        action, signer = admit(REGISTRY, block, tx, env.height)
        ctx = Context(scratch, env, tx, tx.payload, signer)
        action.validate(ctx)
        data = action.apply(ctx)
    except Rejection as rejection:
        return _refusal(tx_id, rejection)
    block.merge(scratch.changes())
    # Keys in canonical order up front: the receipt is encoded twice (its root, its
    # storage), and an unsorted map sends each encoding down the slow reference path.
    return Receipt(tx_id, "ok", "", dict(sorted(data.items())))


class BlockExecution:
    """``execute_block`` a slice at a time: ``run(count)`` executes up to ``count`` more
    transactions, ``result()`` once ``run`` said every one ran. The one implementation of
    block execution (``execute_block`` runs it in one go), so a node may answer its peers
    between slices of a large block and still compute exactly the same result. ``state``
    must not change while the execution is under way."""

    __slots__ = ("_block", "_committed_before", "_env", "_next", "_params_before",
                 "_receipts", "_seen", "_txs", "_validators_before")

    def __init__(self, state: StateView, env: BlockEnv, txs: Sequence[Transaction],
                 committed_before: CommittedBefore) -> None:
        self._block = Overlay(state)
        self._env = env
        self._txs = txs
        self._committed_before = committed_before
        self._validators_before = self._block.get(keys.VALIDATORS_KEY)
        self._params_before = consensus_params(self._block)
        self._seen: set[bytes] = set()
        self._receipts: list[Receipt] = []
        self._next = 0

    @property
    def height(self) -> int:
        """The height of the block under execution."""
        return self._env.height

    @property
    def done(self) -> bool:
        return self._next >= len(self._txs)

    def run(self, count: int) -> bool:
        """Execute up to ``count`` more transactions in block order; whether all ran."""
        block, env, seen, receipts = self._block, self._env, self._seen, self._receipts
        for tx in self._txs[self._next:self._next + count]:
            self._next += 1
            tx_id = tx.tx_id
            if tx_id in seen or self._committed_before(tx_id):
                receipts.append(_already(tx_id))
                continue
            seen.add(tx_id)
            receipts.append(execute_transaction(block, env, tx))
        return self.done

    def result(self) -> BlockResult:
        if not self.done:
            raise AssertionError("BlockExecution.result() before every transaction ran")
        block = self._block
        changed = block.get(keys.VALIDATORS_KEY) != self._validators_before
        params = consensus_params(block)
        return BlockResult(tuple(self._receipts), block.changes(),
                           validator_set(block) if changed else None,
                           params if params != self._params_before else None)


def execute_block(state: StateView, env: BlockEnv, txs: Sequence[Transaction],
                  committed_before: CommittedBefore) -> BlockResult:
    """Execute ``txs`` in order over ``state`` (left untouched) for the block ``env``;
    ``committed_before`` says which ids blocks below ``env.height`` hold."""
    execution = BlockExecution(state, env, txs, committed_before)
    execution.run(len(txs))
    return execution.result()


def check_admissible(state: StateView, tx: Transaction, time_ms: int) -> Receipt | None:
    """Cheap mempool pre-check, without executing: ``None`` if ``tx`` may be proposed,
    else the rejection receipt (unknown contract or action, signer not enrolled or
    revoked, malformed payload, missing role or wrong municipality). An id already
    committed is the mempool's check (the chain's index), not the state's.
    ``time_ms`` is the node's current time, accepted for rules that depend on it."""
    del time_ms  # no admission rule depends on time yet; expiry is ledger.validation's
    tx_id = tx.tx_id
    try:
        admit(REGISTRY, state, tx, U64_MAX)
    except Rejection as rejection:
        return _refusal(tx_id, rejection)
    return None


def check_schema(tx: Transaction) -> Receipt | None:
    """The stateless part of admission: the contract and action exist and the payload
    fits the action's schema (no unknown field). ``None`` if so, else the rejection.

    It needs no state, so a validator can run it on every transaction of a proposed block
    and refuse to vote for a block carrying one that fails: an unknown field is the one
    way personal data could be written into a block, and only a faulty primary would
    propose such a transaction (honest mempools refuse it through ``check_admissible``)."""
    try:
        REGISTRY.check_schema(tx)
    except Rejection as rejection:
        return _refusal(tx.tx_id, rejection)
    return None

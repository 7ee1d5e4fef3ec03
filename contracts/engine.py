"""The execution engine: a block of transactions in, receipts and state changes out.

Rules:
- Deterministic: the only inputs are the state, the block environment and the
  transactions; no clock (``env.time_ms`` is the time), no randomness, no floats; state
  changes come out sorted by key.
- Transactions run in block order, each in its own overlay over the block's overlay: on
  success its writes are merged and its receipt says ``ok``; on a rejection its writes are
  dropped and its receipt carries the rule's stable code and a message for the clerk.
- Replay guard: before running, the id of every transaction is recorded under
  ``tx/<id hex>`` (value: its expiry); an id already there is refused
  (``already_committed``) and leaves the state untouched. A rejected transaction still
  consumes its id, so the same signed bytes can never be committed twice.
- Guards do not accumulate forever: each id is also filed in the bucket of the hour its
  expiry falls in, and at the start of every block the buckets of the hours that ended
  before the block's hour are deleted with their guards, at most
  ``PRUNED_IDS_PER_BLOCK_MAX`` guards per block (oldest hour first; the next blocks take
  the rest): deleting a busy hour's guards at once would make one block take seconds on
  every validator. A transaction in such a bucket expired before the block's time, so
  ``ledger.validation.check_transaction`` refuses it anyway (its expiry is covered by its
  id: the same id always falls in the same bucket), and a guard kept a little longer
  changes nothing. No new id enters a bucket being pruned: its hour is over, and an
  expired transaction is never executed.
- Signatures, chain id and expiry are checked before execution by
  ``ledger.validation.check_transaction`` (block validation and mempool): the engine
  trusts them and does not spend time re-verifying.
- A contract bug (an exception other than a rejection) is not swallowed: every correct
  node fails the same way at the same transaction, and halting beats diverging.
- The validator set in force is ``sys/validators``; when a block changes it
  (governance), ``BlockResult.validator_set`` carries the new set.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from contracts.registry import Context, Registry, Rejection, admit, check_payload
from contracts.view import BlockEnv, DictState, Overlay, StateView
from ledger.genesis import Genesis
from ledger.records import MESSAGE_BYTES_MAX, U64_MAX, Receipt, Transaction, ValidatorSet
from ledger.validator_history import GOVERNED_PARAMETERS, Governed

__all__ = [
    "REGISTRY",
    "BlockEnv",
    "BlockResult",
    "DictState",
    "Overlay",
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


EXPIRY_BUCKET_MS = 3_600_000
"""Committed ids are pruned by the hour of their expiry."""
PRUNED_IDS_PER_BLOCK_MAX = 1_000
"""Guards one block deletes at most (see the module rules): about the state work of a
block of 700 transactions."""
PRUNED_HOURS_PER_BLOCK_MAX = 1_000
"""Expiry hours one block looks at, at most (a read of an absent bucket each)."""


def _guard(block: Overlay, tx_id: bytes, expiry_ms: int) -> None:
    """Record a committed id, and file it for pruning after it expires."""
    keys.write(block, keys.tx_key(tx_id), expiry_ms)
    hour = expiry_ms // EXPIRY_BUCKET_MS
    count = keys.read(block, keys.expiry_bucket_key(hour)) or 0
    keys.write(block, keys.expiry_item_key(hour, count), tx_id.hex())
    keys.write(block, keys.expiry_bucket_key(hour), count + 1)


def prune_expired(block: Overlay, time_ms: int) -> int:
    """Delete the guards of ids that expired in hours before ``time_ms``'s hour, oldest
    hour first, at most ``PRUNED_IDS_PER_BLOCK_MAX`` of them; return how many. A bucket
    is emptied from its end, its count lowered as it goes, so the next block resumes where
    this one stopped; ``sys/tx_pruned_hour`` moves past a bucket once it is gone. At most
    ``PRUNED_HOURS_PER_BLOCK_MAX`` hours are looked at, so a chain idle for months
    catches up over a few blocks instead of one."""
    now = time_ms // EXPIRY_BUCKET_MS
    hour = keys.read(block, keys.PRUNED_HOUR_KEY)
    if hour is None:
        keys.write(block, keys.PRUNED_HOUR_KEY, now)
        return 0
    if hour >= now:
        return 0
    budget, pruned = PRUNED_IDS_PER_BLOCK_MAX, 0
    last = min(now, hour + PRUNED_HOURS_PER_BLOCK_MAX)
    while hour < last and budget > 0:
        count = keys.read(block, keys.expiry_bucket_key(hour)) or 0
        taken = min(count, budget)
        for n in range(count - taken, count):
            item = keys.expiry_item_key(hour, n)
            block.delete(keys.tx_key(bytes.fromhex(str(keys.read(block, item)))))
            block.delete(item)
        pruned += taken
        budget -= taken
        if taken < count:
            keys.write(block, keys.expiry_bucket_key(hour), count - taken)
            break
        if count:
            block.delete(keys.expiry_bucket_key(hour))
        hour += 1
    keys.write(block, keys.PRUNED_HOUR_KEY, hour)
    return pruned


def execute_transaction(block: Overlay, env: BlockEnv, tx: Transaction) -> Receipt:
    """Run one transaction against the block's overlay; merge its writes only if ok."""
    tx_id = tx.tx_id
    if block.get(keys.tx_key(tx_id)) is not None:
        return _already(tx_id)
    _guard(block, tx_id, tx.expiry_ms)
    scratch = Overlay(block)
    try:
        action, signer = admit(REGISTRY, block, tx, env.height)
        ctx = Context(scratch, env, tx, tx.payload, signer)
        action.validate(ctx)
        data = action.apply(ctx)
    except Rejection as rejection:
        return _refusal(tx_id, rejection)
    block.merge(scratch.changes())
    return Receipt(tx_id, "ok", "", data)


def execute_block(state: StateView, env: BlockEnv, txs: Sequence[Transaction]) -> BlockResult:
    """Execute ``txs`` in order over ``state`` (left untouched) for the block ``env``."""
    block = Overlay(state)
    prune_expired(block, env.time_ms)
    before = block.get(keys.VALIDATORS_KEY)
    params_before = consensus_params(block)
    receipts = tuple(execute_transaction(block, env, tx) for tx in txs)
    changed = block.get(keys.VALIDATORS_KEY) != before
    params = consensus_params(block)
    return BlockResult(receipts, block.changes(), validator_set(block) if changed else None,
                       params if params != params_before else None)


def check_admissible(state: StateView, tx: Transaction, time_ms: int) -> Receipt | None:
    """Cheap mempool pre-check, without executing: ``None`` if ``tx`` may be proposed,
    else the rejection receipt (already committed, unknown contract or action, signer
    not enrolled or revoked, malformed payload, missing role or wrong municipality).
    ``time_ms`` is the node's current time, accepted for rules that depend on it."""
    del time_ms  # no admission rule depends on time yet; expiry is ledger.validation's
    tx_id = tx.tx_id
    if state.get(keys.tx_key(tx_id)) is not None:
        return _already(tx_id)
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
        action = REGISTRY.lookup(tx.contract, tx.action)
        check_payload(action.fields, tx.payload, f"{tx.contract}.{tx.action}")
    except Rejection as rejection:
        return _refusal(tx.tx_id, rejection)
    return None

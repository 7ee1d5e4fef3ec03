"""The mempool: signed transactions waiting for a block.

Rules:
- A transaction is admitted only if it decodes canonically, is for this chain, is not
  expired and does not expire beyond the horizon, is not already committed and not
  already pending, (when the node supplies one) the contracts' admission check passes
  (the signer is enrolled and holds a role, writes for its own municipality, ...), and
  its signature verifies. The signature is checked last: it is the expensive step, and a
  signer nobody enrolled is refused before it. Each refusal has a stable ``code`` and a
  message saying what to fix.
- Bounded: at most ``limits.mempool_txs_max`` transactions and
  ``limits.mempool_bytes_max`` encoded bytes; a full mempool refuses (``mempool_full``)
  rather than evicting work a clerk was promised.
- Load shedding: a client's transaction is refused with ``busy`` (HTTP 429 with
  ``Retry-After``) while the node already holds more pending transactions than it
  commits in ``limits.client_backlog_ms`` at its measured commit rate (never fewer than
  ``limits.client_backlog_txs_min``). The check comes before any signature work: an
  overloaded node keeps its CPU for what it can commit, clients wait instead of timing
  out, and the backlog (hence the latency) stays bounded. Transactions forwarded by
  peers are not refused so (their node admitted them under its own bound).
- Transactions from clients are limited per signer (``limits.api_signer_txs_per_s``,
  ``rate_limited``), charged once the signature verified: only the key's holder can
  spend its budget. Transactions forwarded by peers are not charged again.
- A signature is verified once per node: verified (id, signature) pairs are remembered
  in a bounded LRU, so a transaction forwarded by every peer costs one verification.
- Transactions admitted from clients are queued for forwarding to every validator
  (censorship resistance: a primary that ignores them is replaced by a view change);
  those received from peers are not forwarded again.
- ``feed`` hands each transaction once to the replica (which keeps its own bounded queue
  of pending transactions until they commit); the node feeds as the replica has room.
- ``take`` hands transactions to a proposal and marks them in flight for that height;
  when that height commits, any marked transaction that did not commit is released for
  the next proposal (a view change may have replaced the block).
- Insertion order is proposal order (first come, first served).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ledger.errors import DecodeError
from ledger.lru import Lru
from ledger.records import TX_BYTES_MAX, Transaction
from ledger.validation import TX_EXPIRY_HORIZON_MS_MAX
from node.config import Limits
from node.errors import MempoolRejection
from node.ratelimit import retry_after_header, signer_buckets

COMMIT_RATE_WINDOW_MS = 10_000
"""The commit rate is measured over this much recent time."""
FEED_QUEUE_SLACK = 1024
"""Ids of removed transactions the feed queue may hold before it is rebuilt."""
BUSY_RETRY_S_MAX = 30.0
"""Longest ``Retry-After`` given to a client refused as ``busy``."""

Admissible = Callable[[Transaction, int], tuple[str, str] | None]
"""``admissible(tx, now_ms)`` returns ``(code, message)`` to refuse, ``None`` to admit."""
IsCommitted = Callable[[bytes], bool]


@dataclass(slots=True)
class _Entry:
    tx: Transaction
    encoded: bytes
    proposed_at: int = 0
    """Height of the proposal carrying it, 0 when available."""
    fed: bool = False
    """Handed to the replica (which keeps it until it commits)."""


class CommitRate:
    """Transactions committed per second over the last ``COMMIT_RATE_WINDOW_MS``."""

    def __init__(self) -> None:
        self._commits: deque[tuple[int, int]] = deque()  # (time ms, transactions)
        self._total = 0

    def record(self, now_ms: int, count: int) -> None:
        self._commits.append((now_ms, count))
        self._total += count
        self._forget(now_ms)

    def per_s(self, now_ms: int) -> float:
        self._forget(now_ms)
        return self._total * 1000 / COMMIT_RATE_WINDOW_MS

    def _forget(self, now_ms: int) -> None:
        while self._commits and self._commits[0][0] <= now_ms - COMMIT_RATE_WINDOW_MS:
            self._total -= self._commits.popleft()[1]


class Mempool:
    """Pending transactions of one node."""

    def __init__(
        self,
        chain_id: str,
        limits: Limits,
        is_committed: IsCommitted,
        admissible: Admissible | None = None,
    ) -> None:
        self._chain_id = chain_id
        self._limits = limits
        self._is_committed = is_committed
        self._admissible = admissible
        self._pending: OrderedDict[bytes, _Entry] = OrderedDict()
        self._bytes = 0
        self._unfed = 0
        self._verified: Lru[bytes, None] = Lru(limits.verified_cache_max)
        self._forward: deque[bytes] = deque()
        self._unfed_ids: deque[bytes] = deque()
        """Admission order of the transactions not yet fed (ids no longer pending are
        skipped when met): ``feed`` never rescans what it already handed over."""
        self.commit_rate = CommitRate()
        self._signer_rates = signer_buckets(limits)
        self.verifications = 0
        """Signatures verified (each at most once per (id, signature))."""
        self.rejections = 0

    # ------------------------------------------------------------------ admission
    def admit(self, raw: bytes, now_ms: int, *, forward: bool) -> bytes:
        """Admit canonical transaction bytes; return the id or raise ``MempoolRejection``.
        Admitting a pending transaction again is not an error (idempotent)."""
        if len(raw) > TX_BYTES_MAX:
            self.rejections += 1
            raise MempoolRejection(
                "malformed", f"a transaction is at most {TX_BYTES_MAX} bytes, got {len(raw)}"
            )
        try:
            tx = Transaction.decode(raw)
        except DecodeError as exc:
            self.rejections += 1
            raise MempoolRejection(
                "malformed", f"not a canonical signed transaction: {exc}"
            ) from exc
        return self.admit_tx(tx, raw, now_ms, forward=forward)

    def admit_tx(self, tx: Transaction, raw: bytes, now_ms: int, *, forward: bool) -> bytes:
        tx_id = tx.tx_id
        if tx_id in self._pending:
            return tx_id
        if forward:
            self._shed_load(now_ms)
        try:
            self._check(tx, tx_id, now_ms)
        except MempoolRejection:
            self.rejections += 1
            raise
        if forward:  # a client's submission: the signer's rate (its signature verified)
            wait_s = self._signer_rates.take(tx.signer)
            if wait_s:
                self.rejections += 1
                raise MempoolRejection(
                    "rate_limited",
                    f"signer {tx.signer.hex()[:16]}… submits more than "
                    f"{self._signer_rates.rate_per_s:g} transactions per second; retry in "
                    f"{retry_after_header(wait_s)} s",
                    retry_after_s=wait_s,
                )
        if (len(self._pending) >= self._limits.mempool_txs_max
                or self._bytes + len(raw) > self._limits.mempool_bytes_max):
            self.rejections += 1
            raise MempoolRejection(
                "mempool_full",
                "the node holds as many pending transactions as it may; retry in a few "
                "seconds or submit to another node",
            )
        self._pending[tx_id] = _Entry(tx, raw)
        self._bytes += len(raw)
        self._unfed += 1
        self._unfed_ids.append(tx_id)
        if forward:
            self._forward.append(tx_id)
        return tx_id

    def client_backlog_txs_max(self, now_ms: int) -> int:
        """Pending transactions beyond which clients are asked to come back later."""
        limits = self._limits
        by_rate = int(self.commit_rate.per_s(now_ms) * limits.client_backlog_ms / 1000)
        return min(limits.mempool_txs_max, max(limits.client_backlog_txs_min, by_rate))

    def _shed_load(self, now_ms: int) -> None:
        allowed = self.client_backlog_txs_max(now_ms)
        if len(self._pending) < allowed:
            return
        self.rejections += 1
        # Come back when half of the allowed backlog should be left, at the measured
        # rate (or, before any commit was measured, at the rate the floor stands for).
        rate = max(self.commit_rate.per_s(now_ms),
                   self._limits.client_backlog_txs_min * 1000 / self._limits.client_backlog_ms)
        wait_s = min(BUSY_RETRY_S_MAX, (len(self._pending) - allowed / 2) / rate)
        raise MempoolRejection(
            "busy",
            f"the node already holds {len(self._pending):,} pending transactions, about "
            f"{self._limits.client_backlog_ms / 1000:g} s of what the network commits; "
            f"retry in {retry_after_header(wait_s)} s",
            retry_after_s=wait_s,
        )

    def _check(self, tx: Transaction, tx_id: bytes, now_ms: int) -> None:
        short = tx_id.hex()[:16]
        if tx.chain_id != self._chain_id:
            raise MempoolRejection(
                "wrong_chain",
                f"transaction {short} is for network {tx.chain_id!r}, this node serves "
                f"{self._chain_id!r}: sign it again for this network",
            )
        if tx.expiry_ms < now_ms:
            raise MempoolRejection(
                "expired", f"transaction {short} expired at {tx.expiry_ms} ms (now {now_ms}): "
                "sign it again with a later expiry",
            )
        if tx.expiry_ms > now_ms + TX_EXPIRY_HORIZON_MS_MAX:
            raise MempoolRejection(
                "expiry_too_far", f"transaction {short} expires more than 7 days ahead: "
                "choose an earlier expiry",
            )
        if self._is_committed(tx_id):
            raise MempoolRejection(
                "already_committed", f"transaction {short} is already committed: a signed "
                "transaction commits once; sign a new one (new nonce) to record again",
            )
        # Enrolment (and the rest of the contracts' cheap admission check) before any
        # signature work: a key nobody enrolled must not cost a verification on the event
        # loop consensus shares, nor push verified entries out of the cache.
        if self._admissible is not None:
            refusal = self._admissible(tx, now_ms)
            if refusal is not None:
                raise MempoolRejection(*refusal)
        if not self._signature_ok(tx, tx_id):
            raise MempoolRejection(
                "bad_signature", f"the signature of transaction {short} does not verify: "
                "sign it with the key named as its signer",
            )

    def _signature_ok(self, tx: Transaction, tx_id: bytes) -> bool:
        memo = tx_id + tx.signature
        if self._verified.touch(memo):
            return True
        self.verifications += 1
        if not tx.signature_valid():
            return False
        self._verified.remember(memo, None)
        return True

    def signature_known(self, tx: Transaction) -> bool:
        """Whether this exact signed transaction was verified before (no new work)."""
        return tx.tx_id + tx.signature in self._verified

    def verify_signature(self, tx: Transaction) -> bool:
        """Verify through the cache (used when checking a proposed block)."""
        return self._signature_ok(tx, tx.tx_id)

    # ------------------------------------------------------------------ proposals
    def take(self, txs_max: int, bytes_max: int, now_ms: int, height: int
             ) -> list[Transaction]:
        """Oldest available transactions that fit, marked in flight at ``height``;
        expired ones met on the way are dropped."""
        chosen: list[Transaction] = []
        size = 0
        expired: list[bytes] = []
        for tx_id, entry in self._pending.items():
            if len(chosen) >= txs_max:
                break
            if entry.proposed_at:
                continue
            if entry.tx.expiry_ms < now_ms:
                expired.append(tx_id)
                continue
            if size + len(entry.encoded) > bytes_max:
                break
            entry.proposed_at = height
            chosen.append(entry.tx)
            size += len(entry.encoded)
        self.remove(expired)
        return chosen

    def record_commit(self, now_ms: int, tx_ids: Iterable[bytes]) -> None:
        """A block committed these transactions: they leave, and count in the rate."""
        ids = list(tx_ids)
        self.remove(ids)
        self.commit_rate.record(now_ms, len(ids))

    def committed(self, height: int, tx_ids: Iterable[bytes]) -> None:
        """Block ``height`` committed: drop its transactions and release anything still
        marked for a proposal at or below it."""
        self.remove(tx_ids)
        for entry in self._pending.values():
            if entry.proposed_at and entry.proposed_at <= height:
                entry.proposed_at = 0

    def feed(self, txs_max: int, now_ms: int) -> list[Transaction]:
        """Oldest transactions not yet handed to the replica, marked as handed over (they
        stay until committed); expired ones met on the way are dropped."""
        chosen: list[Transaction] = []
        expired: list[bytes] = []
        while self._unfed_ids and len(chosen) < txs_max:
            tx_id = self._unfed_ids.popleft()
            entry = self._pending.get(tx_id)
            if entry is None or entry.fed:
                continue  # removed (committed, dropped) since it was admitted
            if entry.tx.expiry_ms < now_ms:
                expired.append(tx_id)
                continue
            entry.fed = True
            chosen.append(entry.tx)
        self.remove(expired)
        self._unfed -= len(chosen)
        return chosen

    @property
    def unfed(self) -> int:
        """Transactions admitted but not yet handed to the replica."""
        return self._unfed

    def release_all(self) -> None:
        """Make every in-flight transaction available again (after a view change)."""
        for entry in self._pending.values():
            entry.proposed_at = 0

    def remove(self, tx_ids: Iterable[bytes]) -> None:
        for tx_id in tx_ids:
            entry = self._pending.pop(tx_id, None)
            if entry is not None:
                self._bytes -= len(entry.encoded)
                self._unfed -= not entry.fed
        if len(self._unfed_ids) > 2 * self._unfed + FEED_QUEUE_SLACK:
            # Mostly ids of transactions gone before they were fed: keep it bounded.
            self._unfed_ids = deque(tx_id for tx_id, entry in self._pending.items()
                                    if not entry.fed)

    # ------------------------------------------------------------------ forwarding
    def to_forward(self, txs_max: int) -> list[bytes]:
        """Encoded transactions admitted from clients and not yet forwarded."""
        out: list[bytes] = []
        while self._forward and len(out) < txs_max:
            entry = self._pending.get(self._forward.popleft())
            if entry is not None:
                out.append(entry.encoded)
        return out

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._pending

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, tx_id: bytes) -> Transaction | None:
        entry = self._pending.get(tx_id)
        return None if entry is None else entry.tx

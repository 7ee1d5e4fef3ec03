"""Transaction signatures verified in batches on every core.

Rules:
- ``SignaturePool`` takes ``SignatureJob`` batches from the chain checker, verifies them in
  worker processes (one per core by default) and hands back the failures in order.
- Memory is bounded: at most ``SIGNATURE_BATCHES_IN_FLIGHT_MAX`` batches are queued
  before the caller waits.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from ledger import crypto
from verify.findings import SignatureJob

SIGNATURE_BATCH_TXS = 4096
"""Transaction signatures sent to a worker at once: large enough to amortise the pickling."""
SIGNATURE_BATCHES_IN_FLIGHT_MAX = 8
"""Batches queued in the pool before the reader waits: bounds memory on huge chains."""


def _verify_batch(batch: list[tuple[bytes, bytes, bytes]]) -> list[int]:
    """Worker: the indexes of the signatures in ``batch`` that do not verify."""
    return crypto.invalid_signatures(batch)


class SignaturePool:
    """Verifies signature jobs in batches on every core; failures come back in order."""

    def __init__(self, workers: int | None = None) -> None:
        self._workers = workers if workers is not None else (os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = (
            ProcessPoolExecutor(self._workers) if self._workers > 1 else None)
        self._buffer: list[SignatureJob] = []
        self._in_flight: list[tuple[list[SignatureJob], Future[list[int]]]] = []
        self.verified = 0

    def add(self, jobs: Sequence[SignatureJob]) -> list[SignatureJob]:
        """Queue ``jobs``; return the failures of any batch that has finished."""
        self._buffer.extend(jobs)
        failed: list[SignatureJob] = []
        while len(self._buffer) >= SIGNATURE_BATCH_TXS:
            batch, self._buffer = (self._buffer[:SIGNATURE_BATCH_TXS],
                                   self._buffer[SIGNATURE_BATCH_TXS:])
            failed.extend(self._submit(batch))
        return failed

    def _submit(self, batch: list[SignatureJob]) -> list[SignatureJob]:
        payload = [(j.signer, j.message, j.signature) for j in batch]
        if self._pool is None:
            self.verified += len(batch)
            return [batch[i] for i in _verify_batch(payload)]
        self._in_flight.append((batch, self._pool.submit(_verify_batch, payload)))
        failed: list[SignatureJob] = []
        while len(self._in_flight) > SIGNATURE_BATCHES_IN_FLIGHT_MAX or (
            self._in_flight and self._in_flight[0][1].done()
        ):
            failed.extend(self._collect())
        return failed

    def _collect(self) -> list[SignatureJob]:
        batch, future = self._in_flight.pop(0)
        self.verified += len(batch)
        return [batch[i] for i in future.result()]

    def finish(self) -> list[SignatureJob]:
        """Verify what is left and wait for every batch; return the remaining failures."""
        failed: list[SignatureJob] = []
        if self._buffer:
            batch, self._buffer = self._buffer, []
            failed.extend(self._submit(batch))
        while self._in_flight:
            failed.extend(self._collect())
        return failed

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> SignaturePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def verify_jobs(jobs: Sequence[SignatureJob]) -> list[SignatureJob]:
    """Verify jobs in this process (for small inputs and tests); return the failures."""
    payload = [(j.signer, j.message, j.signature) for j in jobs]
    return [jobs[i] for i in _verify_batch(payload)]



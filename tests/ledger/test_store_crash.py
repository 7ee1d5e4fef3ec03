"""Crash safety of the chain store with a real process killed by SIGKILL.

A child (``tests/ledger/store_crash_child.py``) appends blocks in a loop and prints each height
once ``append`` returned. We kill it with SIGKILL at random moments (seeded), reopen the
store and check: every height from 1 to the head reads back complete (no
``CorruptionError``), every transaction has its index entries, every index entry points
to a stored transaction of that id, signer or contract, and no height the child reported
as committed is lost. The next child continues from the head. A last test checks that a
second process opening a store held by a running child is told why it cannot.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.errors import StoreError
from ledger.layout import CHAIN_PREFIX
from ledger.records import Transaction
from ledger.store import (
    ChainStore,
    TxLocation,
    contract_index_prefix,
    signer_index_prefix,
)

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
SEED = 20261125
DELAY_S_MAX = 0.15
CHILD_TIMEOUT_S = 60.0
"""Generous: a child on a busy 2-core machine can take seconds to import and start."""


class Child:
    """One appending child in its own process group; stdout read by a thread so that
    every wait has a deadline."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.ledger.store_crash_child", str(path),
             str(CHILD_TIMEOUT_S)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)  # end of output

    def first_height(self) -> int:
        """Wait until the child has committed one block; return its height."""
        try:
            line = self.lines.get(timeout=CHILD_TIMEOUT_S)
        except queue.Empty:
            pytest.fail(f"the child committed nothing within {CHILD_TIMEOUT_S} s")
        assert line is not None, f"the child exited ({self.process.poll()}) before a block"
        return int(line)

    def kill(self) -> list[int]:
        """SIGKILL the child's process group; return the heights it reported meanwhile."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=CHILD_TIMEOUT_S)
        self._reader.join(timeout=CHILD_TIMEOUT_S)
        heights = []
        while (line := self.lines.get(timeout=CHILD_TIMEOUT_S)) is not None:
            heights.append(int(line))
        return heights


def _indexed(store: ChainStore, prefix: bytes) -> Iterator[tuple[bytes, TxLocation]]:
    for key, _ in store.kv.prefixed(CHAIN_PREFIX).items(prefix=prefix):
        yield key, TxLocation.from_key(key[-12:])


def _check(path: Path, reported: int) -> int:
    """Check the whole store after a kill; return its head."""
    with ChainStore.open(path, create=False) as store:
        head = store.head_height()
        assert head >= reported, f"block {reported} was reported committed but head is {head}"
        stored: dict[TxLocation, Transaction] = {}
        for height in range(1, head + 1):  # present, complete, checksums and roots intact
            block = store.get(height)
            for index, tx in enumerate(block.block.transactions):
                stored[TxLocation(height, index)] = tx
                assert store.tx_location(tx.tx_id) == TxLocation(height, index)
        # Every index entry points to a stored transaction (a torn batch would leave one
        # pointing past the head), and every transaction has its signer and contract entry.
        tx_entries = 0
        for key, value in store.kv.prefixed(CHAIN_PREFIX + b"t/").items():
            assert stored[TxLocation.from_key(value)].tx_id == key
            tx_entries += 1
        assert tx_entries == len(stored)
        by_signer = {at for _, at in _indexed(store, b"s/")}
        by_contract = {at for _, at in _indexed(store, b"k/")}
        assert by_signer == by_contract == set(stored)
        chain = store.kv.prefixed(CHAIN_PREFIX)
        for at, tx in stored.items():  # ... under the right signer and contract
            assert chain.get(signer_index_prefix(tx.signer) + at.key()) == b""
            assert chain.get(contract_index_prefix(tx.contract) + at.key()) == b""
        return head


def test_the_store_survives_sigkill_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "chain"
    reported = 0
    heads: list[int] = []
    for _ in range(KILLS):
        child = Child(path)
        try:
            first = child.first_height()
            assert first == (heads[-1] if heads else 0) + 1, "the child restarts from the head"
            reported = max(reported, first)
            time.sleep(rng.uniform(0.0, DELAY_S_MAX))  # the kill lands at a random moment
        finally:
            reported = max([reported, *child.kill()])
        heads.append(_check(path, reported))
    assert heads == sorted(heads) and heads[-1] >= KILLS


def test_a_store_held_by_another_process_is_refused_clearly(tmp_path: Path) -> None:
    child = Child(tmp_path / "chain")
    try:
        child.first_height()  # the child holds the LevelDB lock from here on
        with pytest.raises(StoreError, match="is a node already running on this data"):
            ChainStore.open(tmp_path / "chain")
    finally:
        child.kill()
    with ChainStore.open(tmp_path / "chain") as store:  # the lock died with the process
        assert store.head_height() >= 1

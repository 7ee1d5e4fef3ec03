"""Crash safety of the chain store with a real process killed by SIGKILL.

A child appends blocks in a loop and prints each height once ``append`` returned. We kill
it at random moments (seeded), reopen the store and check: the head block is complete and
reads back, every index entry of every block points to its transaction, no height between
1 and the head is missing, and no height the child reported as committed is lost.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger.store import CHAIN_PREFIX, ChainStore

ROOT = Path(__file__).resolve().parent.parent
KILLS = 20
SEED = 20261125
CHILD_TIMEOUT_S = 60.0


def _start(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store_crash_child", str(path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )


def _wait_for_first_append(child: subprocess.Popen[str]) -> int:
    assert child.stdout is not None
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    line = child.stdout.readline()  # blocks until the child committed one block
    assert line, "the child died before committing a block"
    assert time.monotonic() < deadline
    return int(line)


def _check(path: Path, reported: int, *, since: int) -> int:
    """Check the store after a kill; blocks below ``since`` were checked in earlier rounds."""
    with ChainStore.open(path, create=False) as store:
        head = store.head_height()
        assert head >= reported, f"block {reported} was reported committed but head is {head}"
        for block in store.blocks(start=max(1, since)):  # present, intact, indexed
            for index, tx in enumerate(block.block.transactions):
                found = store.transaction(tx.tx_id)
                assert found is not None and found[2].height == block.height
                assert found[2].index == index
        # Every index entry points to a stored transaction: none past the head (a torn
        # batch would leave one), and each names the transaction at its location.
        for key, value in store.kv.prefixed(CHAIN_PREFIX + b"t/").items():
            height = int.from_bytes(value[:8], "big")
            assert 1 <= height <= head, key.hex()
        return head


def test_the_store_survives_sigkill_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "chain"
    reported = 0
    checked = 1
    for _ in range(KILLS):
        child = _start(path)
        try:
            reported = max(reported, _wait_for_first_append(child))
            time.sleep(rng.uniform(0.0, 0.15))
            os.killpg(child.pid, signal.SIGKILL)
            assert child.stdout is not None
            for line in child.stdout.read().split():
                reported = max(reported, int(line))
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=CHILD_TIMEOUT_S)
        head = _check(path, reported, since=checked)
        checked = head
    assert reported >= KILLS  # each round committed at least one block
    _check(path, reported, since=1)  # and finally the whole chain once more

"""Cost of the authenticated state as the chain grows: a block's state changes, on LevelDB.

Run: ``.venv/bin/python -m bench.state_growth [--keys-max 1000000] [--checkpoint 100000]``

Rules: prints figures, asserts nothing about time. The workload is that of the node bench's
social-aid disbursements: every version (block) writes ``--new-keys`` new keys whose key
hashes are effectively random (a payment record per transaction; until replay guards left
the state, ADR 0007, each transaction also wrote a guard and an expiry item: the default
of 400 is still that workload, about 130 transactions a block, or 400 transactions a block
now) and overwrites ``--shared-keys`` keys that every block writes (the scheme totals and
two more); values of 20 to 300 bytes. The
versions go through ``PersistentState.apply`` on a real LevelDB in a temporary directory
(one synced batch per version, as a node writes them).

At every ``--checkpoint`` keys it prints, for the versions since the previous checkpoint:
CPU µs of this process per changed key (``time.process_time``; it includes LevelDB's
background compaction thread), CPU µs of the thread that applies (``time.thread_time``:
the tree's own work, its reads and its batch; on a shared machine the steadiest figure),
wall µs per changed key (wall minus CPU is mostly waiting for fsync or a core), LevelDB
reads of tree nodes per version (counted by a wrapper around the KV that
``PersistentState`` is given, here only), and the process's RSS. ``--profile-at N`` runs
cProfile over the ``--profile-versions`` versions after the tree reached N keys and prints
the top functions by self time (those versions count in the figures, profiler included:
profile in a separate run).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import tempfile
import time
from pathlib import Path

from ledger.kv import KV
from ledger.layout import STATE_NODES_PREFIX
from ledger.state_store import PersistentState

STATE_SPACE = b"s/"
"""The KV space the node gives its state (``ledger.store``): node reads are counted there."""
NODE_READ_PREFIX = STATE_SPACE + STATE_NODES_PREFIX
VALUE_BYTES_MIN = 20
VALUE_BYTES_MAX = 300
PROFILE_LINES_MAX = 30


class CountingKV(KV):
    """A KV that counts its reads of state-tree nodes; views made from it count too."""

    __slots__ = ("counter",)

    def __init__(self, kv: KV, counter: list[int]) -> None:
        super().__init__(kv._db, kv._prefix)
        self.counter = counter

    def prefixed(self, prefix: bytes) -> KV:
        view = KV(self._db, self._prefix + prefix)
        return CountingKV(view, self.counter)

    def get(self, key: bytes) -> bytes | None:
        if (self._prefix + key).startswith(NODE_READ_PREFIX):
            self.counter[0] += 1
        return super().get(key)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _Blocks:
    """The changes of successive blocks: new random keys plus a few shared ones."""

    def __init__(self, seed: int, new_keys: int, shared_keys: int) -> None:
        self.rnd = random.Random(seed)
        self.new_keys = new_keys
        self.shared = [b"aid/bucket/%d" % n for n in range(shared_keys - 1)] + [
            b"aid/scheme/totals"
        ][:shared_keys]
        self.written = 0

    def _value(self) -> bytes:
        return self.rnd.randbytes(self.rnd.randrange(VALUE_BYTES_MIN, VALUE_BYTES_MAX + 1))

    def next(self, height: int) -> dict[bytes, bytes | None]:
        change: dict[bytes, bytes | None] = {}
        del height  # every version's keys are random: the tree's shape is all that matters
        for _ in range(self.new_keys):
            ident = self.rnd.randbytes(16).hex().encode()
            change[b"aid/payment/%s" % ident] = self._value()
        for key in self.shared:
            change[key] = self._value()
        self.written += self.new_keys
        return change


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys-max", type=int, default=1_000_000, help="new keys in all")
    parser.add_argument("--checkpoint", type=int, default=100_000, help="keys between reports")
    parser.add_argument("--new-keys", type=int, default=400, help="new keys per version")
    parser.add_argument("--shared-keys", type=int, default=3, help="keys every version writes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile-at", type=int, default=0, help="profile after N keys")
    parser.add_argument("--profile-versions", type=int, default=100)
    args = parser.parse_args()

    blocks = _Blocks(args.seed, args.new_keys, args.shared_keys)
    changed_per_version = args.new_keys + len(blocks.shared)
    print(
        f"state growth: {args.new_keys} new + {len(blocks.shared)} shared keys per version, "
        f"values {VALUE_BYTES_MIN}-{VALUE_BYTES_MAX} bytes, LevelDB"
    )
    print(
        f"{'keys':>9} {'cpu µs/key':>11} {'thread µs/key':>14} {'wall µs/key':>12} "
        f"{'node reads/version':>19} {'RSS MB':>7}"
    )
    counter = [0]
    with tempfile.TemporaryDirectory(prefix="tabellion-state-growth-") as folder:
        kv = KV.open(Path(folder) / "db")
        try:
            state = PersistentState(CountingKV(kv, counter).prefixed(STATE_SPACE))
            height = 0
            cpu = thread = wall = 0.0
            versions = reads = 0
            next_report = args.checkpoint
            profiler: cProfile.Profile | None = None
            profiled = 0
            while blocks.written < args.keys_max:
                change = blocks.next(height)
                if args.profile_at and profiler is None and blocks.written > args.profile_at:
                    profiler = cProfile.Profile()
                    profiler.enable()
                reads_before = counter[0]
                start_cpu, start = time.process_time(), time.perf_counter()
                start_thread = time.thread_time()
                state.apply(height, change)
                thread += time.thread_time() - start_thread
                cpu += time.process_time() - start_cpu
                wall += time.perf_counter() - start
                reads += counter[0] - reads_before
                versions += 1
                height += 1
                if profiler is not None and profiled < args.profile_versions:
                    profiled += 1
                    if profiled == args.profile_versions:
                        profiler.disable()
                        print(f"-- profile of {profiled} versions after {args.profile_at} keys")
                        stats = pstats.Stats(profiler)
                        stats.sort_stats("tottime").print_stats(PROFILE_LINES_MAX)
                if blocks.written >= next_report or blocks.written >= args.keys_max:
                    keys = versions * changed_per_version
                    print(
                        f"{blocks.written:>9} {cpu / keys * 1e6:>11.1f} "
                        f"{thread / keys * 1e6:>14.1f} "
                        f"{wall / keys * 1e6:>12.1f} {reads / versions:>19.1f} "
                        f"{_rss_mb():>7.0f}",
                        flush=True,
                    )
                    cpu = thread = wall = 0.0
                    versions = reads = 0
                    next_report += args.checkpoint
        finally:
            kv.close()


if __name__ == "__main__":
    main()

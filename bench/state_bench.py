"""Cost of the authenticated state: updates per key, proof size, proof verification.

Run: ``.venv/bin/python -m bench.state_bench [--keys 100000] [--seed 1] [--warm-keys 0]``

Rules: prints figures, asserts nothing about time. A tree of ``--keys`` keys is built
(in memory, and on LevelDB through ``PersistentState`` in a temporary directory), then
batches of 1, 100 and 1000 keys (three quarters overwrites of existing keys, one quarter
new keys) are applied as successive versions; the figures are per key, including
hashing, node encoding and, on LevelDB, the one synced batch per version (fsync) that
holds the nodes and the latest-value index. With ``--warm-keys N``, each batch size is
first applied, unmeasured, until about N keys were written that way: a node applies
versions all day, so its node cache is warm; without it, the first batches after the
build measure a cold cache. Each figure is given as wall time and as CPU
time of this process: on a busy shared machine the CPU figure is the steadier one, and
wall minus CPU is mostly waiting for the disk (fsync) or for a core.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ledger.encoding import encode
from ledger.kv import KV
from ledger.state import MemoryNodeStore, StateProof, StateTree, verify_state_proof
from ledger.state_store import PersistentState

BUILD_CHUNK_KEYS = 10_000
BATCHES = ((0, 50), (1, 200), (100, 20), (1000, 5))  # (keys per version, versions measured)
PROOF_SAMPLES = 1000


def _key(i: int) -> bytes:
    return b"bench/record/%08d" % i


def _value(rnd: random.Random) -> bytes:
    return rnd.randbytes(100)  # about the size of an encoded municipal record's index entry


class _Target:
    """What is measured: something with apply/prove/root over versions."""

    def __init__(
        self,
        name: str,
        apply: Callable[[int, Mapping[bytes, bytes | None]], bytes],
        prove: Callable[[bytes, int], StateProof],
    ) -> None:
        self.name = name
        self.apply = apply
        self.prove = prove


def _build(target: _Target, keys: int, rnd: random.Random) -> tuple[int, float]:
    """Fill the tree with ``keys`` keys; return (next version, µs per key)."""
    version = 0
    start = time.perf_counter()
    for first in range(0, keys, BUILD_CHUNK_KEYS):
        chunk = {_key(i): _value(rnd) for i in range(first, min(keys, first + BUILD_CHUNK_KEYS))}
        target.apply(version, chunk)
        version += 1
    return version, (time.perf_counter() - start) / keys * 1e6


def _updates(
    target: _Target, version: int, keys: int, rnd: random.Random, warm_keys: int
) -> tuple[int, bytes]:
    """Apply the measured batches, print µs per key; return (last version, its root)."""
    next_new = keys
    root = b""
    for batch, rounds in BATCHES:
        timings: list[float] = []
        cpu: list[float] = []
        warm_rounds = warm_keys // batch if batch else 0
        for round_ in range(warm_rounds + rounds):
            change: dict[bytes, bytes | None] = {}
            while len(change) < batch:
                if rnd.random() < 0.25:
                    change[_key(next_new)] = _value(rnd)
                    next_new += 1
                else:
                    change[_key(rnd.randrange(keys))] = _value(rnd)
            start, start_cpu = time.perf_counter(), time.process_time()
            root = target.apply(version, change)
            version += 1
            if round_ < warm_rounds:
                continue
            per = max(batch, 1)
            timings.append((time.perf_counter() - start) / per * 1e6)
            cpu.append((time.process_time() - start_cpu) / per * 1e6)
        what = "empty version (fixed cost)" if batch == 0 else f"update, {batch:>4} keys/version"
        unit = "µs/version" if batch == 0 else "µs/key"
        print(
            f"  {target.name:8} {what:27}: {statistics.median(timings):8.1f} {unit} wall, "
            f"{statistics.median(cpu):8.1f} cpu (median of {rounds} versions)"
        )
    return version - 1, root


def _proofs(target: _Target, root: bytes, version: int, values: Mapping[bytes, bytes]) -> None:
    """Prove and verify present keys (``values``) and as many absent keys."""
    cases: list[tuple[bytes, bytes | None]] = list(values.items())
    cases += [(b"absent/%d" % n, None) for n in range(len(values))]
    stats: dict[bool, tuple[list[int], list[int], list[float]]] = {
        True: ([], [], []),
        False: ([], [], []),
    }
    prove_us: list[float] = []
    for key, value in cases:
        start = time.perf_counter()
        proof = target.prove(key, version)
        prove_us.append((time.perf_counter() - start) * 1e6)
        start = time.perf_counter()
        verify_state_proof(root, key, value, proof)
        elapsed_us = (time.perf_counter() - start) * 1e6
        sizes, siblings, verify_us = stats[value is not None]
        sizes.append(len(encode(proof.to_value())))
        siblings.append(len(proof.siblings))
        verify_us.append(elapsed_us)
    for present, (sizes, siblings, verify_us) in stats.items():
        kind = "inclusion" if present else "absence"
        print(
            f"  {target.name:8} {kind:9} proof: {statistics.mean(sizes):5.0f} bytes encoded "
            f"(max {max(sizes)}), {statistics.mean(siblings):4.1f} siblings, "
            f"verify {statistics.median(verify_us):5.1f} µs (median)"
        )
    print(f"  {target.name:8} build a proof: {statistics.median(prove_us):.1f} µs (median)")


def _run(
    target: _Target,
    keys: int,
    seed: int,
    read: Callable[[bytes], bytes | None],
    warm_keys: int = 0,
) -> None:
    rnd = random.Random(seed)
    version, build_us = _build(target, keys, rnd)
    print(
        f"  {target.name:8} build {keys} keys, {BUILD_CHUNK_KEYS} per version: "
        f"{build_us:.1f} µs/key"
    )
    version, root = _updates(target, version, keys, rnd, warm_keys)
    sample = sorted({_key(rnd.randrange(keys)) for _ in range(PROOF_SAMPLES)})
    values: dict[bytes, bytes] = {}
    start = time.perf_counter()
    for key in sample:
        value = read(key)
        assert value is not None, "every sampled key was written"
        values[key] = value
    read_us = (time.perf_counter() - start) / len(sample) * 1e6
    print(f"  {target.name:8} read the latest value of a key: {read_us:.1f} µs")
    _proofs(target, root, version, values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000, help="keys in the tree")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory-only", action="store_true", help="skip LevelDB")
    parser.add_argument(
        "--warm-keys", type=int, default=0, help="keys applied unmeasured before each batch size"
    )
    args = parser.parse_args()

    print(f"state tree with {args.keys} keys, values of 100 bytes")
    tree = StateTree(MemoryNodeStore())
    memory = _Target("memory", tree.apply, tree.prove)
    _run(memory, args.keys, args.seed, lambda key: _latest_in_tree(tree, key), args.warm_keys)
    if args.memory_only:
        return
    with tempfile.TemporaryDirectory(prefix="tabellion-state-bench-") as folder:
        kv = KV.open(Path(folder) / "db")
        try:
            state = PersistentState(kv.prefixed(b"s/"))
            disk = _Target("leveldb", state.apply, state.prove)
            _run(disk, args.keys, args.seed, state.get_latest, args.warm_keys)
        finally:
            kv.close()


def _latest_in_tree(tree: StateTree, key: bytes) -> bytes | None:
    latest = tree.latest_version()
    assert latest is not None
    return tree.get(key, latest)


if __name__ == "__main__":
    main()

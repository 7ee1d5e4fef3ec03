"""Consensus benchmark: simulated heights committed per second of CPU (n = 4).

Runs the deterministic simulator (testkit/sim) with real Ed25519 signatures on every
message, under a steady load that keeps the primary's window full, once without faults
and once with 20% message loss (plus 10% duplication), and prints the figures. It also
prints how many view changes the 2|2-partition and primary-crash scenarios needed.

    .venv/bin/python -m bench.consensus_bench [--heights 300] [--seeds 5]

Figures are process CPU time of the whole simulation (all four replicas, the network
and the invariant checker), so they are a lower bound on what one replica can do.
"""

from __future__ import annotations

import argparse
import time

from testkit.sim.core import Simulation
from testkit.sim.scenarios import partition_2_2, primary_crash


def heights_per_cpu_second(heights: int, loss: float, seed: int) -> tuple[int, float, int]:
    sim = Simulation(seed, scenario="bench", loss=loss, dup=0.1 if loss else 0.0)
    txs_per_block = sim.params.block_txs_max
    started = time.process_time()
    while sim.heights() < heights:
        if len(sim.submitted) - min(len(n.committed_tx_ids) for n in sim.correct_nodes()) \
                < 4 * txs_per_block:
            sim.submit(2 * txs_per_block)
        sim.run(sim.time - sim.genesis.genesis_time_ms - 1_000 + 50)
    cpu = time.process_time() - started
    return sim.heights(), cpu, sim.view_changes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--heights", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    for loss in (0.0, 0.2):
        heights, cpu, views = heights_per_cpu_second(args.heights, loss, seed=1)
        print(f"n=4 loss={loss:.0%}: {heights} heights in {cpu:.2f} s CPU = "
              f"{heights / cpu:.0f} heights/s (view changes: {views})")
    for name, scenario in (("2|2 partition", partition_2_2), ("primary crash", primary_crash)):
        per_seed = [scenario(seed).view_changes for seed in range(args.seeds)]
        print(f"{name}: view changes before progress resumed, per seed: {per_seed}")


if __name__ == "__main__":
    main()

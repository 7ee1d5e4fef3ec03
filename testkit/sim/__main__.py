"""Soak entry point: ``python -m testkit.sim --seeds N`` runs every scenario on N seeds.

``--scenario NAME --seed S`` replays one run (the command a failure prints).
Exit status 1 if any run broke an invariant; each failure prints its replay command.
"""

from __future__ import annotations

import argparse
import sys
import time

from testkit.sim.core import SimulationFailure
from testkit.sim.scenarios import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testkit.sim", description=__doc__)
    parser.add_argument("--seeds", type=int, default=20, help="seeds per scenario")
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--seed", type=int, help="replay this one seed")
    args = parser.parse_args(argv)
    names = args.scenario or sorted(SCENARIOS)
    seeds = [args.seed] if args.seed is not None else range(
        args.first_seed, args.first_seed + args.seeds)
    runs = steps = failures = 0
    started = time.process_time()
    for seed in seeds:
        for name in names:
            runs += 1
            try:
                result = SCENARIOS[name](seed)
            except SimulationFailure as exc:
                failures += 1
                print(f"FAIL {name} seed={seed}\n{exc}", flush=True)
                continue
            steps += result.steps
            if args.seed is not None:
                print(result)
        if args.seed is None and (seed - args.first_seed + 1) % 25 == 0:
            print(f"... seed {seed}: {runs} runs, {failures} failures, {steps} steps, "
                  f"{time.process_time() - started:.0f} s CPU", flush=True)
    cpu = time.process_time() - started
    print(f"{runs} runs, {runs - failures} without violation, {steps} steps, "
          f"{failures} failures, {cpu:.1f} s CPU")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

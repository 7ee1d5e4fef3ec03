"""``python -m tests.faults [--long | --only NAME,...] [--rounds N] [--seed S]``: the fault
campaign on four
real validators behind TCP proxies; prints each scenario's recovery time and exits 1 if
any check failed (see ``tests.faults.campaign``)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.faults.campaign import Campaign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--long", action="store_true", help="every scenario, not the short list")
    parser.add_argument("--only", metavar="NAME,...", help="these scenarios (names of "
                        f"Campaign.LONG: {', '.join(Campaign.LONG)})")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    scenarios = Campaign.LONG if args.long else Campaign.SHORT
    if args.only:
        scenarios = tuple(args.only.split(","))
        unknown = sorted(set(scenarios) - set(Campaign.LONG))
        if unknown:
            parser.error(f"unknown scenarios {', '.join(unknown)}; choose from "
                         f"{', '.join(Campaign.LONG)}")
    with tempfile.TemporaryDirectory(prefix="tabellion-faults-") as tmp:
        campaign = Campaign(Path(tmp) / "net", seed=args.seed)
        report = campaign.run(scenarios, args.rounds)
    print(f"{report.acknowledged} acknowledged transactions, all on every node; "
          f"height {report.height}" if report.ok else "\n".join(report.problems))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

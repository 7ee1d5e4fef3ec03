"""Four local validator processes: the same driver as ``tabellion bench``.

    python -m bench.node_bench [--duration S] [--batch N] [--clients C] [--rate R] [--json F]

There is one benchmark driver (``cli/bench.py``: throughput, latency, view changes, CPU
per committed transaction, memory, 429s, cores and load); this entry point only runs it,
so the figures of ``make``-style scripts and of ``tabellion bench`` cannot drift apart.
"""

from __future__ import annotations

import sys

from cli.main import app


def main() -> None:
    app(["bench", *sys.argv[1:]], prog_name="python -m bench.node_bench")


if __name__ == "__main__":
    main()

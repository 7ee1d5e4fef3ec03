"""``python -m node --config FILE``: run one validator node until SIGTERM or SIGINT.

Exit codes: 0 after a clean stop, 2 when the configuration, genesis, key or data
directory cannot be used (the one-line message says which and what to do).
"""

from __future__ import annotations

import argparse
import sys

from ledger.errors import LedgerError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node", description=__doc__)
    parser.add_argument("--config", required=True, help="node configuration file (TOML)")
    args = parser.parse_args(argv)
    from node.runtime import run_node  # after parsing: --help needs no FastAPI import

    try:
        run_node(args.config)
    except LedgerError as exc:
        print(f"tabellion node: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from node.runtime import end_process

    end_process(main())

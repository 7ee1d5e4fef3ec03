"""Child process of the crash test: append blocks to a chain store until killed.

Usage: python -m tests.ledger.store_crash_child DATA_DIR [SECONDS_MAX]
It continues from the stored head, appends blocks of ``TXS_PER_BLOCK`` signed notary
anchors (a ledger-only chain of ``testkit.chainbuilder``, certified by a quorum of the
test validators) and prints each height on stdout, flushed, only after ``append`` has
returned. It stops by
itself after ``SECONDS_MAX`` (default 60) so that a parent that died cannot leave it
running forever.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ledger.store import ChainStore
from testkit.chainbuilder import ChainBuilder

TXS_PER_BLOCK = 10
SECONDS_MAX_DEFAULT = 60.0


def main(path: Path, seconds_max: float) -> None:
    deadline = time.monotonic() + seconds_max
    with ChainStore.open(path) as store:
        builder = ChainBuilder(execute=False, after=store.head(), keep_blocks=False)
        while time.monotonic() < deadline:
            store.append(builder.add_anchors(TXS_PER_BLOCK))
            print(builder.height, flush=True)


if __name__ == "__main__":
    main(
        Path(sys.argv[1]),
        float(sys.argv[2]) if len(sys.argv) > 2 else SECONDS_MAX_DEFAULT,
    )

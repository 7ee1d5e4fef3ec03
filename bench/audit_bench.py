"""Audit benchmark: audit rate (transactions per second) over a chain of >= 100,000
transactions, receipt size and receipt verification time.

Usage: .venv/bin/python -m bench.audit_bench [--txs 100000] [--block-txs 1000]
                                             [--workers 0] [--keep DIR]

The chain is generated once with the library (real signatures, contracts, state tree,
certificates; tests/audit/chain.py) into a chain store in a temporary directory, then
audited the way ``tabellion audit --data`` does it. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from cli.audit import EngineReplayer, SignaturePool, run_audit
from cli.receipt import gather_receipt, verify_receipt
from tests.audit.chain import (
    BuilderSource,
    ChainBuilder,
    make_network,
    populate,
    populate_bulk,
    stored_blocks,
)

RECEIPT_RUNS = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--txs", type=int, default=100_000)
    parser.add_argument("--block-txs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    parser.add_argument("--keep", type=Path, default=None,
                        help="generate into this directory and keep it")
    args = parser.parse_args()
    workers = args.workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="tabellion-audit-bench-") as tmp:
        where = args.keep or Path(tmp)
        run(args.txs, args.block_txs, workers, where)


def run(txs: int, block_txs: int, workers: int, where: Path) -> None:
    print(f"cores: {os.cpu_count()}, signature workers: {workers}, data: {where}")
    started = time.perf_counter()
    builder = ChainBuilder(make_network())
    populate(builder, 40)
    populate_bulk(builder, txs, block_txs)
    total = sum(len(b.block.transactions) for b in builder.blocks)
    print(f"generated {builder.height:,} blocks, {total:,} transactions in "
          f"{time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    with SignaturePool(workers) as pool:
        _, report = run_audit(builder.net.genesis, stored_blocks(builder.blocks),
                              EngineReplayer(builder.net.genesis), pool=pool)
    elapsed = time.perf_counter() - started
    print(f"audit (in-memory blocks, replay included): {elapsed:.1f} s, "
          f"{total / elapsed:,.0f} tx/s, intact={report.intact}")

    source = BuilderSource(builder)
    lag = builder.net.genesis.consensus.execution_lag
    block = max(builder.blocks[:-lag], key=lambda b: (len(b.block.transactions), b.height))
    tx_id = block.block.transactions[len(block.block.transactions) // 2].tx_id
    doc = gather_receipt(builder.net.genesis, source, tx_id)
    text = json.dumps(doc, indent=1)
    times = []
    for _ in range(RECEIPT_RUNS):
        t0 = time.perf_counter()
        verify_receipt(builder.net.genesis, json.loads(text))
        times.append(time.perf_counter() - t0)
    print(f"receipt: {len(text.encode()):,} bytes with {len(doc['validator_changes'])} "
          f"validator-set changes, block of {len(block.block.transactions):,} txs; "
          f"verification median {statistics.median(times) * 1000:.2f} ms "
          f"(min {min(times) * 1000:.2f} ms, {RECEIPT_RUNS} runs)")


if __name__ == "__main__":
    main()

"""Audit benchmark: audit rate (transactions per second) over a chain of >= 100,000
transactions, receipt size and receipt verification time.

Usage: .venv/bin/python -m bench.audit_bench [--txs 100000] [--block-txs 1000]
                                             [--workers 0] [--keep DIR]
                                             [--levels chain,full] [--no-receipt]

The chain is generated once with the library (real signatures, contracts, state tree,
certificates; testkit.populate over testkit.chainbuilder) into a chain store in a
temporary directory, then audited the way ``tabellion audit --data`` does it. Figures
are printed, never asserted. It first measures one Ed25519 verification on this machine
(the libsodium call the audit makes): every transaction costs one, so cores / that cost
is the ceiling of level chain.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from ledger.crypto import SigningKey, invalid_signatures
from node.chain import Chain
from testkit.chainbuilder import ChainBuilder, DiskWriter, Network, make_network
from testkit.populate import populate, populate_bulk
from verify.audit import Level, audit_source
from verify.receipt import StoreReceiptSource, gather_receipt, verify_receipt
from verify.sources import DataDirSource

RECEIPT_RUNS = 50
VERIFY_SAMPLE = 2000
"""Signatures verified to measure one verification's cost."""
VERIFY_MESSAGE_BYTES = 300
"""About the signed body of a bench transaction."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--txs", type=int, default=100_000)
    parser.add_argument("--block-txs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    parser.add_argument("--levels", default="chain,full",
                        help="audit levels to run, comma-separated (chain, full)")
    parser.add_argument("--no-receipt", action="store_true",
                        help="skip the receipt figures")
    parser.add_argument("--keep", type=Path, default=None,
                        help="generate into this directory and keep it (reused if it "
                        "already holds a chain)")
    args = parser.parse_args()
    workers = args.workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="tabellion-audit-bench-") as tmp:
        where = args.keep or Path(tmp)
        levels = [Level(name.strip()) for name in args.levels.split(",") if name.strip()]
        run(args.txs, args.block_txs, workers, where, levels, receipt=not args.no_receipt)


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the worker pools)."""
    me, children = (resource.getrusage(resource.RUSAGE_SELF),
                    resource.getrusage(resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def verification_us() -> float:
    """Median CPU microseconds of one Ed25519 verification here (the audit's own call)."""
    keys = [SigningKey.generate() for _ in range(8)]
    items = []
    for i in range(VERIFY_SAMPLE):
        message = os.urandom(VERIFY_MESSAGE_BYTES)
        items.append((keys[i % 8].public_key, message, keys[i % 8].sign(message)))
    runs = []
    for _ in range(5):
        started = time.process_time()
        assert invalid_signatures(items) == []
        runs.append((time.process_time() - started) / VERIFY_SAMPLE * 1e6)
    return statistics.median(runs)


def run(txs: int, block_txs: int, workers: int, where: Path, levels: list[Level],
        *, receipt: bool = True) -> None:
    print(f"cores: {os.cpu_count()}, signature workers: {workers}, load average "
          f"{os.getloadavg()[0]:.1f} (the machine is shared: see the CPU-time figures)")
    per_verify = verification_us()
    cores = os.cpu_count() or 1
    print(f"one Ed25519 verification (libsodium): {per_verify:.0f} us of CPU; with "
          f"{cores} cores at most {cores * 1e6 / per_verify:,.0f} transactions per second "
          "for any audit that verifies every signature")
    data = where / "node0" / "data"
    net = make_network()
    if not data.exists():
        started = time.perf_counter()
        writer = DiskWriter(data, net.genesis, shared_state=True)
        builder = ChainBuilder(net, writer, state_tree=writer.state, keep_blocks=False)
        populate(builder, 40)
        populate_bulk(builder, txs, block_txs)
        writer.close()
        print(f"generated {builder.height:,} blocks, {builder.transactions:,} transactions "
              f"into {data} in {time.perf_counter() - started:.1f} s")
    else:
        print(f"reusing the chain in {data}")

    head = 0
    for level in levels:
        started, cpu = time.perf_counter(), _cpu_s()
        source = DataDirSource(data, decoder=workers > 1)
        copied = time.perf_counter() - started
        head = source.head_height()
        report, _ = audit_source(net.genesis, source, level, workers=workers)
        source.close()
        elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu
        total = report.summary["transactions"]
        print(f"audit --data --level {level.value} of {head:,} blocks, {total:,} "
              f"transactions (copy {copied:.1f} s included): {elapsed:.1f} s wall, "
              f"{total / elapsed:,.0f} tx per wall second; {cpu:.1f} CPU-s in all "
              f"processes, {total / cpu:,.0f} tx per CPU-second ({cpu / total * 1e6:.0f} us "
              f"per tx, {per_verify:.0f} of them the signature); findings="
              f"{report.summary['findings']}, not verifiable: {report.unverifiable}; "
              f"load average now {os.getloadavg()[0]:.1f}")
    if receipt:
        if not head:
            source = DataDirSource(data)
            head = source.head_height()
            source.close()
        receipt_figures(net, data, where, head)


def receipt_figures(net: Network, data: Path, where: Path, builder_height: int) -> None:
    lag = net.genesis.consensus.execution_lag
    receipts = StoreReceiptSource(data)
    block = receipts.committed(builder_height - lag)
    tx_id = block.block.transactions[len(block.block.transactions) // 2].tx_id
    t0 = time.perf_counter()
    doc = gather_receipt(net.genesis, receipts, tx_id)
    gathered = time.perf_counter() - t0
    receipts.close()
    text = json.dumps(doc, indent=1)
    times = []
    for _ in range(RECEIPT_RUNS):
        t0 = time.perf_counter()
        verify_receipt(net.genesis, json.loads(text))
        times.append(time.perf_counter() - t0)
    print(f"receipt: {len(text.encode()):,} bytes ({len(doc['validator_changes'])} "
          f"validator-set changes, block of {len(block.block.transactions):,} txs), "
          f"built in {gathered * 1000:.0f} ms from a data directory (header scan of "
          f"{builder_height:,} blocks); verification median "
          f"{statistics.median(times) * 1000:.2f} ms (min {min(times) * 1000:.2f} ms, "
          f"{RECEIPT_RUNS} runs)")
    # What GET /v1/receipts/{tx_id} does on a node: the history gives the changes.
    copy = where / "node-copy"
    if not copy.exists():
        shutil.copytree(data, copy)
    chain = Chain.open(copy, net.genesis)
    try:
        served = []
        for _ in range(RECEIPT_RUNS):
            t0 = time.perf_counter()
            node_doc = chain.receipt(tx_id)
            served.append(time.perf_counter() - t0)
    finally:
        chain.close()
    assert node_doc == doc, "the node builds the same receipt as the data-directory path"
    print(f"receipt as a node serves it (Chain.receipt, no header scan): median "
          f"{statistics.median(served) * 1000:.1f} ms (min {min(served) * 1000:.1f} ms, "
          f"{RECEIPT_RUNS} runs)")


if __name__ == "__main__":
    main()

"""Ledger core figures: canonical encode/decode, Ed25519 sign/verify, block appends.

Run: .venv/bin/python -m bench.ledger_bench [--blocks N] [--json FILE]
Prints one line per figure. Single-threaded: figures are per core.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ledger import crypto
from ledger.records import Transaction
from ledger.store import ChainStore
from tests.store_crash_child import GENESIS_HASH, SIGNERS, make_block


def _rate(fn: Callable[[], object], seconds: float = 1.5) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        count += 100
    return count / elapsed


def _sample_tx() -> Transaction:
    key = SIGNERS[0]
    payload = {
        "municipality": "21930048000013", "scheme": "aide-rentree-2026", "period": "2026-09",
        "amount_cents": 15000, "beneficiary_tag": "ab" * 32, "reference": "CCAS-2026-0042",
    }
    return Transaction("bench-net", "social_aid", "disburse", payload, key.public_key,
                       123456789, 1_800_000_000_000).signed(key)


def run(blocks: int) -> dict[str, float]:
    tx = _sample_tx()
    data = tx.encode()
    key = SIGNERS[0]
    message = tx.signing_bytes()
    figures = {
        "tx_bytes": float(len(data)),
        "encode_per_s": _rate(tx.encode),
        "decode_per_s": _rate(lambda: Transaction.decode(data)),
        "sign_per_s": _rate(lambda: key.sign(message)),
        "verify_per_s": _rate(lambda: crypto.verify(key.public_key, message, tx.signature)),
    }
    prepared = []
    prev = GENESIS_HASH
    for height in range(1, blocks + 1):
        block = make_block(height, prev, txs_per_block=1000)
        prev = block.block.header.block_hash
        prepared.append(block)
    with tempfile.TemporaryDirectory() as tmp, ChainStore.open(Path(tmp) / "db") as store:
        start = time.perf_counter()
        for block in prepared:
            store.append(block)
        elapsed = time.perf_counter() - start
    figures["append_txs_per_s"] = blocks * 1000 / elapsed
    figures["append_blocks_per_s"] = blocks / elapsed
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=12, help="1,000-tx blocks to append")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    figures = run(args.blocks)
    for name, value in figures.items():
        print(f"{name:>22}: {value:>12,.0f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

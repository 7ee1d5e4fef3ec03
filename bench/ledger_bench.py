"""Ledger core figures: canonical encode/decode, Ed25519 sign/verify, chain store appends.

``encode`` is the canonical encoder on a transaction's value (no cache can help it);
``decode`` is ``Transaction.decode``; ``admit`` is what a node does with every transaction
it receives, besides verifying the signature: decode, compute its id and signing bytes,
and encode it again for forwarding and storage.

Run: .venv/bin/python -m bench.ledger_bench [--blocks N] [--json FILE]
Prints one line per figure. Single-threaded: every rate is for one core, given per
second of wall time and per second of this process's CPU time (on a shared, busy machine
the CPU figure is the one that carries over to an idle core). The store figures use a
fresh LevelDB in a temporary directory; each append is one synced batch (header,
transactions, certificate, receipts, three index entries per transaction, head).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ledger import crypto
from ledger.encoding import encode
from ledger.records import Transaction
from ledger.store import ChainStore
from testkit.chainbuilder import SIGNER_KEYS, ChainBuilder

TXS_PER_BLOCK = 1000
RATE_SECONDS = 1.5


class Clock:
    """Wall and CPU time elapsed since creation."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rates(self, name: str, count: int) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        cpu = max(time.process_time() - self.cpu, 1e-9)
        return {f"{name}_per_s": count / wall, f"{name}_per_cpu_s": count / cpu}


def _rate(name: str, fn: Callable[[], object], seconds: float = RATE_SECONDS
          ) -> dict[str, float]:
    """Calls of ``fn`` per second (wall and CPU) over about ``seconds`` of wall time."""
    count, clock = 0, Clock()
    while time.perf_counter() - clock.wall < seconds:
        for _ in range(100):
            fn()
        count += 100
    return clock.rates(name, count)


def sample_tx() -> Transaction:
    """A social-aid disbursement of about 300 bytes, as a clerk would submit it."""
    key = SIGNER_KEYS[0]
    payload = {
        "municipality": "21930048000015", "scheme": "aide-rentree-2026", "period": "2026-09",
        "amount_cents": 15000, "beneficiary_tag": "ab" * 32, "reference": "CCAS-2026-0042",
    }
    return Transaction("bench-net", "social_aid", "disburse", payload, key.public_key,
                       123456789, 1_800_000_000_000).signed(key)


def admit(data: bytes) -> bytes:
    """Decode a received transaction, then what the node needs of it besides verifying."""
    tx = Transaction.decode(data)
    return tx.signing_bytes() + tx.tx_id + tx.encode()


def codec_and_signatures() -> dict[str, float]:
    tx = sample_tx()
    data = tx.encode()
    key = SIGNER_KEYS[0]
    message = tx.signing_bytes()
    return {
        "tx_bytes": float(len(data)),
        **_rate("encode", lambda: encode(tx.to_value())),
        **_rate("decode", lambda: Transaction.decode(data)),
        **_rate("admit", lambda: admit(data)),
        **_rate("sign", lambda: key.sign(message)),
        **_rate("verify", lambda: crypto.verify(key.public_key, message, tx.signature)),
    }


def store_appends(blocks: int) -> dict[str, float]:
    builder = ChainBuilder(execute=False)
    for _ in range(blocks):  # built (and signed) before the clock starts
        builder.add_anchors(TXS_PER_BLOCK)
    prepared = builder.blocks
    with tempfile.TemporaryDirectory() as tmp:
        with ChainStore.open(Path(tmp) / "db") as store:
            clock = Clock()
            for block in prepared:
                store.append(block)
            appended = clock.rates("append_txs", blocks * TXS_PER_BLOCK)
            appended |= clock.rates("append_blocks", blocks)
        # Read back from a fresh open (no cached blocks): checksums, txs_root, decoding.
        with ChainStore.open(Path(tmp) / "db", create=False) as store:
            clock = Clock()
            for height in range(1, blocks + 1):
                store.get(height)
            read = clock.rates("read_txs", blocks * TXS_PER_BLOCK)
    tx_bytes = sum(len(tx.encode()) for tx in prepared[0].block.transactions)
    return {"block_tx_bytes": float(tx_bytes), **appended, **read}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=12,
                        help=f"{TXS_PER_BLOCK:,}-transaction blocks to append (default 12)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if not 1 <= args.blocks <= 200:
        parser.error("--blocks must be between 1 and 200")
    figures = codec_and_signatures() | store_appends(args.blocks)
    for name, value in figures.items():
        print(f"{name:>24}: {value:>12,.0f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Child process for the crash test: append blocks to a chain store until killed.

Usage: python -m tests.store_crash_child DATA_DIR
It continues from the stored head, appends blocks of 10 signed transactions, and prints
each height on stdout (flushed) only after ``append`` has returned.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ledger.crypto import SigningKey
from ledger.hashing import sha256
from ledger.merkle import EMPTY_ROOT
from ledger.records import (
    Block,
    BlockHeader,
    CommitCertificate,
    CommittedBlock,
    Phase,
    Receipt,
    Transaction,
    ValidatorSet,
    Vote,
)
from ledger.store import ChainStore
from ledger.validation import txs_root

CHAIN_ID = "crash-test"
VALIDATORS = [SigningKey(sha256(b"crash-validator-%d" % i)) for i in range(4)]
VALIDATOR_SET = ValidatorSet.of([k.public_key for k in VALIDATORS])
SIGNERS = [SigningKey(sha256(b"crash-signer-%d" % i)) for i in range(3)]
TXS_PER_BLOCK = 10


def make_block(height: int, prev_hash: bytes, txs_per_block: int = TXS_PER_BLOCK) -> CommittedBlock:
    txs = tuple(
        Transaction(
            CHAIN_ID, "notary", "anchor", {"sha256": f"{height:032x}{i:032x}", "n": i},
            SIGNERS[i % 3].public_key, height * 1000 + i, 2**40,
        ).signed(SIGNERS[i % 3])
        for i in range(txs_per_block)
    )
    header = BlockHeader(
        CHAIN_ID, height, prev_hash, VALIDATOR_SET.primary(0), 0, 1_000 + height,
        txs_root(txs), EMPTY_ROOT, EMPTY_ROOT, VALIDATOR_SET.set_hash,
    )
    votes = [
        Vote.make(k, CHAIN_ID, Phase.COMMIT, 0, height, header.block_hash) for k in VALIDATORS[:3]
    ]
    receipts = tuple(Receipt(tx.tx_id, "ok", "", {"height": height}) for tx in txs)
    return CommittedBlock(Block(header, txs), CommitCertificate.from_votes(votes), receipts)


GENESIS_HASH = sha256(b"crash-genesis")


def main(path: Path) -> None:
    store = ChainStore.open(path)
    while True:
        head = store.head()
        prev = head.block.header.block_hash if head else GENESIS_HASH
        block = make_block(store.head_height() + 1, prev)
        store.append(block)
        print(block.height, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""Builders for test chains: deterministic keys, signed transactions, certified blocks.

Rules:
- Everything is real: transactions are signed by their signer's Ed25519 key, every block
  carries a commit certificate of ``quorum`` COMMIT votes (``Vote.make``,
  ``CommitCertificate.from_votes``) from the four validators below, and ``txs_root`` is
  ``ledger.validation.txs_root``. A block built here passes ``verify_certificate``.
- Everything is deterministic: keys come from fixed seeds, times from the height, so two
  runs (or a parent and its child process) build byte-identical chains.
- No contract is executed: receipts are ``ok`` receipts made up for the store's sake.
  Tests that need executed blocks use the node's or the audit's builders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
from ledger.validation import txs_root

CHAIN_ID = "chainbuilder"
GENESIS_HASH = sha256(b"chainbuilder-genesis")
"""Stands in for a genesis hash: block 1's ``prev_hash``."""
TIME_MS_BASE = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BLOCK_INTERVAL_MS = 1_000
EXPIRY_MS = TIME_MS_BASE + 3 * 24 * 3600 * 1000
"""Every transaction expires three days after the first block: within the 7-day horizon."""


KEY_SEED = b"tabellion-test-key/"


def key_for(name: str, seed: bytes = KEY_SEED) -> SigningKey:
    """A deterministic key for the name (never use such keys outside tests); each test
    kit's chain has its own ``seed``."""
    return SigningKey(sha256(seed + name.encode()))

VALIDATOR_KEYS = tuple(key_for(f"validator-{i}") for i in range(4))
VALIDATOR_SET = ValidatorSet.of([k.public_key for k in VALIDATOR_KEYS])
SIGNER_KEYS = tuple(key_for(f"clerk-{i}") for i in range(3))


def block_time_ms(height: int) -> int:
    return TIME_MS_BASE + height * BLOCK_INTERVAL_MS


def signed_tx(
    signer: SigningKey,
    nonce: int,
    *,
    contract: str = "notary",
    action: str = "anchor",
    payload: dict[str, Any] | None = None,
    chain_id: str = CHAIN_ID,
) -> Transaction:
    """A signed transaction; the default payload anchors a document hash made of the nonce."""
    body = payload if payload is not None else {
        "sha256": f"{nonce:064x}", "doc_type": "arrete", "reference": f"A-{nonce}",
    }
    tx = Transaction(chain_id, contract, action, body, signer.public_key, nonce, EXPIRY_MS)
    return tx.signed(signer)


def certify(header: BlockHeader, voters: Sequence[SigningKey] | None = None) -> CommitCertificate:
    """A commit certificate over ``header`` from ``voters`` (default: a quorum)."""
    chosen = VALIDATOR_KEYS[: VALIDATOR_SET.quorum] if voters is None else voters
    votes = [
        Vote.make(k, header.chain_id, Phase.COMMIT, header.view, header.height,
                  header.block_hash)
        for k in chosen
    ]
    return CommitCertificate.from_votes(votes)


def ok_receipts(txs: Sequence[Transaction], height: int) -> tuple[Receipt, ...]:
    return tuple(
        Receipt(tx.tx_id, "ok", "", {"height": height, "position": i}) for i, tx in enumerate(txs)
    )


def make_block(
    height: int, prev_hash: bytes, txs: Sequence[Transaction], *, view: int = 0
) -> CommittedBlock:
    """A certified block at ``height`` over ``prev_hash`` holding ``txs``, with ok receipts."""
    header = BlockHeader(
        chain_id=CHAIN_ID, height=height, prev_hash=prev_hash,
        proposer=VALIDATOR_SET.primary(view), view=view, time_ms=block_time_ms(height),
        txs_root=txs_root(txs), results_root=EMPTY_ROOT, state_root=EMPTY_ROOT,
        validator_set_hash=VALIDATOR_SET.set_hash,
    )
    return CommittedBlock(Block(header, tuple(txs)), certify(header), ok_receipts(txs, height))


def anchors(height: int, count: int, signers: Sequence[SigningKey] = SIGNER_KEYS
            ) -> list[Transaction]:
    """``count`` distinct anchoring transactions for block ``height``, signers in turn."""
    return [signed_tx(signers[i % len(signers)], height * 100_000 + i) for i in range(count)]


class ChainBuilder:
    """Grows a chain block by block from ``GENESIS_HASH``."""

    def __init__(self) -> None:
        self.blocks: list[CommittedBlock] = []

    @property
    def head_hash(self) -> bytes:
        return self.blocks[-1].block.header.block_hash if self.blocks else GENESIS_HASH

    def add(self, txs: Sequence[Transaction]) -> CommittedBlock:
        block = make_block(len(self.blocks) + 1, self.head_hash, txs)
        self.blocks.append(block)
        return block

    def add_anchors(self, count: int) -> CommittedBlock:
        return self.add(anchors(len(self.blocks) + 1, count))


def chain(blocks: int, txs_per_block: int = 3) -> list[CommittedBlock]:
    """A chain of ``blocks`` blocks of ``txs_per_block`` anchoring transactions each."""
    builder = ChainBuilder()
    for _ in range(blocks):
        builder.add_anchors(txs_per_block)
    return builder.blocks

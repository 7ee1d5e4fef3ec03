"""The one builder of test chains: deterministic keys, a network, certified blocks.

Rules:
- Everything is real: Ed25519 keys from fixed seeds, transactions signed by their
  signer's key, every block certified by a quorum of the validators in force at its
  height (``Vote.make``, ``CommitCertificate.from_votes``), ``txs_root`` from
  ``ledger.validation``. A block built here passes ``verify_certificate``.
- Deterministic: keys come from their names, block times from the height, so the same
  calls (or a parent and its child process) build byte-identical chains.
- Two kinds of chain, one builder. Executed (the default): the contracts engine runs
  every block, the state tree gives the lagged state roots, validator sets change by
  governance and follow ``ledger.validator_history``: the auditor's and the replay's
  material. Ledger-only (``execute=False``): no contract runs, each transaction gets an
  ``ok`` receipt made up for the store's sake and the roots stay empty, so any contract
  name and payload goes: the chain store's material. Such a chain can also be continued
  after a stored head (``after``), as the crash test's child does after each kill.
- What a chain holds (every record type, the validator-set changes, bulk load) is in
  ``testkit.populate``; this module only builds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from contracts.engine import DictState, RecentCommits, execute_block, genesis_changes
from contracts.keys import VALIDATORS_KEY
from contracts.view import BlockEnv
from ledger.crypto import SigningKey
from ledger.encoding import encode
from ledger.genesis import ConsensusParams, Genesis, Member, Municipality
from ledger.hashing import sha256
from ledger.layout import GENESIS_MARK, STATE_PREFIX
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
from ledger.state import MemoryNodeStore, StateProof, StateTree
from ledger.state_store import PersistentState
from ledger.store import ChainStore
from ledger.validation import receipts_root, txs_root
from ledger.validator_history import ValidatorHistory
from verify.findings import StoredBlock

KEY_SEED = b"tabellion-test-key/"
CHAIN_ID = "test-net"
TOWNS = (
    ("Montreuil", "21930048000015"),
    ("Bagnolet", "21930006000015"),
    ("Vincennes", "21940080000013"),
    ("Pantin", "21930055000015"),
)
NEW_TOWN = ("Romainville", "21930063000015")
"""Joins the network by governance in ``testkit.populate``."""
REMOVED_TOWN = TOWNS[3]
"""Leaves the network by governance in ``testkit.populate``."""
GENESIS_TIME_MS = 1_795_000_000_000  # 2026-11-18
BLOCK_SPACING_MS = 7_000
TX_LIFETIME_MS = 3_600_000
ANCHOR_NONCES_PER_BLOCK = 100_000
"""An anchor's nonce is ``height * ANCHOR_NONCES_PER_BLOCK + index``: unique per chain,
and the same whichever process builds the block."""


def key_for(name: str) -> SigningKey:
    """The deterministic key called ``name`` (``validator:<siret>``, ``clerk:<siret>``,
    ``montreuil.clerk``...); never use such keys outside tests."""
    return SigningKey(sha256(KEY_SEED + name.encode()))


SIGNER_KEYS = tuple(key_for(f"clerk:{siret}") for _, siret in TOWNS[:3])
"""The clerks of the first three towns: the anchors' signers, in turn."""
_CLERK_SIRETS = {key_for(f"clerk:{siret}").public_key: siret for _, siret in TOWNS}


@dataclass(frozen=True, slots=True)
class Network:
    genesis: Genesis

    def validator(self, siret: str) -> SigningKey:
        return key_for(f"validator:{siret}")


def make_network(*, checkpoint_interval: int = 8, execution_lag: int = 2) -> Network:
    """Four towns, each with a validator, an admin, a clerk and a social-aid agent."""
    municipalities = tuple(
        Municipality(name, siret, key_for(f"validator:{siret}").public_key, (
            Member(key_for(f"admin:{siret}").public_key, "admin"),
            Member(key_for(f"clerk:{siret}").public_key, "clerk"),
            Member(key_for(f"agent:{siret}").public_key, "social_aid_agent"),
        ))
        for name, siret in TOWNS
    )
    params = ConsensusParams(
        checkpoint_interval=checkpoint_interval,
        watermark_window=4 * checkpoint_interval,
        execution_lag=execution_lag,
    )
    return Network(Genesis(CHAIN_ID, GENESIS_TIME_MS, municipalities, params))


def block_time_ms(height: int) -> int:
    return GENESIS_TIME_MS + height * BLOCK_SPACING_MS


def signed_tx(signer: SigningKey, nonce: int, *, contract: str = "notary",
              action: str = "anchor", payload: dict[str, Any] | None = None,
              expiry_ms: int = block_time_ms(0) + TX_LIFETIME_MS) -> Transaction:
    """A signed transaction of the test network; the default payload anchors a document
    (any ``contract`` goes in a ledger-only chain)."""
    body = payload if payload is not None else anchor_payload(signer, nonce)
    tx = Transaction(CHAIN_ID, contract, action, body, signer.public_key, nonce, expiry_ms)
    return tx.signed(signer)


def anchor_payload(clerk: SigningKey, nonce: int) -> dict[str, Any]:
    """A notarised document of the clerk's town (valid for the notary contract)."""
    siret = _CLERK_SIRETS.get(clerk.public_key)
    if siret is None:
        raise ValueError("an anchor is signed by the clerk of one of TOWNS")
    return {"siret": siret, "sha256": sha256(f"document {nonce}".encode()).hex(),
            "document_type": "arrete", "reference": f"ARR-{nonce}"}


def anchors(height: int, count: int, signers: Sequence[SigningKey] = SIGNER_KEYS
            ) -> list[Transaction]:
    """``count`` distinct notary anchors for block ``height``, signers in turn."""
    expiry_ms = block_time_ms(height) + TX_LIFETIME_MS
    return [signed_tx(signers[i % len(signers)], height * ANCHOR_NONCES_PER_BLOCK + i,
                      expiry_ms=expiry_ms)
            for i in range(count)]


def certify(header: BlockHeader, voters: Sequence[SigningKey]) -> CommitCertificate:
    """A commit certificate over ``header`` from ``voters``."""
    votes = [
        Vote.make(k, header.chain_id, Phase.COMMIT, header.view, header.height,
                  header.block_hash)
        for k in voters
    ]
    return CommitCertificate.from_votes(votes)


def ok_receipts(txs: Sequence[Transaction], height: int) -> tuple[Receipt, ...]:
    return tuple(
        Receipt(tx.tx_id, "ok", "", {"height": height, "position": i}) for i, tx in enumerate(txs)
    )


class TreeLike(Protocol):
    """What the builder needs of a state tree (``StateTree`` and ``PersistentState``)."""

    def apply(self, version: int, changes: Mapping[bytes, bytes | None]) -> bytes: ...

    def get(self, key: bytes, version: int) -> bytes | None: ...

    def prove(self, key: bytes, version: int) -> StateProof: ...


@dataclass
class ChainBuilder:
    """Certifies blocks one after the other, like a network would (executing them unless
    ``execute`` is off)."""

    net: Network = field(default_factory=make_network)
    on_commit: Callable[[CommittedBlock, dict[bytes, bytes | None]], None] | None = None
    """Called with each block and its state changes (a ``DiskWriter`` stores them)."""
    blocks: list[CommittedBlock] = field(default_factory=list)
    state_tree: TreeLike | None = None
    """Where the state tree lives (default: in memory); a ``PersistentState`` works."""
    keep_blocks: bool = True
    """Keep every block in ``blocks`` (the bench turns it off to bound memory)."""
    execute: bool = True
    """Run the contracts; off, a ledger-only chain (see the module's rules)."""
    after: CommittedBlock | None = None
    """Continue a ledger-only chain after this block (a store's head)."""

    def __post_init__(self) -> None:
        g = self.net.genesis
        if self.after is not None and self.execute:
            raise ValueError("only a ledger-only chain can continue after a stored block: "
                             "an executed one needs the state of every block before")
        self.state = DictState()
        self.recent = RecentCommits()
        changes = genesis_changes(g)
        self.state.apply(changes)
        self.tree: TreeLike = (
            self.state_tree if self.state_tree is not None else StateTree(MemoryNodeStore()))
        self.genesis_changes = changes
        self.genesis_root = self.tree.apply(0, changes)
        self._height = 0 if self.after is None else self.after.height
        self._last_hash = (g.genesis_hash if self.after is None
                           else self.after.block.header.block_hash)
        self.time_ms = block_time_ms(self._height)
        self.transactions = 0
        self._results: dict[int, tuple[bytes, bytes]] = {}
        self.history = ValidatorHistory.from_genesis(g)
        self._nonce = 0
        self.validator_changes: list[int] = []
        self.keys_by_public = {
            key_for(f"validator:{siret}").public_key: key_for(f"validator:{siret}")
            for _, siret in (*TOWNS, NEW_TOWN)
        }

    @property
    def height(self) -> int:
        return self._height

    @property
    def head_hash(self) -> bytes:
        """The hash the next block links to (the genesis hash before block 1)."""
        return self._last_hash

    def validators_at(self, height: int) -> ValidatorSet:
        return self.history.at(height)

    def tx(self, who: str, contract: str, action: str, payload: dict[str, Any]) -> Transaction:
        """A transaction signed by ``key_for(who)``, valid for the next block."""
        self._nonce += 1
        return signed_tx(key_for(who), self._nonce, contract=contract, action=action,
                         payload=payload,
                         expiry_ms=self.time_ms + BLOCK_SPACING_MS + TX_LIFETIME_MS)

    def add_block(self, txs: Sequence[Transaction]) -> CommittedBlock:
        g = self.net.genesis
        h = self.height + 1
        self.time_ms += BLOCK_SPACING_MS
        validators = self.validators_at(h)
        if not self.execute:
            results_root, state_root = EMPTY_ROOT, EMPTY_ROOT
        elif h > g.consensus.execution_lag:
            results_root, state_root = self._results.pop(h - g.consensus.execution_lag)
        else:
            results_root, state_root = EMPTY_ROOT, self.genesis_root
        header = BlockHeader(
            g.chain_id, h, self._last_hash, validators.primary(0), 0, self.time_ms,
            txs_root(txs), results_root, state_root, validators.set_hash)
        changes: dict[bytes, bytes | None] = {}
        if self.execute:
            result = execute_block(self.state, BlockEnv(g.chain_id, h, self.time_ms,
                                                        header.proposer), txs, self.recent)
            self.recent.record(self.time_ms, txs)
            changes = dict(result.changes)
            self.state.apply(result.changes)
            receipts = tuple(result.receipts)
            self._results[h] = (receipts_root(receipts), self.tree.apply(h, result.changes))
            if result.validator_set is not None:
                self.history = self.history.record(h, result.validator_set)
                self.validator_changes.append(h)
        else:
            receipts = ok_receipts(txs, h)
        committed = CommittedBlock(Block(header, tuple(txs)), self.certify(header), receipts)
        self._height, self._last_hash = h, header.block_hash
        self.transactions += len(txs)
        if self.keep_blocks:
            self.blocks.append(committed)
        if self.on_commit is not None:
            self.on_commit(committed, changes)
        return committed

    def add_anchors(self, count: int) -> CommittedBlock:
        """A block of ``count`` notary anchors (``anchors``)."""
        return self.add_block(anchors(self.height + 1, count))

    def certify(self, header: BlockHeader, validators: ValidatorSet | None = None,
                signers: list[bytes] | None = None) -> CommitCertificate:
        """A certificate from ``signers`` (default: the first quorum of ``validators``,
        by default the set in force at the header's height)."""
        validators = validators or self.validators_at(header.height)
        chosen = signers if signers is not None else list(validators.keys[:validators.quorum])
        return certify(header, [self.keys_by_public[k] for k in chosen])


def ledger_chain(blocks: int, txs_per_block: int = 3) -> list[CommittedBlock]:
    """A ledger-only chain of ``blocks`` blocks of ``txs_per_block`` anchors each."""
    builder = ChainBuilder(execute=False)
    for _ in range(blocks):
        builder.add_anchors(txs_per_block)
    return builder.blocks


class BuilderSource:
    """A ``verify.receipt.ReceiptSource`` over a builder's blocks and state tree."""

    def __init__(self, builder: ChainBuilder) -> None:
        self.builder = builder

    def head_height(self) -> int:
        return self.builder.height

    def committed(self, height: int) -> CommittedBlock:
        return self.builder.blocks[height - 1]

    def header(self, height: int) -> BlockHeader:
        return self.builder.blocks[height - 1].block.header

    def locate(self, tx_id: bytes) -> int:
        for blk in self.builder.blocks:
            if any(tx.tx_id == tx_id for tx in blk.block.transactions):
                return blk.height
        raise KeyError(tx_id.hex())

    def validators_at(self, version: int) -> tuple[bytes | None, bytes]:
        tree = self.builder.tree
        proof = tree.prove(VALIDATORS_KEY, version)
        return tree.get(VALIDATORS_KEY, version), encode(proof.to_value())


def stored_blocks(blocks: list[CommittedBlock]) -> Iterator[StoredBlock]:
    """The blocks as a source would read them, heights 1..n."""
    for height, blk in enumerate(blocks, start=1):
        yield StoredBlock(height, blk)


class DiskWriter:
    """Writes committed blocks and their state like a node does (node/chain.py): one
    LevelDB with the chain store, the state under ``s/`` and the genesis mark."""

    def __init__(self, path: Path, genesis: Genesis, *, shared_state: bool = False) -> None:
        """With ``shared_state`` the builder uses ``self.state`` as its own tree (one
        write per version instead of two): the writer then leaves the state to it."""
        self.store = ChainStore.open(path)
        self.store.kv.put(GENESIS_MARK, genesis.genesis_hash)
        self.state = PersistentState(self.store.kv.prefixed(STATE_PREFIX))
        self.shared_state = shared_state
        if not shared_state:
            self.state.apply(0, genesis_changes(genesis))

    def __call__(self, committed: CommittedBlock, changes: dict[bytes, bytes | None]) -> None:
        self.store.append(committed)
        if not self.shared_state:
            self.state.apply(committed.height, changes)

    def close(self) -> None:
        self.store.close()

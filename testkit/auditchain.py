"""A populated Tabellion chain built with the library itself (no node): the audit tests'
and the audit benchmark's material.

Rules:
- Everything is real: Ed25519 keys from fixed seeds, transactions signed by enrolled
  members, blocks executed by the contracts engine, state roots from the authenticated
  state tree, commit certificates signed by a quorum of the validators in force, blocks
  appended to a LevelDB chain store.
- Deterministic: the same arguments give the same chain, byte for byte.
- The validator set changes by governance (a fifth municipality is added, one of the
  first four removed) and the schedule follows ``ledger.validator_history``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from contracts.engine import DictState, execute_block, genesis_changes
from contracts.keys import VALIDATORS_KEY
from contracts.social_aid import beneficiary_tag
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
    Receipt,
    Transaction,
    ValidatorSet,
)
from ledger.state import MemoryNodeStore, StateProof, StateTree
from ledger.state_store import PersistentState
from ledger.store import ChainStore
from ledger.validation import receipts_root, txs_root
from ledger.validator_history import ValidatorHistory
from testkit.chainbuilder import certify, key_for
from verify.findings import StoredBlock

SEED = b"tabellion/audit-tests/"
TOWNS = (
    ("Montreuil", "21930048000015"),
    ("Bagnolet", "21930006000015"),
    ("Vincennes", "21940080000013"),
    ("Pantin", "21930055000015"),
)
NEW_TOWN = ("Romainville", "21930063000015")
REMOVED_TOWN = TOWNS[3]
GENESIS_TIME_MS = 1_795_000_000_000  # 2026-11-18
BLOCK_SPACING_MS = 7_000
TX_LIFETIME_MS = 3_600_000
TAG_KEY = b"social-service-secret-key-montreuil"


def key(name: str) -> SigningKey:
    """The fixed key of one role of one town (``validator:<siret>``, ``admin:<siret>``...)."""
    return key_for(name, SEED)


@dataclass(frozen=True, slots=True)
class Network:
    genesis: Genesis

    def validator(self, siret: str) -> SigningKey:
        return key(f"validator:{siret}")


def make_network(*, checkpoint_interval: int = 8, execution_lag: int = 2) -> Network:
    municipalities = tuple(
        Municipality(name, siret, key(f"validator:{siret}").public_key, (
            Member(key(f"admin:{siret}").public_key, "admin"),
            Member(key(f"clerk:{siret}").public_key, "clerk"),
            Member(key(f"agent:{siret}").public_key, "social_aid_agent"),
        ))
        for name, siret in TOWNS
    )
    params = ConsensusParams(
        checkpoint_interval=checkpoint_interval,
        watermark_window=4 * checkpoint_interval,
        execution_lag=execution_lag,
    )
    return Network(Genesis("audit-test-net", GENESIS_TIME_MS, municipalities, params))


class TreeLike(Protocol):
    """What the builder needs of a state tree (``StateTree`` and ``PersistentState``)."""

    def apply(self, version: int, changes: Mapping[bytes, bytes | None]) -> bytes: ...

    def get(self, key: bytes, version: int) -> bytes | None: ...

    def prove(self, key: bytes, version: int) -> StateProof: ...


@dataclass
class ChainBuilder:
    """Executes and certifies blocks one after the other, like a network would."""

    net: Network
    on_commit: Callable[[CommittedBlock, dict[bytes, bytes | None]], None] | None = None
    blocks: list[CommittedBlock] = field(default_factory=list)
    state_tree: TreeLike | None = None
    """Where the state tree lives (default: in memory); a ``PersistentState`` works."""
    keep_blocks: bool = True
    """Keep every block in ``blocks`` (the bench turns it off to bound memory)."""

    def __post_init__(self) -> None:
        g = self.net.genesis
        self.state = DictState()
        changes = genesis_changes(g)
        self.state.apply(changes)
        self.tree: TreeLike = (
            self.state_tree if self.state_tree is not None else StateTree(MemoryNodeStore()))
        self._height = 0
        self._last_hash = g.genesis_hash
        self.transactions = 0
        self.genesis_changes = changes
        self.genesis_root = self.tree.apply(0, changes)
        self._results: dict[int, tuple[bytes, bytes]] = {}
        self.history = ValidatorHistory.from_genesis(g)
        self._validators = g.validator_set
        self._nonce = 0
        self.time_ms = g.genesis_time_ms
        self.validator_changes: list[int] = []
        self.keys_by_public = {
            key(f"validator:{siret}").public_key: key(f"validator:{siret}")
            for _, siret in (*TOWNS, NEW_TOWN)
        }

    @property
    def height(self) -> int:
        return self._height

    def validators_at(self, height: int) -> ValidatorSet:
        return self.history.at(height)

    def tx(self, who: str, contract: str, action: str, payload: dict[str, Any]) -> Transaction:
        signer = key(who)
        self._nonce += 1
        expiry = self.time_ms + BLOCK_SPACING_MS + TX_LIFETIME_MS
        return Transaction(self.net.genesis.chain_id, contract, action, payload,
                           signer.public_key, self._nonce, expiry).signed(signer)

    def add_block(self, txs: list[Transaction]) -> CommittedBlock:
        g = self.net.genesis
        h = self.height + 1
        lag = g.consensus.execution_lag
        self.time_ms += BLOCK_SPACING_MS
        validators = self.validators_at(h)
        results_root, state_root = (
            self._results.pop(h - lag) if h > lag else (EMPTY_ROOT, self.genesis_root))
        prev = self._last_hash
        header = BlockHeader(
            g.chain_id, h, prev, validators.primary(0), 0, self.time_ms, txs_root(txs),
            results_root, state_root, validators.set_hash)
        env = BlockEnv(g.chain_id, h, self.time_ms, header.proposer)
        result = execute_block(self.state, env, txs)
        self.state.apply(result.changes)
        root = self.tree.apply(h, result.changes)
        receipts = tuple(result.receipts)
        self._results[h] = (receipts_root(receipts), root)
        if result.validator_set is not None:
            self.history = self.history.record(h, result.validator_set)
            self.validator_changes.append(h)
        cert = self.certify(header, validators)
        committed = CommittedBlock(Block(header, tuple(txs)), cert, receipts)
        self._height, self._last_hash = h, header.block_hash
        self.transactions += len(txs)
        if self.keep_blocks:
            self.blocks.append(committed)
        if self.on_commit is not None:
            self.on_commit(committed, dict(result.changes))
        return committed

    def certify(self, header: BlockHeader, validators: ValidatorSet,
                signers: list[bytes] | None = None) -> CommitCertificate:
        """A certificate from ``signers`` (default: the first quorum of ``validators``)."""
        chosen = signers if signers is not None else list(validators.keys[:validators.quorum])
        return certify(header, [self.keys_by_public[k] for k in chosen])


def _siret(town: tuple[str, str]) -> str:
    return town[1]


def populate(builder: ChainBuilder, blocks: int) -> None:
    """Fill ``builder`` with ``blocks`` blocks using every record type, with a governance
    addition (a fifth town) and a removal (Pantin) of a validator on the way."""
    b = builder
    first = [_siret(t) for t in TOWNS]
    new = _siret(NEW_TOWN)
    # Enrollment: a second social-aid agent in every town (four eyes).
    b.add_block([
        b.tx(f"admin:{s}", "identity", "enroll",
             {"siret": s, "key": key(f"agent2:{s}").public_key.hex(),
              "roles": ["social_aid_agent"]})
        for s in first
    ])
    # The council decides the aid scheme (ACTES 8.2) and its terms; the admin creates it
    # (transactions of a block run in order, so one block holds all three steps).
    terms = {"budget_cents": 10_000_000, "ceiling_cents": 50_000,
             "four_eyes_threshold_cents": 30_000}
    b.add_block([
        b.tx(f"clerk:{s}", "deliberations", "record_sitting",
             {"COLL_SIRET": s, "sitting_id": "CM-2026-11", "date": "2026-11-18",
              "members_in_office": 15, "members_present": 14, "second_convocation": False})
        for s in first
    ] + [
        b.tx(f"clerk:{s}", "deliberations", "record", {
            "COLL_NOM": dict((s2, t) for t, s2 in TOWNS)[s], "COLL_SIRET": s,
            "DELIB_ID": "2026-AID", "DELIB_DATE": "2026-11-18", "DELIB_MATIERE_CODE": "8.2",
            "DELIB_MATIERE_NOM": "Aide sociale", "DELIB_OBJET": "Création de l'aide énergie",
            "VOTE_EFFECTIF": 15, "VOTE_REEL": 14, "VOTE_POUR": 12, "VOTE_CONTRE": 2,
            "VOTE_ABSTENTION": 0, "act_sha256": sha256(b"aid act").hex(),
            "sitting_id": "CM-2026-11", "order_number": 999, "members_present": 14,
            **{f"aid_{name}": value for name, value in terms.items()}})
        for s in first
    ] + [
        b.tx(f"admin:{s}", "social_aid", "create_scheme",
             {"siret": s, "scheme_id": "energie-2026", "name": "Aide énergie 2026",
              "period_start": "2026-11", "period_end": "2027-03", "decision_ref": "2026-AID",
              **terms})
        for s in first
    ])
    # Governance: Montreuil proposes to add Romainville; Bagnolet and Vincennes approve.
    propose_add = b.tx(f"admin:{first[0]}", "governance", "propose", {
        "siret": first[0], "kind": "add_municipality", "municipality_name": NEW_TOWN[0],
        "municipality_siret": new, "validator_key": key(f"validator:{new}").public_key.hex(),
        "admin_key": key(f"admin:{new}").public_key.hex(), "reason": "joins the network"})
    b.add_block([propose_add])
    b.add_block([
        b.tx(f"admin:{s}", "governance", "approve",
             {"siret": s, "proposal_id": propose_add.tx_id.hex()})
        for s in first[1:3]
    ])
    removal_at = max(blocks // 3, b.height + 30)
    n = 0
    while b.height < blocks:
        n += 1
        h = b.height + 1
        if h == removal_at:
            _remove_pantin(b, first, new)
            continue
        town = first[n % 3]  # Pantin stops writing: it is about to leave
        b.add_block(_records(b, town, n))


def _remove_pantin(b: ChainBuilder, first: list[str], new: str) -> None:
    gone = _siret(REMOVED_TOWN)
    propose = b.tx(f"admin:{first[0]}", "governance", "propose", {
        "siret": first[0], "kind": "remove_municipality", "municipality_siret": gone,
        "reason": "leaves the network"})
    b.add_block([propose])
    b.add_block([
        b.tx(f"admin:{s}", "governance", "approve",
             {"siret": s, "proposal_id": propose.tx_id.hex()})
        for s in (first[1], first[2], new)
    ])


def _records(b: ChainBuilder, siret: str, n: int) -> list[Transaction]:
    """A few records of every kind, varying with ``n``."""
    kind = n % 5
    if kind == 0:
        return [b.tx(f"clerk:{siret}", "deliberations", "record", {
            "COLL_NOM": dict((s, t) for t, s in TOWNS)[siret], "COLL_SIRET": siret,
            "DELIB_ID": f"2026-{n:03d}", "DELIB_DATE": "2026-11-18",
            "DELIB_MATIERE_CODE": "7.1", "DELIB_MATIERE_NOM": "Décisions budgétaires",
            "DELIB_OBJET": f"Budget supplémentaire n°{n}", "VOTE_EFFECTIF": 15,
            "VOTE_REEL": 14, "VOTE_POUR": 12, "VOTE_CONTRE": 2, "VOTE_ABSTENTION": 0,
            "act_sha256": sha256(f"act {n}".encode()).hex(), "sitting_id": "CM-2026-11",
            "order_number": n, "members_present": 14}),
            b.tx(f"clerk:{siret}", "notary", "anchor", {
                "siret": siret, "sha256": sha256(f"minutes {n}".encode()).hex(),
                "document_type": "proces_verbal", "reference": f"PV-2026-{n:03d}"})]
    if kind == 1:
        tag = beneficiary_tag(TAG_KEY, f"CASE-{n:05d}")
        return [b.tx(f"agent:{siret}", "social_aid", "disburse", {
            "siret": siret, "scheme_id": "energie-2026", "period": "2026-11",
            "beneficiary": tag, "amount_cents": 12_000 + n})]
    if kind == 2:
        return [b.tx(f"clerk:{siret}", "reports", "submit", {
            "siret": siret, "service_code": "streetlight",
            "description": f"Lampadaire éteint n°{n}", "lat": 48_861_000 + 100 * n,
            "long": 2_443_000 + 100 * n})]
    if kind == 3:
        return [b.tx(f"clerk:{siret}", "notary", "anchor", {
            "siret": siret, "sha256": sha256(f"arrete {n}".encode()).hex(),
            "document_type": "arrete", "reference": f"ARR-2026-{n:03d}"})]
    # An empty block now and then: networks commit them too.
    return []


def build_chain(blocks: int = 240, *, on_commit: Callable[
        [CommittedBlock, dict[bytes, bytes | None]], None] | None = None,
        net: Network | None = None) -> ChainBuilder:
    builder = ChainBuilder(net or make_network(), on_commit)
    populate(builder, blocks)
    return builder


def all_receipts_ok(builder: ChainBuilder) -> list[Receipt]:
    """Receipts that are not ``ok`` (the tests expect none: the chain is well-formed)."""
    return [r for blk in builder.blocks for r in blk.receipts if not r.ok]




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


def populate_bulk(builder: ChainBuilder, txs: int, block_txs: int) -> None:
    """Add about ``txs`` transactions in blocks of ``block_txs``: notarised documents and
    citizen reports from the clerks of the first three towns (the bench's load)."""
    sirets = [_siret(t) for t in TOWNS[:3]]
    made = 0
    while made < txs:
        batch = []
        for i in range(min(block_txs, txs - made)):
            n = made + i
            siret = sirets[n % 3]
            if n % 4 == 3:
                batch.append(builder.tx(f"clerk:{siret}", "reports", "submit", {
                    "siret": siret, "service_code": "pothole",
                    "description": f"Nid-de-poule n°{n}", "lat": 48_850_000 + n % 10_000,
                    "long": 2_440_000 + n % 10_000}))
            else:
                batch.append(builder.tx(f"clerk:{siret}", "notary", "anchor", {
                    "siret": siret, "sha256": sha256(f"bulk {n}".encode()).hex(),
                    "document_type": "arrete", "reference": f"ARR-{n:07d}"}))
        builder.add_block(batch)
        made += len(batch)


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


def build_on_disk(paths: list[Path], blocks: int, net: Network | None = None) -> ChainBuilder:
    """Build a chain of ``blocks`` blocks and write it into every directory of ``paths``
    (as several nodes of one network would hold it)."""
    net = net or make_network()
    writers = [DiskWriter(p, net.genesis) for p in paths]

    def commit(committed: CommittedBlock, changes: dict[bytes, bytes | None]) -> None:
        for w in writers:
            w(committed, changes)

    try:
        return build_chain(blocks, on_commit=commit, net=net)
    finally:
        for w in writers:
            w.close()

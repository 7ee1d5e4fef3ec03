"""node.chain: execution over the real store and state, crash replay, wrong network."""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import CorruptionError, StoreError
from ledger.kv import KV, Batch
from ledger.merkle import EMPTY_ROOT
from ledger.records import (
    Block,
    BlockHeader,
    CommitCertificate,
    CommitSignature,
    CommittedBlock,
    Transaction,
)
from ledger.validation import receipts_root, txs_root
from node.chain import Chain
from node.devnet import DevNet, generate
from verify.audit import Level, audit_source
from verify.sources import DataDirSource


def _net(tmp_path: Path) -> DevNet:
    return generate(tmp_path / "net", ("Montreuil", "Bagnolet", "Vincennes", "Romainville"))


def _anchors(net: DevNet, height: int, n_txs: int) -> tuple[Transaction, ...]:
    clerk = net.nodes[0].members["clerk"]
    time_ms = net.genesis.genesis_time_ms + 1000 * height
    return tuple(
        Transaction(net.genesis.chain_id, "notary", "anchor",
                    {"siret": net.nodes[0].siret,
                     "sha256": hashlib.sha256(b"%d-%d" % (height, i)).hexdigest(),
                     "document_type": "arrete", "reference": f"A-{height}-{i}"},
                    clerk.public_key, height * 1000 + i, time_ms + 60_000).signed(clerk)
        for i in range(n_txs)
    )


def _block(net: DevNet, chain: Chain, height: int, n_txs: int) -> tuple[Block, CommitCertificate]:
    return _block_of(net, chain, height, _anchors(net, height, n_txs))


def _block_of(net: DevNet, chain: Chain, height: int,
              txs: tuple[Transaction, ...]) -> tuple[Block, CommitCertificate]:
    time_ms = net.genesis.genesis_time_ms + 1000 * height
    results_root, state_root = chain.lagged_roots(height)
    header = BlockHeader(net.genesis.chain_id, height, chain.head_hash(),
                         net.nodes[0].validator_key.public_key, 0, time_ms, txs_root(txs),
                         results_root, state_root, chain.validator_set().set_hash)
    # The chain store checks that the certificate names the header; certificates
    # themselves are verified by the replica, so placeholder signatures do here.
    cert = CommitCertificate(height, 0, header.block_hash,
                             (CommitSignature(bytes(32), bytes(64)),))
    return Block(header, txs), cert


def test_blocks_execute_in_order_and_roots_follow_the_lag(tmp_path: Path) -> None:
    net = _net(tmp_path)
    chain = Chain.open(tmp_path / "data", net.genesis)
    try:
        assert chain.height == 0 and chain.executed_height == 0
        assert chain.lagged_roots(1) == (EMPTY_ROOT, chain.state.root(0))
        executed = [chain.execute(*_block(net, chain, h, 3)) for h in range(1, 7)]
        assert chain.height == chain.executed_height == 6
        assert all(r.code == "ok" for e in executed for r in e.receipts)
        lag = net.genesis.consensus.execution_lag
        assert chain.lagged_roots(6 + 1) == (executed[6 - lag].receipts_root,
                                              executed[6 - lag].state_root)
        block, cert = _block(net, chain, 7, 1)
        with pytest.raises(StoreError):
            chain.execute(replace(block, header=replace(block.header, height=9)), cert)
    finally:
        chain.close()


def test_a_block_executed_in_slices_writes_nothing_until_it_is_finished(
        tmp_path: Path) -> None:
    net = _net(tmp_path)
    chain, twin = Chain.open(tmp_path / "data", net.genesis), Chain.open(tmp_path / "twin",
                                                                       net.genesis)
    try:
        block, cert = _block(net, chain, 1, 5)
        execution = chain.start(block)
        assert not execution.run(2) and not execution.run(2)
        # Mid-block, the node reads the last executed version and stores nothing.
        assert (chain.height, chain.executed_height) == (0, 0)
        assert not any(chain.store.has_tx(tx.tx_id) for tx in block.transactions)
        with pytest.raises(AssertionError):
            chain.finish(block, cert, execution)  # one transaction has not run
        assert execution.run(2)
        executed = chain.finish(block, cert, execution)
        assert executed == twin.execute(block, cert)  # the same as in one go
        assert (chain.height, chain.executed_height) == (1, 1)
        assert chain.state.root(1) == twin.state.root(1)
        later, later_cert = _block(net, chain, 2, 1)
        stale = chain.start(later)
        with pytest.raises(StoreError, match="cannot store block 3"):
            chain.finish(replace(later, header=replace(later.header, height=3)), later_cert,
                         stale)
    finally:
        chain.close()
        twin.close()


def test_lagged_roots_are_the_same_from_memory_and_after_a_restart(tmp_path: Path) -> None:
    net = _net(tmp_path)
    chain = Chain.open(tmp_path / "data", net.genesis)
    lag = net.genesis.consensus.execution_lag
    try:
        for h in range(1, 8):
            chain.execute(*_block(net, chain, h, 2))
        remembered = [chain.lagged_roots(h) for h in range(1, 8 + 1)]
        expected = [(receipts_root(chain.store.get(h - lag).receipts), chain.state.root(h - lag))
                    if h > lag else (EMPTY_ROOT, chain.state.root(0)) for h in range(1, 8 + 1)]
        assert remembered == expected
    finally:
        chain.close()
    reopened = Chain.open(tmp_path / "data", net.genesis)  # nothing in memory: from disk
    try:
        assert [reopened.lagged_roots(h) for h in range(1, 8 + 1)] == remembered
    finally:
        reopened.close()


def test_a_block_and_its_state_cost_one_synced_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = _net(tmp_path)
    chain = Chain.open(tmp_path / "data", net.genesis)
    synced: list[int] = []
    batch = KV.batch

    def counting(self: KV, *, sync: bool = True) -> AbstractContextManager[Batch]:
        synced.append(sync)
        return batch(self, sync=sync)

    monkeypatch.setattr(KV, "batch", counting)
    try:
        for h in range(1, 4):
            chain.execute(*_block(net, chain, h, 5))
        assert synced.count(True) == 3
        block, cert = _block(net, chain, 4, 2)
        wrong = replace(cert, block_hash=bytes(32))  # the store refuses it: nothing lands
        with pytest.raises(StoreError, match="certificate is for another header"):
            chain.execute(block, wrong)
        assert chain.height == chain.executed_height == 3
        with pytest.raises(StoreError, match="no state at height 4"):
            chain.state.root(4)
        chain.execute(block, cert)
        assert chain.height == chain.executed_height == 4
    finally:
        chain.close()


def test_a_joined_batch_must_belong_to_the_same_database(tmp_path: Path) -> None:
    with KV.open(tmp_path / "a") as a, KV.open(tmp_path / "b") as b:
        with a.batch() as batch:
            a.prefixed(b"x/").joined(batch).put(b"k", b"v")
            with pytest.raises(StoreError, match="its own database"):
                b.joined(batch)
        assert a.get(b"x/k") == b"v"


def test_a_block_stored_without_its_state_is_replayed_on_open(tmp_path: Path) -> None:
    """Directories written before blocks and states shared one batch may hold a block
    whose state version never landed (a crash between the two writes)."""
    net = _net(tmp_path)
    reference = Chain.open(tmp_path / "ref", net.genesis)
    chain = Chain.open(tmp_path / "data", net.genesis)
    try:
        for h in (1, 2):
            block, cert = _block(net, chain, h, 2)
            reference.execute(block, cert)
            if h == 1:
                chain.execute(block, cert)
            else:  # the store write lands, the process dies before the state write
                result = chain._run(block).result()
                chain.store.append(CommittedBlock(block, cert, result.receipts))
        assert chain.executed_height == 1 and chain.height == 2
        expected = reference.state.root(2)
    finally:
        chain.close()
        reference.close()
    reopened = Chain.open(tmp_path / "data", net.genesis)
    try:
        assert reopened.executed_height == 2
        assert reopened.state.root(2) == expected
    finally:
        reopened.close()


def test_a_replayed_transaction_is_refused_from_the_chain_index_even_on_reopen(
        tmp_path: Path) -> None:
    """The replay guard is the chain's transaction index: an id an earlier block holds is
    refused. Re-executing a block already stored (on open) must not count the block's
    own ids as earlier, or its stored receipts would not be reproduced."""
    net = _net(tmp_path)
    chain = Chain.open(tmp_path / "data", net.genesis)
    first, fresh = _anchors(net, 1, 1)[0], _anchors(net, 2, 1)[0]
    try:
        chain.execute(*_block_of(net, chain, 1, (first,)))
        block, cert = _block_of(net, chain, 2, (first, fresh))
        result = chain._run(block).result()
        assert [r.code for r in result.receipts] == ["already_committed", "ok"]
        chain.store.append(CommittedBlock(block, cert, result.receipts))  # no state: a crash
    finally:
        chain.close()
    reopened = Chain.open(tmp_path / "data", net.genesis)
    try:
        assert reopened.executed_height == 2
        assert [r.code for r in reopened.store.get(2).receipts] == ["already_committed", "ok"]
    finally:
        reopened.close()


def test_replay_refuses_stored_receipts_it_cannot_reproduce(tmp_path: Path) -> None:
    net = _net(tmp_path)
    chain = Chain.open(tmp_path / "data", net.genesis)
    try:
        block, cert = _block(net, chain, 1, 2)
        result = chain._run(block).result()
        forged = tuple(replace(r, code="forged") for r in result.receipts)
        assert receipts_root(forged) != receipts_root(result.receipts)
        chain.store.append(CommittedBlock(block, cert, forged))
    finally:
        chain.close()
    with pytest.raises(CorruptionError, match="block 1"):
        Chain.open(tmp_path / "data", net.genesis)


def test_a_data_directory_of_another_network_is_refused(tmp_path: Path) -> None:
    Chain.open(tmp_path / "data", _net(tmp_path / "a").genesis).close()
    with pytest.raises(StoreError, match="another network"):
        Chain.open(tmp_path / "data", _net(tmp_path / "b").genesis)


class _Crash(BaseException):
    """The process dies here."""


class _DiesBeforeWriting:
    """A LevelDB whose batches are collected as usual, and the process dies as one is
    about to be written."""

    def __init__(self, db: Any) -> None:
        self._db = db

    def write_batch(self, *, sync: bool) -> Any:
        batch = self._db.write_batch(sync=sync)

        class Dying:
            put, delete = batch.put, batch.delete

            def write(self) -> None:
                raise _Crash

        return Dying()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_a_crash_between_the_tree_write_and_the_block_write_is_replayed_on_open(
        tmp_path: Path) -> None:
    """The state tree's nodes have a LevelDB of their own, written before the block, the
    latest-value index and the version marker (ledger.layout): a crash in between leaves
    nodes above the marker. Here the main LevelDB fails its write after the tree's; the
    block is executed again on open, writes the same nodes, and the root is the one a
    chain that never crashed reached."""
    net = _net(tmp_path)
    reference = Chain.open(tmp_path / "ref", net.genesis)
    chain = Chain.open(tmp_path / "data", net.genesis)
    try:
        block1, cert1 = _block(net, chain, 1, 2)
        for c in (reference, chain):
            c.execute(block1, cert1)
        block2, cert2 = _block(net, chain, 2, 3)
        reference.execute(block2, cert2)
        stores = chain.store.kv._db
        stores.all = (*stores.all[:-1], _DiesBeforeWriting(stores.main))
        with pytest.raises(_Crash):
            chain.execute(block2, cert2)
        expected = reference.state.root(2)
    finally:
        chain.close()
        reference.close()
    with KV.open(tmp_path / "data" / "tree") as tree:  # the nodes of version 2 landed
        assert any(k.startswith(b"s/n/" + (2).to_bytes(8, "big")) for k, _ in tree.items())
    # An auditor finds nothing wrong with the state, and says what it could not judge
    # (this test's certificates carry placeholder signatures: those are findings).
    source = DataDirSource(tmp_path / "data")
    try:
        report = audit_source(net.genesis, source, Level.FULL, workers=1)[0]
    finally:
        source.close()
    assert report.summary["head_height"] == 1
    assert [f for f in report.findings if f["part"] != "certificate"] == []
    assert any("above the head" in reason for reason in report.unverifiable)
    reopened = Chain.open(tmp_path / "data", net.genesis)
    try:
        assert reopened.height == reopened.executed_height == 1
        reopened.execute(block2, cert2)  # the replica delivers the committed block again
        assert reopened.state.root(2) == expected
        assert reopened.state.get_latest(b"no such key") is None
    finally:
        reopened.close()

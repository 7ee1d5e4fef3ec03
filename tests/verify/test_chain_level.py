"""Level chain as ``tabellion audit --data --level chain`` runs it: whole blocks checked in
worker processes (real processes, real signatures, a real LevelDB copy).

The fast paths of this level (one libsodium call per signature, ids and index locations
kept with set and dict operations, the index compared as stored bytes) must report
exactly what the slow paths report: a forged signature, a transaction committed twice,
an index entry missing or pointing elsewhere, each at its height and position."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.encoding import encode_array
from ledger.kv import KV
from ledger.layout import CHAIN_PREFIX, STORES
from ledger.records import CommittedBlock
from ledger.store import TxLocation, block_key, seal
from testkit.chainbuilder import ChainBuilder
from testkit.populate import build_on_disk
from verify.audit import Level, audit_source
from verify.findings import AuditReport
from verify.sources import TX_INDEX_PREFIX, DataDirSource

BLOCKS = 40
WORKERS = 2


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[ChainBuilder, Path]:
    data = tmp_path_factory.mktemp("chain-level") / "node0" / "data"
    return build_on_disk([data], BLOCKS), data


def audit_chain_level(stored: tuple[ChainBuilder, Path], tmp_path: Path,
                      edit: Callable[[KV], None] | None = None) -> AuditReport:
    builder, data = stored
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    if edit is not None:
        with KV.open(copy, routes=STORES) as kv:
            edit(kv)
    source = DataDirSource(copy)
    try:
        return audit_source(builder.net.genesis, source, Level.CHAIN, workers=WORKERS)[0]
    finally:
        source.close()


def busy_block(builder: ChainBuilder) -> CommittedBlock:
    return next(b for b in builder.blocks[20:] if len(b.block.transactions) >= 3)


def test_an_untouched_copy_has_no_finding(stored: tuple[ChainBuilder, Path],
                                          tmp_path: Path) -> None:
    report = audit_chain_level(stored, tmp_path)
    assert report.findings == []
    assert report.summary["transactions"] == sum(
        len(b.block.transactions) for b in stored[0].blocks)


def test_a_forged_signature_is_named_by_transaction_and_position(
    stored: tuple[ChainBuilder, Path], tmp_path: Path
) -> None:
    blk = busy_block(stored[0])
    tx = blk.block.transactions[2]

    def forge(kv: KV) -> None:
        # One bit of the signature, resealed: the checksum is right, the signature is not.
        key = CHAIN_PREFIX + block_key(blk.height, "t")
        body = kv.get(key)
        assert body is not None
        body = body[32:]
        at = body.index(tx.signature) + 10
        kv.put(key, seal(body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1:]))

    report = audit_chain_level(stored, tmp_path, forge)
    signatures = [f for f in report.findings if "signature does not verify" in f["message"]]
    assert [(f["height"], f["tx_id"], f["position"]) for f in signatures] == [
        (blk.height, tx.tx_id.hex(), 2)]


def test_index_entries_missing_or_pointing_elsewhere_are_reported(
    stored: tuple[ChainBuilder, Path], tmp_path: Path
) -> None:
    blk = busy_block(stored[0])
    removed, moved = blk.block.transactions[0], blk.block.transactions[1]

    def edit(kv: KV) -> None:
        chain = kv.prefixed(CHAIN_PREFIX)
        chain.delete(TX_INDEX_PREFIX + removed.tx_id)
        chain.put(TX_INDEX_PREFIX + moved.tx_id, TxLocation(blk.height, 7).key())

    report = audit_chain_level(stored, tmp_path, edit)
    problems = {(f["height"], f["message"]) for f in report.findings}
    assert (blk.height, "the transaction has no index entry") in problems
    assert any(h == blk.height and f"{moved.tx_id.hex()[:16]} points to height "
               f"{blk.height:,}, position 7, but the transaction is at height "
               f"{blk.height:,}, position 1" in p for h, p in problems), problems
    assert len(report.findings) == 2


def test_a_transaction_committed_twice_is_reported_where_it_repeats(
    stored: tuple[ChainBuilder, Path], tmp_path: Path
) -> None:
    builder = stored[0]
    blk = busy_block(builder)
    later = next(b for b in builder.blocks[blk.height:] if b.block.transactions)
    repeated = blk.block.transactions[0]

    def replay(kv: KV) -> None:
        # The later block's stored transactions list now starts with an earlier one.
        key = CHAIN_PREFIX + block_key(later.height, "t")
        txs = (repeated, *later.block.transactions[1:])
        kv.put(key, seal(encode_array([tx.encode() for tx in txs])))

    report = audit_chain_level(stored, tmp_path, replay)
    again = [f for f in report.findings if "already committed" in f["message"]]
    assert [(f["height"], f["tx_id"], f["position"]) for f in again] == [
        (later.height, repeated.tx_id.hex(), 0)]

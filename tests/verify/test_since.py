"""``tabellion audit --since H --point FILE``: a daily audit checks only what is new and
still sees a rewrite of the part audited before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from ledger.kv import KV
from ledger.layout import CHAIN_PREFIX, STATE_PREFIX, STORES
from ledger.records import CommittedBlock
from ledger.state_store import PersistentState
from ledger.store import ChainStore, block_key
from testkit.chainbuilder import BLOCK_SPACING_MS, ChainBuilder, DiskWriter, make_network
from testkit.populate import populate

FIRST, MORE = 44, 12


def audit(data: Path, genesis: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "--data", str(data), "--genesis", str(genesis),
                                      "--no-progress", "--workers", "1", *extra])
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A chain audited at height FIRST (point saved), then grown by MORE blocks, one of
    which replays a transaction committed before the point: a resumed replay must know
    it was committed (the replay guard) without replaying the blocks that hold it."""
    root = tmp_path_factory.mktemp("since")
    data, genesis, point = root / "node0" / "data", root / "genesis.json", root / "point.json"
    net = make_network()
    net.genesis.save(genesis)
    writer = DiskWriter(data, net.genesis)
    builder = ChainBuilder(net, writer)
    populate(builder, FIRST)
    writer.close()
    code, out = audit(data, genesis, "--point", str(point))
    assert code == 0, out
    assert json.loads(point.read_text())["height"] == FIRST
    store = ChainStore.open(data)
    state = PersistentState(store.kv.prefixed(STATE_PREFIX))

    def commit(block: CommittedBlock, changes: dict[bytes, bytes | None]) -> None:
        store.append(block)
        state.apply(block.height, changes)

    builder.on_commit = commit
    old = next(tx for b in store.blocks(1, FIRST + 1) for tx in b.block.transactions
               if tx.expiry_ms > builder.time_ms + (MORE + 1) * BLOCK_SPACING_MS)
    for n in range(MORE):
        if n == MORE // 2:  # a replay of a transaction committed before the point
            assert builder.add_block([old]).receipts[0].code == "already_committed"
        else:
            builder.add_anchors(1)
    store.close()
    return data, genesis, point


def test_a_resumed_audit_checks_only_the_new_blocks_and_moves_the_point(
        grown: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, genesis, saved = grown
    point = tmp_path / "point.json"
    shutil.copy(saved, point)
    for level in ("full", "chain"):
        shutil.copy(saved, point)
        report = tmp_path / f"{level}.json"
        code, out = audit(data, genesis, "--since", str(FIRST + 1), "--point", str(point),
                          "--level", level, "--json", str(report))
        assert code == 0, out
        doc = json.loads(report.read_text())
        assert doc["since"] == FIRST + 1
        assert doc["summary"]["blocks"] == MORE
        assert json.loads(point.read_text())["height"] == FIRST + MORE


def test_a_rewrite_below_the_point_is_reported(grown: tuple[Path, Path, Path],
                                               tmp_path: Path) -> None:
    data, genesis, point = grown
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    with KV.open(copy, routes=STORES) as kv:  # the header at the point replaced by another block's
        other = kv.get(CHAIN_PREFIX + block_key(FIRST - 1, "h"))
        assert other is not None
        kv.put(CHAIN_PREFIX + block_key(FIRST, "h"), other)
    code, out = audit(copy, genesis, "--since", str(FIRST + 1), "--point", str(point))
    assert code == 1, out
    assert f"height {FIRST}" in out and "rewritten" in out


def test_a_damaged_new_block_is_reported_and_the_point_is_kept(
        grown: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, genesis, saved = grown
    point = tmp_path / "point.json"
    shutil.copy(saved, point)
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    with KV.open(copy, routes=STORES) as kv:
        key = CHAIN_PREFIX + block_key(FIRST + 3, "t")
        value = kv.get(key)
        assert value is not None
        kv.put(key, value[:-1] + bytes([value[-1] ^ 1]))
    code, out = audit(copy, genesis, "--since", str(FIRST + 1), "--point", str(point))
    assert code == 1, out
    assert f"height {FIRST + 3}" in out
    assert point.read_text() == saved.read_text()


def test_since_needs_a_point_of_this_network(grown: tuple[Path, Path, Path],
                                             tmp_path: Path) -> None:
    data, genesis, _ = grown
    code, out = audit(data, genesis, "--since", "3")
    assert code == 2 and "--point" in out
    bogus = tmp_path / "bogus.json"
    bogus.write_text("{}")
    code, out = audit(data, genesis, "--since", "3", "--point", str(bogus))
    assert code == 2 and "not an audit point" in out

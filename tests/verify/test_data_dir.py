"""``tabellion audit --data`` and ``receipt get --data`` over real LevelDB directories.

The chain is written into three directories as three nodes of one network hold it. Each
tampering is made directly in a copy's LevelDB (through ``ledger.kv``), and the audit
must report it at the right height, and nothing before it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cli.audit import audit_command
from cli.receipt import receipt_app
from ledger.kv import KV
from ledger.layout import STORES
from ledger.records import CommitCertificate, CommittedBlock
from testkit.chainbuilder import REMOVED_TOWN, ChainBuilder, key_for, make_network
from testkit.populate import build_on_disk
from tests.verify import layout

BLOCKS = 160
ROOT = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> tuple[ChainBuilder, list[Path], Path]:
    root = tmp_path_factory.mktemp("network")
    dirs = [root / f"node{i}" / "data" for i in range(3)]
    builder = build_on_disk(dirs, BLOCKS)
    genesis = root / "genesis.json"
    builder.net.genesis.save(genesis)
    return builder, dirs, genesis


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("audit")(audit_command)
    app.add_typer(receipt_app, name="receipt")
    return app


def audit(data: Path, genesis: Path, report: Path) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(cli(), [
        "audit", "--data", str(data), "--genesis", str(genesis), "--json", str(report),
        "--no-progress", "--workers", "1"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(report.read_text()), result.stdout


def test_every_node_copy_is_intact_and_the_reports_agree(
    network: tuple[ChainBuilder, list[Path], Path], tmp_path: Path
) -> None:
    builder, dirs, genesis = network
    reports = []
    for i, data in enumerate(dirs):
        code, report, out = audit(data, genesis, tmp_path / f"report{i}.json")
        assert code == 0
        assert "intact" in out
        report.pop("source")
        reports.append(report)
    assert all(r == reports[0] for r in reports)
    summary = reports[0]["summary"]
    assert summary["blocks"] == BLOCKS
    assert summary["transactions"] == sum(len(b.block.transactions) for b in builder.blocks)
    assert summary["validator_set_changes"] == 2
    assert reports[0]["findings"] == []


def tamper(network: tuple[ChainBuilder, list[Path], Path], tmp_path: Path,
           edit: Callable[[KV, ChainBuilder], None]) -> list[dict[str, Any]]:
    """Copy node 0's directory, apply ``edit`` to its LevelDB, audit; return findings."""
    builder, dirs, genesis = network
    copy = tmp_path / "copy"
    shutil.copytree(dirs[0], copy)
    kv = KV.open(copy, routes=STORES)
    try:
        edit(kv, builder)
    finally:
        kv.close()
    code, report, out = audit(copy, genesis, tmp_path / "report.json")
    assert code == 1, out
    assert not report["intact"]
    findings: list[dict[str, Any]] = report["findings"]
    return findings


def first_at(findings: list[dict[str, Any]], height: int) -> list[dict[str, Any]]:
    """The findings, after checking that none is before ``height`` and some are at it."""
    assert min(f["height"] for f in findings) == height, findings[:5]
    return [f for f in findings if f["height"] == height]


def _block_with_txs(builder: ChainBuilder, after: int) -> CommittedBlock:
    return next(b for b in builder.blocks[after:] if len(b.block.transactions) >= 2)


def test_a_byte_changed_in_a_stored_transaction(network: Any, tmp_path: Path) -> None:
    blk = _block_with_txs(network[0], 30)
    tx = blk.block.transactions[1]

    def edit(kv: KV, builder: ChainBuilder) -> None:
        layout.flip_inside(kv, layout.block_keys(kv, blk.height), tx.encode(), offset=20)

    found = first_at(tamper(network, tmp_path, edit), blk.height)
    assert any(f["part"] in ("transaction", "block") for f in found), found


def test_a_byte_changed_in_a_header(network: Any, tmp_path: Path) -> None:
    blk = network[0].blocks[49]

    def edit(kv: KV, builder: ChainBuilder) -> None:
        layout.flip_inside(kv, layout.block_keys(kv, blk.height), blk.block.header.encode(),
                           offset=-40)

    found = first_at(tamper(network, tmp_path, edit), 50)
    assert found


def test_a_byte_changed_in_a_certificate_signature(network: Any, tmp_path: Path) -> None:
    blk = network[0].blocks[59]
    signature = blk.certificate.signatures[1].signature

    def edit(kv: KV, builder: ChainBuilder) -> None:
        layout.flip_inside(kv, layout.block_keys(kv, blk.height), signature, offset=5)

    found = first_at(tamper(network, tmp_path, edit), 60)
    assert any(f["part"] in ("certificate", "block") for f in found), found


def test_a_byte_changed_in_a_receipt(network: Any, tmp_path: Path) -> None:
    blk = _block_with_txs(network[0], 70)
    receipt = blk.receipts[0]

    def edit(kv: KV, builder: ChainBuilder) -> None:
        layout.flip_inside(kv, layout.block_keys(kv, blk.height), receipt.encode(), offset=-3)

    found = first_at(tamper(network, tmp_path, edit), blk.height)
    assert any(f["part"] in ("receipt", "block") for f in found), found


def test_a_byte_changed_in_a_state_value(network: Any, tmp_path: Path) -> None:
    builder: ChainBuilder = network[0]
    blk = _block_with_txs(builder, 90)
    anchor = next(tx for tx in blk.block.transactions if tx.contract == "notary")
    state_key = f"notary/{anchor.payload['sha256']}".encode()

    def edit(kv: KV, builder: ChainBuilder) -> None:
        layout.flip_state_value(kv, state_key, blk.height)

    found = first_at(tamper(network, tmp_path, edit), blk.height)
    assert {f["part"] for f in found} == {"state"}
    assert any("notary/" in f["message"] for f in found), found


def test_a_deleted_block(network: Any, tmp_path: Path) -> None:
    def edit(kv: KV, builder: ChainBuilder) -> None:
        for k in layout.block_keys(kv, 100):
            kv.delete(k)

    found = first_at(tamper(network, tmp_path, edit), 100)
    assert any(f["part"] == "block" for f in found), found


def test_two_swapped_blocks(network: Any, tmp_path: Path) -> None:
    def edit(kv: KV, builder: ChainBuilder) -> None:
        layout.swap_blocks(kv, 110, 111)

    findings = tamper(network, tmp_path, edit)
    found = first_at(findings, 110)
    assert found and any(f["height"] == 111 for f in findings)


def _replace_certificate(blk: CommittedBlock, cert: CommitCertificate) -> Callable[
        [KV, ChainBuilder], None]:
    def edit(kv: KV, builder: ChainBuilder) -> None:
        layout.replace_certificate(kv, blk, cert)
    return edit


def test_a_certificate_with_fewer_than_a_quorum(network: Any, tmp_path: Path) -> None:
    builder: ChainBuilder = network[0]
    blk = builder.blocks[119]
    validators = builder.validators_at(120)
    weak = builder.certify(blk.block.header, validators,
                           list(validators.keys[: validators.quorum - 1]))
    found = first_at(tamper(network, tmp_path, _replace_certificate(blk, weak)), 120)
    assert [f["part"] for f in found] == ["certificate"]
    assert "quorum" in found[0]["message"]


def test_a_certificate_signed_by_a_removed_validator(network: Any, tmp_path: Path) -> None:
    builder: ChainBuilder = network[0]
    blk = builder.blocks[139]
    validators = builder.validators_at(140)
    removed = key_for(f"validator:{REMOVED_TOWN[1]}").public_key
    assert removed not in validators.keys
    forged = builder.certify(blk.block.header, validators,
                             sorted([*validators.keys[: validators.quorum - 1], removed]))
    found = first_at(tamper(network, tmp_path, _replace_certificate(blk, forged)), 140)
    assert [f["part"] for f in found] == ["certificate"]
    assert "not a validator at this height" in found[0]["message"]


def test_receipt_get_from_a_data_directory_verifies(
    network: tuple[ChainBuilder, list[Path], Path], tmp_path: Path
) -> None:
    builder, dirs, genesis = network
    blk = _block_with_txs(builder, 120)
    tx_id = blk.block.transactions[0].tx_id.hex()
    out = tmp_path / "receipt.json"
    result = CliRunner().invoke(cli(), ["receipt", "get", tx_id, "--data", str(dirs[1]),
                                        "--genesis", str(genesis), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())["validator_changes"]) == 2
    result = CliRunner().invoke(cli(), ["receipt", "verify", str(out), "--genesis",
                                        str(genesis)])
    assert result.exit_code == 0, result.output
    assert f"height {blk.height:,}" in result.stdout


ENTRY = (
    "import sys, typer; from cli.audit import audit_command; app = typer.Typer(); "
    "app.command()(audit_command); app()"
)


def test_exit_codes_of_a_real_process(
    network: tuple[ChainBuilder, list[Path], Path], tmp_path: Path
) -> None:
    _, dirs, genesis = network

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", ENTRY, *args, "--no-progress"], cwd=ROOT,
            capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, check=False)

    intact = run("--data", str(dirs[2]), "--genesis", str(genesis), "--workers", "2")
    assert intact.returncode == 0, intact.stderr
    assert "intact" in intact.stdout
    missing = run("--data", str(tmp_path / "nowhere"), "--genesis", str(genesis))
    assert missing.returncode == 2
    assert "not a directory" in missing.stderr


def test_usage_errors_and_help_name_the_exit_codes(
    network: tuple[ChainBuilder, list[Path], Path],
) -> None:
    _, dirs, genesis = network
    both = CliRunner().invoke(cli(), ["audit", "--genesis", str(genesis), "--data",
                                      str(dirs[0]), "--node", "http://127.0.0.1:9"])
    assert both.exit_code == 2
    assert "exactly one of --data DIR or --node URL" in both.stderr
    unreachable = CliRunner().invoke(cli(), ["audit", "--genesis", str(genesis), "--node",
                                             "http://127.0.0.1:9", "--no-progress"])
    assert unreachable.exit_code == 2
    assert "cannot reach" in unreachable.stderr
    other = genesis.parent / "other-genesis.json"
    make_network(checkpoint_interval=4).genesis.save(other)
    wrong = CliRunner().invoke(cli(), ["audit", "--genesis", str(other), "--data",
                                       str(dirs[0]), "--no-progress"])
    assert wrong.exit_code == 2
    assert "created for another network" in wrong.stderr
    helped = CliRunner().invoke(cli(), ["audit", "--help"])
    assert helped.exit_code == 0
    assert "Exit codes" in helped.stdout and "0 no finding" in helped.stdout

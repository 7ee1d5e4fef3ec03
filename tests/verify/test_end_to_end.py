"""The auditor's tools against four real validator processes on 127.0.0.1.

Records are committed through the node's API; then ``audit --node`` and ``receipt get
--node`` run against a live node, and after a clean stop ``audit --data`` runs on every
node's data directory: all four reports agree."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cli.audit import audit_command
from cli.receipt import receipt_app
from ledger.records import Transaction
from testkit.wait import wait_for
from tests.node.cluster import Cluster

COMMIT_DEADLINE_S = 180
RECORDS = 8


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("audit")(audit_command)
    app.add_typer(receipt_app, name="receipt")
    return app


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    with c:  # all nodes started and answering; every process killed on exit
        yield c


def _commit(c: Cluster, i: int) -> Transaction:
    tx = c.anchor(i % 4)
    r = c.submit(i % 4, [tx])
    assert r.status_code == 202, r.text
    return tx


def test_audit_and_receipts_through_real_nodes(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    genesis = c.net.genesis_path
    txs = [_commit(c, i) for i in range(RECORDS)]
    wait_for(lambda: all(c.committed(0, tx) for tx in txs), COMMIT_DEADLINE_S,
             "the records to commit")
    target = txs[-1]
    found = c.get(0, f"/v1/transactions/{target.tx_id.hex()}").json()
    lag = c.net.genesis.consensus.execution_lag
    # The receipt of a record is certified D blocks later: keep recording until then.
    n = RECORDS
    while c.height(0) < found["height"] + lag:
        extra = _commit(c, n)
        n += 1
        wait_for(partial(c.committed, 0, extra), COMMIT_DEADLINE_S, "a record")

    live = CliRunner().invoke(cli(), [
        "audit", "--node", c.url(0, ""), "--genesis", str(genesis), "--no-progress",
        "--workers", "1"])
    assert live.exit_code == 0, live.output
    assert "intact" in live.stdout

    out = tmp_path / "receipt.json"
    got = CliRunner().invoke(cli(), [
        "receipt", "get", target.tx_id.hex(), "--node", c.url(1, ""), "--genesis",
        str(genesis), "--out", str(out)])
    assert got.exit_code == 0, got.output
    checked = CliRunner().invoke(cli(), ["receipt", "verify", str(out), "--genesis",
                                         str(genesis)])
    assert checked.exit_code == 0, checked.output
    assert f"height {found['height']:,}" in checked.stdout
    assert "certified by" in checked.stdout and "of 4 municipalities" in checked.stdout
    # The node served the whole receipt in one answer (no block was downloaded).
    served = c.get(1, f"/v1/receipts/{target.tx_id.hex()}")
    assert served.status_code == 200
    assert served.json() == json.loads(out.read_text())
    assert c.get(2, f"/v1/receipts/{'00' * 32}").status_code == 404
    changes = c.get(2, "/v1/validators/changes").json()
    assert changes["validator_changes"] == [] and changes["up_to"] >= found["height"]

    # Stop every node once they hold the same head and the chain is settled (an idle
    # primary adds at most D empty blocks after the last busy one), then audit each copy.
    lag = c.net.genesis.consensus.execution_lag

    def settled() -> bool:
        heads = {c.height(i) for i in range(4)}
        if len(heads) != 1:
            return False
        head = heads.pop()
        return all(not c.get(0, f"/v1/blocks/{h}").json()["transactions"]
                   for h in range(max(1, head - lag + 1), head + 1))

    wait_for(settled, COMMIT_DEADLINE_S, "the four nodes to reach the same settled head")
    for i in range(4):
        assert c.terminate(i) == 0, c.log_of(i)[-2000:]
    reports: list[dict[str, Any]] = []
    for i, node in enumerate(c.net.nodes):
        report = tmp_path / f"report{i}.json"
        result = CliRunner().invoke(cli(), [
            "audit", "--data", str(node.config.data_dir), "--genesis", str(genesis),
            "--json", str(report), "--no-progress", "--workers", "1"])
        assert result.exit_code == 0, result.output
        doc = json.loads(report.read_text())
        assert doc["findings"] == []
        # Each replica holds its own working records (p/): what could not be verified
        # there differs from node to node; the chain and the state do not.
        for own in ("source", "unverifiable", "intact"):
            doc.pop(own)
        doc["summary"].pop("stored_values")
        reports.append(doc)
    # An idle primary may still commit an empty block while the nodes stop one by one:
    # copies at the same head must agree exactly, and every copy holds the records.
    by_head: dict[int, dict[str, Any]] = {}
    for doc in reports:
        assert by_head.setdefault(doc["summary"]["head_height"], doc) == doc
    rebuilt = tmp_path / "rebuilt.json"
    offline = CliRunner().invoke(cli(), [
        "receipt", "get", target.tx_id.hex(), "--data", str(c.net.nodes[1].config.data_dir),
        "--genesis", str(genesis), "--out", str(rebuilt)])
    assert offline.exit_code == 0, offline.output
    assert json.loads(rebuilt.read_text()) == json.loads(out.read_text())
    assert all(doc["summary"]["transactions"] >= RECORDS for doc in reports)

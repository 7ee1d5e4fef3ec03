"""Read access by role on real nodes (node.read_access): after a social-aid payment is
committed, no public route exposes it, blocks still prove their transactions root, and
members of the paying town and auditors read it with signed requests; the live audit
and the receipt of the payment work for an auditor."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from contracts import keys as state_keys
from contracts.social_aid import beneficiary_tag, period_tag_key
from ledger import jsonview
from ledger.crypto import SigningKey, save_key
from ledger.merkle import leaf_hash, merkle_root_of_leaf_hashes
from ledger.records import Transaction
from node.read_access import READ_CLOCK_SKEW_MS, read_headers
from testkit.wait import wait_for
from tests.node.cluster import Cluster

COMMIT_DEADLINE_S = 60
AMOUNT_CENTS = 12_345


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("read-access"))
    with c:  # all nodes started and answering; every process killed on exit
        yield c


def _tx(c: Cluster, town: int, role: str, contract: str, action: str,
        payload: dict[str, Any]) -> Transaction:
    key = c.net.nodes[town].members[role]
    c._nonce += 1
    return Transaction(c.net.genesis.chain_id, contract, action, payload, key.public_key,
                       c._nonce, int(time.time() * 1000) + 600_000).signed(key)


def _commit(c: Cluster, tx: Transaction) -> dict[str, Any]:
    response = c.submit(0, [tx], wait="true", timeout_ms=30_000)
    assert response.status_code in (200, 202), response.text
    wait_for(partial(c.committed, 0, tx) if tx.contract != "social_aid" else
             partial(_committed_for_auditor, c, tx), COMMIT_DEADLINE_S, f"{tx.action}")
    return dict(response.json())


def _signed_get(c: Cluster, node: int, path: str, key: SigningKey,
                time_ms: int | None = None) -> httpx.Response:
    headers = read_headers(key, "GET", path, c.net.genesis.chain_id, time_ms)
    return c.http.get(c.url(node, path), headers=headers)


def _committed_for_auditor(c: Cluster, tx: Transaction) -> bool:
    r = _signed_get(c, 0, f"/v1/transactions/{tx.tx_id.hex()}",
                    c.net.nodes[0].members["auditor"])
    return r.status_code == 200 and r.json().get("status") == "committed"


@pytest.fixture(scope="module")
def payment(cluster: Cluster) -> tuple[Transaction, str]:
    """A payment of the first town, on a scheme its council decided."""
    c, town = cluster, cluster.net.nodes[0]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    month = today[:7]
    terms = {"budget_cents": 1_000_000, "ceiling_cents": 50_000,
             "four_eyes_threshold_cents": 40_000}
    _commit(c, _tx(c, 0, "clerk", "deliberations", "record_sitting", {
        "COLL_SIRET": town.siret, "sitting_id": "CM-RA", "date": today,
        "members_in_office": 33, "members_present": 30, "second_convocation": False}))
    _commit(c, _tx(c, 0, "clerk", "deliberations", "record", {
        "COLL_NOM": town.name, "COLL_SIRET": town.siret, "DELIB_ID": "D-RA",
        "DELIB_DATE": today, "DELIB_MATIERE_CODE": "8.2", "DELIB_MATIERE_NOM": "Aide sociale",
        "DELIB_OBJET": "Aide énergie", "VOTE_EFFECTIF": 33, "VOTE_REEL": 30,
        "VOTE_POUR": 25, "VOTE_CONTRE": 3, "VOTE_ABSTENTION": 2, "act_sha256": "ab" * 32,
        "sitting_id": "CM-RA", "order_number": 1, "members_present": 30,
        **{f"aid_{k}": v for k, v in terms.items()}}))
    _commit(c, _tx(c, 0, "admin", "social_aid", "create_scheme", {
        "siret": town.siret, "scheme_id": "energie", "name": "Aide énergie",
        "period_start": month, "period_end": month, "decision_ref": "D-RA", **terms}))
    tag = beneficiary_tag(period_tag_key(b"k" * 32, town.siret, "energie", month), "p" * 64)
    tx = _tx(c, 0, "social_aid_agent", "social_aid", "disburse", {
        "siret": town.siret, "scheme_id": "energie", "period": month,
        "amount_cents": AMOUNT_CENTS, "beneficiary": tag})
    answer = _commit(c, tx)
    # The submitter's wait answer is public too: the body is not in it.
    assert tag not in json.dumps(answer)
    return tx, tag


def _public_bodies(c: Cluster, payment_tx: Transaction) -> list[str]:
    """Every public route a reader could use to find the payment, as text."""
    head = c.height(0)
    town = c.net.nodes[0].siret
    paths = [f"/v1/blocks/{h}" for h in range(1, head + 1)] + [
        "/v1/blocks/latest", "/v1/records", "/v1/records?contract=social_aid",
        "/v1/records?contract=social_aid&type=disburse", f"/v1/records?municipality={town}",
        f"/v1/transactions/{payment_tx.tx_id.hex()}", "/v1/status"]
    return [c.get(0, path).text for path in paths]


def test_no_public_route_exposes_a_payment(cluster: Cluster,
                                           payment: tuple[Transaction, str]) -> None:
    c = cluster
    tx, tag = payment
    bodies = _public_bodies(c, tx)
    assert all(tag not in body for body in bodies)
    assert all('"disburse"' not in body for body in bodies)
    restricted = c.get(0, f"/v1/transactions/{tx.tx_id.hex()}")
    assert restricted.status_code == 403 and restricted.json()["error"]["code"] == "restricted"
    key = state_keys.payment_key(c.net.nodes[0].siret, "energie", tx.payload["period"], tag)
    state = c.get(0, f"/v1/state/{key.hex()}")
    assert state.status_code == 403
    # Other records stay public and each block still proves its transactions root.
    assert c.get(0, "/v1/records?contract=deliberations").json()["records"]
    redacted = 0
    for height in range(1, c.height(0) + 1):
        block = c.get(0, f"/v1/blocks/{height}").json()
        hashes = []
        for item in block["transactions"]:
            if item.get("redacted"):
                redacted += 1
                hashes.append(bytes.fromhex(item["leaf_hash"]))
            else:
                hashes.append(leaf_hash(jsonview.tx_from_json(item).encode()))
        header = jsonview.header_from_json(block["header"])
        assert merkle_root_of_leaf_hashes(hashes) == header.txs_root
    assert redacted == 1


def test_members_of_the_paying_town_and_auditors_read_it(
        cluster: Cluster, payment: tuple[Transaction, str]) -> None:
    c = cluster
    tx, tag = payment
    path = f"/v1/transactions/{tx.tx_id.hex()}"
    for town, role in ((0, "auditor"), (0, "social_aid_agent"), (0, "admin"),
                       (2, "auditor")):
        r = _signed_get(c, 1, path, c.net.nodes[town].members[role])
        assert r.status_code == 200, (town, role, r.text)
        assert r.json()["transaction"]["payload"]["beneficiary"] == tag
    for town, role in ((0, "clerk"), (1, "social_aid_agent"), (1, "admin")):
        r = _signed_get(c, 1, path, c.net.nodes[town].members[role])
        assert r.status_code == 403, (town, role)
    auditor = c.net.nodes[0].members["auditor"]
    stale = _signed_get(c, 1, path, auditor, int(time.time() * 1000) - 2 * READ_CLOCK_SKEW_MS)
    assert stale.status_code == 401 and "clock" in stale.json()["error"]["message"]
    forged = read_headers(auditor, "GET", "/v1/blocks/latest", c.net.genesis.chain_id)
    assert c.http.get(c.url(1, path), headers=forged).status_code == 401
    stranger = _signed_get(c, 1, path, SigningKey.generate())
    assert stranger.status_code == 401
    # A signed block read shows the payment in full.
    found = _signed_get(c, 0, path, auditor).json()
    block = _signed_get(c, 0, f"/v1/blocks/{found['height']}", auditor).json()
    assert any(t.get("payload", {}).get("beneficiary") == tag for t in block["transactions"])


def test_the_live_audit_and_the_receipt_work_for_an_auditor(
        cluster: Cluster, payment: tuple[Transaction, str], tmp_path: Path) -> None:
    c = cluster
    tx, _ = payment
    key_file, passphrase = tmp_path / "auditor.key", tmp_path / "passphrase"
    passphrase.write_text("auditor passphrase")
    save_key(c.net.nodes[2].members["auditor"], key_file, b"auditor passphrase")
    found = _signed_get(c, 0, f"/v1/transactions/{tx.tx_id.hex()}",
                        c.net.nodes[2].members["auditor"]).json()
    lag = c.net.genesis.consensus.execution_lag
    while c.height(0) < found["height"] + lag:  # the receipt is certified lag blocks later
        anchor = c.anchor(1)
        assert c.submit(1, [anchor]).status_code == 202
        wait_for(partial(c.committed, 0, anchor), COMMIT_DEADLINE_S, "an anchor")
    genesis = str(c.net.genesis_path)
    runner = CliRunner()
    public = runner.invoke(app, ["audit", "--node", c.url(0, ""), "--genesis", genesis,
                                 "--no-progress", "--workers", "1"])
    assert public.exit_code == 1 and "hides social-aid payments" in public.output
    audited = runner.invoke(app, [
        "audit", "--node", c.url(0, ""), "--genesis", genesis, "--no-progress",
        "--workers", "1", "--key", str(key_file), "--passphrase-file", str(passphrase)])
    assert audited.exit_code == 0, audited.output
    out = tmp_path / "receipt.json"
    got = runner.invoke(app, [
        "receipt", "get", tx.tx_id.hex(), "--node", c.url(1, ""), "--genesis", genesis,
        "--out", str(out), "--key", str(key_file), "--passphrase-file", str(passphrase)])
    assert got.exit_code == 0, got.output
    checked = runner.invoke(app, ["receipt", "verify", str(out), "--genesis", genesis])
    assert checked.exit_code == 0, checked.output
    # The node serves whole receipts: a payment's only to the readers who may read it.
    assert c.get(1, f"/v1/receipts/{tx.tx_id.hex()}").status_code == 403
    refused = runner.invoke(app, [
        "receipt", "get", tx.tx_id.hex(), "--node", c.url(1, ""), "--genesis", genesis,
        "--out", str(tmp_path / "public.json")])
    assert refused.exit_code == 1 and "--key" in refused.output

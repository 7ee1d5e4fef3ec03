"""On-chain membership with real processes: a municipality removed by governance is
refused by every remaining validator's peer transport once the new validator set is in
force, without a restart or a configuration change; the others keep committing. A
municipality added by governance, with its validator's address on chain, is dialled by
every validator (none lists it in its configuration) and takes part in consensus. A
validator key replaced by governance: the new key, on a new machine, is dialled and its
votes count; the old key, still running, is refused and makes no quorum."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ledger.genesis import ConsensusParams
from ledger.records import Transaction
from node.devnet import TOWNS, joiner
from testkit.wait import wait_for
from tests.node.cluster import Cluster

CONSENSUS = ConsensusParams(view_timeout_ms=1000, checkpoint_interval=4, watermark_window=16)


@pytest.fixture()
def five(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("membership"), n=5, consensus=CONSENSUS)
    with c:  # all nodes started and answering; every process killed on exit
        yield c


@pytest.fixture()
def four(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("joining"), n=4, consensus=CONSENSUS)
    with c:
        yield c


def _governance(c: Cluster, i: int, action: str, payload: dict[str, Any]) -> Transaction:
    node = c.net.nodes[i]
    key = node.members["admin"]
    c._nonce += 1
    return Transaction(c.net.genesis.chain_id, "governance", action,
                       {"siret": node.siret, **payload}, key.public_key, c._nonce,
                       int(time.time() * 1000) + 600_000).signed(key)


def _commit(c: Cluster, i: int, txs: list[Transaction]) -> dict[str, Any]:
    r = c.submit(i, txs, wait="true", timeout_ms=30_000)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_removed_validator_is_refused_by_its_peers_without_a_restart(five: Cluster) -> None:
    c = five
    gone = 4
    gone_key = c.net.nodes[gone].validator_key.public_key.hex()
    propose = _governance(c, 0, "propose", {
        "kind": "remove_municipality", "municipality_siret": c.net.nodes[gone].siret,
        "reason": "leaves the network"})
    assert _commit(c, 0, [propose])["results"][0]["receipt"]["code"] == "ok"
    approvals = [_governance(c, i, "approve", {"proposal_id": propose.tx_id.hex()})
                 for i in (1, 2, 3)]
    _commit(c, 1, approvals)

    def removal_in_force() -> bool:
        _commit(c, 0, [c.anchor(0)])  # blocks move the checkpoints forward
        status = c.status(0)
        return status is not None and gone_key not in status["validators"]
    wait_for(removal_in_force, 120, "the new validator set to be in force", poll_s=0.01)

    def refused_everywhere() -> bool:
        for i in range(4):
            peers = {p["validator_key"]: p for p in (c.status(i) or {}).get("peers", [])}
            if peers.get(gone_key, {}).get("inbound", True):
                return False
        return True
    wait_for(refused_everywhere, 60, "the removed validator's connections to be closed")
    assert any("no longer a validator in force" in c.log_of(i)
               or "not a validator of this network in force" in c.log_of(i)
               for i in range(4))
    # the four remaining validators keep committing, the removed one no longer follows
    tx = c.anchor(1)
    _commit(c, 1, [tx])
    assert all(c.committed(i, tx) for i in range(4))
    assert c.procs[gone].poll() is None  # nobody was restarted: it still runs, alone


def test_a_validator_added_by_governance_is_dialled_at_its_on_chain_address(
        four: Cluster) -> None:
    c = four
    c.net = joiner(c.net, TOWNS[4])
    new = 4
    node = c.net.nodes[new]
    new_key = node.validator_key.public_key.hex()
    assert all(p.validator_key.hex() != new_key for i in range(4)
               for p in c.net.nodes[i].config.peers)  # nobody's configuration names it
    propose = _governance(c, 0, "propose", {
        "kind": "add_municipality", "municipality_name": node.name,
        "municipality_siret": node.siret, "validator_key": new_key,
        "admin_key": node.members["admin"].public_key.hex(),
        "validator_address": node.config.listen_peer, "reason": "joins the network"})
    assert _commit(c, 0, [propose])["results"][0]["receipt"]["code"] == "ok"
    approvals = [_governance(c, i, "approve", {"proposal_id": propose.tx_id.hex()})
                 for i in (1, 2)]
    receipts = _commit(c, 1, approvals)["results"]
    assert receipts[-1]["receipt"]["data"]["status"] == "passed"

    c.start(new)  # its genesis, its key, and the genesis validators as peers: no chain
    c.wait_ready([new])

    def added_in_force() -> bool:
        _commit(c, 0, [c.anchor(0)])  # blocks move the checkpoints forward
        return all(new_key in (c.status(i) or {}).get("validators", []) for i in range(4))
    wait_for(added_in_force, 60, "the validator set with the new validator", poll_s=0.01)

    def linked_both_ways() -> bool:
        for i in range(4):
            peers = {p["validator_key"]: p for p in (c.status(i) or {}).get("peers", [])}
            if not peers.get(new_key, {}).get("connected", False):
                return False
        return True
    wait_for(linked_both_ways, 30, "every validator to dial the new one and be dialled")
    peer = next(p for p in (c.status(0) or {})["peers"] if p["validator_key"] == new_key)
    assert peer["address"] == node.config.listen_peer  # the address it read on chain
    wait_for(lambda: c.height(new) >= c.height(0) > 0, 30, "the new validator to catch up")

    # With one of the original four stopped, a quorum of five (4) needs the new one's votes.
    c.kill(3)
    tx = c.anchor(1)
    assert _commit(c, 0, [tx])["results"][0]["receipt"]["code"] == "ok"
    wait_for(lambda: c.committed(new, tx), 30, "the new validator to commit it too")


def test_a_rotated_validator_key_takes_over_and_the_old_key_no_longer_counts(
        four: Cluster) -> None:
    c = four
    town = 3
    c.net = joiner(c.net, "Vincennes (new machine)")  # the town's new key, its own directory
    new = len(c.net.nodes) - 1
    node = c.net.nodes[new]
    old_key = c.net.nodes[town].validator_key.public_key.hex()
    new_key = node.validator_key.public_key.hex()
    propose = _governance(c, 0, "propose", {
        "kind": "replace_validator_key", "municipality_siret": c.net.nodes[town].siret,
        "validator_key": new_key, "validator_address": node.config.listen_peer,
        "reason": "the validator moves to a new machine"})
    assert _commit(c, 0, [propose])["results"][0]["receipt"]["code"] == "ok"
    approvals = [_governance(c, i, "approve", {"proposal_id": propose.tx_id.hex()})
                 for i in (1, 2)]
    assert _commit(c, 1, approvals)["results"][-1]["receipt"]["data"]["status"] == "passed"
    c.start(new)  # the new machine: genesis, the new key, an empty data directory
    c.wait_ready([new])

    def rotated_in_force() -> bool:
        _commit(c, 0, [c.anchor(0)])  # blocks move the checkpoints forward
        validators = (c.status(0) or {}).get("validators", [])
        return new_key in validators and old_key not in validators
    wait_for(rotated_in_force, 60, "the rotated key to be in force", poll_s=0.01)

    def new_linked_old_refused() -> bool:
        for i in (0, 1, 2):
            peers = {p["validator_key"]: p for p in (c.status(i) or {}).get("peers", [])}
            if not peers.get(new_key, {}).get("connected", False):
                return False
            old = peers.get(old_key, {"inbound": False, "outbound": "stopped"})
            if old["inbound"] or old["outbound"] != "stopped":  # refused, and not dialled
                return False
        return True
    wait_for(new_linked_old_refused, 30, "the new key linked and the old one refused")
    wait_for(lambda: c.height(new) >= c.height(0) > 0, 30, "the new machine to catch up")

    # 0, 2 and the new key make a quorum of 3 without 1: the new key's votes count.
    c.kill(1)
    tx = c.anchor(2)
    assert _commit(c, 0, [tx])["results"][0]["receipt"]["code"] == "ok"
    # 0, 2 and the OLD key (still running) do not: nothing commits until the new key is back.
    c.kill(new)
    stalled = c.anchor(2)
    r = c.submit(0, [stalled], wait="true", timeout_ms=4_000)
    assert r.status_code in (200, 202) and not r.json().get("committed"), r.text
    assert c.procs[town].poll() is None  # the old key's node was running all along
    c.start(new)
    wait_for(lambda: c.committed(0, stalled), 60, "the commit once the new key is back")

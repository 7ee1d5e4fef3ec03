"""A Byzantine validator among real processes: four nodes on 127.0.0.1, one of them the
build of ``tests.node.byzantine_node`` (it swaps the transactions of every body it sends,
keeping the signed headers). The primary of view 0 is paused so that the Byzantine node
becomes primary of view 1; the three correct nodes must refuse its bodies, move on to a
correct primary, commit every acknowledged transaction and agree block for block."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.records import Transaction
from testkit.wait import wait_for
from tests.node.cluster import Cluster

DEADLINE_S = 180


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "net")
    try:
        yield c
    finally:
        for proc in c.procs.values():  # never leave a paused process behind
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGCONT)
        c.close()


def _rank(c: Cluster, i: int) -> int:
    """Node i's place in the validator order (the primary of view v has place v mod n)."""
    key = c.net.nodes[i].validator_key.public_key
    return sorted(n.validator_key.public_key for n in c.net.nodes).index(key)


def _all_committed(c: Cluster, nodes: list[int], txs: list[Transaction]) -> bool:
    return all(c.committed(i, tx) for i in nodes for tx in txs)


def test_a_byzantine_primary_tampering_with_bodies_cannot_make_correct_nodes_disagree(
        cluster: Cluster) -> None:
    c = cluster
    by_rank = {_rank(c, i): i for i in range(4)}
    first, byzantine = by_rank[0], by_rank[1]
    correct = [i for i in range(4) if i != byzantine]
    for i in range(4):
        c.start(i, "tests.node.byzantine_node" if i == byzantine else "node")
    c.wait_ready()

    before = [c.anchor(i) for i in correct for _ in range(3)]
    for tx in before:
        assert c.submit(correct[before.index(tx) % 3], [tx]).status_code == 202
    wait_for(lambda: _all_committed(c, correct, before), DEADLINE_S, "view-0 commits")

    os.killpg(c.procs[first].pid, signal.SIGSTOP)  # view 1 belongs to the Byzantine node
    running = [i for i in correct if i != first]
    during = [c.anchor(i) for i in running for _ in range(4)]
    for n, tx in enumerate(during):
        assert c.submit(running[n % 2], [tx]).status_code == 202
    wait_for(lambda: "byzantine: tampered pre-prepare" in c.log_of(byzantine), DEADLINE_S,
             "the Byzantine primary to propose tampered blocks")
    os.killpg(c.procs[first].pid, signal.SIGCONT)
    wait_for(lambda: _all_committed(c, correct, before + during), DEADLINE_S,
             "every acknowledged transaction on every correct node")

    statuses = [c.status(i) for i in correct]
    assert all(s is not None and s["view"] >= 2 for s in statuses), statuses
    top = min(c.height(i) for i in correct)
    for height in range(1, top + 1):
        hashes = {c.get(i, f"/v1/blocks/{height}").json()["block_hash"] for i in correct}
        assert len(hashes) == 1, f"correct nodes disagree at height {height}"
    for i in correct:
        assert "Traceback" not in c.log_of(i)

"""Clocks minutes off do not break the network (real processes, libfaketime).

What a node does with its own clock (docs/operators.md, "Clocks"): it stamps the blocks
it proposes with ``max(its time, parent time + 1 ms)`` and refuses a proposal stamped
more than ``TIME_AHEAD_MS_MAX`` (60 s) ahead of its own clock. So the primary of view 0,
three minutes ahead, has its proposals refused and the others change view; a backup
three minutes behind refuses every fresh proposal as too far ahead and follows the chain
through what a quorum certified (a block re-proposed with a quorum's prepare
certificate after a view change, or caught up from its peers: not time-checked); the
two others and the fast one still make a quorum, and no block is stamped in the future
of the correct clocks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from consensus.replica import TIME_AHEAD_MS_MAX
from ledger.genesis import ConsensusParams
from testkit.system import require_program
from testkit.wait import wait_for
from tests.node.cluster import Cluster

SKEW_S = 180
FAKETIME = "faketime"


def require_faketime() -> str:
    """Debian's faketime (libfaketime), required the testkit way (fails in CI if absent)."""
    return str(require_program(FAKETIME, "faketime"))


def start_skewed(c: Cluster, i: int, offset_s: int) -> None:
    """Start node ``i`` with its wall clock ``offset_s`` off (its monotonic clock, which
    only measures durations, is left alone)."""
    c.start(i, wrapper=[require_faketime(), "-f", f"{offset_s:+d}s"],
            env={"FAKETIME_DONT_FAKE_MONOTONIC": "1"})


@pytest.fixture()
def skewed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, int, int]]:
    c = Cluster(tmp_path_factory.mktemp("skew"), n=4,
                consensus=ConsensusParams(view_timeout_ms=1000))
    keys = [n.validator_key.public_key for n in c.net.nodes]
    ahead = keys.index(c.net.genesis.validator_set.primary(0))
    behind = (ahead + 1) % 4
    try:
        start_skewed(c, ahead, +SKEW_S)
        start_skewed(c, behind, -SKEW_S)
        for i in range(4):
            if i not in (ahead, behind):
                c.start(i)
        c.wait_ready()
        yield c, ahead, behind
    finally:
        c.close()


def test_one_clock_minutes_ahead_and_one_behind_do_not_stop_commits(
        skewed: tuple[Cluster, int, int]) -> None:
    c, ahead, behind = skewed
    honest = [i for i in range(4) if i not in (ahead, behind)]
    txs = [c.anchor(i) for i in range(4)]  # submitted to every node, the skewed ones too
    for i, tx in enumerate(txs):
        r = c.submit(i, [tx])
        assert r.status_code == 202, r.text
    wait_for(lambda: all(c.committed(i, tx) for i in range(4) for tx in txs), 60,
             "every transaction on every node, the skewed ones included")
    status = c.status(honest[0])
    assert status is not None and status["view"] >= 1  # the fast primary was replaced
    # The slow node refused the honest proposals as too far in its future: it says so.
    wait_for(lambda: "synchronise it (NTP)" in c.log_of(behind), 30,
             "the node whose clock is behind to warn its operator")
    now_ms = int(time.time() * 1000)
    for height in range(1, c.height(honest[0]) + 1):
        block = c.get(honest[0], f"/v1/blocks/{height}").json()
        assert block["header"]["time_ms"] <= now_ms + TIME_AHEAD_MS_MAX, (
            f"block {height} is stamped in the future of the correct clocks")

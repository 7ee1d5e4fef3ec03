"""Crash and recovery with real processes: kill -9 of the primary under a stream of
submissions, restart and catch-up, a node restarted from an empty data directory that
catches up and then votes, and a clean SIGTERM."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger.records import Transaction
from testkit.wait import wait_for
from tests.node.cluster import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "net")
    with c:  # all nodes started and answering; every process killed on exit
        yield c


class Stream:
    """A client thread submitting one transaction every few milliseconds, round robin
    over the live nodes; it remembers what each node accepted."""

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.live = set(range(4))
        self.accepted: list[Transaction] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        turn = 0
        with httpx.Client(timeout=5.0) as http:
            while not self._stop.wait(0.02):
                live = sorted(self.live)
                i = live[turn % len(live)]
                turn += 1
                tx = self.c.anchor(i)
                try:
                    r = http.post(self.c.url(i, "/v1/transactions"),
                                  json={"transactions": [base64.b64encode(tx.encode()).decode()]})
                except httpx.HTTPError:
                    continue
                if r.status_code == 202:
                    self.accepted.append(tx)


def _primary(c: Cluster, via: int) -> int:
    status = c.status(via)
    assert status is not None
    keys = [n.validator_key.public_key.hex() for n in c.net.nodes]
    return keys.index(status["primary"])


def _head(c: Cluster, i: int, height: int) -> str | None:
    r = c.get(i, f"/v1/blocks/{height}")
    return r.json()["block_hash"] if r.status_code == 200 else None


def _caught_up(c: Cluster, i: int, reference: int) -> bool:
    h = c.height(reference)
    return h > 0 and c.height(i) >= h and _head(c, i, h) == _head(c, reference, h)


def test_kill_primary_view_change_restart_and_empty_data_dir(cluster: Cluster) -> None:
    c = cluster
    with Stream(c) as stream:
        wait_for(lambda: min(c.height(i) for i in range(4)) >= 3, 60, "first blocks")
        primary = _primary(c, 0)
        others = [i for i in range(4) if i != primary]
        stream.live.discard(primary)
        c.kill(primary)
        killed_at = max(c.height(i) for i in others)
        # A view change follows and submissions keep committing.
        wait_for(lambda: all(c.height(i) >= killed_at + 3 for i in others), 90,
                 "commits after the primary died")
        assert _primary(c, others[0]) != primary
        # The backups said why they asked (the operator's first question).
        asked = [line for i in others for line in c.log_of(i).splitlines()
                 if "asked to move to view" in line]
        assert asked and all("no block committed here for" in line
                             and "transactions waiting" in line for line in asked), asked
        accepted = len(stream.accepted)
        wait_for(lambda: c.committed(others[0], stream.accepted[accepted - 1]), 60,
                 "a submission after the view change to commit")
        # The killed node restarts and catches up to the same head.
        c.start(primary)
        stream.live.add(primary)
        wait_for(lambda: _caught_up(c, primary, others[0]), 90, "the restarted node")
    # A node stopped cleanly (exit 0), wiped, restarted: catches up, then votes.
    wiped = others[0]
    assert c.terminate(wiped) == 0
    log = c.log_of(wiped)
    assert "stopped cleanly" in log.splitlines()[-1]  # the last word an operator reads
    assert "Error in sys.excepthook" not in log  # printed once at every clean stop
    c.wipe(wiped)
    c.start(wiped)
    wait_for(lambda: _caught_up(c, wiped, primary), 90, "the wiped node to catch up")
    # Stop another node: with three of four left, commits need the wiped node's votes.
    gone = others[1]
    c.kill(gone)
    tx = c.anchor(wiped)
    r = c.submit(wiped, [tx], wait="true", timeout_ms=60_000)
    assert r.status_code == 200, r.text
    height = r.json()["results"][0]["height"]
    block = c.get(wiped, f"/v1/blocks/{height}").json()
    voters = {s["voter"] for s in block["certificate"]["signatures"]}
    assert c.net.nodes[wiped].validator_key.public_key.hex() in voters

"""A validator whose disk fills up stops by itself, says so, and loses nothing: a real
node process whose file-size limit is lowered while it runs (its next store write fails
as on a full disk, EFBIG instead of ENOSPC); restarted with room, it has every
transaction it acknowledged as committed and goes on committing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest

from ledger.records import Transaction
from testkit.wait import wait_for
from tests.faults.campaign import node_pid
from tests.node.cluster import Cluster

LOG_ROOM_BYTES = 32 * 1024


@pytest.fixture()
def one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("diskfull"), n=1) as c:
        yield c


def test_a_full_disk_stops_the_node_cleanly_and_a_restart_loses_nothing(one: Cluster
                                                                        ) -> None:
    c = one
    committed: list[Transaction] = []
    for _ in range(3):
        tx = c.anchor(0)
        assert c.submit(0, [tx], wait="true").json()["committed"]
        committed.append(tx)
    room = (c.net.nodes[0].directory / "node.log").stat().st_size + LOG_ROOM_BYTES
    subprocess.run(["prlimit", f"--pid={node_pid(c.procs[0])}", f"--fsize={room}"],
                   check=True, timeout=10)
    proc = c.procs[0]

    def stopped_after_writes() -> bool:
        if proc.poll() is not None:
            return True
        tx = c.anchor(0)
        try:
            r = c.submit(0, [tx], wait="true", timeout_ms=2_000)
        except httpx.HTTPError:  # the node may stop while we ask: that is the point
            return proc.poll() is not None
        if r.status_code == 200 and r.json().get("committed"):
            committed.append(tx)
        return False
    wait_for(stopped_after_writes, 60, "the node to stop on its full disk", poll_s=0.05)
    c.kill(0)  # bookkeeping only: it has exited
    log = c.log_of(0)
    assert proc.returncode == 2, log[-2000:]
    assert "ERROR   tabellion.node: stopped: the disk holding the data directory" in log
    assert "is full" in log and "Free space on that disk" in log
    assert "Traceback" not in log, log[-3000:]

    c.start(0)  # room again
    c.wait_ready([0])
    assert all(c.committed(0, tx) for tx in committed), "an acknowledged commit was lost"
    tx = c.anchor(0)
    assert c.submit(0, [tx], wait="true").json()["committed"]

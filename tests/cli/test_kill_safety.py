"""Killing ``tabellion demo`` or ``tabellion bench`` with SIGKILL leaves no process behind.

SIGKILL runs none of the parent's clean-up, so only the kernel can stop the children:
each node (and the bench's submitter) is armed with ``PR_SET_PDEATHSIG`` (cli.demo
``die_with_parent``). Real processes: the parent is the console script, killed by pid
only (never its process group, which would hide the bug), and the test asserts that every
process it had started is gone and that the demo's ports can be bound again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.bench import TMP_PREFIX, remove_stale_runs
from cli.network import load_network
from testkit.wait import wait_for, wait_for_line
from tests.cli.conftest import DEMO_READY_LINE, TABELLION

START_TIMEOUT_S = 240.0
GONE_TIMEOUT_S = 30.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="PR_SET_PDEATHSIG and /proc are Linux")


def _alive(pid: int) -> bool:
    """Running (a zombie holds no port, no file and no CPU: it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _descendants(root: int) -> set[int]:
    """Live processes below ``root`` (children, grandchildren, ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {pid for pid in found if _alive(pid)}


def _port_free(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the nodes bind
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True


class Parent:
    """The console script run in a session of its own, with everything it started."""

    def __init__(self, args: list[str], log: Path, tmp: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [str(TABELLION), *args], stdout=log.open("wb"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "COLUMNS": "200", "TMPDIR": str(tmp)},
        )
        self.seen: set[int] = set()

    def sigkill(self) -> None:
        self.seen = _descendants(self.process.pid)
        os.kill(self.process.pid, signal.SIGKILL)  # the parent only, not its group
        assert self.process.wait(timeout=GONE_TIMEOUT_S) == -signal.SIGKILL

    def wait_all_gone(self) -> list[int]:
        deadline = time.monotonic() + GONE_TIMEOUT_S
        while (left := sorted(p for p in self.seen if _alive(p))) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        return left

    def cleanup(self) -> None:
        """Only if the test failed: stop what it started, by pid."""
        for pid in {*self.seen, *_descendants(self.process.pid)}:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=GONE_TIMEOUT_S)


@pytest.fixture
def parents() -> Iterator[list[Parent]]:
    started: list[Parent] = []
    yield started
    for parent in started:
        parent.cleanup()


def test_sigkill_of_the_demo_stops_every_node_and_frees_its_ports(
        tmp_path: Path, parents: list[Parent]) -> None:
    directory = tmp_path / "demo"
    demo = Parent(["demo", "--dir", str(directory), "--base-port", "0", "--no-seed"],
                  tmp_path / "demo.log", tmp_path)
    parents.append(demo)
    wait_for_line(demo.process, demo.log, DEMO_READY_LINE, START_TIMEOUT_S)
    network = load_network(directory)
    addresses = [m.api_url.removeprefix("http://") for m in network.municipalities]
    assert not any(_port_free(a) for a in addresses)  # the nodes hold them now
    demo.sigkill()
    assert len(demo.seen) == 4, demo.seen  # the four nodes, and nothing else
    assert demo.wait_all_gone() == []
    assert all(_port_free(a) for a in addresses)


def test_sigkill_of_the_bench_stops_every_node_and_the_submitter(
        tmp_path: Path, parents: list[Parent]) -> None:
    bench = Parent(["bench", "--duration", "20"], tmp_path / "bench.log", tmp_path)
    parents.append(bench)
    # nodes up, submitter started
    wait_for_line(bench.process, bench.log, "pre-signing", START_TIMEOUT_S)
    wait_for(lambda: len(_descendants(bench.process.pid)) >= 5, START_TIMEOUT_S,
             "the four nodes and the submitter")
    bench.sigkill()
    assert bench.wait_all_gone() == []
    # The data directory is left (nothing of the bench ran); the next bench removes it.
    left = list(tmp_path.glob(f"{TMP_PREFIX}*"))
    assert len(left) == 1
    assert remove_stale_runs(tmp_path) == left and not left[0].exists()

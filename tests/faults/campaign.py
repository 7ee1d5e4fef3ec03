"""The fault campaign: four real validators whose every peer link goes through a TCP proxy
(``tests.faults.proxy``), under a steady load of client submissions, through a list of
faults — partitions (2|2, 3|1 around the primary, one-way, flapping), delays, kill -9 and
restart, SIGSTOP/SIGCONT of the primary, a restart from an empty directory and one from an
old copy of the node's directory, a disk that fills up (the node must stop cleanly and
lose nothing), kill -9 loops, and one node's clock minutes ahead or behind (libfaketime:
Debian's ``faketime``, which .ci/run installs).

Checker, after every scenario and at the end: the network commits again (the recovery
time is measured from the end of the fault to the commit of a probe on every running
node), every transaction a node acknowledged as committed is on every node, all
chains are identical height for height, and no node died except those the campaign
killed. ``python -m tests.faults`` runs the short list; ``--long`` runs every scenario,
``--rounds N`` repeats them.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from ledger.genesis import ConsensusParams
from ledger.records import Transaction
from testkit.wait import wait_for
from tests.faults.proxy import ProxyNet
from tests.node.cluster import Cluster

DISK_FULL_LOG_ROOM_BYTES = 64 * 1024
"""Room left for the node's log when its disk fills (the log shares the file-size limit)."""
KILL_LOOP_ROUNDS = 6
SKEW_S = 180
"""Clock skew of the clock scenarios: minutes, three times the block-time tolerance."""
SKEW_HOLD_S = 6
RECOVERY_DEADLINE_S = 120
"""A network healed from any single fault of the list commits again within this."""
SUBMIT_EVERY_S = 0.1


@dataclass
class Report:
    """What the campaign found."""

    recoveries_s: dict[str, float] = field(default_factory=dict)
    acknowledged: int = 0
    height: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Load:
    """Client threads, each submitting one notary anchor at a time to a running node in
    turn and waiting for the answer "committed" (``wait=true``); a transaction so
    acknowledged as committed must be on every node at the end. An answer of 202 (admitted,
    not yet committed) promises nothing if that node is then killed, so it is not counted."""

    THREADS = 3

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.live = set(range(len(c.net.nodes)))
        self.acked: list[Transaction] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(k,), daemon=True)
                         for k in range(self.THREADS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)

    def _run(self, offset: int) -> None:
        turn = offset
        with httpx.Client(timeout=15.0) as http:
            while not self._stop.wait(SUBMIT_EVERY_S):
                with self._lock:
                    live = sorted(self.live)
                if not live:
                    continue
                i = live[turn % len(live)]
                turn += 1
                tx = self.anchor(i)
                body = {"transactions": [base64.b64encode(tx.encode()).decode()]}
                try:
                    r = http.post(self.c.url(i, "/v1/transactions"), json=body,
                                  params={"wait": "true", "timeout_ms": 10_000})
                except httpx.HTTPError:
                    continue
                if r.status_code == 200 and r.json().get("committed"):
                    with self._lock:
                        self.acked.append(tx)

    def acknowledge(self, tx: Transaction) -> None:
        with self._lock:
            self.acked.append(tx)

    def anchor(self, i: int) -> Transaction:
        """A fresh transaction (the cluster's nonce counter is shared by the threads)."""
        with self._lock:
            return self.c.anchor(i)

    def set_live(self, i: int, live: bool) -> None:
        with self._lock:
            (self.live.add if live else self.live.discard)(i)


def _peer_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def node_pid(wrapper: subprocess.Popen[bytes]) -> int:
    """The node's own process: the one child of ``timeout``, which the cluster started."""
    pid = wrapper.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, f"expected one child of timeout {pid}, got {children}"
    return int(children[0])


def route_through(c: Cluster, proxies: ProxyNet) -> None:
    """Rewrite every node's configuration so that it dials its peers through the proxies."""
    keys = [n.validator_key.public_key.hex() for n in c.net.nodes]
    for i, node in enumerate(c.net.nodes):
        cfg = tomllib.loads(node.config_path.read_text())
        for peer in cfg["peers"]:
            j = keys.index(peer["validator_key"])
            peer["address"] = f"127.0.0.1:{proxies.port(i, j)}"
        node.config_path.write_text(tomli_w.dumps(cfg))


class Campaign:
    def __init__(self, root: Path, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.c = Cluster(root, consensus=ConsensusParams(view_timeout_ms=1000))
        ports = [_peer_port(n.config.listen_peer) for n in self.c.net.nodes]
        self.proxies = ProxyNet(ports)
        route_through(self.c, self.proxies)
        self.load = Load(self.c)
        self.report = Report()
        self.paused: set[int] = set()

    # ------------------------------------------------------------------ helpers
    def primary(self) -> int:
        keys = [n.validator_key.public_key.hex() for n in self.c.net.nodes]
        for i in sorted(self.load.live):
            status = self.c.status(i)
            if status is not None:
                return keys.index(status["primary"])
        raise AssertionError("no node answers")

    def _recovered(self, name: str, healed_at: float) -> None:
        """A probe submitted now commits on every running node."""
        live = sorted(self.load.live)
        probe = self.load.anchor(live[0])
        r = self.c.submit(live[0], [probe])
        if r.status_code != 202:
            self.report.problems.append(f"{name}: the probe was refused ({r.status_code})")
            return
        try:
            wait_for(lambda: all(self.c.committed(i, probe) for i in live),
                     RECOVERY_DEADLINE_S, f"recovery after {name}", poll_s=0.2)
        except AssertionError as exc:
            self.report.problems.append(str(exc))
            return
        self.report.recoveries_s[name] = round(time.monotonic() - healed_at, 1)
        self.load.acknowledge(probe)

    # ------------------------------------------------------------------ faults
    def partition(self, name: str, groups: list[set[int]], hold_s: float = 4) -> None:
        self.proxies.partition(groups)
        time.sleep(hold_s)  # the fault's duration, not a wait for a condition
        self.proxies.heal()
        self._recovered(name, time.monotonic())

    def partition_2_2(self) -> None:
        self.partition("partition 2|2", [{0, 1}, {2, 3}])

    def isolate_primary(self) -> None:
        p = self.primary()
        self.partition("partition 3|1 (primary alone)", [{p}, set(range(4)) - {p}])

    def one_way(self) -> None:
        p = self.primary()
        self.proxies.set_cut([(p, j) for j in range(4) if j != p], True)
        time.sleep(4)
        self.proxies.heal()
        self._recovered("one-way cut of the primary's outgoing links", time.monotonic())

    def flapping(self) -> None:
        victim = self.rng.randrange(4)
        for _ in range(3):
            self.proxies.partition([{victim}, set(range(4)) - {victim}])
            time.sleep(1)
            self.proxies.heal()
            time.sleep(1)
        self._recovered("flapping links of one node", time.monotonic())

    def delays(self) -> None:
        self.proxies.set_delay(150)
        time.sleep(4)
        self.proxies.heal()
        self._recovered("150 ms on every link", time.monotonic())

    def kill_restart(self) -> None:
        victim = self.rng.randrange(4)
        self.load.set_live(victim, False)
        self.c.kill(victim)
        time.sleep(3)
        self.c.start(victim)
        self.c.wait_ready([victim], timeout_s=60)
        self.load.set_live(victim, True)
        self._recovered(f"kill -9 and restart of node {victim}", time.monotonic())

    def empty_restart(self) -> None:
        victim = self.rng.randrange(4)
        self.load.set_live(victim, False)
        self.c.kill(victim)
        self.c.wipe(victim)
        self.c.start(victim)
        self.c.wait_ready([victim], timeout_s=60)
        self.load.set_live(victim, True)
        self._recovered(f"node {victim} restarted from an empty directory", time.monotonic())

    def old_copy_restart(self) -> None:
        """A node stopped cleanly, its directory copied; later killed and restarted from
        that old copy (an operator restoring a stale backup)."""
        victim = self.rng.randrange(4)
        data = Path(self.c.net.nodes[victim].config.data_dir)
        self.load.set_live(victim, False)
        self.c.terminate(victim)
        backup = data.with_name(data.name + ".old")
        shutil.copytree(data, backup)
        self.c.start(victim)
        self.c.wait_ready([victim], timeout_s=60)
        self.load.set_live(victim, True)
        time.sleep(3)  # let the chain move on past the copy
        self.load.set_live(victim, False)
        self.c.kill(victim)
        shutil.rmtree(data)
        backup.rename(data)
        self.c.start(victim)
        self.c.wait_ready([victim], timeout_s=60)
        self.load.set_live(victim, True)
        self._recovered(f"node {victim} restarted from an old copy", time.monotonic())

    def disk_full(self) -> None:
        """One node's disk fills up under load (its file-size limit is lowered to just
        above its log, so the next write of its store fails as on a full disk): it must
        stop by itself with a line naming the full disk and what to do; restarted with
        room again, it resumes from what it stored and the network loses nothing."""
        victim = self.rng.randrange(4)
        node = self.c.net.nodes[victim]
        room = (node.directory / "node.log").stat().st_size + DISK_FULL_LOG_ROOM_BYTES
        subprocess.run(["prlimit", f"--pid={node_pid(self.c.procs[victim])}", f"--fsize={room}"],
                       check=True, timeout=10)
        proc = self.c.procs[victim]
        try:
            wait_for(lambda: proc.poll() is not None, RECOVERY_DEADLINE_S,
                     f"node {victim} to stop on its full disk", poll_s=0.2)
        except AssertionError as exc:
            self.report.problems.append(str(exc))
            return
        self.load.set_live(victim, False)
        self.c.kill(victim)  # already stopped: closes the cluster's bookkeeping
        log = self.c.log_of(victim)
        if proc.returncode != 2 or "is full" not in log or "Free space" not in log:
            self.report.problems.append(
                f"node {victim} on a full disk exited {proc.returncode} without saying so; "
                f"the end of its log: {log[-1500:]}")
        self.c.start(victim)  # room again
        self.c.wait_ready([victim], timeout_s=60)
        self.load.set_live(victim, True)
        self._recovered(f"node {victim} stopped on a full disk, restarted with room",
                        time.monotonic())

    def kill_loop(self) -> None:
        """kill -9 of a random node, restarted at once, again and again under load: a
        node is often killed while it is still catching up from the previous kill."""
        victims = []
        for _ in range(KILL_LOOP_ROUNDS):
            victim = self.rng.randrange(4)
            victims.append(victim)
            self.load.set_live(victim, False)
            self.c.kill(victim)
            time.sleep(self.rng.uniform(0.2, 1.5))  # how long it stays down (the fault)
            self.c.start(victim)
            self.c.wait_ready([victim], timeout_s=60)
            self.load.set_live(victim, True)
            time.sleep(self.rng.uniform(0.2, 1.5))  # how long until the next kill
        self._recovered(f"{KILL_LOOP_ROUNDS} kill -9 of nodes {victims}, each restarted",
                        time.monotonic())

    def _skew(self, offset_s: int) -> None:
        """One node (never the first primary's only backup: any) runs with its clock
        ``offset_s`` off (libfaketime) for a while under load; the network must commit
        throughout; the node is then restarted with the right clock and catches up."""
        victim = self.rng.randrange(4)
        self.load.set_live(victim, False)
        self.c.kill(victim)
        self.c.start(victim, wrapper=["faketime", "-f", f"{offset_s:+d}s"],
                     env={"FAKETIME_DONT_FAKE_MONOTONIC": "1"})
        self.c.wait_ready([victim], timeout_s=60)
        self.load.set_live(victim, True)
        others = [i for i in range(4) if i != victim]
        probe = self.load.anchor(others[0])
        skewed_at = time.monotonic()
        r = self.c.submit(others[0], [probe])
        try:
            wait_for(lambda: r.status_code == 202 and all(self.c.committed(i, probe)
                                                          for i in others),
                     RECOVERY_DEADLINE_S, "a commit with one clock off", poll_s=0.2)
        except AssertionError as exc:
            self.report.problems.append(f"clock {offset_s:+d} s on node {victim}: {exc}")
            return
        self.load.acknowledge(probe)
        self.report.recoveries_s[f"commit with node {victim}'s clock {offset_s:+d} s off"] = (
            round(time.monotonic() - skewed_at, 1))
        time.sleep(SKEW_HOLD_S)  # the fault's duration: the load goes on meanwhile
        self.load.set_live(victim, False)
        self.c.kill(victim)
        self.c.start(victim)
        self.c.wait_ready([victim], timeout_s=60)
        self.load.set_live(victim, True)
        self._recovered(f"node {victim}'s clock back from {offset_s:+d} s", time.monotonic())

    def clock_ahead(self) -> None:
        self._skew(+SKEW_S)

    def clock_behind(self) -> None:
        self._skew(-SKEW_S)

    def pause_primary(self) -> None:
        p = self.primary()
        self.load.set_live(p, False)
        os.killpg(self.c.procs[p].pid, signal.SIGSTOP)
        self.paused.add(p)
        time.sleep(4)
        os.killpg(self.c.procs[p].pid, signal.SIGCONT)
        self.paused.discard(p)
        self.load.set_live(p, True)
        self._recovered("SIGSTOP/SIGCONT of the primary", time.monotonic())

    SHORT: tuple[str, ...] = ("isolate_primary", "kill_restart", "pause_primary")
    LONG: tuple[str, ...] = ("partition_2_2", "isolate_primary", "one_way", "flapping",
                             "delays", "kill_restart", "pause_primary", "empty_restart",
                             "old_copy_restart", "disk_full", "kill_loop", "clock_ahead",
                             "clock_behind")

    # ------------------------------------------------------------------ run
    def run(self, scenarios: tuple[str, ...], rounds: int = 1,
            log: Callable[[str], None] = print) -> Report:
        c = self.c
        try:
            c.start_all()
            c.wait_ready(timeout_s=120)
            self.load.start()
            wait_for(lambda: min(c.height(i) for i in range(4)) >= 2, RECOVERY_DEADLINE_S,
                     "first blocks")
            for _ in range(rounds):
                for name in scenarios:
                    before = set(self.report.recoveries_s)
                    getattr(self, name)()
                    for done in set(self.report.recoveries_s) - before:
                        log(f"{done}: recovered in {self.report.recoveries_s[done]} s")
            self.load.stop()
            self._final_checks()
        finally:
            self.load.stop()
            for p in list(self.paused):
                os.killpg(c.procs[p].pid, signal.SIGCONT)
            c.close()
            self.proxies.close()
        return self.report

    def _polite_get(self, i: int, path: str) -> Any:
        """GET a JSON answer, waiting out the node's per-client rate limit (429)."""
        for _ in range(100):
            r = self.c.get(i, path)
            if r.status_code != 429:
                r.raise_for_status()
                return r.json()
            time.sleep(float(r.headers.get("Retry-After", "1")))
        raise AssertionError(f"node {i} kept answering 429 to {path}")

    def _final_checks(self) -> None:
        c, report = self.c, self.report
        acked = list(self.load.acked)
        report.acknowledged = len(acked)
        remaining = {tx.tx_id: tx for tx in acked}

        def all_found() -> bool:
            # Politely: the node rate-limits one client address (429 + Retry-After), and a
            # refusal is not an absence.
            for tx_id in list(remaining):
                r = c.get(0, f"/v1/transactions/{tx_id.hex()}")
                if r.status_code == 429:
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                    return False
                if r.status_code == 200 and r.json().get("status") == "committed":
                    del remaining[tx_id]
            return not remaining

        try:
            wait_for(all_found, RECOVERY_DEADLINE_S,
                     "every acknowledged transaction on node 0", poll_s=0.5)
            wait_for(lambda: len({c.height(i) for i in range(4)}) == 1, RECOVERY_DEADLINE_S,
                     "the same head on every node", poll_s=0.5)
        except AssertionError as exc:
            report.problems.append(str(exc))
            missing = list(remaining.values())
            if missing:
                first = missing[0].tx_id.hex()
                where = {i: c.get(i, f"/v1/transactions/{first}").status_code
                         for i in range(4)}
                report.problems.append(
                    f"{len(missing)} of {len(acked)} acknowledged transactions missing on "
                    f"node 0; the first, {first[:16]}, answers {where} per node; heights "
                    f"{[c.height(i) for i in range(4)]}")
            return
        report.height = c.height(0)
        for h in range(1, report.height + 1):
            hashes = {self._polite_get(i, f"/v1/blocks/{h}")["block_hash"] for i in range(4)}
            if len(hashes) != 1:
                report.problems.append(f"chains differ at height {h}")
                break
        for i, proc in c.procs.items():
            if proc.poll() is not None:
                report.problems.append(f"node {i} died (exit {proc.returncode})")

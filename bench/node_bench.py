"""Four local validator processes: throughput, commit latency, view-change gap, memory.

    python -m bench.node_bench [--duration S] [--batch N] [--clients C]

Measures, on 127.0.0.1, with real processes and real signatures:
- committed transactions per second at saturation: client threads of this process
  submit pre-signed notary anchors in msgpack batches, round robin over the four nodes,
  each waiting for its batch to commit before sending the next (closed loop), over a
  steady window after a warm-up;
- commit latency p50 and p99 (submit one transaction with ``wait=true``, at a light load);
- the time from ``kill -9`` of the primary to the next commit on the survivors;
- the resident memory (VmRSS) of each node process.
Prints the figures; asserts nothing (DESIGN section 6: figures, not timed tests).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from ledger.encoding import encode
from ledger.genesis import ConsensusParams
from tests.node.cluster import Cluster, wait_for


def _rss_mb(pid: int) -> float:
    """VmRSS of the python process started under ``timeout`` (its only child)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        target = int(children[0]) if children else pid
        for line in Path(f"/proc/{target}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


def _committed_total(c: Cluster, i: int) -> int:
    text = c.get(i, "/metrics").text
    for line in text.splitlines():
        if line.startswith("tabellion_committed_transactions_total "):
            return int(float(line.split()[1]))
    return 0


def _height(c: Cluster, i: int) -> int:
    return c.height(i)


def throughput(c: Cluster, duration_s: float, batch: int, clients: int) -> float:
    """Closed loop: each client submits a batch and waits for it to commit before the
    next, round robin over the nodes, so the offered load follows what the cluster can
    commit (an open loop only measures how fast the mempools fill)."""
    stop = threading.Event()
    deadline = time.monotonic() + duration_s + 60
    rounds = int(duration_s * 4) + 20  # more batches than a client can commit in time

    def client(k: int) -> None:
        pool = [c.anchor((k + j) % 4) for j in range(rounds * batch)]
        turn = k
        with httpx.Client(timeout=90.0) as http:
            while pool and not stop.is_set() and time.monotonic() < deadline:
                chunk, pool = pool[:batch], pool[batch:]
                i = turn % 4
                turn += 1
                with contextlib.suppress(httpx.HTTPError):
                    http.post(c.url(i, "/v1/transactions"),
                              params={"wait": "true", "timeout_ms": 60_000},
                              content=encode([t.encode() for t in chunk]),
                              headers={"content-type": "application/msgpack"})

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    time.sleep(min(5.0, duration_s / 4))  # warm-up: let the pipeline fill
    start_txs, start = _committed_total(c, 0), time.monotonic()
    time.sleep(duration_s)
    end_txs, end = _committed_total(c, 0), time.monotonic()
    stop.set()
    for t in threads:
        t.join(timeout=120)
    return (end_txs - start_txs) / (end - start)


def latency(c: Cluster, samples: int) -> tuple[float, float]:
    times = []
    with httpx.Client(timeout=60.0) as http:
        for k in range(samples):
            tx = c.anchor(k % 4)
            t0 = time.monotonic()
            r = http.post(c.url(k % 4, "/v1/transactions"), params={"wait": "true",
                                                                     "timeout_ms": 30000},
                          content=encode([tx.encode()]),
                          headers={"content-type": "application/msgpack"})
            if r.status_code == 200:
                times.append(time.monotonic() - t0)
    times.sort()
    p50 = statistics.median(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return p50 * 1000, p99 * 1000


def view_change_gap(c: Cluster) -> float:
    status = c.status(0)
    assert status is not None
    keys = [n.validator_key.public_key.hex() for n in c.net.nodes]
    primary = keys.index(status["primary"])
    others = [i for i in range(4) if i != primary]
    stop = threading.Event()

    def feed() -> None:  # keep work pending so that a commit is possible at any time
        k = 0
        while not stop.wait(0.05):
            i = others[k % 3]
            k += 1
            with contextlib.suppress(httpx.HTTPError):
                c.submit(i, [c.anchor(i)])

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        wait_for(lambda: c.height(others[0]) > 0, 30, "a first block")
        before = max(_height(c, i) for i in others)
        c.kill(primary)
        t0 = time.monotonic()
        wait_for(lambda: max(_height(c, i) for i in others) > before, 120,
                 "a commit after the primary died", poll_s=0.01)
        return time.monotonic() - t0
    finally:
        stop.set()
        feeder.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="steady window (s)")
    parser.add_argument("--batch", type=int, default=200, help="transactions per request")
    parser.add_argument("--clients", type=int, default=4, help="submitting threads")
    parser.add_argument("--latency-samples", type=int, default=50)
    args = parser.parse_args()
    # A SIGTERM (e.g. from `timeout`) must still run the cleanup below: no orphan nodes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    with tempfile.TemporaryDirectory() as tmp:
        c = Cluster(Path(tmp), consensus=ConsensusParams(),  # the genesis defaults
                    log_level="warning")
        try:
            c.start_all()
            c.wait_ready()
            rate = throughput(c, args.duration, args.batch, args.clients)
            p50, p99 = latency(c, args.latency_samples)
            rss = [_rss_mb(c.procs[i].pid) for i in range(4)]
            gap = view_change_gap(c)
        finally:
            c.close()
    print("four validators on 127.0.0.1 (real processes, signatures, LevelDB)")
    print(f"  committed throughput       {rate:8.0f} tx/s  (window {args.duration:.0f} s, "
          f"batches of {args.batch}, {args.clients} clients)")
    print(f"  commit latency p50 / p99   {p50:8.0f} / {p99:.0f} ms  (one tx at a time, wait=true)")
    print(f"  kill -9 primary -> commit  {gap * 1000:8.0f} ms")
    print("  resident memory            " + "  ".join(f"{m:.0f} MiB" for m in rss))


if __name__ == "__main__":
    main()

"""``tabellion bench``: four local validators, committed throughput, latency, memory.

The one benchmark driver of the project (``python -m bench.node_bench`` runs this too).
What it does, with real processes, sockets and signatures on 127.0.0.1:
1. generates a fresh four-municipality network in a temporary directory and starts the
   four nodes (the demo's ``Cluster``: one process group, and every node dies with the
   bench even if the bench is SIGKILLed, see ``cli.demo.die_with_parent``; the directory
   a killed bench leaves behind is removed by the next run, ``remove_stale_runs``);
2. creates one aid scheme per municipality, then, in a SEPARATE submitter process (which
   also dies with the bench), pre-signs social-aid disbursements (realistic records of
   about 300 bytes) and pre-encodes the request bodies before any clock starts;
3. throughput, for ``warm-up + duration`` seconds: with ``--rate 0`` (the default) the
   submitter keeps about ``BACKLOG_S`` seconds of the commit rate (at most ``--backlog``)
   accepted but not yet committed (a closed loop: it measures capacity without building
   a queue it must drain later);
   with ``--rate R`` it offers R tx/s open loop whatever happens (an overload test: the
   nodes must answer 429, and the run counts them). Committed transactions per second
   are read from the nodes' ``tabellion_committed_transactions`` counter over the window
   after the warm-up, never from what was merely submitted;
4. a bounded drain (at most ``DRAIN_S_MAX`` or a quarter of the window), then latency: at
   half the measured throughput, small batches posted with ``wait=true`` at a fixed rate
   (open loop) for at most ``LATENCY_WINDOW_S_MAX``; p50, p95 and p99 of the time the
   client waited for its "committed" answer. A request the node answers "not committed"
   after waiting ``LATENCY_TIMEOUT_MS``, or that gets no answer, is counted by kind
   (reported), never as a sample;
5. per node over the window: CPU seconds per committed transaction, view changes; at the
   end: resident memory (VmRSS) and peak (VmHWM); the machine's cores and load average;
   this machine's Ed25519 verification rate on one core and the verification bound;
6. with ``--failover``: ``kill -9`` of the primary while work is pending, and the time
   until a survivor commits the next block.
So a run ends within about ``2 x duration`` plus start-up (``run_budget_s``).
The JSON (``--json``) is strict JSON: a figure that could not be measured is ``null``
and ``notes`` says why. Asserts nothing: it is a measurement.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Annotated, Any

import httpx
import nacl.signing
import typer
from rich.console import Console
from rich.table import Table

from cli.bench_client import KeepAlive, ProtocolError
from cli.common import EXIT_CODES_HELP, EXIT_FAILED, CliError, guarded
from cli.demo import (
    START_TIMEOUT_S,
    Cluster,
    Seed,
    die_with_parent,
    healthy,
    signals_ignored,
    submit_wave,
    wait_for,
)
from cli.network import (
    DEMO_MUNICIPALITIES,
    MunicipalityFiles,
    Network,
    init_network,
    load_tag_key,
)
from cli.submit import EXPIRY_MS_DEFAULT, build_transaction
from contracts.social_aid import CENTS_MAX, beneficiary_tag
from ledger.crypto import SigningKey, load_key
from ledger.encoding import decode, encode
from ledger.validation import TX_EXPIRY_HORIZON_MS_MAX

WARMUP_S_MAX = 5.0
DRAIN_S_MAX = 15.0
LATENCY_WINDOW_S_MAX = 10.0
LATENCY_WINDOW_S_MIN = 2.0
LATENCY_BATCH = 5
LATENCY_TIMEOUT_MS = 5_000
"""A latency request not committed within this is a timeout, not a sample."""
LATENCY_RATE_TPS_MIN = 10.0
TARGET_TPS_MAX = 4000
"""Pre-signed pool: enough for this rate over warm-up + window (the run notes if the
pool ran out)."""
REQUEST_TIMEOUT_S = 5.0
"""Client timeout of one throughput request: bounds how long the phase can overrun."""
RETRY_AFTER_S_MAX = 2.0
"""Longest pause a 429's Retry-After can impose on one submitting thread."""
BACKLOG_TXS_DEFAULT = 10_000
BACKLOG_S = 2.0
"""Closed loop: pending work kept to about this many seconds of the commit rate."""
COMMITTED_POLL_S = 0.2
IN_FLIGHT_MAX = 64
"""Latency requests awaiting their answer at once; the schedule waits beyond it."""
STATUS_TIMEOUT_S = 10.0
TXS_POLL_S = 1.0
FAILOVER_TIMEOUT_S = 30.0
"""``--failover``: how long the survivors have to commit after the primary is killed."""
SCHEME_ID = "bench"
TMP_PREFIX = "tabellion-bench-"
OWNER_FILE = "owner.pid"
"""In the bench's temporary directory: the pid of the bench (see ``remove_stale_runs``)."""
MSGPACK = "application/msgpack"
COMMITTED_METRIC = "tabellion_committed_transactions_total"
VIEW_CHANGES_METRIC = "tabellion_view_changes_total"
HEIGHT_METRIC = "tabellion_height"


def warmup_s(duration_s: float) -> float:
    return min(WARMUP_S_MAX, duration_s / 4)


def drain_s(duration_s: float) -> float:
    return min(DRAIN_S_MAX, duration_s / 4)


def latency_window_s(duration_s: float) -> float:
    return max(LATENCY_WINDOW_S_MIN, min(LATENCY_WINDOW_S_MAX, duration_s / 2))


def run_budget_s(duration_s: float) -> float:
    """Longest the measured phases can take (start-up and pre-signing excluded)."""
    return (warmup_s(duration_s) + duration_s + REQUEST_TIMEOUT_S + drain_s(duration_s)
            + latency_window_s(duration_s) + LATENCY_TIMEOUT_MS / 1000 + 2 * STATUS_TIMEOUT_S)


def pool_lifetime_ms(duration_s: float) -> int:
    """Expiry of the pre-signed pool, from its signing: the whole run and an hour more
    (signing a million transactions takes minutes), within the expiry horizon."""
    return min(TX_EXPIRY_HORIZON_MS_MAX - EXPIRY_MS_DEFAULT,
               int(run_budget_s(duration_s) * 1000) + 2 * EXPIRY_MS_DEFAULT)


@dataclass(frozen=True, slots=True)
class NodeFigures:
    """One node over the measured window (CPU, view changes) and at the end (memory)."""

    cpu_s: float | None
    cpu_s_per_committed_tx: float | None
    view_changes: int | None
    rss_mb: float | None
    rss_peak_mb: float | None
    height: int | None


@dataclass(frozen=True, slots=True)
class BenchResult:
    """What one run measured. ``None`` means "not measured"; ``notes`` says why."""

    validators: int
    cores: int
    load_average_start: tuple[float, float, float]
    load_average_end: tuple[float, float, float]
    duration_s: float
    mode: str
    """``closed loop`` (bounded backlog) or ``open loop`` (offered rate)."""
    txs_target: int | None
    """``--txs``: transactions submitted, the window ending when they are committed."""
    offered_tps: float
    backlog_txs_max: int | None
    tx_bytes_mean: int
    submitted: int
    """Transactions accepted by the nodes (HTTP 202) during the throughput phase."""
    responses_429: int
    responses_503: int
    responses_other: int
    request_errors: int
    """Requests that got no answer (timeouts, refused connections)."""
    committed_in_window: int
    committed_tps: float
    blocks_in_window: int
    txs_per_block_mean: float | None
    """Committed transactions per block in the window (empty blocks included)."""
    view_changes: int | None
    """View changes during the window (the largest count seen by one node)."""
    backlog_before_latency: int | None
    latency_rate_tps: float
    latency_window_s: float
    latency_samples: int
    latency_failures: dict[str, int]
    """Latency requests not committed in time, by answer (``HTTP 202``: still pending)."""
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    cpu_s_per_committed_tx_per_node: float | None
    """Mean over the nodes of CPU seconds spent per transaction committed in the window."""
    submitter_cpu_share: float | None
    """CPU seconds of the submitter per second of the window: the cores it took from the
    nodes (on 2 cores, 0.5 is a quarter of the machine)."""
    nodes: dict[str, NodeFigures]
    ed25519_verify_per_s_core: float
    verification_bound_tps: float
    bound_ratio: float | None
    failover_s: float | None
    """``--failover``: seconds from ``kill -9`` of the primary to the next commit."""
    elapsed_s: float
    """Wall time of the whole run, start-up included."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        """Strict JSON (no NaN or Infinity: ``ValueError`` rather than invalid output)."""
        return json.dumps(asdict(self), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- submitter


@dataclass(frozen=True, slots=True)
class SubmitterPlan:
    """Everything the submitter process needs (picklable; keys are throwaway bench keys)."""

    chain_id: str
    urls: tuple[str, ...]
    agents: tuple[tuple[bytes, str, bytes], ...]
    """(agent seed, SIRET, tag key) per municipality."""
    count: int
    batch: int
    clients: int
    period: str
    parent_pid: int = 0
    """The bench's pid: the submitter dies with it (0: do not arm, as in unit tests)."""
    lifetime_ms: int = EXPIRY_MS_DEFAULT
    """How long after signing the transactions expire: longer than the run (a pool signed
    at start-up for a run of hours must not expire before it is submitted)."""


@dataclass(frozen=True, slots=True)
class Counts:
    """What the nodes answered to the throughput phase's requests: ``accepted`` counts
    transactions, the others answers (a batch refused for now is posted again)."""

    accepted: int = 0
    too_many: int = 0
    full: int = 0
    other: int = 0
    errors: int = 0


def _sign_pool(plan: SubmitterPlan) -> list[tuple[int, list[bytes]]]:
    """Pre-signed batches: (node index, canonical transactions), round robin."""
    batches: list[tuple[int, list[bytes]]] = []
    per_muni = plan.count // len(plan.agents) + 1
    encoded: list[list[bytes]] = []
    for seed, siret, tag_key in plan.agents:
        key = SigningKey(seed)
        txs = []
        for n in range(per_muni):
            payload: dict[str, Any] = {
                "siret": siret, "scheme_id": SCHEME_ID, "period": plan.period,
                "amount_cents": 100 + n % 900,
                "beneficiary": beneficiary_tag(tag_key, f"bench-{n}"),
            }
            tx = build_transaction(plan.chain_id, "social_aid", "disburse", payload, key,
                                   expiry_ms=plan.lifetime_ms)
            txs.append(tx.encode())
        encoded.append(txs)
    index = 0
    for start in range(0, per_muni, plan.batch):
        for txs in encoded:
            chunk = txs[start:start + plan.batch]
            if chunk:
                batches.append((index % len(plan.urls), chunk))
                index += 1
    return batches


def _submitter_main(plan: SubmitterPlan, conn: Connection) -> None:
    """Child process: pre-sign, report ready, then run the phases the parent asks for."""
    if plan.parent_pid:
        arm = die_with_parent(plan.parent_pid)
        if arm is not None:
            arm()
    batches = _sign_pool(plan)
    # msgpack bodies (an array of transaction byte strings), encoded before any clock.
    bodies = [(node, encode(chunk), len(chunk)) for node, chunk in batches]
    sizes = [len(t) for _, chunk in batches[:10] for t in chunk]
    conn.send(("ready", len(batches), sum(sizes) // max(1, len(sizes))))
    cursor = 0
    while True:
        command = conn.recv()
        if command[0] == "stop":
            return
        if command[0] == "flood":
            limit = min(len(bodies), cursor + int(command[4])) if command[4] else len(bodies)
            counts, cursor = _flood(plan, bodies[:limit], cursor, float(command[1]),
                                    float(command[2]), int(command[3]))
            conn.send(("flooded", counts, cursor >= len(bodies)))
        elif command[0] == "paced":
            latencies, failures, cursor = _paced(plan, batches, cursor, float(command[1]),
                                                 float(command[2]))
            conn.send(("paced", latencies, failures))


def committed_total(url: str, timeout_s: float = STATUS_TIMEOUT_S) -> int:
    """The node's count of committed transactions (its Prometheus counter)."""
    return committed_and_height(url, timeout_s)[0]


def committed_and_height(url: str, timeout_s: float = STATUS_TIMEOUT_S) -> tuple[int, int]:
    """The node's count of committed transactions and its height (Prometheus samples)."""
    found = metrics(url, timeout_s)
    for name in (COMMITTED_METRIC, HEIGHT_METRIC):
        if name not in found:
            raise CliError(f"{url}/metrics has no {name} sample", EXIT_FAILED)
    return int(found[COMMITTED_METRIC]), int(found[HEIGHT_METRIC])


def metrics(url: str, timeout_s: float = STATUS_TIMEOUT_S) -> dict[str, float]:
    """The node's unlabelled Prometheus samples, by name."""
    found: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=timeout_s).text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            try:
                found[name] = float(value)
            except ValueError:
                continue
    return found


def _flood(plan: SubmitterPlan, bodies: list[tuple[int, bytes, int]], cursor: int,
           seconds: float, rate_tps: float, backlog_max: int) -> tuple[Counts, int]:
    """Post batches from ``plan.clients`` threads for ``seconds``. Open loop when
    ``rate_tps`` > 0 (batch k no earlier than k * batch / rate_tps after the start);
    otherwise as fast as the nodes commit, keeping at most ``backlog_max`` transactions
    accepted and not yet committed (read from node 0's counter)."""
    lock = threading.Lock()
    state = {"cursor": cursor, "accepted": 0, "429": 0, "503": 0, "other": 0, "errors": 0}
    start = time.monotonic()
    deadline = start + seconds
    committed0 = committed_total(plan.urls[0])
    committed = {"now": float(committed0), "rate": 0.0}
    floor = plan.batch * plan.clients
    stop = threading.Event()

    def monitor() -> None:
        last, last_at = committed["now"], time.monotonic()
        while not stop.wait(COMMITTED_POLL_S):
            try:
                now = committed_total(plan.urls[0], timeout_s=2.0)
            except (httpx.HTTPError, CliError):
                continue
            at = time.monotonic()
            rate = (now - last) / max(at - last_at, 1e-3)
            committed["rate"] = 0.8 * committed["rate"] + 0.2 * rate  # smoothed
            committed["now"], last, last_at = now, now, at

    def room() -> bool:
        """Closed loop: pending at most BACKLOG_S of the commit rate (at least one batch
        per client, at most ``backlog_max``), so the queue never outgrows the nodes."""
        limit = min(backlog_max, max(floor, int(BACKLOG_S * committed["rate"])))
        return state["accepted"] - (committed["now"] - committed0) < limit

    def worker() -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
            while time.monotonic() < deadline:
                if rate_tps <= 0 and not room():
                    time.sleep(0.01)
                    continue
                with lock:
                    if state["cursor"] >= len(bodies):
                        return
                    node, body, size = bodies[state["cursor"]]
                    k = state["cursor"] - cursor
                    state["cursor"] += 1
                if rate_tps > 0:
                    time.sleep(max(0.0, start + k * plan.batch / rate_tps - time.monotonic()))
                while size:
                    try:
                        response = http.post(f"{plan.urls[node]}/v1/transactions",
                                             content=body, headers={"content-type": MSGPACK})
                    except httpx.HTTPError:
                        with lock:
                            state["errors"] += 1
                        break
                    key = {202: "accepted", 429: "429", 503: "503"}.get(
                        response.status_code, "other")
                    if key == "accepted":
                        accepted, body, size = size, b"", 0
                    elif key in ("429", "503"):
                        again, accepted = refused_for_now(body, response)
                        body, size = encode(again), len(again)
                    else:
                        accepted, size = 0, 0
                    with lock:
                        state["accepted"] += accepted
                        if key != "accepted":
                            state[key] += 1
                    if size:  # post again what passes with time, as a clerk's client does
                        time.sleep(_retry_after_s(response))
                        if time.monotonic() >= deadline:
                            break

    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=worker) for _ in range(plan.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    counts = Counts(state["accepted"], state["429"], state["503"], state["other"],
                    state["errors"])
    return counts, state["cursor"]


RETRYABLE_CODES = frozenset({"busy", "rate_limited", "mempool_full"})
"""Refusals that pass with time: the codes ``node.api.REFUSAL_STATUS`` answers with 429 or
503 (a test holds the two equal; imported, it would load the web framework into every CLI
command). A client posts those transactions again."""


def refused_for_now(body: bytes, response: httpx.Response) -> tuple[list[bytes], int]:
    """After a 429 or 503 to the batch ``body``: its transactions refused for a reason that
    passes with time, to post again, and how many the node accepted. The node answers
    for the whole batch with the first refusal's status (the outcome of each transaction
    in ``error.results``), so a batch dropped on a 429 lost the transactions it did accept
    too, and a ``--txs`` run never reached its count (seen: 898,706 of 1,000,000, the
    rest refused as ``busy``)."""
    raws = decode(body)
    try:
        answer = response.json()
        results = answer["error"]["results"] if isinstance(answer, dict) else None
    except (ValueError, KeyError, TypeError):
        results = None
    if not isinstance(raws, list):
        raise CliError("the bench posted a batch that is not an array", EXIT_FAILED)
    if not (isinstance(results, list) and len(results) == len(raws)
            and all(isinstance(r, dict) for r in results)):
        return list(raws), 0  # no outcome per transaction (a proxy's 503): all again
    again = [raw for raw, result in zip(raws, results, strict=True)
             if result.get("code") in RETRYABLE_CODES]
    accepted = sum(1 for result in results if result.get("code") == "accepted")
    return again, accepted


def _retry_after_s(response: httpx.Response) -> float:
    """The pause a refusal asks for (``Retry-After`` in seconds), bounded."""
    try:
        asked = float(response.headers.get("retry-after", "0.05"))
    except ValueError:
        asked = 0.05
    return min(max(asked, 0.0), RETRY_AFTER_S_MAX)


def _paced(plan: SubmitterPlan, batches: list[tuple[int, list[bytes]]], cursor: int,
           rate_tps: float, seconds: float) -> tuple[list[float], dict[str, int], int]:
    """Open loop: a batch of ``LATENCY_BATCH`` every ``LATENCY_BATCH / rate`` seconds,
    each posted with ``wait=true`` (``cli.bench_client``: one event loop, so the client
    takes little of the cores the nodes share); the latency of a batch is the time to its
    answer. Returns the latencies (ms) of committed batches, the others counted by what
    was answered (``HTTP 202``: not committed in time) or raised, and the new cursor."""
    interval = LATENCY_BATCH / max(rate_tps, 1.0)
    latencies: list[float] = []
    failures: dict[str, int] = {}
    small = [(node, chunk[i:i + LATENCY_BATCH]) for node, chunk in batches[cursor:]
             for i in range(0, len(chunk), LATENCY_BATCH)]
    target = f"/v1/transactions?wait=true&timeout_ms={LATENCY_TIMEOUT_MS}"
    client_timeout_s = LATENCY_TIMEOUT_MS / 1000 + 2.0

    async def post(client: KeepAlive, chunk: list[bytes]) -> None:
        started = time.monotonic()
        try:
            answer = await client.post(target, encode(chunk), MSGPACK, client_timeout_s)
            committed = answer.status == 200 and bool(json.loads(answer.body).get("committed"))
            failure = f"HTTP {answer.status}"
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ProtocolError,
                ValueError) as exc:
            committed, failure = False, type(exc).__name__
        if committed:
            latencies.append((time.monotonic() - started) * 1000)
        else:
            failures[failure] = failures.get(failure, 0) + 1

    async def run() -> int:
        clients = [KeepAlive(url) for url in plan.urls]
        in_flight: set[asyncio.Task[None]] = set()
        used = 0
        start = time.monotonic()
        try:
            while time.monotonic() - start < seconds and used < len(small):
                if len(in_flight) >= IN_FLIGHT_MAX:  # the nodes fell behind: wait, bounded
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                node, chunk = small[used]
                used += 1
                task = asyncio.ensure_future(post(clients[node], chunk))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                await asyncio.sleep(max(0.0, start + used * interval - time.monotonic()))
            if in_flight:
                await asyncio.wait(in_flight)
        finally:
            for client in clients:
                await client.close()
        return used

    used = asyncio.run(run())
    consumed = (used * LATENCY_BATCH + plan.batch - 1) // plan.batch  # whole batches
    return latencies, failures, cursor + consumed


# --------------------------------------------------------------------------- measuring


def verify_rate_per_core(seconds: float = 1.0) -> float:
    """Ed25519 verifications per second on one core (libsodium, as the node uses)."""
    key = nacl.signing.SigningKey(bytes(range(32)))
    message = bytes(300)
    signed = key.sign(message)
    verify_key = key.verify_key
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            verify_key.verify(signed)
        count += 200
    return count / (time.perf_counter() - start)


def proc_status_mb(pid: int, field_name: str) -> float | None:
    """A memory line of /proc/<pid>/status (``VmRSS``, ``VmHWM``) in MiB; None if the
    process is gone or the system has no /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mb(pid: int) -> float | None:
    return proc_status_mb(pid, "VmRSS")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far; None if it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    except (OSError, ValueError, IndexError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` quantile (nearest rank); None without a sample."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@contextmanager
def running(network: Network) -> Iterator[Cluster]:
    cluster = Cluster(network)
    try:
        cluster.start()
        wait_for(lambda: all(healthy(m.api_url) for m in network.municipalities), cluster,
                 START_TIMEOUT_S, "the four nodes to answer /healthz")
        yield cluster
    finally:
        with signals_ignored():
            cluster.stop()


BENCH_TERMS = {"budget_cents": CENTS_MAX, "ceiling_cents": 1_000_000,
               "four_eyes_threshold_cents": CENTS_MAX}


def setup_schemes(network: Network, cluster: Cluster, year: int) -> list[SigningKey]:
    """Each town's council sits and decides the benchmark scheme, its admin creates it
    (three waves: each step needs the previous one committed); returns the agents."""
    agents = []
    waves: list[list[Seed]] = [[], [], []]
    date = f"{year}-01-01"
    for m in network.municipalities:
        key = {role: load_key(network.key_of(m, role),  # one passphrase per key holder
                              network.passphrase_of(m, role).read_bytes().strip())
               for role in ("admin", "clerk", "social_aid_agent")}
        agents.append(key["social_aid_agent"])

        def tx(contract: str, action: str, payload: dict[str, Any], signer: SigningKey,
               m: MunicipalityFiles = m) -> Seed:
            return Seed(m, build_transaction(network.chain_id, contract, action, payload,
                                             signer), f"bench {action}")

        waves[0].append(tx("deliberations", "record_sitting", {
            "COLL_SIRET": m.siret, "sitting_id": "BENCH", "date": date,
            "members_in_office": 1, "members_present": 1, "second_convocation": False},
            key["clerk"]))
        waves[1].append(tx("deliberations", "record", {
            "COLL_NOM": m.name, "COLL_SIRET": m.siret, "DELIB_ID": "BENCH",
            "DELIB_DATE": date, "DELIB_MATIERE_CODE": "8.2",
            "DELIB_MATIERE_NOM": "Aide sociale", "DELIB_OBJET": "Benchmark scheme",
            "VOTE_EFFECTIF": 1, "VOTE_REEL": 1, "VOTE_POUR": 1, "VOTE_CONTRE": 0,
            "VOTE_ABSTENTION": 0, "act_sha256": "00" * 32, "sitting_id": "BENCH",
            "order_number": 1, "members_present": 1,
            **{f"aid_{name}": value for name, value in BENCH_TERMS.items()}}, key["clerk"]))
        waves[2].append(tx("social_aid", "create_scheme", {
            "siret": m.siret, "scheme_id": SCHEME_ID, "name": "Benchmark",
            "period_start": f"{year}-01", "period_end": f"{year}-12",
            "decision_ref": "BENCH", **BENCH_TERMS}, key["admin"]))
    for wave in waves:
        submit_wave(wave, cluster)
    return agents


def _sample_nodes(cluster: Cluster, network: Network) -> dict[str, tuple[float | None,
                                                                         float | None]]:
    """(CPU seconds so far, view changes so far) of each node."""
    found: dict[str, tuple[float | None, float | None]] = {}
    for m in network.municipalities:
        try:
            changes = metrics(m.api_url).get(VIEW_CHANGES_METRIC)
        except httpx.HTTPError:
            changes = None
        found[m.name] = (cpu_seconds(cluster.processes[m.slug].pid), changes)
    return found


def remove_stale_runs(tmp_root: Path) -> list[Path]:
    """Remove the temporary directories of earlier benches that were killed (SIGKILL
    leaves the directory: no clean-up of ours runs). A directory is stale when the pid in
    its ``OWNER_FILE`` no longer runs; one without that file is not touched."""
    removed = []
    for directory in sorted(tmp_root.glob(f"{TMP_PREFIX}*")):
        try:
            owner = int((directory / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not a bench directory, or one still being created
        try:
            os.kill(owner, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # running, as another user
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    return removed


def _load() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def _failover(cluster: Cluster, network: Network, parent: Connection, rate_tps: float,
              notes: list[str]) -> float | None:
    """``kill -9`` the primary while the submitter keeps work pending at ``rate_tps``;
    seconds until a survivor commits a new block (None: none did in time)."""
    status = node_status(network.municipalities[0].api_url)
    victim = next((m for m in network.municipalities
                   if m.validator_key == status.get("primary")), None)
    if victim is None:
        notes.append("failover: no node is the primary named by /v1/status")
        return None
    survivors = [m for m in network.municipalities if m is not victim]

    def height() -> int:
        found = -1
        for m in survivors:
            try:
                found = max(found, int(node_status(m.api_url).get("height", -1)))
            except (httpx.HTTPError, ValueError):
                continue
        return found

    parent.send(("paced", rate_tps, FAILOVER_TIMEOUT_S))  # answered after the window
    before = height()
    process = cluster.processes[victim.slug]
    process.kill()
    process.wait(timeout=STATUS_TIMEOUT_S)
    killed = time.monotonic()
    gap: float | None = None
    while time.monotonic() - killed < FAILOVER_TIMEOUT_S:
        if height() > before:
            gap = time.monotonic() - killed
            break
        time.sleep(0.05)
    parent.recv()
    if gap is None:
        notes.append(f"failover: no commit within {FAILOVER_TIMEOUT_S:.0f} s of killing the "
                     f"primary ({victim.name})")
    return gap


def run_bench(duration_s: float, batch: int, clients: int, console: Console,
              rate_tps: float = 0.0, backlog_max: int = BACKLOG_TXS_DEFAULT,
              with_failover: bool = False, txs: int = 0) -> BenchResult:
    """One run. ``txs`` > 0: submit that many transactions (in the throughput phase) and
    end the window when they are committed, ``duration_s`` being then the longest it may
    take (the memory target of issue 11 is read after 1,000,000)."""
    began = time.monotonic()
    now = datetime.now(UTC)
    notes: list[str] = []
    load_start = _load()
    warmup, window_latency = warmup_s(duration_s), latency_window_s(duration_s)
    for stale in remove_stale_runs(Path(tempfile.gettempdir())):
        console.print(f"removed {stale}, left by a bench that was killed")
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX) as tmp:
        (Path(tmp) / OWNER_FILE).write_text(str(os.getpid()))
        network = init_network(Path(tmp) / "net", list(DEMO_MUNICIPALITIES),
                               chain_id="tabellion-bench", base_port=0)
        console.print("verifying Ed25519 on one core…")
        verify_rate = verify_rate_per_core()
        with running(network) as cluster:
            agents = setup_schemes(network, cluster, now.year)
            urls = tuple(m.api_url for m in network.municipalities)
            latency_pool = int(window_latency * TARGET_TPS_MAX / 2)
            count = (txs or int(TARGET_TPS_MAX * (warmup + duration_s))) + latency_pool
            plan = SubmitterPlan(
                network.chain_id, urls,
                tuple((a.seed, m.siret, load_tag_key(network.tag_key_of(m)))
                      for a, m in zip(agents, network.municipalities, strict=True)),
                count, batch, clients, now.strftime("%Y-%m"), parent_pid=os.getpid(),
                lifetime_ms=pool_lifetime_ms(duration_s))
            console.print(f"pre-signing {count:,} disbursements in the submitter process…")
            context = multiprocessing.get_context("spawn")
            parent, child = context.Pipe()
            submitter = context.Process(target=_submitter_main, args=(plan, child),
                                        daemon=True)
            submitter.start()
            try:
                _, _, tx_bytes = parent.recv()
                console.print(f"start-up took {time.monotonic() - began:.0f} s")
                pace = (f"open loop at {rate_tps:,.0f} tx/s" if rate_tps else
                        f"closed loop, about {BACKLOG_S:.0f} s of commits pending")
                what = f"{txs:,} transactions, at most" if txs else "for"
                console.print(f"submitting ({pace}) {what} {warmup + duration_s:.0f} s "
                              f"({warmup:.0f} s warm-up)…")
                base = committed_total(urls[0])
                parent.send(("flood", warmup + duration_s, rate_tps, backlog_max,
                             -(-txs // batch)))
                time.sleep(warmup)
                (c0, h0), t0 = committed_and_height(urls[0]), time.monotonic()
                before = _sample_nodes(cluster, network)
                client0 = cpu_seconds(submitter.pid or 0)
                if txs:  # until the txs are committed (or the time is up)
                    while (time.monotonic() < t0 + duration_s
                           and committed_total(urls[0]) - base < txs):
                        time.sleep(TXS_POLL_S)
                else:
                    time.sleep(duration_s)
                (c1, h1), t1 = committed_and_height(urls[0]), time.monotonic()
                after = _sample_nodes(cluster, network)
                client1 = cpu_seconds(submitter.pid or 0)
                _, counts, exhausted = parent.recv()
                if txs and c1 - base < txs:
                    notes.append(f"only {c1 - base:,} of the {txs:,} transactions committed "
                                 f"within {duration_s:.0f} s")
                if exhausted and not txs:
                    notes.append("the pre-signed pool ran out during the throughput phase: "
                                 f"the nodes may commit more than {TARGET_TPS_MAX} tx/s")
                tps = (c1 - c0) / (t1 - t0)
                console.print(f"committed {c1 - c0:,} transactions in {t1 - t0:.1f} s: "
                              f"{tps:,.1f} tx/s ({counts.accepted:,} accepted, "
                              f"{counts.too_many:,} answers 429)")
                latency_rate = max(tps / 2, LATENCY_RATE_TPS_MIN)
                backlog = drain(urls, cluster, drain_s(duration_s))
                if backlog:
                    notes.append(f"{backlog:,} transactions were still pending when the "
                                 "latency phase began: its figures include that queue")
                console.print(f"latency at {latency_rate:.0f} tx/s for "
                              f"{window_latency:.0f} s…")
                parent.send(("paced", latency_rate, window_latency))
                _, latencies, failures = parent.recv()
                nodes = _node_figures(cluster, network, before, after, c1 - c0, notes)
                failover = (_failover(cluster, network, parent, latency_rate, notes)
                            if with_failover else None)
                parent.send(("stop",))
            finally:
                submitter.join(timeout=STATUS_TIMEOUT_S)
                if submitter.is_alive():
                    submitter.kill()
    if not latencies:
        notes.append(f"no latency sample: none of the {sum(failures.values())} latency "
                     f"requests committed within {LATENCY_TIMEOUT_MS} ms ({failures})")
    cores = os.cpu_count() or 1
    bound = verify_rate * cores / len(DEMO_MUNICIPALITIES)
    per_tx = [n.cpu_s_per_committed_tx for n in nodes.values()
              if n.cpu_s_per_committed_tx is not None]
    changes = [n.view_changes for n in nodes.values() if n.view_changes is not None]
    if len(changes) < len(nodes):
        notes.append(f"view changes: a node exposes no {VIEW_CHANGES_METRIC} counter")
    return BenchResult(
        validators=len(DEMO_MUNICIPALITIES), cores=cores, load_average_start=load_start,
        load_average_end=_load(), duration_s=duration_s,
        mode="open loop" if rate_tps else "closed loop", txs_target=txs or None,
        offered_tps=rate_tps,
        backlog_txs_max=None if rate_tps else backlog_max, tx_bytes_mean=int(tx_bytes),
        submitted=counts.accepted, responses_429=counts.too_many, responses_503=counts.full,
        responses_other=counts.other, request_errors=counts.errors,
        committed_in_window=c1 - c0, committed_tps=round(tps, 1), blocks_in_window=h1 - h0,
        txs_per_block_mean=round((c1 - c0) / (h1 - h0), 1) if h1 > h0 else None,
        view_changes=max(changes) if changes else None, backlog_before_latency=backlog,
        latency_rate_tps=round(latency_rate, 1), latency_window_s=window_latency,
        latency_samples=len(latencies), latency_failures=failures,
        latency_p50_ms=_round(percentile(latencies, 0.50)),
        latency_p95_ms=_round(percentile(latencies, 0.95)),
        latency_p99_ms=_round(percentile(latencies, 0.99)),
        cpu_s_per_committed_tx_per_node=(round(sum(per_tx) / len(per_tx), 6) if per_tx
                                         else None),
        submitter_cpu_share=(None if client0 is None or client1 is None
                             else round((client1 - client0) / (t1 - t0), 3)),
        nodes=nodes, ed25519_verify_per_s_core=round(verify_rate),
        verification_bound_tps=round(bound), bound_ratio=round(tps / bound, 3),
        failover_s=_round(failover, 3), elapsed_s=round(time.monotonic() - began, 1),
        notes=notes,
    )


def _node_figures(cluster: Cluster, network: Network,
                  before: dict[str, tuple[float | None, float | None]],
                  after: dict[str, tuple[float | None, float | None]], committed: int,
                  notes: list[str]) -> dict[str, NodeFigures]:
    figures = {}
    for m in network.municipalities:
        pid = cluster.processes[m.slug].pid
        (cpu0, vc0), (cpu1, vc1) = before[m.name], after[m.name]
        cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
        try:
            height: int | None = int(node_status(m.api_url).get("height", -1))
        except (httpx.HTTPError, ValueError):
            height = None
        figures[m.name] = NodeFigures(
            cpu_s=_round(cpu, 2),
            cpu_s_per_committed_tx=(round(cpu / committed, 6) if cpu is not None and committed
                                    else None),
            view_changes=None if vc0 is None or vc1 is None else int(vc1 - vc0),
            rss_mb=_round(rss_mb(pid)), rss_peak_mb=_round(proc_status_mb(pid, "VmHWM")),
            height=height,
        )
    if not committed:
        notes.append("nothing committed in the window: no CPU seconds per transaction")
    if any(f.cpu_s is None for f in figures.values()):
        notes.append("CPU time and memory are read from /proc: not available here")
    return figures


def node_status(url: str) -> dict[str, Any]:
    """A node's status (bounded wait: an overloaded node that does not answer in time is
    reported, it does not stretch the run)."""
    found = httpx.get(f"{url}/v1/status", timeout=STATUS_TIMEOUT_S).json()
    return found if isinstance(found, dict) else {}


def mempool_size(url: str) -> int:
    mempool = node_status(url).get("mempool", {})
    return int(mempool.get("transactions", 0)) if isinstance(mempool, dict) else 0


def drain(urls: tuple[str, ...], cluster: Cluster, timeout_s: float) -> int | None:
    """Wait (at most ``timeout_s``) for the mempools to empty, so the latency phase does
    not queue behind the throughput phase; return what is still pending (reported, not
    hidden), None if no node answered."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            # Every node holds every pending transaction (they are forwarded): take the max.
            pending: int | None = max(mempool_size(url) for url in urls)
        except (httpx.HTTPError, ValueError):
            pending = None
        if pending == 0 or time.monotonic() > deadline:
            return pending
        if cluster.dead():
            raise cluster.died(cluster.dead()[0], "during the benchmark")
        time.sleep(0.5)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def print_result(result: BenchResult, console: Console) -> None:
    table = Table(title=f"tabellion bench: {result.validators} validators, "
                        f"{result.cores} cores, {result.duration_s:.0f} s window")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("mode", result.mode + (f" at {result.offered_tps:,.0f} tx/s" if result.offered_tps
                                else f", backlog <= {result.backlog_txs_max:,}")),
        ("committed transactions / s", f"{result.committed_tps:,.1f}"),
        ("blocks in the window, transactions per block",
         f"{result.blocks_in_window:,}, {result.txs_per_block_mean}"),
        ("view changes in the window", str(result.view_changes)),
        ("accepted / 429 / 503 / other / no answer",
         f"{result.submitted:,} / {result.responses_429:,} / {result.responses_503:,} / "
         f"{result.responses_other:,} / {result.request_errors:,}"),
        ("transaction size (bytes, mean)", str(result.tx_bytes_mean)),
        ("latency load (tx/s)", f"{result.latency_rate_tps:,.0f}"),
        ("commit latency p50 / p95 / p99 (ms)",
         f"{_ms(result.latency_p50_ms)} / {_ms(result.latency_p95_ms)} / "
         f"{_ms(result.latency_p99_ms)}"),
        ("latency samples / failures",
         f"{result.latency_samples} / {sum(result.latency_failures.values())}"),
        ("backlog when latency began (tx)", str(result.backlog_before_latency)),
        ("CPU s per committed tx per node",
         "n/a" if result.cpu_s_per_committed_tx_per_node is None
         else f"{result.cpu_s_per_committed_tx_per_node * 1000:.3f} ms"),
        ("submitter CPU (cores busy)", str(result.submitter_cpu_share)),
        ("Ed25519 verifications / s / core", f"{result.ed25519_verify_per_s_core:,.0f}"),
        ("verification bound (tx/s)", f"{result.verification_bound_tps:,.0f}"),
        ("throughput / bound", f"{result.bound_ratio}"),
        ("load average (start, end)",
         f"{result.load_average_start[0]} -> {result.load_average_end[0]}"),
        *((f"{name}: RSS / peak (MiB), height",
           f"{_ms(n.rss_mb)} / {_ms(n.rss_peak_mb)}, {n.height}")
          for name, n in result.nodes.items()),
        ("kill -9 primary -> next commit (s)",
         "not measured" if result.failover_s is None else f"{result.failover_s:.3f}"),
        ("elapsed, start-up included (s)", f"{result.elapsed_s:,.1f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")


def bench(
    duration: Annotated[float, typer.Option(
        "--duration", help="Steady measurement window in seconds (at least 20 for the "
        "reported figure). The run ends within about twice this, plus start-up.",
        min=1.0, max=3600.0)] = 20.0,
    json_file: Annotated[Path | None, typer.Option(
        "--json", help="Also write the figures as JSON to this file.")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Transactions per request.",
                                       min=1, max=2000)] = 200,
    clients: Annotated[int, typer.Option("--clients", help="Submitting threads.",
                                         min=1, max=64)] = 4,
    rate: Annotated[float, typer.Option(
        "--rate", help="Offered load in tx/s, open loop (an overload test: the nodes must "
        "answer 429). 0: closed loop, as fast as the nodes commit.",
        min=0.0, max=100_000.0)] = 0.0,
    backlog: Annotated[int, typer.Option(
        "--backlog", help="Closed loop: most transactions accepted and not yet committed "
        f"(below that, about {BACKLOG_S:.0f} s of the commit rate).",
        min=1, max=1_000_000)] = BACKLOG_TXS_DEFAULT,
    txs: Annotated[int, typer.Option(
        "--txs", help="Submit this many transactions and measure until they are committed "
        "(memory after a long chain: --txs 1000000); --duration is then the longest the "
        "window may take. 0: a window of --duration.", min=0, max=100_000_000)] = 0,
    failover: Annotated[bool, typer.Option(
        "--failover", help="At the end, kill -9 the primary and measure the time to the "
        f"next commit (at most {FAILOVER_TIMEOUT_S:.0f} s more).")] = False,
) -> None:
    """Measure committed throughput, commit latency, CPU and memory of four local nodes.

    Example: tabellion bench --duration 20 --json bench.json
    (memory after a million transactions: tabellion bench --txs 1000000 --duration 7200)
    """
    console = Console(highlight=False)
    budget = run_budget_s(duration) + (FAILOVER_TIMEOUT_S if failover else 0.0)
    console.print(f"the measured phases take at most {budget:.0f} s after start-up and "
                  "pre-signing")
    result = run_bench(duration, batch, clients, console, rate, backlog, failover, txs)
    print_result(result, console)
    if json_file is not None:
        json_file.write_text(result.to_json())
        console.print(f"wrote {json_file}")


def register(app: typer.Typer) -> None:
    app.command("bench", epilog=EXIT_CODES_HELP)(guarded(bench))

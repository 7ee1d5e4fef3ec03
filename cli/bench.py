"""``tabellion bench``: four local validators, committed throughput, latency, memory.

What it does (issue 6), with real processes, sockets and signatures on 127.0.0.1:
1. generates a fresh four-municipality network in a temporary directory and starts the
   four nodes (the demo's process group: nothing outlives the bench);
2. creates one aid scheme per municipality, then, in a SEPARATE submitter process,
   pre-signs social-aid disbursements (realistic records of about 300 bytes, each with
   its own beneficiary tag) before any clock starts;
3. throughput: the submitter posts batches round robin to the four nodes from several
   threads as fast as they are accepted; committed transactions per second are read
   from the nodes' ``tabellion_committed_transactions`` counter over a steady window
   (after a warm-up), never from what was merely submitted;
4. latency: at about half of the measured peak, small batches are posted with
   ``wait=true`` at a fixed rate (open loop); p50 and p99 of the time to commit;
5. the resident memory (VmRSS) of each node, this machine's Ed25519 verification rate on
   one core, and the ratio of the throughput to the verification bound
   (verifications/s x cores / validators: each validator verifies every transaction).
Prints a table, or writes JSON with ``--json``. Asserts nothing: it is a measurement.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Annotated, Any

import httpx
import nacl.signing
import typer
from rich.console import Console
from rich.table import Table

from cli.common import EXIT_CODES_HELP, EXIT_FAILED, CliError, guarded
from cli.demo import (
    START_TIMEOUT_S,
    Cluster,
    Seed,
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
from cli.submit import build_transaction
from contracts.social_aid import CENTS_MAX, beneficiary_tag
from ledger.crypto import SigningKey, load_key

WARMUP_S = 5.0
LATENCY_WINDOW_S = 10.0
LATENCY_BATCH = 5
TARGET_TPS_MAX = 4000
"""Pre-signed pool: enough for this rate over warm-up + window (closed loop stops there)."""
IN_FLIGHT_MAX = 64
DRAIN_TIMEOUT_S = 60.0
STATUS_TIMEOUT_S = 60.0
SCHEME_ID = "bench"


@dataclass(frozen=True, slots=True)
class BenchResult:
    """What one run measured."""

    validators: int
    cores: int
    duration_s: float
    tx_bytes_mean: int
    submitted: int
    offered_tps: float
    """Offered load of the throughput phase (0: as fast as accepted)."""
    committed_tps: float
    latency_rate_tps: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_samples: int
    node_rss_mb: dict[str, float]
    ed25519_verify_per_s_core: float
    verification_bound_tps: float
    bound_ratio: float
    heights: dict[str, int]
    backlog_before_latency: int
    """Transactions still pending when the latency phase began (0 = it ran unqueued)."""


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


def _sign_pool(plan: SubmitterPlan) -> list[tuple[int, list[str]]]:
    """Pre-signed batches: (node index, base64 transactions), round robin."""
    batches: list[tuple[int, list[str]]] = []
    per_muni = plan.count // len(plan.agents) + 1
    encoded: list[list[str]] = []
    for seed, siret, tag_key in plan.agents:
        key = SigningKey(seed)
        txs = []
        for n in range(per_muni):
            payload: dict[str, Any] = {
                "siret": siret, "scheme_id": SCHEME_ID, "period": plan.period,
                "amount_cents": 100 + n % 900,
                "beneficiary": beneficiary_tag(tag_key, f"bench-{n}"),
            }
            tx = build_transaction(plan.chain_id, "social_aid", "disburse", payload, key)
            txs.append(base64.b64encode(tx.encode()).decode())
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
    batches = _sign_pool(plan)
    sizes = [len(base64.b64decode(t)) for _, chunk in batches[:10] for t in chunk]
    conn.send(("ready", len(batches), sum(sizes) // max(1, len(sizes))))
    cursor = 0
    while True:
        command = conn.recv()
        if command[0] == "stop":
            return
        if command[0] == "flood":
            sent, cursor = _flood(plan, batches, cursor, float(command[1]), float(command[2]))
            conn.send(("flooded", sent))
        elif command[0] == "paced":
            latencies, cursor = _paced(plan, batches, cursor, float(command[1]),
                                       float(command[2]))
            conn.send(("paced", latencies))


def _flood(plan: SubmitterPlan, batches: list[tuple[int, list[str]]], cursor: int,
           seconds: float, rate_tps: float) -> tuple[int, int]:
    """Post batches from ``plan.clients`` threads for ``seconds``: as fast as accepted
    (``rate_tps`` 0), or batch k no earlier than k * batch / rate_tps after the start."""
    lock = threading.Lock()
    state = {"cursor": cursor, "sent": 0}
    start = time.monotonic()
    deadline = start + seconds

    def worker() -> None:
        with httpx.Client(timeout=30.0) as http:
            while time.monotonic() < deadline:
                with lock:
                    if state["cursor"] >= len(batches):
                        return
                    node, chunk = batches[state["cursor"]]
                    k = state["cursor"] - cursor
                    state["cursor"] += 1
                if rate_tps > 0:
                    time.sleep(max(0.0, start + k * plan.batch / rate_tps - time.monotonic()))
                try:
                    response = http.post(f"{plan.urls[node]}/v1/transactions",
                                         json={"transactions": chunk})
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                if response.status_code == 202:
                    with lock:
                        state["sent"] += len(chunk)
                elif response.status_code == 503:  # mempool full: back off a little
                    time.sleep(0.02)

    threads = [threading.Thread(target=worker) for _ in range(plan.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return state["sent"], state["cursor"]


def _paced(plan: SubmitterPlan, batches: list[tuple[int, list[str]]], cursor: int,
           rate_tps: float, seconds: float) -> tuple[list[float], int]:
    """Open loop: a batch of ``LATENCY_BATCH`` every ``LATENCY_BATCH / rate`` seconds,
    each posted with ``wait=true``; the latency of a batch is the time to its answer."""
    interval = LATENCY_BATCH / max(rate_tps, 1.0)
    latencies: list[float] = []
    lock = threading.Lock()
    small = [(node, chunk[i:i + LATENCY_BATCH]) for node, chunk in batches[cursor:]
             for i in range(0, len(chunk), LATENCY_BATCH)]
    used = 0

    def post(node: int, chunk: list[str], http: httpx.Client) -> None:
        started = time.monotonic()
        try:
            response = http.post(f"{plan.urls[node]}/v1/transactions",
                                 params={"wait": "true", "timeout_ms": 30_000},
                                 json={"transactions": chunk})
        except httpx.HTTPError:
            return
        if response.status_code == 200 and response.json().get("committed"):
            with lock:
                latencies.append((time.monotonic() - started) * 1000)

    with httpx.Client(timeout=40.0, limits=httpx.Limits(max_connections=IN_FLIGHT_MAX)) as http, \
            ThreadPoolExecutor(max_workers=IN_FLIGHT_MAX) as pool:
        start = time.monotonic()
        while time.monotonic() - start < seconds and used < len(small):
            node, chunk = small[used]
            used += 1
            pool.submit(post, node, chunk, http)
            next_at = start + used * interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    consumed_batches = (used * LATENCY_BATCH + plan.batch - 1) // plan.batch
    return latencies, cursor + consumed_batches


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


def committed_total(url: str) -> int:
    text = httpx.get(f"{url}/metrics", timeout=10.0).text
    for line in text.splitlines():
        if line.startswith(("tabellion_committed_transactions_total ",
                            "tabellion_committed_transactions ")):
            return int(float(line.split()[1]))
    raise CliError(f"{url}/metrics has no tabellion_committed_transactions counter",
                   EXIT_FAILED)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


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
        passphrase = network.passphrase_of(m).read_bytes().strip()
        key = {role: load_key(network.key_of(m, role), passphrase)
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


def run_bench(duration_s: float, batch: int, clients: int, console: Console,
              rate_tps: float = 0.0) -> BenchResult:
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="tabellion-bench-") as tmp:
        network = init_network(Path(tmp) / "net", list(DEMO_MUNICIPALITIES),
                               chain_id="tabellion-bench", base_port=0)
        console.print("verifying Ed25519 on one core…")
        verify_rate = verify_rate_per_core()
        with running(network) as cluster:
            agents = setup_schemes(network, cluster, now.year)
            urls = tuple(m.api_url for m in network.municipalities)
            count = int(TARGET_TPS_MAX * (WARMUP_S + duration_s) + LATENCY_WINDOW_S * 2000)
            plan = SubmitterPlan(
                network.chain_id, urls,
                tuple((a.seed, m.siret, load_tag_key(network.tag_key_of(m)))
                      for a, m in zip(agents, network.municipalities, strict=True)),
                count, batch, clients, now.strftime("%Y-%m"))
            console.print(f"pre-signing {count:,} disbursements in the submitter process…")
            context = multiprocessing.get_context("spawn")
            parent, child = context.Pipe()
            submitter = context.Process(target=_submitter_main, args=(plan, child),
                                        daemon=True)
            submitter.start()
            try:
                _, _, tx_bytes = parent.recv()
                pace = f"at {rate_tps:,.0f} tx/s" if rate_tps else "as fast as accepted"
                console.print(f"submitting {pace} for {WARMUP_S + duration_s:.0f} s "
                              f"({WARMUP_S:.0f} s warm-up)…")
                parent.send(("flood", WARMUP_S + duration_s, rate_tps))
                time.sleep(WARMUP_S)
                c0, t0 = committed_total(urls[0]), time.monotonic()
                time.sleep(duration_s)
                c1, t1 = committed_total(urls[0]), time.monotonic()
                _, submitted = parent.recv()
                tps = (c1 - c0) / (t1 - t0)
                console.print(f"committed {c1 - c0:,} transactions in {t1 - t0:.1f} s: "
                              f"{tps:,.1f} tx/s ({submitted:,} accepted by the nodes)")
                rate = max(tps / 2, 10.0)
                backlog = drain(urls, cluster, DRAIN_TIMEOUT_S)
                console.print(f"latency at {rate:.0f} tx/s for {LATENCY_WINDOW_S:.0f} s…")
                parent.send(("paced", rate, LATENCY_WINDOW_S))
                _, latencies = parent.recv()
                parent.send(("stop",))
            finally:
                submitter.join(timeout=30)
                if submitter.is_alive():
                    submitter.kill()
            rss = {m.name: rss_mb(cluster.processes[m.slug].pid)
                   for m in network.municipalities}
            heights = {m.name: int(node_status(m.api_url).get("height", -1))
                       for m in network.municipalities}
    cores = os.cpu_count() or 1
    bound = verify_rate * cores / len(DEMO_MUNICIPALITIES)
    return BenchResult(
        validators=len(DEMO_MUNICIPALITIES), cores=cores, duration_s=duration_s,
        tx_bytes_mean=int(tx_bytes), submitted=int(submitted), offered_tps=rate_tps,
        committed_tps=round(tps, 1),
        latency_rate_tps=round(rate, 1),
        latency_p50_ms=round(statistics.median(latencies), 1) if latencies else float("nan"),
        latency_p99_ms=round(percentile(latencies, 0.99), 1),
        latency_samples=len(latencies), node_rss_mb={k: round(v, 1) for k, v in rss.items()},
        ed25519_verify_per_s_core=round(verify_rate), verification_bound_tps=round(bound),
        bound_ratio=round(tps / bound, 3) if bound else float("nan"), heights=heights,
        backlog_before_latency=backlog,
    )


def node_status(url: str) -> dict[str, Any]:
    """A node's status; an overloaded node may answer late: wait for it, generously."""
    found = httpx.get(f"{url}/v1/status", timeout=STATUS_TIMEOUT_S).json()
    return found if isinstance(found, dict) else {}


def mempool_size(url: str) -> int:
    mempool = node_status(url).get("mempool", {})
    return int(mempool.get("transactions", 0)) if isinstance(mempool, dict) else 0


def drain(urls: tuple[str, ...], cluster: Cluster, timeout_s: float) -> int:
    """Wait (at most ``timeout_s``) for the mempools to empty, so the latency phase does
    not queue behind the flood; return what is still pending (reported, not hidden)."""
    deadline = time.monotonic() + timeout_s
    while True:
        # Every node holds every pending transaction (they are forwarded): take the max.
        pending = max(mempool_size(url) for url in urls)
        if pending == 0 or time.monotonic() > deadline:
            return pending
        if cluster.dead():
            raise cluster.died(cluster.dead()[0], "during the benchmark")
        time.sleep(0.5)


def print_result(result: BenchResult, console: Console) -> None:
    table = Table(title=f"tabellion bench: {result.validators} validators, "
                        f"{result.cores} cores, {result.duration_s:.0f} s window")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("offered load (tx/s, 0 = flood)", f"{result.offered_tps:,.0f}"),
        ("committed transactions / s", f"{result.committed_tps:,.1f}"),
        ("transaction size (bytes, mean)", str(result.tx_bytes_mean)),
        ("latency load (tx/s)", f"{result.latency_rate_tps:,.0f}"),
        ("commit latency p50 (ms)", f"{result.latency_p50_ms:,.1f}"),
        ("commit latency p99 (ms)", f"{result.latency_p99_ms:,.1f}"),
        ("latency samples (batches)", str(result.latency_samples)),
        ("backlog when latency began (tx)", str(result.backlog_before_latency)),
        ("Ed25519 verifications / s / core", f"{result.ed25519_verify_per_s_core:,.0f}"),
        ("verification bound (tx/s)", f"{result.verification_bound_tps:,.0f}"),
        ("throughput / bound", f"{result.bound_ratio:.3f}"),
        *((f"RSS {name} (MiB)", f"{mb:,.1f}") for name, mb in result.node_rss_mb.items()),
        *((f"height {name}", str(h)) for name, h in result.heights.items()),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def bench(
    duration: Annotated[float, typer.Option(
        "--duration", help="Steady measurement window in seconds (at least 20 for the "
        "reported figure).", min=1.0, max=3600.0)] = 20.0,
    json_file: Annotated[Path | None, typer.Option(
        "--json", help="Also write the figures as JSON to this file.")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Transactions per request.",
                                       min=1, max=2000)] = 200,
    clients: Annotated[int, typer.Option("--clients", help="Submitting threads.",
                                         min=1, max=64)] = 4,
    rate: Annotated[float, typer.Option(
        "--rate", help="Offered load in tx/s for the throughput phase (0: as fast as the "
        "nodes accept). Useful to find the peak when a flood overloads the nodes.",
        min=0.0, max=100_000.0)] = 0.0,
) -> None:
    """Measure committed throughput, commit latency and memory of four local nodes.

    Example: tabellion bench --duration 20 --json bench.json
    """
    console = Console(highlight=False)
    result = run_bench(duration, batch, clients, console, rate)
    print_result(result, console)
    if json_file is not None:
        json_file.write_text(json.dumps(asdict(result), indent=2, ensure_ascii=False) + "\n")
        console.print(f"wrote {json_file}")


def register(app: typer.Typer) -> None:
    app.command("bench", epilog=EXIT_CODES_HELP)(guarded(bench))

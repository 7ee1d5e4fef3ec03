"""``tabellion demo``: a four-municipality network on this machine, seeded, in one command.

Rules:
- The network directory is created with ``network init`` (Montreuil, Bagnolet, Vincennes,
  Romainville) or reused when it already holds one; a reused chain is not seeded twice
  (``seeded.json`` records what was seeded).
- The four nodes are child processes in ONE process group of their own (the terminal's
  Ctrl-C reaches the demo, not them); the demo forwards SIGTERM to the group on Ctrl-C,
  SIGINT or SIGTERM, waits for every child (``STOP_TIMEOUT_S``), then SIGKILLs the group
  if anything is left, so no process outlives the demo. While it stops, further signals
  are ignored so the clean-up cannot be interrupted half-way.
- A demo (or bench) that cannot clean up, because it was killed with SIGKILL, still
  leaves nothing behind: each node is started with ``PR_SET_PDEATHSIG`` (Linux asks the
  kernel to SIGKILL the child when the thread that started it dies), armed between fork
  and exec, then checks its parent did not die before it was armed (``die_with_parent``).
  The cluster must therefore be started from a thread that lives as long as it does (the
  main thread, here). On a system without ``prctl`` only the clean stop above applies.
- Each node's output goes to ``<dir>/<municipality>/node.log``; if a node dies, the demo
  prints the end of its log and stops the others.
- Seeding uses the same code as the CLI commands (build, sign, submit to the
  municipality's own node) and waits for every record to commit; a refused record is a
  failure (exit 1), never hidden.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from cli import demo_metering
from cli.client import NodeClient
from cli.common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    CliError,
    guarded,
    passphrase_from_env,
    passphrase_from_file,
)
from cli.network import (
    DEMO_MUNICIPALITIES,
    MANIFEST_FILE,
    MunicipalityFiles,
    Network,
    init_network,
    load_network,
    print_network,
)
from cli.submit import build_transaction
from cli.tag_keys import CaseKeys
from ledger.crypto import SigningKey, load_key
from ledger.records import Transaction

START_TIMEOUT_S = 90.0
COMMIT_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
POLL_S = 0.1
LOG_TAIL_LINES = 20
LOG_TAIL_BYTES_MAX = 64 * 1024
"""How much of the end of a node log is read to show its last lines (the log is appended
to by every run of the demo, so it is never read whole)."""
SEEDED_FILE = "seeded.json"


class DemoStopped(Exception):
    """A stop signal arrived (Ctrl-C, SIGINT, SIGTERM)."""


# --------------------------------------------------------------------------- processes


@dataclass(slots=True)
class Cluster:
    """The node processes of a network, all in one process group."""

    network: Network
    command: tuple[str, ...] = field(default_factory=lambda: tabellion_command())
    """How to run ``tabellion``: the console script next to this interpreter (exactly the
    image's entry command), else ``python -m cli`` (a checkout without the script)."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    pgid: int | None = None

    def start(self) -> None:
        for m in self.network.municipalities:
            env = dict(os.environ)
            if m.passphrase_file:
                env[self.network.passphrase_env] = passphrase_from_file(
                    self.network.passphrase_of(m)).decode()
            else:  # each town's validator passphrase, from the variable init read
                env[self.network.passphrase_env] = passphrase_from_env(
                    self.network.passphrase_env_of(m)).decode()
            log = (self.network.dir_of(m) / "node.log").open("ab")
            try:
                process = subprocess.Popen(
                    [*self.command, "node", "start", "--config",
                     str(self.network.config_of(m))],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    process_group=0 if self.pgid is None else self.pgid,
                    preexec_fn=die_with_parent(),
                )
            finally:
                log.close()
            if self.pgid is None:
                self.pgid = process.pid
            self.processes[m.slug] = process

    def dead(self) -> list[MunicipalityFiles]:
        return [m for m in self.network.municipalities
                if m.slug in self.processes and self.processes[m.slug].poll() is not None]

    def stop(self) -> None:
        """SIGTERM the group, wait for every child, SIGKILL whatever remains."""
        if self.pgid is None:
            return
        _signal_group(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                break
        _signal_group(self.pgid, signal.SIGKILL)  # anything left (or a grandchild)
        for process in self.processes.values():
            process.wait()

    def died(self, m: MunicipalityFiles, when: str) -> CliError:
        """Show the end of a dead node's log on stderr; the error to raise."""
        log = self.network.dir_of(m) / "node.log"
        Console(stderr=True, highlight=False).print(
            f"--- end of {log} ---\n{self.log_tail(m)}\n---")
        return CliError(f"the node of {m.name} stopped {when}; its log is {log}".replace(
            "  ", " "), EXIT_FAILED)

    def log_tail(self, m: MunicipalityFiles) -> str:
        """The last ``LOG_TAIL_LINES`` lines of the node's log, from its last
        ``LOG_TAIL_BYTES_MAX`` bytes; "" when it cannot be read (the error is the point)."""
        path = self.network.dir_of(m) / "node.log"
        try:
            with path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - LOG_TAIL_BYTES_MAX))
                end = handle.read(LOG_TAIL_BYTES_MAX)
        except OSError:
            return ""
        lines = end.decode(errors="replace").splitlines()
        if size > LOG_TAIL_BYTES_MAX and lines:
            lines = lines[1:]  # the first line read is cut: a part of a line misleads
        return "\n".join(lines[-LOG_TAIL_LINES:])


PR_SET_PDEATHSIG = 1
"""``prctl`` option (linux/prctl.h): the signal a process gets when its parent dies."""


def die_with_parent(parent: int | None = None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGKILL when this process dies, even
    by SIGKILL (no clean-up of ours runs then); ``None`` where ``prctl`` does not exist.

    libc is loaded here, in the parent, so the child only makes two system calls between
    fork and exec. The death signal survives ``exec`` of the node (not set-uid). A child
    running our own Python code (the bench's submitter) calls the result itself, first
    thing, with ``parent`` the pid of the process it must not outlive."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid() if parent is None else parent

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


def tabellion_command() -> tuple[str, ...]:
    script = Path(sys.executable).parent / "tabellion"
    if script.is_file() and os.access(script, os.X_OK):
        return (str(script),)
    return (sys.executable, "-m", "cli")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # the whole group is already gone
        os.killpg(pgid, sig)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into ``DemoStopped`` while the block runs."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise DemoStopped(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def signals_ignored() -> Iterator[None]:
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def wait_for(condition: Callable[[], bool], cluster: Cluster, timeout_s: float,
             what: str) -> None:
    """Poll ``condition``; fail if a node dies or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        dead = cluster.dead()
        if dead:
            raise cluster.died(dead[0], f"while waiting for {what}")
        if time.monotonic() > deadline:
            raise CliError(f"timed out after {timeout_s:.0f} s waiting for {what}; see the "
                           f"node.log files in {cluster.network.root}", EXIT_FAILED)
        time.sleep(POLL_S)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


# --------------------------------------------------------------------------- seeding


@dataclass(frozen=True, slots=True)
class Seed:
    """One sample record to submit to a municipality's own node."""

    municipality: MunicipalityFiles
    tx: Transaction
    label: str
    reader: SigningKey | None = None
    """Signs the status polls when the record is a payment (read access by role)."""


def _keys(network: Network, m: MunicipalityFiles) -> dict[str, SigningKey]:
    def passphrase(role: str) -> bytes:  # one passphrase per key holder
        if m.passphrase_file:
            return passphrase_from_file(network.passphrase_of(m, role))
        return passphrase_from_env(network.passphrase_env_of(m, role))
    roles = ["admin", "clerk", "social_aid_agent"]
    if network.key_of(m, "meter_gateway").exists():  # networks made before metering lack it
        roles.append("meter_gateway")
    return {role: load_key(network.key_of(m, role), passphrase(role)) for role in roles}


def metering_wave(network: Network, keys: dict[str, dict[str, SigningKey]], today: datetime,
                  step: int) -> list[Seed]:
    """Step 0: meters and the event; 1: a week of readings; 2: the event settled
    (cli/demo_metering.py)."""
    seeds = []
    for i, m in enumerate(network.municipalities):
        if "meter_gateway" not in keys[m.slug]:
            continue

        def tx(contract: str, action: str, payload: dict[str, Any], role: str,
               town: str = m.slug) -> Transaction:
            return build_transaction(network.chain_id, contract, action, payload,
                                     keys[town][role])

        made = (demo_metering.enrolments(m.siret, tx, today) if step == 0 else
                demo_metering.readings(i, m.siret, tx, today) if step == 1 else
                demo_metering.settlement(m.siret, tx, today))
        seeds += [Seed(m, t, label) for t, label in made]
    return seeds


def first_wave(network: Network, keys: dict[str, dict[str, SigningKey]], today: datetime
               ) -> list[Seed]:
    """Records that depend on nothing: sittings, reports, notarised acts."""
    year, date = today.year, today.strftime("%Y-%m-%d")
    seeds = []
    for i, m in enumerate(network.municipalities):
        clerk = keys[m.slug]["clerk"]

        def tx(contract: str, action: str, payload: dict[str, Any], key: SigningKey
               ) -> Transaction:
            return build_transaction(network.chain_id, contract, action, payload, key)

        seeds += [
            Seed(m, tx("deliberations", "record_sitting", {
                "COLL_SIRET": m.siret, "sitting_id": f"CM-{date}", "date": date,
                "members_in_office": 35 + i, "members_present": 29,
                "second_convocation": False}, clerk), "council sitting"),
            Seed(m, tx("reports", "submit", {
                "siret": m.siret, "service_code": "streetlight",
                "description": f"Street light out in front of the town hall of {m.name}",
                "lat": 48_860_000 + 1000 * i, "long": 2_440_000 + 1000 * i}, clerk),
                 "citizen report"),
            Seed(m, tx("notary", "anchor", {
                "siret": m.siret,
                "sha256": hashlib.sha256(f"arrêté {m.name} {year}-042".encode()).hexdigest(),
                "document_type": "arrete", "reference": f"ARR-{year}-042",
                "title": "Arrêté de circulation, marché du dimanche"}, clerk),
                 "notarised arrêté"),
        ]
    return seeds


AID_TERMS = {"budget_cents": 5_000_000, "ceiling_cents": 30_000,
             "four_eyes_threshold_cents": 20_000}
"""The demo aid scheme's terms, decided by each council's deliberation."""


def second_wave(network: Network, keys: dict[str, dict[str, SigningKey]], today: datetime,
                reports: dict[str, str]) -> list[Seed]:
    """Records that need the first wave: the deliberation deciding the aid scheme (with
    its terms), a report acknowledged."""
    year, date = today.year, today.strftime("%Y-%m-%d")
    seeds = []
    for i, m in enumerate(network.municipalities):
        clerk = keys[m.slug]["clerk"]
        in_office = 35 + i

        def tx(contract: str, action: str, payload: dict[str, Any], key: SigningKey
               ) -> Transaction:
            return build_transaction(network.chain_id, contract, action, payload, key)

        seeds.append(Seed(m, tx("deliberations", "record", {
            "COLL_NOM": m.name, "COLL_SIRET": m.siret, "DELIB_ID": f"D{year}-041",
            "DELIB_DATE": date, "DELIB_MATIERE_CODE": "7.1",
            "DELIB_MATIERE_NOM": "Décisions budgétaires",
            "DELIB_OBJET": f"Aide énergie {year}: création du dispositif",
            "BUDGET_ANNEE": str(year), "VOTE_EFFECTIF": in_office, "VOTE_REEL": 29,
            "VOTE_POUR": 22, "VOTE_CONTRE": 5, "VOTE_ABSTENTION": 2,
            "act_sha256": hashlib.sha256(f"délibération {m.name} D{year}-041".encode())
            .hexdigest(),
            "sitting_id": f"CM-{date}", "order_number": 1, "members_present": 29,
            **{f"aid_{name}": value for name, value in AID_TERMS.items()}}, clerk),
            "deliberation"))
        seeds.append(Seed(m, tx("reports", "acknowledge", {
            "siret": m.siret, "service_request_id": reports[m.slug],
            "status_notes": "Team scheduled", "agency_responsible": "Voirie"}, clerk),
            "report acknowledged"))
    return seeds


def third_wave(network: Network, keys: dict[str, dict[str, SigningKey]], today: datetime
               ) -> list[Seed]:
    """The aid scheme, created by each town's admin on its council's deliberation."""
    year = today.year
    return [Seed(m, build_transaction(network.chain_id, "social_aid", "create_scheme", {
        "siret": m.siret, "scheme_id": f"energie-{year}", "name": f"Aide énergie {year}",
        "period_start": f"{year}-01", "period_end": f"{year}-12",
        "decision_ref": f"D{year}-041", **AID_TERMS}, keys[m.slug]["admin"]), "aid scheme")
        for m in network.municipalities]


def fourth_wave(network: Network, keys: dict[str, dict[str, SigningKey]], today: datetime
                ) -> list[Seed]:
    """Aid payments, tagged off chain with the town's tag key and case file."""
    year, month = today.year, today.strftime("%Y-%m")
    seeds = []
    for m in network.municipalities:
        case_keys = CaseKeys.open(network.tag_key_of(m))
        scheme_id = f"energie-{year}"
        for case, amount in (("CCAS-0001", 15_000), ("CCAS-0002", 12_500)):
            tag = case_keys.tag(case, m.siret, scheme_id, month)
            seeds.append(Seed(m, build_transaction(network.chain_id, "social_aid", "disburse", {
                "siret": m.siret, "scheme_id": scheme_id, "period": month,
                "amount_cents": amount, "beneficiary": tag},
                keys[m.slug]["social_aid_agent"]), "aid payment",
                keys[m.slug]["social_aid_agent"]))
    return seeds


def submit_wave(seeds: list[Seed], cluster: Cluster) -> dict[str, dict[str, Any]]:
    """Submit each record to its municipality's node; wait until all commit."""
    by_node: dict[str, list[Seed]] = {}
    for seed in seeds:
        by_node.setdefault(seed.municipality.api_url, []).append(seed)
    results: dict[str, dict[str, Any]] = {}
    for url, group in by_node.items():
        with NodeClient(url) as client:
            client.submit([s.tx for s in group], wait=False, timeout_ms=0)
    pending = {s.tx.tx_id.hex(): s for s in seeds}

    def all_committed() -> bool:
        for tx_id, seed in list(pending.items()):
            with NodeClient(seed.municipality.api_url, reader=seed.reader) as client:
                response = client.get_raw(f"/v1/transactions/{tx_id}")
            if response is not None and response.get("status") == "committed":
                results[tx_id] = response
                del pending[tx_id]
        return not pending

    wait_for(all_committed, cluster, COMMIT_TIMEOUT_S, f"{len(seeds)} records to commit")
    for tx_id, details in results.items():
        receipt = details.get("receipt") or {}
        if receipt.get("code") != "ok":
            seed = next(s for s in seeds if s.tx.tx_id.hex() == tx_id)
            raise CliError(f"the {seed.label} of {seed.municipality.name} was refused "
                           f"({receipt.get('code')}): {receipt.get('message')}", EXIT_FAILED)
    return results


def seed(network: Network, cluster: Cluster, console: Console) -> list[tuple[Seed, int]]:
    today = datetime.now(UTC)
    keys = {m.slug: _keys(network, m) for m in network.municipalities}
    wave1 = first_wave(network, keys, today) + metering_wave(network, keys, today, 0)
    done1 = submit_wave(wave1, cluster)
    reports = {s.municipality.slug: s.tx.tx_id.hex() for s in wave1
               if s.tx.contract == "reports"}
    waves = [wave1, second_wave(network, keys, today, reports)
             + metering_wave(network, keys, today, 1),
             third_wave(network, keys, today) + metering_wave(network, keys, today, 2),
             fourth_wave(network, keys, today)]
    committed = dict(done1)
    for wave in waves[1:]:
        if wave:
            committed.update(submit_wave(wave, cluster))
    seeded = [(s, int(committed[s.tx.tx_id.hex()].get("height", 0)))
              for wave in waves for s in wave]
    (network.root / SEEDED_FILE).write_text(json.dumps(
        [{"municipality": s.municipality.name, "record": s.label,
          "tx_id": s.tx.tx_id.hex(), "height": h} for s, h in seeded], indent=2,
        ensure_ascii=False) + "\n")
    return seeded


def print_seeded(seeded: list[tuple[Seed, int]], console: Console) -> None:
    table = Table(title=f"{len(seeded)} sample records committed")
    for column in ("municipality", "record", "height", "transaction"):
        table.add_column(column, no_wrap=True)
    for s, height in seeded:
        table.add_row(s.municipality.name, s.label, str(height), s.tx.tx_id.hex()[:16] + "…")
    console.print(table)


def print_try(network: Network, console: Console) -> None:
    first = network.municipalities[0]
    key = network.key_of(first, "clerk")
    pw = network.passphrase_of(first, "clerk")
    console.print("API docs:", highlight=False)
    for m in network.municipalities:
        console.print(f"  {m.name:<12} {m.api_url}/docs", highlight=False)
    console.print("Try, in another terminal:", highlight=False)
    for line in (
        f"tabellion status --node {first.api_url}",
        f"tabellion query --node {first.api_url} --contract deliberations",
        f"tabellion record notarise README.md --type proces_verbal --reference PV-1 "
        f"--key {key} --passphrase-file {pw} --node {first.api_url} --wait",
        f"tabellion audit --node {first.api_url} --genesis {network.genesis_file}",
    ):
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    console.print("Press Ctrl-C to stop the four nodes.", highlight=False)


# --------------------------------------------------------------------------- command


def open_network(directory: Path, base_port: int, console: Console) -> Network:
    if (directory / MANIFEST_FILE).is_file():
        network = load_network(directory)
        console.print(f"reusing the network in {directory}", highlight=False)
        return network
    network = init_network(directory, list(DEMO_MUNICIPALITIES), chain_id="tabellion-demo",
                           base_port=base_port)
    print_network(network, console)
    return network


def demo(
    directory: Annotated[Path, typer.Option(
        "--dir", help="Network directory, created or reused.")] = Path("demo-network"),
    base_port: Annotated[int, typer.Option(
        "--base-port", help="First port of a new network (0: free ports from the OS).",
        min=0, max=65535)] = 7100,
    seed_records: Annotated[bool, typer.Option(
        "--seed/--no-seed", help="Seed sample records of every type (once per chain).")
    ] = True,
) -> None:
    """Run a four-municipality network on this machine until Ctrl-C.

    Creates (or reuses) Montreuil, Bagnolet, Vincennes and Romainville, starts their four
    nodes, seeds sample records of every type, prints the API docs URLs and a few
    commands to try, and stops every node cleanly on Ctrl-C.

    Example: tabellion demo --dir /tmp/tabellion-demo
    """
    console = Console(highlight=False)
    cluster: Cluster | None = None
    try:
        with stop_on_signals():
            network = open_network(directory, base_port, console)
            cluster = Cluster(network)
            cluster.start()
            console.print(f"started 4 nodes (process group {cluster.pgid}); logs in "
                          f"{network.root}/<municipality>/node.log")
            wait_for(lambda: all(healthy(m.api_url) for m in network.municipalities),
                     cluster, START_TIMEOUT_S, "the four nodes to answer /healthz")
            if seed_records and not (network.root / SEEDED_FILE).exists():
                print_seeded(seed(network, cluster, console), console)
            elif seed_records:
                console.print(f"already seeded ({network.root / SEEDED_FILE})")
            print_try(network, console)
            sys.stdout.flush()
            while not cluster.dead():
                time.sleep(0.2)
            raise cluster.died(cluster.dead()[0], "")
    except DemoStopped:
        console.print("stopping the four nodes…")
    finally:
        if cluster is not None:
            with signals_ignored():
                cluster.stop()
    console.print("stopped: no node is left running")


def register(app: typer.Typer) -> None:
    app.command("demo", epilog=EXIT_CODES_HELP)(guarded(demo))

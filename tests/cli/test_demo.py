"""``tabellion demo``: starts four nodes, commits its sample records of every type, and
stops cleanly on SIGINT leaving no process behind. While it runs, every CLI command is
driven against its nodes (tests/cli/e2e_checks.py): one network serves all end-to-end
checks, which keeps the suite within its time budget."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli.client import NodeClient
from cli.demo import LOG_TAIL_BYTES_MAX, LOG_TAIL_LINES, Cluster
from cli.network import Network, load_network
from ledger.crypto import load_key
from tests.cli.conftest import start_demo, wait_demo_ready
from tests.cli.e2e_checks import check_every_command_against

STOP_TIMEOUT_S = 60.0
LARGE_LOG_BYTES = 64 * 1024 * 1024
"""A node log grown over many demo runs (the demo appends to it); written sparse."""


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line mentions ``text`` (our temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
            state = next(line for line in (entry / "status").read_text().splitlines()
                         if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if text in cmdline and "Z" not in state.split()[1]:  # zombies hold no resources
            found.append(int(entry.name))
    return found


@pytest.fixture
def demo_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "demo"
    yield directory
    for pid in processes_mentioning(str(directory)):  # only if the test failed midway
        os.kill(pid, signal.SIGKILL)


def stop(process: subprocess.Popen[str], directory: Path) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=STOP_TIMEOUT_S) == 0
    assert processes_mentioning(str(directory)) == []


def test_demo_seeds_every_record_type_serves_every_command_and_stops_on_sigint(demo_dir: Path,
                                                                  tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    process = start_demo(demo_dir, log)
    try:
        output = wait_demo_ready(process, log)
        network = load_network(demo_dir)
        assert len(processes_mentioning(str(demo_dir))) == 5  # the demo and four nodes
        for m in network.municipalities:
            assert f"{m.api_url}/docs" in output
            assert httpx.get(f"{m.api_url}/docs", timeout=10).status_code == 200
        seeded = json.loads((demo_dir / "seeded.json").read_text())
        contracts, receipts = set(), []
        for record in seeded:
            m = next(x for x in network.municipalities if x.name == record["municipality"])
            public = httpx.get(f"{m.api_url}/v1/transactions/{record['tx_id']}", timeout=10)
            if record["record"] == "aid payment":  # readable by the town's agent only
                assert public.status_code == 403, public.text
                agent = load_key(network.key_of(m, "social_aid_agent"),
                                 network.passphrase_of(m, "social_aid_agent").read_bytes().strip())
                with NodeClient(m.api_url, reader=agent) as client:
                    details = client.transaction(record["tx_id"])
            else:
                details = public.json()
            assert details["status"] == "committed" and details["receipt"]["code"] == "ok"
            contracts.add(details["transaction"]["contract"])
            receipts.append(details["receipt"]["data"])
        assert contracts == {"deliberations", "social_aid", "reports", "notary", "metering"}
        # a week of readings: one leak alert (the first town's gymnasium), savings settled
        assert sum(len(r.get("leaks", [])) for r in receipts) == 1
        assert any(r.get("reduction_wh", 0) > 0 for r in receipts)
        assert {r["municipality"] for r in seeded} == {m.name for m in network.municipalities}
        # The demo's nodes run the image's entry command: drive every CLI command at them.
        check_every_command_against(network, tmp_path / "checks")
    finally:
        if process.poll() is None:
            stop(process, demo_dir)
    assert "stopped" in log.read_text()



def test_a_second_run_reuses_the_network_and_sigterm_also_stops(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from cli.demo import DemoStopped, open_network, stop_on_signals

    console = Console(file=io.StringIO())
    first = open_network(tmp_path / "d", 0, console)
    again = open_network(tmp_path / "d", 0, console)
    assert again == first
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(DemoStopped, match="SIGTERM"), stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next line
        pytest.fail("SIGTERM did not interrupt the demo")
    assert signal.getsignal(signal.SIGTERM) == before


def test_the_end_of_a_dead_nodes_log_is_read_bounded(network: Network) -> None:
    """The demo shows the last lines of a dead node's log; the log grows over every run,
    so only its end is read (a 64 MiB log used to be read whole to show 20 lines)."""
    municipality = network.municipalities[0]
    log = network.dir_of(municipality) / "node.log"
    with log.open("wb") as handle:
        handle.truncate(LARGE_LOG_BYTES)  # a sparse run of old output
        handle.seek(LARGE_LOG_BYTES)
        handle.write(b"\n" + "".join(f"line {i} \u00e9\n" for i in range(100)).encode())
    tracemalloc.start()
    try:
        tail = Cluster(network).log_tail(municipality)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tail.splitlines() == [f"line {i} \u00e9" for i in range(100 - LOG_TAIL_LINES, 100)]
    assert peak_bytes < 4 * LOG_TAIL_BYTES_MAX
    log.write_text("one line, no newline")
    assert Cluster(network).log_tail(municipality) == "one line, no newline"
    log.unlink()
    assert Cluster(network).log_tail(municipality) == ""

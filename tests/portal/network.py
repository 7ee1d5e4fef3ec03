"""The real four-node network the portal tests and screenshots run against.

Rules: the network is ``tabellion demo`` itself (four validator processes over real
sockets, seeded with sample records of every type through the real API), started in a
fresh directory on free ports and stopped with SIGINT (its whole process group is killed
if it does not stop). The test adds what the demo does not seed: a closed report (so a
status history has three steps), enough later blocks for receipts to be certified
(``execution_lag`` blocks after a record), and receipts written by
``tabellion receipt get``, the same command a clerk would use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cli.client import NodeClient
from cli.common import passphrase_from_file
from cli.network import Network, load_network
from cli.submit import build_transaction
from ledger.crypto import load_key
from ledger.records import Transaction
from node.read_access import read_headers
from tests.cli.conftest import DEMO_READY_TIMEOUT_S, TABELLION, start_demo, wait_demo_ready

COMMIT_TIMEOUT_MS = 60_000


def notarised_document(name: str, year: int) -> bytes:
    """The bytes of the arrêté whose hash the demo anchors for municipality ``name``."""
    return f"arrêté {name} {year}-042".encode()


@dataclass(frozen=True, slots=True)
class PortalNetwork:
    network: Network
    seeded: list[dict[str, Any]]
    url: str
    """Base URL of the first municipality's node (its portal is at ``url + '/'``)."""
    process: subprocess.Popen[str]

    @property
    def genesis_file(self) -> Path:
        return self.network.genesis_file

    def seeded_tx(self, record: str, municipality: str | None = None) -> str:
        return str(next(r["tx_id"] for r in self.seeded if r["record"] == record
                        and (municipality is None or r["municipality"] == municipality)))

    def submit(self, tx: Transaction, municipality: int = 0) -> dict[str, Any]:
        with NodeClient(self.network.municipalities[municipality].api_url) as client:
            answer = client.submit([tx], wait=True, timeout_ms=COMMIT_TIMEOUT_MS)
        result: dict[str, Any] = answer["results"][0]
        assert result["status"] == "committed", result
        return result

    def sign(self, contract: str, action: str, payload: dict[str, Any], role: str = "clerk",
             municipality: int = 0) -> Transaction:
        m = self.network.municipalities[municipality]
        key = load_key(self.network.key_of(m, role),
                       passphrase_from_file(self.network.passphrase_of(m, role)))
        return build_transaction(self.network.chain_id, contract, action, payload, key)

    def read_as_auditor(self, path: str) -> Any:
        """GET ``path`` with a request signed by the first town's auditor (full bodies:
        the public views redact social-aid payments)."""
        m = self.network.municipalities[0]
        key = load_key(self.network.key_of(m, "auditor"),
                       passphrase_from_file(self.network.passphrase_of(m, "auditor")))
        headers = read_headers(key, "GET", path, self.network.chain_id)
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=10).json()

    def warm_up(self) -> None:
        """Wait until the portal has read the whole chain (its routes answer
        ``complete: true``), so that no page test pays for the first reading on a loaded
        machine, whichever test runs first."""
        deadline = time.monotonic() + DEMO_READY_TIMEOUT_S
        for route in ("deliberations", "reports"):
            while not httpx.get(f"{self.url}/v1/portal/{route}", timeout=30).json()[
                    "complete"]:
                assert time.monotonic() < deadline, f"/v1/portal/{route} never completes"
                time.sleep(0.2)

    def height(self) -> int:
        return int(httpx.get(f"{self.url}/v1/status", timeout=10).json()["height"])

    def advance(self, blocks: int) -> None:
        """Commit ``blocks`` more blocks (one notarised anchor each)."""
        m = self.network.municipalities[0]
        for _ in range(blocks):
            digest = hashlib.sha256(os.urandom(16)).hexdigest()
            self.submit(self.sign("notary", "anchor", {
                "siret": m.siret, "sha256": digest, "document_type": "proces_verbal",
                "reference": "PV-ESSAI"}))

    def receipt(self, tx_id: str, out: Path) -> Path:
        """``tabellion receipt get`` for ``tx_id``, written to ``out``."""
        done = subprocess.run(
            [str(TABELLION), "receipt", "get", tx_id, "--node", self.url, "--genesis",
             str(self.genesis_file), "--out", str(out)],
            capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return out


def _stop(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@contextlib.contextmanager
def portal_network(directory: Path) -> Iterator[PortalNetwork]:
    """Run the demo network in ``directory``; close a report; yield it; stop it."""
    log = directory.parent / f"{directory.name}.log"
    process = start_demo(directory, log)
    try:
        wait_demo_ready(process, log)
        network = load_network(directory)
        seeded = json.loads((directory / "seeded.json").read_text())
        net = PortalNetwork(network, seeded, network.municipalities[0].api_url, process)
        m = network.municipalities[0]
        report = net.seeded_tx("citizen report", m.name)
        net.submit(net.sign("reports", "close", {
            "siret": m.siret, "service_request_id": report,
            "status_notes": "Lampe remplacée"}))
        net.warm_up()
        yield net
    finally:
        _stop(process)

"""Real validator processes on 127.0.0.1 for the node tests and the node benchmark.

Rules (docs/architecture.md §6): fresh keys, genesis and ports for every cluster; each node a
child process in its own process group, started under ``timeout`` so that none can
outlive a crashed test run; ``close`` kills every process group; waits poll a condition
with a generous deadline (``testkit.wait``), never sleep a fixed time.
- A test that needs the whole network running writes ``with Cluster(root) as c:``
  (every node started and answering; every process killed on the way out), not its own
  start/wait/close sequence.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import IO, Any

import httpx

from ledger.genesis import ConsensusParams
from ledger.records import Transaction
from node.config import Limits
from node.devnet import DEFAULT_SIZE, TOWNS, DevNet, generate
from testkit.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHILD_LIFETIME_S = 600
LOG_TAIL_CHARS = 4000
"""A node process is killed by ``timeout`` after this long, whatever happens."""


class Cluster:
    """n validator processes of one freshly generated network."""

    def __init__(self, root: Path, n: int = DEFAULT_SIZE, *,
                 consensus: ConsensusParams | None = None, limits: Limits | None = None,
                 log_level: str = "info") -> None:
        if not 1 <= n <= len(TOWNS):
            raise ValueError(f"a cluster has 1 to {len(TOWNS)} nodes, not {n}")
        self.net: DevNet = generate(
            root, TOWNS[:n],
            consensus=consensus or ConsensusParams(view_timeout_ms=1000),
            limits=limits, log_level=log_level,
        )
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._logs: dict[int, IO[bytes]] = {}
        self.http = httpx.Client(timeout=10.0)
        self._nonce = int(time.time() * 1000)

    # ------------------------------------------------------------------ processes
    def start(self, i: int, module: str = "node", *, wrapper: Sequence[str] = (),
              env: Mapping[str, str] | None = None) -> None:
        """Start node ``i``; ``module`` is the program (a Byzantine build in some tests);
        ``wrapper`` runs it (``faketime -f +3m``) with ``env`` added to its environment."""
        node = self.net.nodes[i]
        log = open(node.directory / "node.log", "ab")  # noqa: SIM115  # closed in stop/close
        self._logs[i] = log
        self.procs[i] = subprocess.Popen(
            ["timeout", "-k", "5", str(CHILD_LIFETIME_S), *wrapper, sys.executable, "-m",
             module, "--config", str(node.config_path)],
            cwd=ROOT, env={**self.net.env(), **(env or {})}, stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def __enter__(self) -> Cluster:
        """Start every node and wait until each answers; ``close`` on the way out."""
        try:
            self.start_all()
            self.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start_all(self) -> None:
        for i in range(len(self.net.nodes)):
            self.start(i)

    def kill(self, i: int) -> None:
        """kill -9 the node's whole process group."""
        proc = self.procs.pop(i)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        self._logs.pop(i).close()

    def terminate(self, i: int, timeout_s: float = 30) -> int:
        """SIGTERM to the node (not to ``timeout``); return the node's exit code."""
        proc = self.procs.pop(i)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=timeout_s)
        self._logs.pop(i).close()
        return code

    def wipe(self, i: int) -> None:
        shutil.rmtree(self.net.nodes[i].config.data_dir, ignore_errors=True)

    def close(self) -> None:
        for i in list(self.procs):
            self.kill(i)
        self.http.close()

    def log_of(self, i: int) -> str:
        return (self.net.nodes[i].directory / "node.log").read_text(errors="replace")

    # ------------------------------------------------------------------ API
    def url(self, i: int, path: str) -> str:
        return self.net.nodes[i].api_url + path

    def get(self, i: int, path: str, **params: Any) -> httpx.Response:
        return self.http.get(self.url(i, path), params=params)

    def status(self, i: int) -> dict[str, Any] | None:
        """The node's /v1/status, or None while it does not answer."""
        try:
            r = self.http.get(self.url(i, "/v1/status"), timeout=2.0)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def height(self, i: int) -> int:
        s = self.status(i)
        return -1 if s is None else int(s["height"])

    def wait_ready(self, nodes: list[int] | None = None, timeout_s: float = 60) -> None:
        """Wait until each node answers; a node whose process has ended fails at once,
        with the end of its log (not after the whole timeout, and not silently)."""
        for i in nodes if nodes is not None else list(self.procs):
            wait_for(partial(self._answers_or_died, i), timeout_s, f"node {i} to answer")

    def _answers_or_died(self, i: int) -> bool:
        if self.status(i) is not None:
            return True
        code = self.procs[i].poll()
        if code is not None:
            tail = self.log_of(i)[-LOG_TAIL_CHARS:]
            raise AssertionError(f"node {i} exited with code {code} before answering; "
                                 f"the end of its log:\n{tail}")
        return False

    def submit(self, i: int, txs: list[Transaction], **params: Any) -> httpx.Response:
        body = {"transactions": [base64.b64encode(t.encode()).decode() for t in txs]}
        return self.http.post(self.url(i, "/v1/transactions"), json=body, params=params,
                              timeout=60.0)

    def committed(self, i: int, tx: Transaction) -> bool:
        try:
            r = self.get(i, f"/v1/transactions/{tx.tx_id.hex()}")
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and r.json().get("status") == "committed"

    # ------------------------------------------------------------------ transactions
    def anchor(self, i: int, *, role: str = "clerk", siret: str | None = None,
               chain_id: str | None = None, expiry_ms: int | None = None) -> Transaction:
        """A notary anchor signed by municipality ``i``'s member with ``role``."""
        node = self.net.nodes[i]
        key = node.members[role]
        self._nonce += 1
        digest = hashlib.sha256(b"document %d" % self._nonce).hexdigest()
        now = int(time.time() * 1000)
        return Transaction(
            chain_id or self.net.genesis.chain_id, "notary", "anchor",
            {"siret": siret or node.siret, "sha256": digest, "document_type": "arrete",
             "reference": f"ARR-{self._nonce}"},
            key.public_key, self._nonce, expiry_ms or now + 600_000,
        ).signed(key)

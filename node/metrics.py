"""Prometheus metrics of one node, in a registry of its own (no process-global state).

Rules: names follow Prometheus conventions (``tabellion_`` prefix, units last, counters
end in ``_total``); gauges that mirror a value owned elsewhere (height, mempool size,
peers) are refreshed by ``Metrics.refresh`` just before each scrape, so there is one
source of truth and no bookkeeping to forget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Values read from the node when metrics are scraped."""

    height: int
    view: int
    mempool_txs: int
    mempool_bytes: int
    peers_connected: int
    peers_total: int
    signature_verifications: int


class Metrics:
    """The node's instruments."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.height = Gauge("tabellion_height", "Height of the last committed block", registry=r)
        self.view = Gauge("tabellion_view", "Current PBFT view", registry=r)
        self.view_changes = Counter("tabellion_view_changes", "View changes completed",
                                    registry=r)
        self.mempool_txs = Gauge("tabellion_mempool_transactions", "Pending transactions",
                                 registry=r)
        self.mempool_bytes = Gauge("tabellion_mempool_bytes", "Encoded bytes pending",
                                   registry=r)
        self.peers_connected = Gauge("tabellion_peers_connected",
                                     "Peers connected in both directions", registry=r)
        self.peers_total = Gauge("tabellion_peers", "Peers configured", registry=r)
        self.verifications = Gauge("tabellion_signature_verifications",
                                   "Transaction signatures verified since start", registry=r)
        self.committed_txs = Counter("tabellion_committed_transactions",
                                     "Transactions committed since start", registry=r)
        self.rejected_txs = Counter("tabellion_rejected_submissions",
                                    "Submissions refused by the mempool", ["code"], registry=r)
        self.commit_latency = Histogram(
            "tabellion_commit_latency_seconds",
            "From admission by this node to commit of a transaction",
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.persist_batches = Counter(
            "tabellion_persist_batches", "Synced writes of the replica's records (one per run "
            "of records persisted together)", registry=r)
        self.block_execution = Histogram(
            "tabellion_block_execution_seconds", "Time to execute and store one block",
            buckets=LATENCY_BUCKETS_S, registry=r,
        )

    def refresh(self, snapshot: Snapshot) -> None:
        self.height.set(snapshot.height)
        self.view.set(snapshot.view)
        self.mempool_txs.set(snapshot.mempool_txs)
        self.mempool_bytes.set(snapshot.mempool_bytes)
        self.peers_connected.set(snapshot.peers_connected)
        self.peers_total.set(snapshot.peers_total)
        self.verifications.set(snapshot.signature_verifications)

    def render(self, snapshot: Callable[[], Snapshot]) -> bytes:
        """The text exposition format, refreshed first."""
        self.refresh(snapshot())
        text: bytes = generate_latest(self.registry)
        return text

"""The parts of ``tabellion bench`` that run without nodes: the pre-signed pool is made
of valid, distinct, realistic disbursements spread over the four nodes."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.bench import (
    OWNER_FILE,
    RETRYABLE_CODES,
    SCHEME_ID,
    TMP_PREFIX,
    BenchResult,
    NodeFigures,
    SubmitterPlan,
    _sign_pool,
    cpu_seconds,
    percentile,
    pool_lifetime_ms,
    refused_for_now,
    remove_stale_runs,
    rss_mb,
    run_budget_s,
    verify_rate_per_core,
)
from cli.submit import check_action
from ledger.crypto import SigningKey
from ledger.encoding import encode
from ledger.records import Transaction
from ledger.siret import complete_siret
from ledger.validation import TX_EXPIRY_HORIZON_MS_MAX
from node.api import REFUSAL_STATUS, SubmitOutcome, error_body


def test_pool_holds_valid_distinct_disbursements_round_robin() -> None:
    agents = tuple((SigningKey.generate().seed, complete_siret(f"219300480000{i}"),
                    bytes([i]) * 32) for i in range(4))
    plan = SubmitterPlan("tabellion-bench", ("a", "b", "c", "d"), agents, count=200, batch=10,
                         clients=2, period="2026-11")
    batches = _sign_pool(plan)
    assert [node for node, _ in batches[:8]] == [0, 1, 2, 3, 0, 1, 2, 3]
    txs = [Transaction.decode(t) for _, chunk in batches for t in chunk]
    assert len(txs) >= 200
    assert len({tx.tx_id for tx in txs}) == len(txs)
    assert len({(tx.payload["siret"], tx.payload["beneficiary"]) for tx in txs}) == len(txs)
    for tx in txs[:50]:
        assert tx.signature_valid() and tx.contract == "social_aid" and tx.action == "disburse"
        assert tx.payload["scheme_id"] == SCHEME_ID
        check_action(tx.contract, tx.action, tx.payload)
    sizes = [len(tx.encode()) for tx in txs]
    assert 250 <= sum(sizes) / len(sizes) <= 350  # "about 300 bytes" (issue 6)


def test_a_pool_for_a_run_of_hours_outlives_the_run() -> None:
    """A million transactions take hours: signed at start-up with the one-hour default,
    the later half expired before it was submitted."""
    agents = ((SigningKey.generate().seed, complete_siret("2193004800001"), bytes(32)),)
    duration_s = 7200.0
    plan = SubmitterPlan("tabellion-bench", ("a",), agents, count=2, batch=1, clients=1,
                         period="2026-11", lifetime_ms=pool_lifetime_ms(duration_s))
    signed_ms = time.time() * 1000
    for _, chunk in _sign_pool(plan):
        tx = Transaction.decode(chunk[0])
        assert tx.expiry_ms >= signed_ms + run_budget_s(duration_s) * 1000 + 3_600_000
        assert tx.expiry_ms <= signed_ms + TX_EXPIRY_HORIZON_MS_MAX + 60_000


def test_percentile_and_verify_rate() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0 and percentile(values, 0.99) == 100.0
    assert percentile([], 0.5) is None  # no sample, no figure (and JSON has no NaN)
    assert verify_rate_per_core(0.05) > 100


def test_own_process_cpu_and_memory_are_read() -> None:
    before = cpu_seconds(os.getpid())
    assert before is not None
    deadline = before + 0.05
    while (cpu_seconds(os.getpid()) or 0.0) < deadline:
        sum(range(10_000))
    assert (rss_mb(os.getpid()) or 0.0) > 1.0
    assert cpu_seconds(2**22 + 12345) is None  # no such process: no figure, no crash


def _result(**changes: Any) -> BenchResult:
    figures = NodeFigures(cpu_s=None, cpu_s_per_committed_tx=None, view_changes=None,
                          rss_mb=None, rss_peak_mb=None, height=None)
    base = BenchResult(
        validators=4, cores=2, load_average_start=(1.0, 1.0, 1.0),
        load_average_end=(1.0, 1.0, 1.0), duration_s=20.0, mode="closed loop",
        txs_target=None, offered_tps=0.0, backlog_txs_max=5000, tx_bytes_mean=300,
        submitted=0,
        responses_429=0, responses_503=0, responses_other=0, request_errors=0,
        committed_in_window=0, committed_tps=0.0, blocks_in_window=0,
        txs_per_block_mean=None, view_changes=None,
        backlog_before_latency=None, latency_rate_tps=10.0, latency_window_s=10.0,
        latency_samples=0, latency_failures={"HTTP 202": 3}, latency_p50_ms=None,
        latency_p95_ms=None, latency_p99_ms=None, cpu_s_per_committed_tx_per_node=None,
        submitter_cpu_share=None,
        nodes={"Montreuil": figures}, ed25519_verify_per_s_core=10000.0,
        verification_bound_tps=5000.0, bound_ratio=0.0, failover_s=None, elapsed_s=30.0,
        notes=["no latency sample"])
    return dataclasses.replace(base, **changes)


def test_json_is_strict_json_with_null_for_what_was_not_measured() -> None:
    text = _result().to_json()
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert parsed["latency_p50_ms"] is None and parsed["notes"] == ["no latency sample"]
    assert parsed["nodes"]["Montreuil"]["rss_mb"] is None
    with pytest.raises(ValueError):  # a NaN that slipped in fails loudly, never prints
        _result(latency_p50_ms=math.nan).to_json()


def test_only_directories_of_dead_benches_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live, foreign = (tmp_path / f"{TMP_PREFIX}{n}" for n in ("a", "b", "c"))
    for directory in (stale, live, foreign):
        (directory / "net").mkdir(parents=True)
    (stale / OWNER_FILE).write_text(str(dead.pid))
    (live / OWNER_FILE).write_text(str(os.getpid()))
    assert remove_stale_runs(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and foreign.exists()


def test_the_measured_phases_fit_in_about_twice_the_window() -> None:
    for duration in (20.0, 60.0, 300.0):
        assert run_budget_s(duration) <= 2 * duration + 30


def test_a_batch_refused_for_now_is_posted_again_without_what_was_accepted() -> None:
    """A node answers a batch with its first refusal's status: the bench posts again the
    transactions refused for a reason that passes with time, and counts the accepted
    ones, so a ``--txs N`` run commits N (it had waited out its whole window at 898,706
    of 1,000,000, having dropped every batch answered 429)."""
    raws = [b"tx-%d" % n for n in range(5)]
    codes = ["accepted", "busy", "accepted", "rate_limited", "already_committed"]
    outcomes = [SubmitOutcome(None, code) for code in codes]
    answer = httpx.Response(429, json=error_body(  # the node's own answer (node.api)
        "busy", "transactions[1]: the node already holds ...",
        results=[o.to_json() for o in outcomes]))
    assert refused_for_now(encode(raws), answer) == ([b"tx-1", b"tx-3"], 2)

    all_taken = httpx.Response(503, json=error_body(
        "mempool_full", "...", results=[SubmitOutcome(None, "accepted").to_json()] * 5))
    assert refused_for_now(encode(raws), all_taken) == ([], 5)

    # No outcome per transaction (a proxy's 503, say): the whole batch again.
    assert refused_for_now(encode(raws), httpx.Response(503, text="busy")) == (raws, 0)


def test_the_bench_posts_again_exactly_what_the_node_refuses_for_now() -> None:
    """The bench's list of refusals that pass with time is the node's 429 and 503 codes."""
    node_says_wait = {code for code, status in REFUSAL_STATUS.items() if status in (429, 503)}
    assert node_says_wait == RETRYABLE_CODES

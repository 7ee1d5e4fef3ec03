"""Meter readings per second through the metering contract and the state, in memory.

Run: ``.venv/bin/python -m bench.metering_bench [--towns 4] [--buildings 300] [--days 1]
[--shape interval|day]``

Rules: prints figures, asserts nothing about time. The workload is the issue's: each of
``--towns`` towns has ``--buildings`` buildings with one 30-minute electricity meter
(48 readings a day), every building sees some consumption and the odd peak. Its gateway
files either one batch per half hour holding every meter's reading (``interval``, the
real-time shape: 300 readings a transaction) or one batch per 8 meters per day
(``day``: 384 readings a transaction). Transactions are signed beforehand (not
measured), then run block by block through ``contracts.engine.execute_block`` over a
``DictState``; three figures: execution alone (engine + dict), plus the authenticated
state root of every block (``ledger.state.StateTree``, as a node does), plus the
signature check of every transaction (``Transaction.signature_valid``, which a node
does once on admission). The real-time ratio divides readings per second by the rate
the towns produce them (towns × buildings × 48 per 86,400 s).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from bench.execution import MemoryLedger
from contracts.engine import BlockEnv, DictState
from ledger.genesis import Genesis, Member, Municipality
from ledger.records import Transaction
from node.netgen import generated_siret
from testkit.chainbuilder import key_for

CHAIN_ID = "tabellion-bench"
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
INTERVAL_MS = 30 * 60_000
PER_DAY = 48
DAY_SHAPE_METERS = 8
SECONDS_PER_DAY = 86_400


def genesis(towns: int) -> Genesis:
    return Genesis(CHAIN_ID, T0_MS - 86_400_000, tuple(
        Municipality(f"Town {t}", generated_siret(t), key_for(f"{t}.validator").public_key,
                     (Member(key_for(f"{t}.admin").public_key, "admin"),
                      Member(key_for(f"{t}.gateway").public_key, "meter_gateway")))
        for t in range(towns)))


@dataclass
class Signer:
    nonce: int = 0

    def __call__(self, who: str, action: str, payload: dict[str, Any], expiry_ms: int
                 ) -> Transaction:
        self.nonce += 1
        k = key_for(who)
        return Transaction(CHAIN_ID, "metering", action, payload, k.public_key, self.nonce,
                           expiry_ms).signed(k)


def consumption(meter: int, interval: int) -> int:
    """Wh in a half hour: a daytime load, a night base, and a peak now and then."""
    slot = interval % PER_DAY
    base = 2_000 + (meter % 7) * 300
    day_load = 6_000 if 16 <= slot < 38 else 0
    peak = 20_000 if (meter + interval) % 101 == 0 else 0
    return base + day_load + peak


Block = tuple[int, list[Transaction]]
"""(block time in ms, transactions)."""


def workload(towns: int, buildings: int, days: int, shape: str) -> tuple[list[Block],
                                                                        list[Block]]:
    """Setup blocks (enrolments) and the measured blocks of readings."""
    tx = Signer()
    far = T0_MS + (days + 2) * 86_400_000
    enrol = [tx(f"{t}.admin", "enroll_meter", {
        "siret": generated_siret(t), "meter_id": f"PRM-{m:05d}", "building": f"bat-{m:05d}",
        "kind": "electricity", "unit": "Wh", "interval_minutes": 30,
        "subscribed_power_w": 36_000}, far) for t in range(towns) for m in range(buildings)]
    setup = [(T0_MS - 60_000, enrol[i:i + 1000]) for i in range(0, len(enrol), 1000)]
    first = T0_MS // INTERVAL_MS
    index = [[0] * buildings for _ in range(towns)]

    def read(t: int, m: int, n: int) -> int:
        index[t][m] += consumption(m, n)
        return index[t][m]

    blocks: list[Block] = []
    if shape == "interval":
        for n in range(first, first + days * PER_DAY):
            txs = [tx(f"{t}.gateway", "file_readings", {
                "siret": generated_siret(t), "unit": "Wh",
                "meters": [f"PRM-{m:05d}" for m in range(buildings)],
                "first_intervals": [n] * buildings, "counts": [1] * buildings,
                "indexes": [read(t, m, n) for m in range(buildings)]}, far)
                for t in range(towns)]
            blocks.append(((n + 1) * INTERVAL_MS + 60_000, txs))
    else:
        for day in range(days):
            start = first + day * PER_DAY
            txs = []
            for t in range(towns):
                for group in range(0, buildings, DAY_SHAPE_METERS):
                    meters = range(group, min(group + DAY_SHAPE_METERS, buildings))
                    txs.append(tx(f"{t}.gateway", "file_readings", {
                        "siret": generated_siret(t), "unit": "Wh",
                        "meters": [f"PRM-{m:05d}" for m in meters],
                        "first_intervals": [start] * len(meters),
                        "counts": [PER_DAY] * len(meters),
                        "indexes": [read(t, m, n) for m in meters
                                    for n in range(start, start + PER_DAY)]}, far))
            blocks.append(((start + PER_DAY) * INTERVAL_MS + 60_000, txs))
    return setup, blocks


@dataclass
class Timing:
    exec_s: float = 0.0
    root_s: float = 0.0
    verify_s: float = 0.0
    readings: int = 0
    txs: int = 0
    peaks: int = 0


def run(towns: int, setup: list[Block], blocks: list[Block]) -> tuple[Timing, DictState]:
    ledger = MemoryLedger(genesis(towns))
    timing = Timing()
    for height, (time_ms, txs) in enumerate(setup + blocks, start=1):
        measure = height > len(setup)
        env = BlockEnv(CHAIN_ID, height, time_ms, key_for("0.validator").public_key)
        began = time.perf_counter()
        assert all(t.signature_valid() for t in txs)
        verified = time.perf_counter()
        done = ledger.execute(env, txs)
        if measure:
            timing.verify_s += verified - began
            timing.exec_s += done.exec_s
            timing.root_s += done.root_s
            timing.txs += len(txs)
            for r in done.result.receipts:
                timing.readings += int(r.data["readings"])
                timing.peaks += len(r.data["peaks"])
    return timing, ledger.state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--towns", type=int, default=4)
    parser.add_argument("--buildings", type=int, default=300)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--shape", choices=("interval", "day"), default="interval")
    args = parser.parse_args()
    setup, blocks = workload(args.towns, args.buildings, args.days, args.shape)
    timing, state = run(args.towns, setup, blocks)
    produced_per_s = args.towns * args.buildings * PER_DAY / SECONDS_PER_DAY
    print(f"{args.towns} towns × {args.buildings} buildings × {PER_DAY} readings/day, "
          f"{args.days} days, shape {args.shape}: {timing.readings} readings in "
          f"{timing.txs} transactions ({timing.readings // max(timing.txs, 1)} per tx), "
          f"{timing.peaks} peak alerts")
    print(f"{'measure':<34} {'readings/s':>11} {'× real time':>12}")
    total = 0.0
    for label, seconds in (("contract (engine + dict)", timing.exec_s),
                           ("+ state root of every block", timing.root_s),
                           ("+ signature check of every tx", timing.verify_s)):
        total += seconds
        rate = timing.readings / total
        print(f"{label:<34} {rate:>11,.0f} {rate / produced_per_s:>12,.0f}")
    meter_keys = sum(1 for k in state if k.startswith(b"meter/"))
    print(f"state: {len(state)} keys, {meter_keys} under meter/ "
          f"({meter_keys / (args.towns * args.buildings):.1f} per meter)")


if __name__ == "__main__":
    main()

"""The in-memory contract benchmarks run their workloads to the end: every transaction
they generate is accepted by the contracts (a benchmark over refusals measures nothing,
and a broken benchmark is found here, not by the next person who needs its figures)."""

from __future__ import annotations

from bench import contracts_bench, metering_bench


def test_the_metering_benchmark_workload_is_accepted_and_files_readings() -> None:
    setup, blocks = metering_bench.workload(towns=2, buildings=3, days=1, shape="day")
    timing, state = metering_bench.run(2, setup, blocks)
    assert timing.readings == 2 * 3 * metering_bench.PER_DAY
    assert timing.txs == sum(len(txs) for _, txs in blocks)
    assert any(k.startswith(b"meter/") for k in state)


def test_every_contract_benchmark_workload_is_accepted() -> None:
    for name, build in contracts_bench.WORKLOADS.items():
        workload = build(20, contracts_bench.Signer())
        timing = contracts_bench.run(workload, 10)
        assert timing.keys_written > 0, name

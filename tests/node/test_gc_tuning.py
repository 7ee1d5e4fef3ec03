"""A node process collects cyclic garbage rarely, and still collects it (node.runtime rules).

Run in a child interpreter: the tuning is process-wide and must not change this one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import gc, json
from node.runtime import GC_THRESHOLDS, tune_garbage_collector

def during(cycles):
    runs, collected = [], []
    def watch(phase, info):
        if phase == "stop":
            runs.append(info["generation"])
            collected.append(info["collected"])
    gc.callbacks.append(watch)
    for _ in range(cycles):
        garbage = []
        garbage.append(garbage)  # a cycle: only the collector frees it
    gc.callbacks.remove(watch)
    return {"runs": runs, "collected": sum(collected)}

default = during(30_000)
tune_garbage_collector()
print(json.dumps({"default": default, "frozen": gc.get_freeze_count(),
                  "threshold": gc.get_threshold(), "expected": GC_THRESHOLDS,
                  "tuned_short": during(30_000), "tuned_long": during(160_000)}))
"""


def test_collections_are_rare_after_tuning_and_cycles_are_still_freed() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    seen = json.loads(done.stdout)
    assert len(seen["default"]["runs"]) >= 30  # Python's default: one per 700 allocations
    assert seen["threshold"] == seen["expected"]
    assert seen["frozen"] > 10_000  # the start-up heap, set aside for good
    assert seen["tuned_short"]["runs"] == []  # 30,000 cycles: not one collection
    long = seen["tuned_long"]
    assert 1 <= len(long["runs"]) <= 4 and set(long["runs"]) == {0}
    assert long["collected"] >= 50_000  # what the young collections found, they freed

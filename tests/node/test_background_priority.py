"""LevelDB's compaction thread runs nicer than the node; Python's threads keep their
priority (node.runtime rules).

Run in a child interpreter: priorities are per process and must not change this one's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, os, sys, threading, time
from pathlib import Path
from ledger.kv import KV
from node.runtime import BACKGROUND_NICE, lower_background_threads

def nice_of(tid):
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[16])  # field 19: nice

def foreign():
    ours = {t.native_id for t in threading.enumerate()}
    return sorted(int(t) for t in os.listdir("/proc/self/task") if int(t) not in ours)

parked = threading.Event()
helper = threading.Thread(target=parked.wait)
helper.start()
kv = KV.open(Path(sys.argv[1]) / "db")
before = foreign()
lower_background_threads(set())
early = [nice_of(t) for t in foreign()]
value = os.urandom(1024)
deadline = time.monotonic() + 60
while not foreign() and time.monotonic() < deadline:  # compactions start its thread
    with kv.batch(sync=False) as batch:
        for i in range(4096):
            batch.put(os.urandom(16), value)
lowered = set()
lower_background_threads(lowered)
print(json.dumps({
    "before": before, "early": early, "foreign": foreign(), "lowered": sorted(lowered),
    "nice": [nice_of(t) for t in foreign()], "main": nice_of(threading.get_native_id()),
    "helper": nice_of(helper.native_id), "expected": BACKGROUND_NICE}))
parked.set()
kv.close()
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux only: /proc")
def test_leveldb_compaction_thread_is_lowered_and_python_threads_are_not(
        tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(done.stdout)
    assert seen["before"] == [] and seen["early"] == []  # no thread yet: nothing to lower
    assert len(seen["foreign"]) == 1  # LevelDB's one background thread, once it compacts
    assert seen["lowered"] == seen["foreign"]
    assert seen["nice"] == [min(19, seen["main"] + seen["expected"])]
    assert seen["helper"] == seen["main"]  # Python's threads keep the process's priority

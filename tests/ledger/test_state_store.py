"""The state on a real LevelDB (ledger.state_store): reopen, index agreement, crashes."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledger import state_store
from ledger.errors import CorruptionError, StoreError
from ledger.kv import KV, Batch
from ledger.layout import STORES
from ledger.state import (
    EMPTY_STATE_ROOT,
    KEY_BYTES_MAX,
    MemoryNodeStore,
    StateTree,
    compute_root,
    verify_state_proof,
)
from ledger.state_store import KVNodeStore, PersistentState
from tests.ledger.test_state import applied

ROOT = Path(__file__).resolve().parents[2]
CRASH_DEADLINE_S = 120


def change_sets(seed: int) -> Iterator[dict[bytes, bytes | None]]:
    """A reproducible, endless sequence of change sets over a small key space."""
    rnd = random.Random(seed)
    while True:
        change: dict[bytes, bytes | None] = {}
        for _ in range(rnd.randint(0, 40)):
            key = b"rec/%03d" % rnd.randrange(150)
            change[key] = None if rnd.random() < 0.3 else rnd.randbytes(rnd.randint(0, 40))
        yield change


def history(seed: int, versions: int) -> list[dict[bytes, bytes | None]]:
    return list(itertools.islice(change_sets(seed), versions))


def states_of(changes: list[dict[bytes, bytes | None]]) -> list[dict[bytes, bytes]]:
    states: list[dict[bytes, bytes]] = []
    state: dict[bytes, bytes] = {}
    for change in changes:
        state = applied(state, change)
        states.append(state)
    return states


def open_state(path: Path) -> tuple[KV, PersistentState]:
    """The state as a node keeps it: its tree's nodes in a LevelDB of their own."""
    kv = KV.open(path, routes=STORES)
    return kv, PersistentState(kv.prefixed(b"s/"))


def assert_matches(state: PersistentState, expected: list[dict[bytes, bytes]]) -> None:
    """Every stored version equals the expected dicts; the index equals the last one."""
    assert state.latest_version() == len(expected) - 1
    keys = {key for past in expected for key in past} | {b"never written"}
    for version, past in enumerate(expected):
        assert state.root(version) == compute_root(past)
        for key in keys:
            assert state.get(key, version) == past.get(key)
            assert state.tree.get(key, version) == past.get(key)  # the index aside
    last = expected[-1]
    for key in keys:
        assert state.get_latest(key) == last.get(key)
    assert dict(state.items_latest()) == dict(sorted(last.items()))
    assert sorted(state.tree.items(len(expected) - 1)) == sorted(last.items())
    assert state.verify_index() == len(last)


def test_reopening_gives_the_same_roots_values_and_proofs(tmp_path: Path) -> None:
    changes = history(seed=7, versions=25)
    expected = states_of(changes)
    kv, state = open_state(tmp_path / "db")
    try:
        assert state.latest_version() is None
        roots = [state.apply(version, change) for version, change in enumerate(changes)]
        assert roots == [compute_root(s) for s in expected]
    finally:
        kv.close()

    kv, state = open_state(tmp_path / "db")
    try:
        assert_matches(state, expected)
        for version in (0, 12, 24):
            for key in (b"rec/001", b"rec/077", b"absent"):
                value = expected[version].get(key)
                verify_state_proof(roots[version], key, value, state.prove(key, version))
        # and it carries on from where it stopped
        root = state.apply(25, {b"rec/001": b"after reopen"})
        assert root == compute_root({**expected[-1], b"rec/001": b"after reopen"})
    finally:
        kv.close()


def test_the_same_history_in_memory_and_on_disk_gives_the_same_roots(tmp_path: Path) -> None:
    changes = history(seed=3, versions=15)
    memory = StateTree(MemoryNodeStore())
    kv = KV.open(tmp_path / "db")
    try:
        on_disk = StateTree(KVNodeStore(kv.prefixed(b"s/n/")))
        for version, change in enumerate(changes):
            assert memory.apply(version, change) == on_disk.apply(version, change)
    finally:
        kv.close()


def test_deleting_everything_empties_the_index_too(tmp_path: Path) -> None:
    kv, state = open_state(tmp_path / "db")
    try:
        items = {b"k%d" % i: b"v" for i in range(50)}
        state.apply(0, items)
        assert state.apply(1, dict.fromkeys(items)) == EMPTY_STATE_ROOT
        assert list(state.items_latest()) == []
        assert state.get_latest(b"k3") is None
        assert state.get(b"k3", 0) == b"v"  # the old version stays readable
    finally:
        kv.close()


def test_a_refused_change_set_writes_nothing(tmp_path: Path) -> None:
    kv, state = open_state(tmp_path / "db")
    try:
        state.apply(0, {b"a": b"1"})
        with pytest.raises(StoreError):
            state.apply(1, {b"b": b"2", b"x" * (KEY_BYTES_MAX + 1): b"too long a key"})
        with pytest.raises(StoreError, match="next: 1"):
            state.apply(3, {b"b": b"2"})
        assert state.latest_version() == 0
        assert state.get_latest(b"b") is None
        assert state.apply(1, {b"b": b"2"}) == compute_root({b"a": b"1", b"b": b"2"})
        assert state.get_latest(b"x" * (KEY_BYTES_MAX + 1)) is None
    finally:
        kv.close()


def test_recent_latest_values_are_served_from_memory_and_follow_the_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[bytes] = []
    real_get = KV.get

    def counting_get(self: KV, key: bytes) -> bytes | None:
        reads.append(key)
        return real_get(self, key)

    monkeypatch.setattr(KV, "get", counting_get)
    monkeypatch.setattr(state_store, "LATEST_CACHE_ENTRIES_MAX", 4)
    kv, state = open_state(tmp_path / "db")
    big = b"x" * (state_store.LATEST_CACHE_VALUE_BYTES_MAX + 1)
    try:
        state.apply(0, {b"a": b"1", b"big": big})
        reads.clear()
        assert [state.get_latest(b"a") for _ in range(3)] == [b"1"] * 3
        assert [state.get_latest(b"absent") for _ in range(3)] == [None] * 3
        assert reads == [b"absent"]  # "a" was written, "absent" read once, then memory
        assert [state.get_latest(b"big") for _ in range(2)] == [big, big]
        assert reads.count(b"big") == 2  # too large to keep: LevelDB each time

        def refuse(batch: Batch) -> None:
            raise StoreError("disk full")

        with pytest.raises(StoreError):
            state.apply(1, {b"a": b"2", b"absent": b"now"}, also=refuse)
        assert (state.get_latest(b"a"), state.get_latest(b"absent")) == (b"1", None)
        state.apply(1, {b"a": None, b"absent": b"now"})
        assert (state.get_latest(b"a"), state.get_latest(b"absent")) == (None, b"now")
        for n in range(5):  # more keys than the cache holds: the oldest is forgotten
            state.get_latest(b"k%d" % n)
        reads.clear()
        assert state.get_latest(b"k4") is None and reads == []
        assert state.get_latest(b"absent") == b"now" and reads == [b"absent"]
    finally:
        kv.close()
    kv, reopened = open_state(tmp_path / "db")  # what the cache served is what is stored
    try:
        assert (reopened.get_latest(b"a"), reopened.get_latest(b"absent")) == (None, b"now")
        assert reopened.verify_index() == 2
    finally:
        kv.close()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda kv: kv.put(b"s/i/rec/001", b"altered"), "has another value"),
        (lambda kv: kv.delete(b"s/i/rec/001"), "has another value"),
        (lambda kv: kv.put(b"s/i/intruder", b"x"), "holds 3 keys where the state holds 2"),
    ],
)
def test_a_damaged_index_is_found(
    tmp_path: Path, damage: Callable[[KV], None], message: str
) -> None:
    kv, state = open_state(tmp_path / "db")
    try:
        state.apply(0, {b"rec/001": b"a", b"rec/002": b"b"})
        assert state.verify_index() == 2
        damage(kv)
        with pytest.raises(CorruptionError, match=message):
            state.verify_index()
    finally:
        kv.close()


def test_a_damaged_node_on_disk_is_reported_with_its_height(tmp_path: Path) -> None:
    kv, state = open_state(tmp_path / "db")
    try:
        state.apply(0, {b"rec/001": b"a"})
        state.apply(1, {b"rec/001": b"value at height one", b"rec/002": b"b"})
        nodes = kv.prefixed(b"s/n/")
        for key, data in list(nodes.items()):
            if data.endswith(b"value at height one"):
                nodes.put(key, data[:-3] + b"owt")
        with pytest.raises(CorruptionError, match="written at height 1, path"):
            state.prove(b"rec/001", 1)
        with pytest.raises(CorruptionError, match="written at height 1"):
            state.verify_index()
        assert state.get(b"rec/001", 0) == b"a"  # the older version is intact
    finally:
        kv.close()


def test_latest_view_and_prefix_scans(tmp_path: Path) -> None:
    kv, state = open_state(tmp_path / "db")
    try:
        state.apply(0, {b"delib/2": b"b", b"delib/1": b"a", b"notary/x": b"n", b"": b"root"})
        view = state.latest_view()
        assert view.get(b"delib/1") == b"a"
        assert view.get(b"delib/3") is None
        assert list(state.items_latest(b"delib/")) == [(b"delib/1", b"a"), (b"delib/2", b"b")]
        assert list(state.items_latest(b"delib/", limit=1)) == [(b"delib/1", b"a")]
        with pytest.raises(StoreError):
            list(state.items_latest(limit=-1))
    finally:
        kv.close()


CHILD = """
import sys
from pathlib import Path
from ledger.kv import KV
from ledger.layout import STORES
from ledger.state_store import PersistentState
from tests.ledger.test_state_store import change_sets

kv = KV.open(Path(sys.argv[1]), routes=STORES)
state = PersistentState(kv.prefixed(b"s/"))
for version, change in enumerate(change_sets(seed=11)):
    state.apply(version, change)
    print(version, flush=True)
"""


def test_a_killed_writer_leaves_index_and_tree_in_agreement(tmp_path: Path) -> None:
    """kill -9 a process in the middle of applying versions: on reopen, the recorded
    version, the tree and the flat index describe the same state."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "db")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + CRASH_DEADLINE_S
        assert child.stdout is not None
        for line in child.stdout:  # wait for progress, then kill mid-stream
            if int(line) >= 30 or time.monotonic() > deadline:
                break
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=CRASH_DEADLINE_S)

    kv, state = open_state(tmp_path / "db")
    try:
        latest = state.latest_version()
        assert latest is not None and latest >= 30
        assert_matches(state, states_of(history(seed=11, versions=latest + 1)))
    finally:
        kv.close()


def test_a_marker_written_as_a_tree_node_by_an_earlier_version_is_moved(
        tmp_path: Path) -> None:
    """Before the tree's nodes had a LevelDB of their own, the version marker was the node
    key ``latest``: opening such a directory moves it to the main LevelDB (the state's
    commit point), and the state goes on from the version it recorded."""
    changes = list(itertools.islice(change_sets(seed=5), 4))
    kv = KV.open(tmp_path / "db")  # everything in one LevelDB, as then
    try:
        state = PersistentState(kv.prefixed(b"s/"))
        for version, change in enumerate(changes[:3]):
            state.apply(version, change)
        marker = kv.get(b"s/latest")
        assert marker == (2).to_bytes(8, "big")
        kv.put(b"s/n/latest", marker, sync=True)  # where an earlier version kept it
        kv.delete(b"s/latest", sync=True)
    finally:
        kv.close()
    kv, state = open_state(tmp_path / "db")
    try:
        assert state.latest_version() == 2
        assert kv.get(b"s/latest") == marker and kv.get(b"s/n/latest") is None
        state.apply(3, changes[3])
        assert_matches(state, states_of(changes))
    finally:
        kv.close()

"""The LevelDB layer: prefixes, atomic batches, ranges and operator-facing errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger import kv as kv_module
from ledger.errors import CorruptionError, StoreError
from ledger.kv import KEY_BYTES_MAX, KV


def test_prefixed_views_are_disjoint_and_ordered(tmp_path: Path) -> None:
    with KV.open(tmp_path / "db") as kv:
        a, b = kv.prefixed(b"a/"), kv.prefixed(b"b/")
        for i in (3, 1, 2):
            a.put(bytes([i]), b"A%d" % i)
            b.put(bytes([i]), b"B%d" % i)
        assert [k for k, _ in a.items()] == [b"\x01", b"\x02", b"\x03"]
        assert [v for _, v in b.items(reverse=True)] == [b"B3", b"B2", b"B1"]
        assert [k for k, _ in a.items(start=b"\x02")] == [b"\x02", b"\x03"]
        assert [k for k, _ in a.items(start=b"\x01", stop=b"\x03")] == [b"\x01", b"\x02"]
        assert a.get(b"\x04") is None
        assert kv.get(b"a/\x01") == b"A1"


def test_batch_is_all_or_nothing(tmp_path: Path) -> None:
    with KV.open(tmp_path / "db") as kv:
        with kv.batch() as batch:
            batch.put(b"x", b"1")
            batch.put(b"y", b"2")
        with pytest.raises(RuntimeError), kv.batch() as batch:
            batch.put(b"z", b"3")
            batch.delete(b"x")
            raise RuntimeError("crash in the middle")
        assert kv.get(b"z") is None
        assert kv.get(b"x") == b"1"


def test_data_survives_reopen(tmp_path: Path) -> None:
    with KV.open(tmp_path / "db") as kv:
        kv.put(b"k", b"v", sync=True)
    with KV.open(tmp_path / "db", create=False) as kv:
        assert kv.get(b"k") == b"v"


def _table_bytes(path: Path) -> bytes:
    """Everything LevelDB wrote to its table files (``.ldb``) in ``path``."""
    return b"".join(table.read_bytes() for table in sorted(path.glob("*.ldb")))


def test_tables_are_written_uncompressed_and_compressed_ones_stay_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A node upgraded from a version that wrote Snappy tables reads them as before; what
    it writes now is stored as is (docs/adr/0004-store-layout.md: compression cost half of
    LevelDB's background thread and saved a third of the disk)."""
    value = b"municipal record " * 64  # compresses well: Snappy would shrink it a lot
    with monkeypatch.context() as earlier_version:
        earlier_version.setattr(kv_module, "COMPRESSION", "snappy")
        with KV.open(tmp_path / "db") as kv:
            kv.put(b"old", value, sync=True)
            kv._db.main.compact_range()  # into a table file, compressed
    assert value not in _table_bytes(tmp_path / "db")
    with KV.open(tmp_path / "db", create=False) as kv:
        assert kv.get(b"old") == value
        kv.put(b"new", value[::-1], sync=True)
        kv._db.main.compact_range()  # into a table file, next to the compressed one
        assert kv.get(b"old") == value and kv.get(b"new") == value[::-1]
    assert value[::-1] in _table_bytes(tmp_path / "db")


def test_a_locked_directory_names_the_likely_cause(tmp_path: Path) -> None:
    with KV.open(tmp_path / "db"), pytest.raises(StoreError, match="already running"):
        KV.open(tmp_path / "db")


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no Tabellion data"):
        KV.open(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()  # a typo leaves no empty database behind


def test_a_file_instead_of_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a database")
    for create in (True, False):
        with pytest.raises(StoreError, match="not a directory"):
            KV.open(tmp_path / "file", create=create)


def test_a_damaged_database_is_reported_as_corruption(tmp_path: Path) -> None:
    with KV.open(tmp_path / "db") as kv:
        kv.put(b"k", b"v", sync=True)
    (tmp_path / "db" / "CURRENT").write_text("MANIFEST-999999\n")
    with pytest.raises(CorruptionError, match="restore it"):
        KV.open(tmp_path / "db", create=False)


def test_a_closed_store_raises_store_error(tmp_path: Path) -> None:
    kv = KV.open(tmp_path / "db")
    view = kv.prefixed(b"v/")
    view.close()  # a view does not close the database it shares
    view.put(b"k", b"v")
    kv.close()
    assert kv.closed
    with pytest.raises(StoreError, match="closed"):
        kv.get(b"k")
    with pytest.raises(StoreError, match="closed"):
        view.put(b"k", b"w")
    with pytest.raises(StoreError, match="closed"):
        list(view.items())


def test_ranges_never_leave_their_view(tmp_path: Path) -> None:
    with KV.open(tmp_path / "db") as kv:
        kv.put(b"a", b"before")
        kv.put(b"a\xff\xff", b"inside")
        kv.put(b"b", b"after")
        view = kv.prefixed(b"a\xff")
        assert list(view.items(start=b"")) == [(b"\xff", b"inside")]
        assert list(view.items(reverse=True)) == [(b"\xff", b"inside")]
        assert list(view.items(prefix=b"\xff")) == [(b"\xff", b"inside")]
        assert list(kv.prefixed(b"a").items(stop=b"\xff")) == [(b"", b"before")]


def test_bad_keys_and_values_are_refused(tmp_path: Path) -> None:
    with KV.open(tmp_path / "db") as kv:
        with pytest.raises(StoreError, match="key"):
            kv.put(b"k" * (KEY_BYTES_MAX + 1), b"v")
        with pytest.raises(StoreError, match="value"):
            kv.put(b"k", "text")  # type: ignore[arg-type]  # the refusal is what is tested
        with pytest.raises(ValueError, match="either a prefix"):
            list(kv.items(prefix=b"a", start=b"b"))


_KEYS = st.binary(max_size=3).map(lambda b: b.replace(b"\x01", b"\xff"))


ROUTES = ((b"a", "under-a"), (b"\xff\x00", "under-ff00"))
"""Two prefixes kept in LevelDBs of their own, among the keys the examples draw."""


@pytest.fixture(scope="module", params=[(), ROUTES], ids=["one LevelDB", "routed"])
def scratch(tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[KV]:
    """One database for all the examples below (each empties it first): opening a
    LevelDB per example would cost more than the example. Once alone, once with
    prefixes routed to LevelDBs of their own: a view, a scan and a batch must not tell
    them apart."""
    with KV.open(tmp_path_factory.mktemp("scratch") / "db", routes=request.param) as kv:
        yield kv


@settings(max_examples=100, deadline=None)
@example(keys={b"a", b"b"}, view=b"", start=b"a", stop=b"b", prefix=None, reverse=True)
@given(
    keys=st.sets(_KEYS, max_size=12),
    view=st.sampled_from([b"", b"\xff", b"a", b"\x00\xff"]),
    start=st.none() | _KEYS, stop=st.none() | _KEYS, prefix=st.none() | _KEYS,
    reverse=st.booleans(),
)
def test_items_match_a_sorted_model(
    scratch: KV, keys: set[bytes], view: bytes, start: bytes | None, stop: bytes | None,
    prefix: bytes | None, reverse: bool,
) -> None:
    """Any view, range or prefix, in either direction, gives exactly the model's keys
    (plyvel 1.5's own reverse ranges drop keys: KV must not inherit that)."""
    kv = scratch
    with kv.batch(sync=False) as batch:
        for key, _ in kv.items():
            batch.delete(key)
        for key in keys:
            batch.put(key, b"v" + key)
    inside = sorted(k[len(view):] for k in keys if k.startswith(view))
    if prefix is not None:
        expected = [k for k in inside if k.startswith(prefix)]
        got = list(kv.prefixed(view).items(prefix=prefix, reverse=reverse))
    else:
        expected = [k for k in inside if (start is None or k >= start)
                    and (stop is None or k < stop)]
        got = list(kv.prefixed(view).items(start=start, stop=stop, reverse=reverse))
    if reverse:
        expected.reverse()
    assert got == [(k, b"v" + view + k) for k in expected]


_FILL_UNTIL_FULL = """
import resource, sys
from ledger.errors import DiskFullError
from ledger.kv import KV
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
with KV.open(sys.argv[1]) as kv:
    n = 0
    try:
        while n < 10_000:
            with kv.batch() as batch:
                batch.put(b"k%05d" % n, bytes(1000))
            n += 1  # acknowledged: the synced batch returned
    except DiskFullError as exc:
        print(n)
        print(exc)
"""


def test_a_full_disk_is_a_clear_error_and_loses_no_acknowledged_write(tmp_path: Path
                                                                      ) -> None:
    # RLIMIT_FSIZE makes the write fail with EFBIG exactly as a full disk fails it with
    # ENOSPC; it applies to a child process, not to the test runner.
    child = subprocess.run([sys.executable, "-c", _FILL_UNTIL_FULL, str(tmp_path / "db")],
                           capture_output=True, text=True, timeout=60, check=True,
                           cwd=Path(__file__).resolve().parents[2])
    acknowledged, message = child.stdout.splitlines()[:2]
    assert 0 < int(acknowledged) < 10_000, child.stdout + child.stderr
    assert message.startswith(f"the disk holding the data directory {tmp_path / 'db'} is full")
    assert "File too large" in message and "Free space on that disk" in message
    with KV.open(tmp_path / "db") as kv:  # room again: every acknowledged write is there
        assert [k for k, _ in kv.items()] == [b"k%05d" % n for n in range(int(acknowledged))]


def test_routed_prefixes_live_in_their_own_leveldb(tmp_path: Path) -> None:
    with KV.open(tmp_path / "db", routes=ROUTES) as kv, kv.batch() as batch:
        for key in (b"a1", b"b1", b"\xff\x001", b"\xff1"):
            batch.put(key, b"v")
    with KV.open(tmp_path / "db") as main, KV.open(tmp_path / "db" / "under-a") as under_a, \
            KV.open(tmp_path / "db" / "under-ff00") as under_ff:
        assert [k for k, _ in main.items()] == [b"b1", b"\xff1"]
        assert [k for k, _ in under_a.items()] == [b"a1"]
        assert [k for k, _ in under_ff.items()] == [b"\xff\x001"]


def test_a_batch_across_leveldbs_writes_the_main_one_last(tmp_path: Path) -> None:
    """A crash between the writes leaves the routed keys without the main ones, never
    the reverse: here the main LevelDB fails its write (closed under the batch)."""
    kv = KV.open(tmp_path / "db", routes=ROUTES)
    with pytest.raises(StoreError, match="closed"), kv.batch() as batch:
        batch.put(b"marker", b"2")  # the commit point, in the main LevelDB
        batch.put(b"a-node", b"n")
        kv._db.main.close()
    kv.close()
    with KV.open(tmp_path / "db", routes=ROUTES) as kv:
        assert kv.get(b"a-node") == b"n"
        assert kv.get(b"marker") is None


def test_opening_moves_routed_keys_out_of_the_main_leveldb(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory written when everything was in one LevelDB: opening it with routes
    moves each routed key to its own LevelDB (in chunks) and loses none."""
    monkeypatch.setattr(kv_module, "MOVE_CHUNK_KEYS", 7)
    written = {bytes([c]) + b"%03d" % i: b"v%d" % i for c in b"ab" for i in range(50)}
    with KV.open(tmp_path / "db") as kv, kv.batch() as batch:
        for key, value in written.items():
            batch.put(key, value)
    with KV.open(tmp_path / "db", routes=ROUTES) as kv:
        assert dict(kv.items()) == written
        assert [k for k, _ in kv.items(prefix=b"a", reverse=True)] == sorted(
            (k for k in written if k.startswith(b"a")), reverse=True)
    with KV.open(tmp_path / "db") as main:
        assert all(k.startswith(b"b") for k, _ in main.items())
    with KV.open(tmp_path / "db", routes=ROUTES) as kv:  # moved once: nothing left to move
        assert dict(kv.items()) == written


@pytest.mark.parametrize("routes", [((b"a", "x"), (b"ab", "y")), ((b"a", "x"), (b"a", "y")),
                                    ((b"", "x"),)])
def test_routes_that_overlap_are_refused(tmp_path: Path,
                                         routes: tuple[tuple[bytes, str], ...]) -> None:
    with pytest.raises(ValueError, match="none may start another"):
        KV.open(tmp_path / "db", routes=routes)

"""The one module that imports ``plyvel``: a small, typed key-value layer over LevelDB.

Rules:
- No ``plyvel`` exception escapes: a locked, missing or unreadable database becomes a
  ``StoreError`` whose message tells the operator what to do; a LevelDB corruption report
  becomes a ``CorruptionError``; a write refused for want of room (no space left, file
  too large for the process's limit, quota) becomes a ``DiskFullError``. LevelDB keeps
  every write acknowledged before it: after the operator makes room, reopening finds them.
- ``prefixed`` views share the one open database, so the chain, the state and the
  consensus log live in one directory under their own prefixes.
- A database may keep some prefixes in LevelDBs of their own (``routes``: prefix and
  subdirectory, ``ledger.layout.STORES`` for a data directory): LevelDB compacts by key
  range, and keys written in key order (the state tree's nodes, keyed by version) or
  deleted soon after (the replica's records) cost almost nothing to compact alone, while
  mixed with keys written in random order every compaction rewrote them all (ADR 0004).
  Views, reads, scans and batches see one key space; opening moves keys of a routed
  prefix still held in the main LevelDB (a directory written by an earlier version) to
  their own, a chunk at a time, each chunk written there before it is deleted here.
- ``batch`` is atomic within one LevelDB: everything written inside it lands together on
  successful exit, or nothing does. ``sync=True`` (the default) waits for the disk, so a
  committed batch survives a power cut or ``kill -9``. A batch that spans LevelDBs is
  written one LevelDB at a time, routed ones in ``routes`` order and the main one LAST:
  a crash in between leaves the routed writes without the main ones, never the reverse,
  so a commit point (a head, a version marker) belongs in the main LevelDB.
  ``joined`` lets another view of the same database write into an open batch (a block
  and its state in one write).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import plyvel

from ledger.errors import CorruptionError, DiskFullError, StoreError

KEY_BYTES_MAX = 1024
VALUE_BYTES_MAX = 64 * 1024 * 1024
BLOOM_FILTER_BITS = 10
"""Bits per key of LevelDB's bloom filter: a lookup of an absent key (the replay check of
``ChainStore.append``, ``has_tx`` from the mempool) rarely touches the disk."""
OPEN_TABLES_MAX = 64
"""Table files LevelDB keeps open, with their index and filter blocks in memory. Its
default (1,000) let a node's memory grow with its data directory: executing 64,000
transactions grew a process from 130 to 274 MB, flat at about 130 MB with 64 (a chain
of 178,702 transactions reached a gigabyte per node). Reads of old data then reopen a
table now and then; recent data, which the node reads most, stays in the open ones."""
BLOCK_CACHE_BYTES = 8 * 1024 * 1024
"""LevelDB's cache of uncompressed data blocks (its default, stated so it is bounded)."""
WRITE_BUFFER_BYTES = 4 * 1024 * 1024
"""The memtable of the main LevelDB (LevelDB's default, stated so it is bounded; up to
two are held while one is written out). A larger one was tried (ADR 0004)."""
ROUTED_BLOCK_CACHE_BYTES = 1024 * 1024
"""The block cache of each routed LevelDB. LevelDB reads tables through ``mmap`` (up to a
thousand per process), and caches no block read that way when tables are uncompressed:
the mapped pages are the cache, and they count in the node's resident memory."""
ROUTED_WRITE_BUFFER_BYTES = 1024 * 1024
"""The memtable of each routed LevelDB (up to two are held while one is written out).
Keys written in key order make tables that overlap nothing below them, which LevelDB
moves down without rewriting, and records deleted soon die young: small memtables cost
them little compaction, while every LevelDB of a node adds its memtables to its memory
(a million transactions with LevelDB's 4 MiB in each of the three: anonymous memory
10-15 MiB above the run with one LevelDB, docs/performance.md)."""
MOVE_CHUNK_KEYS = 10_000
"""Keys moved per write when opening a directory whose routed keys are still in the main
LevelDB (bounded memory whatever its size)."""
COMPRESSION = None
"""Tables are written without Snappy compression. Under load LevelDB's background thread
took as much CPU as the node's Python thread, half of it compressing tables at every
flush and compaction; uncompressed, a node commits about a third more per CPU second
for about 1.5 times the disk (docs/adr/0004-store-layout.md). Tables written compressed
by an earlier version stay readable: LevelDB marks the compression of each block."""


_DISK_FULL_TEXTS = ("no space left on device", "file too large", "disk quota exceeded")
"""LevelDB's status text for ENOSPC, EFBIG (RLIMIT_FSIZE) and EDQUOT (strerror)."""


def _message(exc: BaseException) -> str:
    """plyvel puts LevelDB's status text in ``args[0]`` as bytes: show it as text."""
    arg = exc.args[0] if exc.args else exc
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


def _translate(exc: BaseException, path: Path) -> StoreError:
    text = _message(exc)
    if isinstance(exc, plyvel.CorruptionError):
        return CorruptionError(
            f"LevelDB in {path} reports corruption ({text}); the data directory is damaged: "
            "restore it from a peer or a backup"
        )
    if isinstance(exc, RuntimeError) and "closed" in text:
        return StoreError(f"the store in {path} is closed; reopen it")
    lowered = text.lower()
    if any(full in lowered for full in _DISK_FULL_TEXTS):
        return DiskFullError(
            f"the disk holding the data directory {path} is full ({text}): the node stops "
            "here; everything it stored before is intact. Free space on that disk (or grow "
            "the volume, or raise the file-size limit), then start the node again: it "
            "resumes from what it stored and catches up from its peers"
        )
    if "lock" in lowered and ("held" in lowered or "unavailable" in lowered):
        return StoreError(
            f"the data directory {path} is locked by another process "
            "(is a node already running on this data directory?); stop it or choose "
            "another directory"
        )
    if "does not exist" in text or "no such file" in lowered:
        return StoreError(f"no Tabellion data in {path}: check the path or create the node first")
    if "not a directory" in lowered:
        return StoreError(f"{path} is not a directory: give the path of a data directory")
    if "permission denied" in lowered:
        return StoreError(
            f"cannot read or write the data directory {path} (permission denied): "
            "run as the user that owns it or fix its permissions"
        )
    return StoreError(f"cannot use the data directory {path}: {text}")


def _after(prefix: bytes) -> bytes | None:
    """Smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


class Batch:
    """Writes collected for one ``KV.batch``; keys are relative to the view."""

    __slots__ = ("_prefix", "_stores", "_sync", "_writes")

    def __init__(self, stores: _Stores, writes: dict[int, Any], prefix: bytes,
                 sync: bool) -> None:
        self._stores = stores
        self._writes = writes
        """Open write batch per LevelDB (by its index in ``_Stores.all``), made on use."""
        self._prefix = prefix
        self._sync = sync

    def _batch_for(self, key: bytes) -> Any:
        index = self._stores.index_for(key)
        wb = self._writes.get(index)
        if wb is None:
            try:
                wb = self._stores.all[index].write_batch(sync=self._sync)
            except (plyvel.Error, RuntimeError) as exc:
                raise _translate(exc, self._stores.path) from exc
            self._writes[index] = wb
        return wb

    def put(self, key: bytes, value: bytes) -> None:
        _check_key(key)
        if not isinstance(value, bytes) or len(value) > VALUE_BYTES_MAX:
            raise StoreError(f"a stored value must be bytes, at most {VALUE_BYTES_MAX} bytes")
        full = self._prefix + key
        self._batch_for(full).put(full, value)

    def delete(self, key: bytes) -> None:
        _check_key(key)
        full = self._prefix + key
        self._batch_for(full).delete(full)


class _Stores:
    """The LevelDBs of one database: the main one, last in ``all``, and one per route."""

    __slots__ = ("all", "path", "prefixes")

    def __init__(self, path: Path, main: Any, routed: Sequence[tuple[bytes, Any]]) -> None:
        self.path = path
        """The database's directory, for the messages of its errors."""
        self.prefixes = tuple(prefix for prefix, _ in routed)
        self.all: tuple[Any, ...] = (*(db for _, db in routed), main)

    @property
    def main(self) -> Any:
        return self.all[-1]

    def index_for(self, key: bytes) -> int:
        for index, prefix in enumerate(self.prefixes):
            if key.startswith(prefix):
                return index
        return len(self.prefixes)

    def db_for(self, key: bytes) -> Any:
        return self.all[self.index_for(key)]

    def holding(self, low: bytes, high: bytes | None) -> list[Any]:
        """The LevelDBs that may hold keys in ``[low, high)``: the routed ones whose prefix
        meets the range, and the main one (it holds every other key)."""
        found = []
        for prefix, db in zip(self.prefixes, self.all[:-1], strict=True):
            end = _after(prefix)
            if (high is None or prefix < high) and (end is None or low < end):
                found.append(db)
        return [*found, self.main]

    def close(self) -> None:
        for db in self.all:
            db.close()


def _key_of(pair: tuple[bytes, bytes]) -> bytes:
    return pair[0]


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) > KEY_BYTES_MAX:
        raise StoreError(f"a key must be at most {KEY_BYTES_MAX} bytes")


def _open_leveldb(path: Path, *, create: bool, cache_bytes: int, buffer_bytes: int) -> Any:
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        elif not path.exists():  # LevelDB would create the directory before refusing
            raise StoreError(
                f"no Tabellion data in {path}: check the path or create the node first"
            )
        elif not path.is_dir():
            raise FileExistsError(path)
        return plyvel.DB(
            str(path), create_if_missing=create, paranoid_checks=True,
            bloom_filter_bits=BLOOM_FILTER_BITS, max_open_files=OPEN_TABLES_MAX,
            lru_cache_size=cache_bytes, write_buffer_size=buffer_bytes,
            compression=COMPRESSION,
        )
    except FileExistsError as exc:  # from mkdir or the check above: a file is in the way
        raise StoreError(
            f"{path} is not a directory: give the path of a data directory"
        ) from exc
    except (plyvel.Error, OSError) as exc:
        raise _translate(exc, path) from exc


def _move_routed_keys(main: Any, routed: Any, prefix: bytes, path: Path) -> None:
    """Move the keys under ``prefix`` that the main LevelDB still holds to the routed one:
    each chunk is written there (synced) before it is deleted here, so a crash at any
    point leaves every key in at least one of the two, and the next opening finishes."""
    def move(chunk: list[tuple[bytes, bytes]]) -> None:
        with routed.write_batch(sync=True) as wb:
            for key, value in chunk:
                wb.put(key, value)
        with main.write_batch(sync=True) as wb:
            for key, _ in chunk:
                wb.delete(key)

    try:
        # One iterator (one snapshot) for the whole move: our own deletes do not disturb
        # it, and it never walks over the tombstones of the chunks already moved.
        with main.iterator(prefix=prefix) as it:
            chunk: list[tuple[bytes, bytes]] = []
            for pair in it:
                chunk.append(pair)
                if len(chunk) >= MOVE_CHUNK_KEYS:
                    move(chunk)
                    chunk = []
            if chunk:
                move(chunk)
    except (plyvel.Error, RuntimeError) as exc:
        raise _translate(exc, path) from exc


class KV:
    """A LevelDB database, or a prefixed view of one."""

    __slots__ = ("_db", "_prefix")

    def __init__(self, db: _Stores, prefix: bytes = b"") -> None:
        self._db = db
        self._prefix = prefix

    @staticmethod
    def open(path: Path, *, create: bool = True,
             routes: Sequence[tuple[bytes, str]] = ()) -> KV:
        """Open the database in ``path`` (created, with its parents, when ``create``);
        each routed prefix in the LevelDB of its own subdirectory (see the module's rules)."""
        path = Path(path)
        prefixes = [prefix for prefix, _ in routes]
        if any(a != b and b.startswith(a) for a in prefixes for b in prefixes) or (
                len(set(prefixes)) != len(prefixes)) or b"" in prefixes:
            raise ValueError("routed prefixes must be non-empty and none may start another")
        main = _open_leveldb(path, create=create, cache_bytes=BLOCK_CACHE_BYTES,
                             buffer_bytes=WRITE_BUFFER_BYTES)
        routed: list[tuple[bytes, Any]] = []
        try:
            for prefix, name in routes:
                routed.append((prefix, _open_leveldb(
                    path / name, create=True, cache_bytes=ROUTED_BLOCK_CACHE_BYTES,
                    buffer_bytes=ROUTED_WRITE_BUFFER_BYTES)))
            stores = _Stores(path, main, routed)
            for prefix, db in routed:
                _move_routed_keys(main, db, prefix, path)
        except BaseException:
            for _, db in routed:
                db.close()
            main.close()
            raise
        return KV(stores)

    @property
    def path(self) -> Path:
        return self._db.path

    def prefixed(self, prefix: bytes) -> KV:
        return KV(self._db, self._prefix + prefix)

    def get(self, key: bytes) -> bytes | None:
        _check_key(key)
        full = self._prefix + key
        try:
            value: bytes | None = self._db.db_for(full).get(full)
        except (plyvel.Error, RuntimeError) as exc:
            raise _translate(exc, self._db.path) from exc
        return value

    def put(self, key: bytes, value: bytes, *, sync: bool = False) -> None:
        with self.batch(sync=sync) as batch:
            batch.put(key, value)

    def delete(self, key: bytes, *, sync: bool = False) -> None:
        with self.batch(sync=sync) as batch:
            batch.delete(key)

    @contextmanager
    def batch(self, *, sync: bool = True) -> Iterator[Batch]:
        """Collect writes; write them when the block exits without error (the module's
        rules: atomic within one LevelDB, the main one last)."""
        writes: dict[int, Any] = {}
        yield Batch(self._db, writes, self._prefix, sync)
        try:
            for index in sorted(writes):  # routed LevelDBs in order, the main one last
                writes[index].write()
        except (plyvel.Error, RuntimeError) as exc:
            raise _translate(exc, self._db.path) from exc

    def joined(self, batch: Batch) -> Batch:
        """``batch`` (open, of this database) seen from this view: what is written through
        the result lands in the same write, under this view's prefix."""
        if batch._stores is not self._db:
            raise StoreError("a write batch can only be joined by a view of its own database")
        return Batch(self._db, batch._writes, self._prefix, batch._sync)

    def items(
        self,
        *,
        prefix: bytes | None = None,
        start: bytes | None = None,
        stop: bytes | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        """Key-value pairs in key order, or reverse order (keys relative to this view).

        ``start`` is inclusive and ``stop`` exclusive whatever the direction; neither a
        range nor a prefix ever runs past this view."""
        if prefix is not None and (start is not None or stop is not None):
            raise ValueError("give either a prefix or a start/stop range, not both")
        if prefix is not None:
            low = self._prefix + prefix
            high = _after(low)
        else:
            low = self._prefix + (start or b"")
            high = self._prefix + stop if stop is not None else _after(self._prefix)
        cut = len(self._prefix)
        try:
            runs = [self._backward(db, low, high) if reverse else self._forward(db, low, high)
                    for db in self._db.holding(low, high)]
            pairs = runs[0] if len(runs) == 1 else heapq.merge(
                *runs, key=_key_of, reverse=reverse)  # the LevelDBs hold disjoint keys
            for key, value in pairs:
                yield key[cut:], value
        except (plyvel.Error, RuntimeError) as exc:
            raise _translate(exc, self._db.path) from exc

    @staticmethod
    def _forward(db: Any, low: bytes, high: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        with db.iterator(start=low, stop=high) as it:
            yield from it

    @staticmethod
    def _backward(db: Any, low: bytes, high: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        # Not plyvel's iterator(reverse=True, start=, stop=): plyvel 1.5 drops keys there
        # (reverse start=b"a", stop=b"b" over {a, b} yields nothing; plyvel PR #28). The
        # raw iterator gives LevelDB's own Seek/Prev semantics.
        it = db.raw_iterator()
        try:
            if high is not None:
                it.seek(high)  # the first key >= high ...
            if high is not None and it.valid():
                it.prev()  # ... so the one before it is the last key < high
            else:
                it.seek_to_last()  # no key >= high: start from the very last key
            while it.valid():
                key, value = it.item()
                if key < low:
                    return
                yield key, value
                it.prev()
        finally:
            it.close()

    def close(self) -> None:
        """Close the database; closing a prefixed view does nothing (the root owns it)."""
        if not self._prefix:
            self._db.close()

    @property
    def closed(self) -> bool:
        return bool(self._db.main.closed)

    def __enter__(self) -> KV:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

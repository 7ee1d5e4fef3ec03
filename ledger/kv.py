"""The one module that imports ``plyvel``: a small, typed key-value layer over LevelDB.

Rules:
- No ``plyvel`` exception escapes: a locked, missing or unreadable database becomes a
  ``StoreError`` whose message tells the operator what to do; a LevelDB corruption report
  becomes a ``CorruptionError``; a write refused for want of room (no space left, file
  too large for the process's limit, quota) becomes a ``DiskFullError``. LevelDB keeps
  every write acknowledged before it: after the operator makes room, reopening finds them.
- ``prefixed`` views share the one open database, so the chain, the state and the
  consensus log live in one directory under their own prefixes.
- ``batch`` is atomic: everything written inside it lands together on successful exit, or
  nothing does. ``sync=True`` (the default) waits for the disk, so a committed batch
  survives a power cut or ``kill -9``. ``joined`` lets another view of the same database
  write into an open batch (a block and its state in one write, one fsync).
"""

from __future__ import annotations

from collections.abc import Iterator
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
    """Writes collected for one atomic ``KV.batch``; keys are relative to the view."""

    __slots__ = ("_db", "_prefix", "_wb")

    def __init__(self, db: Any, wb: Any, prefix: bytes) -> None:
        self._db = db
        self._wb = wb
        self._prefix = prefix

    def put(self, key: bytes, value: bytes) -> None:
        _check_key(key)
        if not isinstance(value, bytes) or len(value) > VALUE_BYTES_MAX:
            raise StoreError(f"a stored value must be bytes, at most {VALUE_BYTES_MAX} bytes")
        self._wb.put(self._prefix + key, value)

    def delete(self, key: bytes) -> None:
        _check_key(key)
        self._wb.delete(self._prefix + key)


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) > KEY_BYTES_MAX:
        raise StoreError(f"a key must be at most {KEY_BYTES_MAX} bytes")


class KV:
    """A LevelDB database, or a prefixed view of one."""

    __slots__ = ("_db", "_path", "_prefix")

    def __init__(self, db: Any, path: Path, prefix: bytes = b"") -> None:
        self._db = db
        self._path = path
        self._prefix = prefix

    @staticmethod
    def open(path: Path, *, create: bool = True) -> KV:
        """Open the database in ``path`` (created, with its parents, when ``create``)."""
        path = Path(path)
        try:
            if create:
                path.mkdir(parents=True, exist_ok=True)
            elif not path.exists():  # LevelDB would create the directory before refusing
                raise StoreError(
                    f"no Tabellion data in {path}: check the path or create the node first"
                )
            elif not path.is_dir():
                raise FileExistsError(path)
            db = plyvel.DB(
                str(path), create_if_missing=create, paranoid_checks=True,
                bloom_filter_bits=BLOOM_FILTER_BITS, max_open_files=OPEN_TABLES_MAX,
                lru_cache_size=BLOCK_CACHE_BYTES, compression=COMPRESSION,
            )
        except FileExistsError as exc:  # from mkdir or the check above: a file is in the way
            raise StoreError(
                f"{path} is not a directory: give the path of a data directory"
            ) from exc
        except (plyvel.Error, OSError) as exc:
            raise _translate(exc, path) from exc
        return KV(db, path)

    @property
    def path(self) -> Path:
        return self._path

    def prefixed(self, prefix: bytes) -> KV:
        return KV(self._db, self._path, self._prefix + prefix)

    def get(self, key: bytes) -> bytes | None:
        _check_key(key)
        try:
            value: bytes | None = self._db.get(self._prefix + key)
        except (plyvel.Error, RuntimeError) as exc:
            raise _translate(exc, self._path) from exc
        return value

    def put(self, key: bytes, value: bytes, *, sync: bool = False) -> None:
        with self.batch(sync=sync) as batch:
            batch.put(key, value)

    def delete(self, key: bytes, *, sync: bool = False) -> None:
        with self.batch(sync=sync) as batch:
            batch.delete(key)

    @contextmanager
    def batch(self, *, sync: bool = True) -> Iterator[Batch]:
        """Collect writes; write them atomically when the block exits without error."""
        try:
            wb = self._db.write_batch(sync=sync)
        except (plyvel.Error, RuntimeError) as exc:
            raise _translate(exc, self._path) from exc
        yield Batch(self._db, wb, self._prefix)
        try:
            wb.write()
        except (plyvel.Error, RuntimeError) as exc:
            raise _translate(exc, self._path) from exc

    def joined(self, batch: Batch) -> Batch:
        """``batch`` (open, of this database) seen from this view: what is written through
        the result lands in the same atomic write, under this view's prefix."""
        if batch._db is not self._db:
            raise StoreError("a write batch can only be joined by a view of its own database")
        return Batch(self._db, batch._wb, self._prefix)

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
            pairs = self._backward(low, high) if reverse else self._forward(low, high)
            for key, value in pairs:
                yield key[cut:], value
        except (plyvel.Error, RuntimeError) as exc:
            raise _translate(exc, self._path) from exc

    def _forward(self, low: bytes, high: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        with self._db.iterator(start=low, stop=high) as it:
            yield from it

    def _backward(self, low: bytes, high: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        # Not plyvel's iterator(reverse=True, start=, stop=): plyvel 1.5 drops keys there
        # (reverse start=b"a", stop=b"b" over {a, b} yields nothing; plyvel PR #28). The
        # raw iterator gives LevelDB's own Seek/Prev semantics.
        it = self._db.raw_iterator()
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
        return bool(self._db.closed)

    def __enter__(self) -> KV:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
